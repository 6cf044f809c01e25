"""The page's Run section, from a user test of ``agelens explain photos/`` then ``agelens report``:

1. the field documentation (``conventions``) and the one-row-per-photo table came first, open, and
   filled the first ~4,000 px above the explanations: both are now folded (``<details>``) under a
   one-line summary, the settings and versions above them still visible;
2. the page printed each photo's absolute ``source_path`` and the model's absolute path, which a
   colleague it is shared with does not need: the photo is named as the user typed it (``source``),
   the model by its file name ("shipped model (agelens-utkface.keras)" for the shipped one), and
   the same for the model and photo folder recorded by evaluate and score. manifest.json keeps all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from report_factory import explained_by_relative_path, make_run, write_json

import agelens
from agelens.report.html import render_report, write_report

SHIPPED = str(Path(agelens.__file__).resolve().parent / "assets" / "agelens-utkface.keras")


_explained = explained_by_relative_path


def _details(page: str, summary: str) -> str:
    """The whole ``<details>`` block whose summary starts with ``summary`` (fails if there is none)."""
    start = r'<details class="fold[^"]*"><summary>' + re.escape(summary)
    found = re.search(start + r".*?</details>", page, re.S)
    assert found, f"no folded block {summary!r}"
    return found.group(0)


def test_the_conventions_and_the_photo_table_are_folded_above_the_explanations(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    ex = _explained(tiny_model_path, tmp_path, monkeypatch)
    page = render_report(ex)
    run, gallery = page.index('id="run"'), page.index('id="explanations"')
    conventions = _details(page, "Conventions: what each field means</summary>")
    images = _details(page, "Images: 1 photo (")
    for block in (conventions, images):
        assert run < page.index(block) < gallery  # in the Run section, before the gallery
    # what each block holds is inside it, not open on the page
    assert "of the image explained, in pixels" in conventions
    assert page.count("of the image explained, in pixels") == 1
    assert "photos/face.png" in images
    # the settings and versions stay visible, outside any fold
    section = page[run:gallery]
    open_part = re.sub(r"<details.*?</details>", "", section, flags=re.S)
    assert "agelens_version" in open_part and "Runs" in open_part
    assert "<h4>Conventions</h4>" not in page and "<h4>Images</h4>" not in page


def test_the_page_names_photos_and_the_model_without_their_absolute_paths(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    ex = _explained(tiny_model_path, tmp_path, monkeypatch)
    manifest = json.loads((ex / "manifest.json").read_text())
    (record,) = manifest["images"]
    assert Path(record["source_path"]).is_absolute() and Path(manifest["model"]).is_absolute()
    page = write_report(ex).read_text(encoding="utf-8")
    assert record["source_path"] not in page and "source_path</th>" not in page
    assert str(tmp_path) not in page and str(tiny_model_path.parent) not in page
    assert "photos/face.png" in page  # the photo as the user named it
    assert re.search(r'<th scope="row" class="rowhead">model</th><td class="">tiny\.keras</td>', page)
    # the files keep everything: only the page is shortened
    assert json.loads((ex / "manifest.json").read_text()) == manifest


def test_the_shipped_model_is_named_as_such(tmp_path: Path) -> None:
    ex = tmp_path / "ex"
    write_json(
        ex / "manifest.json",
        {
            "model": SHIPPED,
            "conventions": {"source": "the photo as it was named"},
            "runs": [{"method": "gradcam", "layer": "conv", "target": "old"}],
            "images": [
                {"source": "photos/a.jpg", "source_path": "/home/someone/photos/a.jpg", "size": [8, 8]}
            ],
        },
    )
    page = render_report(ex)
    assert "shipped model (agelens-utkface.keras)" in page
    assert SHIPPED not in page and "/home/someone" not in page
    assert "<summary>Images: 1 photo (source of it)</summary>" in page


def test_evaluation_and_scores_name_their_model_and_photo_folder_briefly(tmp_path: Path) -> None:
    run = make_run(tmp_path, n_images=1)
    metrics = json.loads((run / "evaluation/metrics.json").read_text())
    write_json(run / "evaluation/metrics.json", metrics | {"model": "/home/someone/models/mine.keras"})
    scores = json.loads((run / "scores/scores.json").read_text())
    scores["meta"] |= {
        "model": SHIPPED,
        "data": "/home/someone/photos",
        "shuffled_model": "/home/someone/models/shuffled.keras",
        "holdout": "splits/test.txt",
    }
    write_json(run / "scores/scores.json", scores)
    page = render_report(run)
    assert "/home/someone" not in page and SHIPPED not in page
    assert ">mine.keras<" in page and ">shuffled.keras<" in page and ">photos<" in page
    assert "shipped model (agelens-utkface.keras)" in page
    assert ">splits/test.txt<" in page  # a relative path stays as the user typed it


def test_shared_path_shortens_only_what_it_should() -> None:
    from agelens.report.assets import model_label, shared_path

    assert model_label(SHIPPED) == "shipped model (agelens-utkface.keras)"
    # the shipped model recorded on another machine's install
    assert model_label("/opt/py/site-packages/agelens/assets/agelens-utkface.keras").startswith("shipped")
    assert model_label("/home/me/agelens-utkface.keras") == "agelens-utkface.keras"  # a copy, maybe retrained
    assert model_label("<in-memory model>") == "<in-memory model>"
    assert model_label("models/mine.keras") == "mine.keras"
    assert shared_path("settings · data", "/home/me/photos") == "photos"
    assert shared_path("data", "photos/") == "photos/"
    assert shared_path("model", None) is None and shared_path("seed", "/x/y") == "/x/y"


def test_a_command_line_is_shown_with_each_absolute_path_cut_to_its_name() -> None:
    """Manifests record the command as typed; a shared page must not carry the user's folders."""
    from agelens.report.assets import shared_path

    typed = "agelens demo --out /home/secretuser/demo --model=/srv/m.keras 'my photos/a b.jpg'"
    shown = shared_path("command_line", typed)
    assert "/home" not in shown and "/srv" not in shown
    assert shown == "agelens demo --out demo --model=m.keras 'my photos/a b.jpg'"


def test_sentences_and_skipped_photos_name_folders_without_the_users_home(tmp_path: Path) -> None:
    """``evaluated_on`` and the skipped list are sentences the command wrote with the path as typed:
    an absolute one put the user's home into the shared page (Evaluation caption, key findings,
    the "Other metrics" table)."""
    run = make_run(tmp_path, n_images=1)
    metrics = json.loads((run / "evaluation/metrics.json").read_text())
    metrics |= {
        "evaluated_on": "held-out test split of /home/someone/photos (30 photos, seed 0)",
        "skipped": ["/home/someone/photos/broken.jpg: cannot read image header"],
    }
    write_json(run / "evaluation/metrics.json", metrics)
    page = render_report(run)
    assert "/home/someone" not in page
    assert "held-out test split of photos (30 photos, seed 0)" in page and "broken.jpg" in page


def test_paths_with_spaces_splits_and_slashes_in_prose_are_shown_as_a_reader_needs(tmp_path: Path) -> None:
    """helper-86's review: a folder with a space kept "alice smith/faces", ``split`` was shown in
    full, and the path regex ate the slash of "+/-" and "1 /2"."""
    from agelens.report.assets import cut_paths, shared_path

    run = make_run(tmp_path, n_images=1)
    metrics = json.loads((run / "evaluation/metrics.json").read_text())
    typed = "/home/alice smith/my faces"
    metrics["evaluated_on"] = f"held-out test split of {typed} (30 photos, seed 0)"
    write_json(run / "evaluation/metrics.json", metrics)
    settings = {"data": typed, "split": "/home/alice smith/models/a_split.json"}
    write_json(run / "evaluation/manifest.json", {"command": "evaluate", "settings": settings})
    page = render_report(run)
    assert "alice" not in page and "held-out test split of my faces (30 photos, seed 0)" in page
    assert shared_path("settings · split", settings["split"]) == "a_split.json"
    assert cut_paths("+/-0.5 years, ratio 1 /2") == "+/-0.5 years, ratio 1 /2"
    assert cut_paths("/home/u/my photos/a.jpg: cannot decode") == "a.jpg: cannot decode"
    assert shared_path("command_line", "agelens x -o/home/u/out") == "agelens x -oout"
