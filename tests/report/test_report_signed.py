"""Signed maps in the HTML report, and ``--out DIR/`` naming a new folder.

A signed overlay (``explain --signed``) is red for the target, blue against it and pale where
nothing matters; read on the plain low-to-high bar its blue says "unimportant", the opposite of
what it means. These tests build explain folders the way the explain CLI writes them (file lists
plus ``runs[].settings.signed``) and check the legend the page gives each kind of map.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import matplotlib
import pytest
import typer
from report_factory import CLASSES, make_run, png, write_json
from typer.testing import CliRunner

from agelens.cli.report_cmd import report_command
from agelens.explain.overlay import DEFAULT_CMAP, SIGNED_CMAP
from agelens.report.html import render_report, write_report

UNSIGNED_LINE = (
    "mattered most for the chosen target class (the Target box) in this photo; colours at the low (left) "
    "end of the bar mattered least."
)


def _explain_folder(
    folder: Path,
    runs: list[tuple[str, str, bool]],
    target: str = "expected age",
    cmap: str = DEFAULT_CMAP,
    n: int = 2,
) -> Path:
    """An ``agelens explain --out folder``: one (method, layer, signed) per run, overlays per photo."""
    images = []
    for i in range(n):
        stem = f"{i:03d}_face{i}"
        files = []
        for j, (method, _, _) in enumerate(runs):
            files.append(png(folder / f"{stem}_{method}_overlay.png", 10 * i + j))
            files.append(png(folder / f"{stem}_{method}_panel.png", 100 + 10 * i + j))
        png(folder / f"face{i}.png", 500 + i)
        images.append(
            {
                "source": f"face{i}.png",
                "size": [24, 24],
                "files": files,
                "prediction": {
                    "class": CLASSES[i % 3],
                    "probabilities": {c: (0.6 if k == i % 3 else 0.2) for k, c in enumerate(CLASSES)},
                    "age": 30.0 + 20 * i,
                },
            }
        )
    write_json(
        folder / "manifest.json",
        {
            "agelens_version": "0.1.0",
            "model": None,
            "overlay": {"cmap": cmap, "alpha": 0.45},
            "conventions": {"maps": "float32 in [0, 1] (in [-1, 1] for a run with signed: true)"},
            "runs": [
                {
                    "method": method,
                    "layer": layer,
                    "target": target,
                    "settings": {"batch_size": 32, "detect": False} | ({"signed": True} if signed else {}),
                }
                for method, layer, signed in runs
            ],
            "images": images,
            "problems": [],
        },
    )
    return folder


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", html)))


def _box(html: str) -> str:
    return re.search(r'<aside class="how-to-read".*?</aside>', html, re.S).group(0)


def _bars(box: str) -> list[tuple[str, str, str]]:
    """(left label, CSS gradient, right label) of each colour bar in the box, in order."""
    return re.findall(
        r'<span class="cb-end">([^<]*)</span><span class="colorbar"[^>]*style="background: '
        r'(linear-gradient\([^"]+\))"></span><span class="cb-end">([^<]*)</span>',
        box,
    )


def _ends(cmap: str) -> tuple[str, str]:
    """The first and last stop a bar of ``cmap`` must have: matplotlib's own colours at 0 and 1."""
    lo, hi = (tuple(round(255 * c) for c in matplotlib.colormaps[cmap](t)[:3]) for t in (0.0, 1.0))
    return f"linear-gradient(to right, rgb{lo} 0%", f"rgb{hi} 100%)"


def _labels(html: str) -> list[str]:
    """The label under each card's map."""
    return re.findall(r'<span class="pane-label[^"]*">([^<]*)</span>\s*</div>\s*</div>\s*<figcaption', html)


def _data(html: str) -> dict:
    return json.loads(re.search(r'id="gallery-data">(.*?)</script>', html, re.S).group(1))


def test_a_signed_run_gets_the_diverging_bar_and_for_against_wording(tmp_path: Path) -> None:
    ex = _explain_folder(tmp_path / "ex", [("hirescam", "out_relu", True), ("occlusion", "input", True)])
    html = render_report(ex)
    box = _box(html)
    (bar,) = _bars(box)  # one bar: the signed one, not jet beside it
    lo, hi = _ends(SIGNED_CMAP)
    assert bar[0] == "against" and bar[2] == "for"
    assert bar[1].startswith(lo) and bar[1].endswith(hi)
    text = _text(box)
    assert "These maps are signed." in text
    assert "Red marks the pixels that pushed the model toward the chosen target" in text
    assert "blue those that pushed against it; pale or uncoloured parts had little or no effect" in text
    assert "red raises the estimate (looks older) and blue lowers it" in text  # target: expected age
    assert "mattered least" not in text and "top of the bar" not in text
    # the expected age is no class: the box and the section lead say "target", not "target class"
    assert "target class" not in text and "the expected age, or a contrast" in text
    assert "Pick a method, layer and target; every card switches together." in html
    assert _labels(html) == ["signed map", "signed map"]
    assert all(sorted(it["signed"]) == ["0-0-0", "1-1-0"] for it in _data(html)["items"])


def test_an_unsigned_run_keeps_the_low_high_bar_and_its_wording(tmp_path: Path) -> None:
    ex = _explain_folder(tmp_path / "ex", [("gradcam", "out_relu", False)], target="predicted class")
    html = render_report(ex)
    box = _box(html)
    (bar,) = _bars(box)
    lo, hi = _ends(DEFAULT_CMAP)
    assert (bar[0], bar[2]) == ("low", "high") and bar[1].startswith(lo) and bar[1].endswith(hi)
    text = _text(box)
    assert UNSIGNED_LINE in text and "top of the bar" in text
    assert "signed" not in box and "against" not in text
    assert _labels(html) == ["map", "map"] and 'class="pane-label map-kind"' not in html
    assert all("signed" not in it for it in _data(html)["items"])  # the page's data as before
    assert "Pick a method, layer and target class; every card switches together." in html


def test_the_factory_run_renders_the_plain_legend_as_before(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path))
    box = _box(html)
    assert [(b[0], b[2]) for b in _bars(box)] == [("low", "high")]
    assert UNSIGNED_LINE in _text(box) and "signed" not in box


def test_an_unsigned_map_of_a_target_that_is_no_class_is_worded_as_a_target(tmp_path: Path) -> None:
    ex = _explain_folder(tmp_path / "ex", [("gradcam", "out_relu", False)], target="old minus young")
    text = _text(_box(render_report(ex)))
    assert (
        "mattered most for the chosen target (the Target box: a class, the expected age, or a contrast"
        in text
    )
    assert "target class" not in text and "signed" not in text
    assert "looks older" not in text  # the age sentence is for signed maps of the expected age only


def test_a_run_mixing_signed_and_plain_maps_says_which_legend_each_map_takes(tmp_path: Path) -> None:
    runs = [("gradcam", "out_relu", False), ("hirescam", "out_relu", True)]
    html = render_report(_explain_folder(tmp_path / "ex", runs, target="old"))
    box = _box(html)
    bars = _bars(box)
    assert [(b[0], b[2]) for b in bars] == [("against", "for"), ("low", "high")]
    assert bars[0][1].startswith(_ends(SIGNED_CMAP)[0]) and bars[1][1].startswith(_ends(DEFAULT_CMAP)[0])
    text = _text(box)
    assert (
        "a card labelled “signed map” reads on the against/for bar, one labelled “map” on the low/high"
        in text
    )
    assert "Signed maps: Red marks the pixels that pushed the model toward the chosen target class" in text
    assert "Other maps: Red marks the pixels that mattered most for the chosen target class" in text
    # gradcam (plain) is shown first; the script relabels a card when hirescam (signed) is picked
    assert _labels(html) == ["map", "map"]
    assert all(it["signed"] == ["1-0-0"] for it in _data(html)["items"])
    assert 'querySelector(".map-kind")' in html


def test_signed_maps_listed_per_image_are_recognised_too(tmp_path: Path) -> None:
    # The per-map manifest the report was specified with: each map may say ``signed`` itself.
    ex = tmp_path / "ex"
    png(ex / "maps/a.png", 1)
    png(ex / "maps/b.png", 2)
    maps = [
        {"method": "hirescam", "layer": "out_relu", "target": "old", "overlay": "maps/a.png", "signed": True},
        {"method": "gradcam", "layer": "out_relu", "target": "old", "overlay": "maps/b.png"},
    ]
    write_json(ex / "manifest.json", {"images": [{"file": "maps/a.png", "predicted": "old", "maps": maps}]})
    html = render_report(ex)
    assert [(b[0], b[2]) for b in _bars(_box(html))] == [("against", "for"), ("low", "high")]
    assert _labels(html) == ["signed map"] and _data(html)["items"][0]["signed"] == ["0-0-0"]


def test_the_bars_follow_the_colormap_the_manifest_records(tmp_path: Path) -> None:
    # explain --signed --cmap X draws signed maps in X itself; only the default (jet) becomes RdBu_r.
    signed = _explain_folder(tmp_path / "s", [("hirescam", "out_relu", True)], cmap="coolwarm")
    (bar,) = _bars(_box(render_report(signed)))
    assert bar[1].startswith(_ends("coolwarm")[0]) and bar[1].endswith(_ends("coolwarm")[1])
    plain = _explain_folder(tmp_path / "p", [("gradcam", "out_relu", False)], cmap="inferno")
    (bar,) = _bars(_box(render_report(plain)))
    assert bar[1].startswith(_ends("inferno")[0])
    odd = _explain_folder(tmp_path / "o", [("hirescam", "out_relu", True)], cmap="PiYG")
    text = _text(_box(render_report(odd)))  # green-to-pink: no colour names, the ends of the bar
    assert "The right-hand end of the bar marks the pixels that pushed the model toward" in text
    assert "its left-hand end those that pushed against it" in text and "Red marks" not in text
    # the expected-age sentence names the same ends, not colours PiYG does not have
    said = "the right-hand end of the bar raises the estimate (looks older) and its left-hand end lowers"
    assert said in text
    assert "red raises" not in text
    recorded = json.loads((odd / "manifest.json").read_text())
    recorded["overlay"]["signed_cmap"] = "coolwarm"  # what explain says it drew wins over the rule
    write_json(odd / "manifest.json", recorded)
    (bar,) = _bars(_box(render_report(odd)))
    assert bar[1].startswith(_ends("coolwarm")[0]) and bar[1].endswith(_ends("coolwarm")[1])


def test_a_signed_run_from_the_real_explain_cli(tiny_model_path: Path, tmp_path: Path) -> None:
    """What ``agelens explain --signed`` really writes is read as signed (guards its manifest's shape)."""
    from PIL import Image

    from agelens.cli.explain_cmd import explain_command
    from agelens.data.synthetic import generate

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(generate(2, size=64, seed=2).images):
        Image.fromarray(img).save(photos / f"face{i}.png")
    app = typer.Typer()
    app.command()(explain_command)
    out = tmp_path / "ex"
    args = [str(photos), "--model", str(tiny_model_path), "--signed", "--method", "hirescam"]
    result = CliRunner().invoke(app, [*args, "--target", "old-young", "--no-detect", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = render_report(out)
    assert [(b[0], b[2]) for b in _bars(_box(html))] == [("against", "for")]
    assert _labels(html) == ["signed map", "signed map"]
    assert "target class" not in _text(_box(html))  # "old minus young" is a contrast


def _report(*args: str | Path):
    app = typer.Typer()
    app.command()(report_command)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_out_with_a_trailing_slash_makes_the_folder_and_writes_report_html_in_it(
    run_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "newdir"
    result = _report(run_dir, "--out", f"{folder}/")
    assert result.exit_code == 0, result.output
    assert folder.is_dir() and (folder / "report.html").is_file()
    assert f"wrote {folder / 'report.html'}" in result.output
    again = _report(run_dir, "--out", f"{folder}/")  # now an existing page: refused without --force
    assert again.exit_code == 1 and "exists; use --force" in again.output
    assert _report(run_dir, "--out", f"{folder}/", "--force").exit_code == 0


def test_write_report_takes_a_trailing_slash_as_a_folder(run_dir: Path, tmp_path: Path) -> None:
    assert write_report(run_dir, f"{tmp_path / 'pages'}/") == tmp_path / "pages" / "report.html"
    assert write_report(run_dir, tmp_path / "pages", force=True) == tmp_path / "pages" / "report.html"


def test_out_with_a_trailing_slash_makes_one_folder_only(run_dir: Path, tmp_path: Path) -> None:
    out = f"{tmp_path / 'a' / 'b'}/"
    result = _report(run_dir, "--out", out)
    assert result.exit_code == 1
    assert result.output == f"error: {out}: {tmp_path / 'a'} does not exist (create it first)\n"
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    not_a_folder = _report(run_dir, "--out", f"{tmp_path / 'file'}/")
    assert not_a_folder.exit_code == 1 and f"{tmp_path / 'file'} is not a folder" in not_a_folder.output


@pytest.mark.parametrize("trailing", ["/", ""])
def test_a_refused_report_makes_no_folder(tmp_path: Path, trailing: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _report(empty, "--out", f"{tmp_path / 'newdir'}{trailing}")
    assert result.exit_code == 1 and "nothing to report" in result.output
    assert not (tmp_path / "newdir").exists()


def test_out_naming_a_file_without_a_slash_still_writes_that_file(run_dir: Path, tmp_path: Path) -> None:
    result = _report(run_dir, "--out", tmp_path / "page.html")
    assert result.exit_code == 0 and (tmp_path / "page.html").is_file()


@pytest.mark.browser
def test_a_cards_map_label_follows_the_selection_in_a_mixed_run(tmp_path: Path, page) -> None:
    from report_factory import SCREENSHOTS

    runs = [("gradcam", "out_relu", False), ("hirescam", "out_relu", True)]
    page.goto(write_report(_explain_folder(tmp_path / "ex", runs, target="old")).as_uri())
    labels = ".gcard .pane-label.map-kind"
    assert page.locator(labels).all_inner_texts() == ["map", "map"]
    page.select_option("#sel-method", label="hirescam")
    assert page.locator(labels).all_inner_texts() == ["signed map", "signed map"]
    page.evaluate("document.getElementById('how-to-read').scrollIntoView()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report_signed_mixed.png"))
    page.select_option("#sel-method", label="gradcam")
    assert page.locator(labels).all_inner_texts() == ["map", "map"]
