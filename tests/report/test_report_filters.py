"""``agelens report`` on a filter atlas folder (``save_atlas``: manifest.json of ``"kind": "filters"``).

The page finds an atlas by what its manifest says, alone or inside a run or outputs/ folder, shows
it as "What the filters look for" (the atlas embedded, one row per filter, how to read it), and
turns a missing or broken file into a note, never a crash.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agelens.cli.report_cmd import report_command
from agelens.report.html import NothingToReport, render_report, write_report

SIZE = 24
SECTION = "What the filters look for"
ABSOLUTE = "/home/someone/photos/private_face.png"  # a photo named by its absolute path


def _tiny_model():
    """A random conv net small enough that an 8-step search takes a fraction of a second."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat")(x)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def atlas_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``save_atlas`` writes for 3 filters of a tiny model on 5 photos (8 search steps)."""
    from agelens.explain.feature_vis import filter_atlas, save_atlas

    photos = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE, 3)).astype(np.uint8)
    atlas = filter_atlas(_tiny_model(), photos, "feat", filters=3, top=2, steps=8)
    folder = tmp_path_factory.mktemp("atlas") / "filters"
    names = ["a.png", "b.png", ABSOLUTE, "d.png", "e.png"]
    save_atlas(atlas, folder, names=names)
    return folder


def _copy(atlas_folder: Path, where: Path) -> Path:
    shutil.copytree(atlas_folder, where)
    return where


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _section(html: str) -> str:
    found = re.search(r'<section class="card" id="filters">(.*?)</section>', html, re.S)
    assert found, "no filters section"
    return found.group(1)


def _rows(section: str) -> list[list[str]]:
    """The filters table's cells as text, one list per filter."""
    body = re.search(r"<tbody>(.*?)</tbody>", section, re.S).group(1)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def _ids(html: str) -> list[str]:
    return re.findall(r'<section class="[^"]*" id="([^"]+)"', html)


def _notes(html: str) -> list[str]:
    section = re.search(r'id="notes">(.*?)</section>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", section.group(1)) if section else []


def _report(*args: str | Path):
    app = typer.Typer()
    app.command()(report_command)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_an_atlas_folder_alone_is_a_page_of_its_own(atlas_folder: Path, tmp_path: Path) -> None:
    folder = _copy(atlas_folder, tmp_path / "filters")
    result = _report(folder)
    assert result.exit_code == 0, result.output
    html = (folder / "report.html").read_text()
    manifest = _manifest(folder)
    sec = _section(html)
    assert f"<h2>{SECTION}</h2>" in sec and f"<h1>Filter atlas: layer {manifest['layer']}</h1>" in html
    atlas = base64.b64encode((folder / "atlas.png").read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{atlas}"' in sec  # embedded byte for byte: the page is offline
    assert "they do not say why the model predicts a class" in sec  # how to read it, in plain words
    # one command's own folder: the absent evaluation, gallery and card are not news
    assert _notes(html) == [] and _ids(html) == ["run", "filters"]
    assert "pattern_file" not in html  # per_filter is the section's table, not repeated in Run


def test_the_table_lists_each_filter_with_the_manifests_values(atlas_folder: Path) -> None:
    from agelens.report.tables import fmt

    manifest = _manifest(atlas_folder)
    rows = _rows(_section(render_report(atlas_folder)))
    assert [r[0] for r in rows] == [str(f) for f in manifest["filters"]]
    for row, pf in zip(rows, manifest["per_filter"], strict=True):
        keys = ("pattern_activation", "start_activation", "photo_best_activation", "photo_mean_activation")
        assert row[1:5] == [fmt(pf[k]) for k in keys]
        shown = [f"{Path(t['photo']).name} ({fmt(t['peak'])})" for t in pf["top"]]
        assert row[5] == ", ".join(shown)


def test_an_atlas_inside_a_run_folder_joins_its_sections(
    atlas_folder: Path, run_dir: Path, tmp_path: Path
) -> None:
    _copy(atlas_folder, run_dir / "filters")
    html = render_report(run_dir)
    ids = _ids(html)
    assert "filters" in ids and ids.index("explanations") < ids.index("filters")
    sec = _section(html)
    assert "Search settings (recorded in filters/manifest.json)" in sec  # the run's manifest lacks them
    assert not any("Folders:" in n or "Filters" in n for n in _notes(html))  # the run's own: nothing to say


def test_outputs_with_several_atlases_shows_the_newest_and_says_so(
    atlas_folder: Path, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    old, new = _copy(atlas_folder, outputs / "filters"), _copy(atlas_folder, outputs / "filters-2")
    manifest = _manifest(new)
    manifest["layer"] = "newest_layer"
    (new / "manifest.json").write_text(json.dumps(manifest))
    os.utime(old / "manifest.json", (1_000_000, 1_000_000))
    path = write_report(outputs)
    html = path.read_text()
    assert "layer newest_layer" in _section(html)
    assert "Folders: filter atlas from filters-2/ (newest; not filters/)." in _notes(html)
    assert "run-filters" in _ids(html)  # its versions and settings under Run, as for other commands


def test_an_atlas_in_an_outputs_folder_by_another_name_is_found_by_its_manifest(
    atlas_folder: Path, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    _copy(atlas_folder, outputs / "my-atlas")
    html = write_report(outputs).read_text()
    assert SECTION in _section(html)
    assert "Folders: filter atlas from my-atlas/." in _notes(html)


@pytest.mark.parametrize("damage", ["missing", "not an image", "truncated"])
def test_a_missing_or_broken_atlas_image_is_a_note_and_the_table_stays(
    atlas_folder: Path, tmp_path: Path, damage: str
) -> None:
    folder = _copy(atlas_folder, tmp_path / "filters")
    png = folder / "atlas.png"
    if damage == "missing":
        png.unlink()
    elif damage == "not an image":
        png.write_bytes(b"this is not a picture")
    else:
        png.write_bytes(png.read_bytes()[:400])  # a PNG header, then nothing: a broken image in a browser
    html = render_report(folder)
    sec = _section(html)
    assert "<img" not in sec and len(_rows(sec)) == 3
    assert _notes(html) == ["Filters: atlas.png is missing or not a readable image; only the table is shown."]


def test_a_corrupt_atlas_manifest_alone_is_one_line_naming_it(atlas_folder: Path, tmp_path: Path) -> None:
    folder = _copy(atlas_folder, tmp_path / "filters")
    (folder / "manifest.json").write_text("{bad")
    result = _report(folder)
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {folder / 'manifest.json'}: could not read (")
    assert "nothing else to report, so no page was written" in result.output
    assert not (folder / "report.html").exists()


def test_a_corrupt_atlas_manifest_in_a_run_is_a_note_beside_the_rest(
    atlas_folder: Path, run_dir: Path
) -> None:
    (_copy(atlas_folder, run_dir / "filters") / "manifest.json").write_text("{bad")
    html = render_report(run_dir)
    assert "filters" not in _ids(html) and {"evaluation", "explanations", "scores"} <= set(_ids(html))
    assert [n.split(" (")[0] for n in _notes(html) if n.startswith("Filters")] == [
        "Filters: could not read manifest.json"
    ]


def test_an_outputs_folder_holding_only_a_broken_atlas_is_refused_naming_it(
    atlas_folder: Path, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    (_copy(atlas_folder, outputs / "filters") / "manifest.json").write_text("[1,")
    with pytest.raises(NothingToReport, match=re.escape(str(outputs / "filters" / "manifest.json"))):
        write_report(outputs)


def test_odd_per_filter_records_show_dashes_not_a_crash(atlas_folder: Path, tmp_path: Path) -> None:
    folder = _copy(atlas_folder, tmp_path / "filters")
    manifest = _manifest(folder)
    manifest["per_filter"] = [{"filter": 4, "top": [{"photo": 2, "peak": "high"}]}, "junk"]
    manifest["n_photos"] = None  # names=None: photos are recorded by their index
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert _rows(_section(render_report(folder))) == [["4", "—", "—", "—", "—", "photo 2"]]
    manifest["per_filter"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(folder)
    assert "<img" in _section(html) and "Filters: manifest.json lists no filters" in " ".join(_notes(html))


def test_a_search_that_did_not_move_is_said_under_the_table(atlas_folder: Path, tmp_path: Path) -> None:
    folder = _copy(atlas_folder, tmp_path / "filters")
    manifest = _manifest(folder)
    for pf in manifest["per_filter"]:
        pf["pattern_activation"], pf["start_activation"] = 2.0, 1.0
    manifest["per_filter"][1]["pattern_activation"] = 1.0
    (folder / "manifest.json").write_text(json.dumps(manifest))
    sec = _section(render_report(folder))
    stuck = manifest["per_filter"][1]["filter"]
    assert f"Filter {stuck}: the search did not raise the activation above its starting noise" in sec


def test_a_photo_named_by_its_absolute_path_is_shown_by_its_file_name(
    atlas_folder: Path, tmp_path: Path
) -> None:
    """A shared page does not say where the user keeps photos; manifest.json keeps the whole path."""
    folder = _copy(atlas_folder, tmp_path / "filters")
    manifest = _manifest(folder)
    manifest["per_filter"][0]["top"][0]["photo"] = ABSOLUTE
    (folder / "manifest.json").write_text(json.dumps(manifest))
    html = render_report(folder)
    assert _rows(_section(html))[0][5].startswith("private_face.png (") and "/home/someone" not in html
