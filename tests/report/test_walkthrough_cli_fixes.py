"""Fixes to ``agelens report`` from a user walkthrough:

1. a photo in the wild: the card's "photo" pane showed the whole photo (the face a small part of
   it) while the "map" pane showed the face crop explained; the photo pane now shows the crop too,
   captioned "face crop";
2. ``agelens report outputs`` on the folder the commands write to without ``--out`` (explain/,
   score/, score-2/, and an evaluate ``--out`` folder) showed the explanations only: the run
   reader looked for evaluation/ and scores/ alone. It now finds the commands' own folders too,
   the newest where there are several, and says which it used in one note line;
3. ``agelens data inspect photos/`` ignored ``notes.txt`` without a word, though its help promises
   "every unusable file": the non-image files are now one summary line, and in ``--json``;
4. ``agelens explain`` printed "~58 y" where predict and the panels say 57: it rounded the
   manifest's age (57.5, already rounded to 0.01 from 57.4999) a second time.

Items 3 and 4 are command-line fixes, kept here: a second file of this name in tests/cli would
clash with this one (pytest imports test files by basename: the suite has no ``__init__.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from keras_toys import constant_regressor
from PIL import Image
from report_factory import as_shown, card_pixels, make_run, scores_json, smooth_picture, write_json
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.explain.explanation import Explanation
from agelens.report.assets import Notes
from agelens.report.gallery import build_gallery
from agelens.report.html import render_report, write_report

CLASSES = ["young", "middle-aged", "old"]
SIZE = 32
runner = CliRunner()


# ------------------------------------------------------------ 1. the card's photo is the face crop


def _explain_face_crop(tmp_path: Path, photo: np.ndarray, box: list[int], whole: bool = False) -> Path:
    """What ``agelens explain`` saves for a photo whose face was cut out by ``box`` (x, y, side)."""
    from agelens.model.faces import crop_box

    x, y, side = box
    h, w = photo.shape[:2]
    crop = photo if whole else crop_box(photo, x, y, side)
    face = {
        "photo_size": [w, h],
        "face_found": True,
        "face_box_xywh": [x + 4, y + 4, side - 8, side - 8],
        "crop_box_xywh": [0, 0, w, h] if whole else [x, y, side, side],
    }
    path = tmp_path / "wild.png"
    Image.fromarray(photo).save(path)
    the_map = np.linspace(0, 1, crop.shape[0] * crop.shape[1], dtype=np.float32).reshape(crop.shape[:2])
    Explanation(
        maps=[the_map],
        probabilities=np.asarray([[0.2, 0.5, 0.3]], np.float32),
        class_names=CLASSES,
        layer="conv",
        method="gradcam",
        target="predicted class",
        images=[crop],
        sources=[str(path)],
        faces=[face],
    ).save(tmp_path / "ex")
    return tmp_path / "ex"


def test_the_cards_photo_is_the_face_crop_explained(tmp_path: Path) -> None:
    photo = smooth_picture(300, 400, 3)  # a photo in the wild: the face a small part of it
    ex = _explain_face_crop(tmp_path, photo, [220, 40, 96])
    manifest = json.loads((ex / "manifest.json").read_text())
    (item,) = build_gallery(ex, manifest, ex, Notes()).items
    assert item.photo is not None
    shown = card_pixels(item.photo)
    crop = photo[40:136, 220:316]
    assert shown.shape == as_shown(crop).shape  # square, as the map pane: not the 400x300 photo
    assert np.abs(shown.astype(int) - as_shown(crop).astype(int)).mean() < 4
    assert item.photo_label == "face crop"
    page = write_report(ex).read_text(encoding="utf-8")
    assert '<span class="pane-label">face crop</span>' in page


def test_a_photo_explained_whole_keeps_its_caption(tmp_path: Path) -> None:
    photo = smooth_picture(90, 90, 4)
    ex = _explain_face_crop(tmp_path, photo, [0, 0, 90], whole=True)
    manifest = json.loads((ex / "manifest.json").read_text())
    (item,) = build_gallery(ex, manifest, ex, Notes()).items
    assert item.photo is not None and card_pixels(item.photo).shape == as_shown(photo).shape
    assert item.photo_label == "photo"
    page = write_report(ex).read_text(encoding="utf-8")
    assert '<span class="pane-label">photo</span>' in page and 'pane-label">face crop' not in page


# ------------------------------------------------------------ 2. the commands' own output folders


def _outputs(tmp_path: Path) -> Path:
    """``outputs/`` after ``explain``, ``score`` twice (score/, score-2/), ``evaluate --out outputs/eval``."""
    run = make_run(tmp_path, n_images=2)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    shutil.move(run / "explain", outputs / "explain")
    shutil.move(run / "evaluation", outputs / "eval")
    write_json(outputs / "eval" / "manifest.json", {"command": "evaluate", "n_images": 20})
    shutil.move(run / "scores", outputs / "score")
    newer = scores_json()
    newer["scores"]["occlusion"] = newer["scores"].pop("scorecam")  # tells the two runs apart
    newer["methods"] = ["gradcam", "occlusion", "random"]
    write_json(outputs / "score-2" / "scores.json", newer)
    os.utime(outputs / "score" / "scores.json", (1_000_000_000, 1_000_000_000))
    return outputs


def test_a_folder_of_default_outputs_shows_every_part(tmp_path: Path) -> None:
    html = render_report(_outputs(tmp_path))
    assert 'id="evaluation"' in html and 'id="explanations"' in html and 'id="scores"' in html
    assert "no evaluation/metrics.json" not in html and "no scores/ folder" not in html
    assert "Folders: evaluation from eval/; scores from score-2/ (newest; not score/)." in html
    assert "occlusion" in html  # the newest score run's table (the older one has no occlusion)


def test_the_newest_score_folder_is_chosen_by_time(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    os.utime(outputs / "score-2" / "scores.json", (900_000_000, 900_000_000))  # score/ rerun with --force
    html = render_report(outputs)
    assert "scores from score/ (newest; not score-2/)" in html


def test_one_folder_each_is_named_without_a_choice(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path)
    shutil.rmtree(outputs / "score-2")
    out = write_report(outputs, tmp_path / "combined.html")
    html = out.read_text(encoding="utf-8")
    assert 'id="scores"' in html and "Folders: evaluation from eval/; scores from score/." in html
    assert "newest" not in html.split("Folders:", 1)[1].split("<", 1)[0]


def test_a_folder_with_only_score_output_is_reportable(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    write_json(outputs / "score" / "scores.json", scores_json())
    html = write_report(outputs).read_text(encoding="utf-8")
    assert 'id="scores"' in html


def test_a_runs_own_layout_is_read_as_before(tmp_path: Path) -> None:
    run = make_run(tmp_path, n_images=2)
    write_json(run / "score-2" / "scores.json", scores_json())  # a stray score folder beside scores/
    html = render_report(run)
    assert 'id="scores"' in html and "Folders:" not in html


# ------------------------------------------------------------ 3. non-image files in a dataset folder


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A UTKFace-style folder of tiny photos, a broken one, and files that are no images."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, age in enumerate((20, 35, 50, 65, 80, 25)):
        arr = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{age}_0_0_2017010100000{i}.jpg.chip.jpg")
    (folder / "30_0_0_20170101000009.jpg.chip.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("where these came from\n")
    (folder / ".DS_Store").write_bytes(b"hidden: not reported")
    return folder


def test_inspect_names_the_non_image_files_it_ignored(photos: Path) -> None:
    res = runner.invoke(app, ["data", "inspect", str(photos)])
    assert res.exit_code == 0, res.output
    assert "1 problem" in res.stdout
    lines = [ln for ln in res.stdout.splitlines() if "non-image" in ln]
    assert lines == ["1 non-image file ignored: notes.txt"], res.stdout
    assert ".DS_Store" not in res.stdout  # hidden files are skipped, as the image scan skips them


def test_inspect_json_lists_the_ignored_files(photos: Path) -> None:
    res = runner.invoke(app, ["data", "inspect", str(photos), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n_ignored"] == 1
    assert [Path(p).name for p in report["ignored_files"]] == ["notes.txt"]
    assert report["n_usable"] == 6 and report["n_problems"] == 1  # the counts as before


def test_many_ignored_files_are_one_line_naming_five(photos: Path) -> None:
    for i in range(6):
        (photos / f"readme{i}.md").write_text("x")
    res = runner.invoke(app, ["data", "inspect", str(photos)])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stdout.splitlines() if "non-image" in ln]
    assert line.startswith("7 non-image files ignored: ")
    assert line.endswith(", ... (2 more)") and line.count(",") == 5, line


def test_a_folder_of_images_only_says_nothing_more(tmp_path: Path, photos: Path) -> None:
    (photos / "notes.txt").unlink()
    res = runner.invoke(app, ["data", "inspect", str(photos), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ignored_files"] == []
    assert "non-image" not in runner.invoke(app, ["data", "inspect", str(photos)]).stdout


# ------------------------------------------------------------ 4. the age explain prints


def test_explain_prints_the_raw_age_as_predict_does(tmp_path: Path) -> None:
    """57.4999 y: 57.5 in the manifest (0.01 y), and printed from that "~58 y"; predict says 57."""
    model = constant_regressor(tmp_path / "regressor.keras", 57.4999)
    photo = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)).save(photo)
    out = tmp_path / "ex"
    args = ["--model", str(model), "--no-detect"]
    res = runner.invoke(app, ["explain", str(photo), *args, "--method", "saliency", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith(str(photo))]
    assert "~57 y" in line and "~58 y" not in line, line
    (record,) = json.loads((out / "manifest.json").read_text())["images"]
    assert record["prediction"]["age"] == pytest.approx(57.5)  # the manifest keeps its 0.01 y
    pred = runner.invoke(app, ["predict", str(photo), *args, "--engine", "keras"])
    assert pred.exit_code == 0, pred.output
    assert "~57 y" in pred.stdout, pred.stdout


def test_folders_named_by_out_are_found_by_what_they_hold(tmp_path: Path) -> None:
    """score --out outputs/score-n500 and explain --out outputs/faces were left out: only the default
    names counted. An evaluate folder's manifest.json (its settings) is not taken for explanations."""
    outputs = _outputs(tmp_path)
    shutil.move(outputs / "score-2", outputs / "score-n500")
    shutil.rmtree(outputs / "score")
    explain = next(p for p in outputs.iterdir() if p.name.startswith("explain"))
    shutil.move(explain, outputs / "faces")
    write_json(outputs / "eval" / "manifest.json", {"command": "evaluate", "settings": {}})
    html = render_report(outputs)
    assert 'id="scores"' in html and 'id="explanations"' in html, html[:2000]
    folders = html.split("Folders:", 1)[1].split("<", 1)[0]
    assert "scores from score-n500/" in folders and "explanations from faces/" in folders, folders
    assert "eval/" not in folders.split("explanations", 1)[1], folders
