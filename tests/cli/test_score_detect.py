"""``agelens score --detect``: each photo's largest face cropped first, as ``evaluate --detect`` does,
and the warning a default run gives for photos that are clearly not face crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.score_cmd import score_command

runner = CliRunner()
app = typer.Typer()
app.command()(score_command)

QUICK = ["--methods", "gradcam", "--metrics", "deletion"]
WILD = "35_0_0_20170109999999.jpg.chip.jpg"  # a labelled name, a photo in the wild's size
BLANK = "50_1_0_20170109999998.jpg.chip.jpg"  # one flat colour: no face for any detector


@pytest.fixture(scope="module")
def chips_and_model(tmp_path_factory) -> tuple[Path, Path]:
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    root = tmp_path_factory.mktemp("score-detect")
    data = write_utk_folder(root / "utk", 6, seed=2)  # 48x48 square chips
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=False), seed=0)
    return data, save_model(wrap_keras_model(km), root / "tiny.keras")


def _with_photos(data: Path, tmp_path: Path) -> Path:
    """The chips, one 640x480 photo (a chip pasted on a noisy scene) and one flat grey photo."""
    folder = shutil.copytree(data, tmp_path / "mixed")
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    chip = np.asarray(Image.open(sorted(data.iterdir())[0]).resize((160, 160)))
    scene[100:260, 240:400] = chip
    Image.fromarray(scene).save(folder / WILD, quality=95)
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(folder / BLANK, quality=95)
    return folder


def _meta(out: Path) -> dict:
    return json.loads((out / "scores.json").read_text())["meta"]


@pytest.fixture(scope="module")
def detected(chips_and_model, tmp_path_factory) -> tuple[Path, Path, object]:
    """The mixed folder scored once with --detect: (folder, out, the CLI's result)."""
    data, model = chips_and_model
    root = tmp_path_factory.mktemp("detected")
    folder, out = _with_photos(data, root), root / "score"
    res = runner.invoke(
        app, [str(folder), "--model", str(model), *QUICK, "--n", "8", "-o", str(out), "--detect"]
    )
    assert res.exit_code == 0, res.output
    return folder, out, res


def test_detect_records_per_photo_whether_a_face_was_found(detected) -> None:
    _, out, res = detected
    meta = _meta(out)
    assert meta["detect"] is True and meta["n_images"] == 8 == len(meta["images"])
    found = meta["face_found"]
    assert len(found) == 8 and all(isinstance(f, bool) for f in found)  # one per photo, in images' order
    assert meta["n_faces_found"] == sum(found)
    assert meta["no_face"] == [name for name, f in zip(meta["images"], found, strict=True) if not f]
    # the summary line, in evaluate --detect's words
    k = sum(found)
    rest = "" if k == 8 else "; the others scored whole"
    assert f"8 photos: the largest face cropped first (found in {k} of 8{rest})" in res.output
    assert "not face crops, by their size and shape" not in res.output  # --detect given: nothing to suggest


def test_a_photo_without_a_face_is_recorded_as_not_found_and_scored_whole(detected) -> None:
    from agelens.data.images import load_batch
    from agelens.model.predict import prepare

    folder, out, res = detected
    meta = _meta(out)
    assert BLANK in meta["images"] and BLANK in meta["no_face"]  # scored, not left out
    assert meta["face_found"][meta["images"].index(BLANK)] is False
    assert "the others scored whole" in res.output
    # "whole": what --detect feeds the model for it is the photo as the default run reads it
    whole, _, _ = load_batch([folder / BLANK], 32)
    np.testing.assert_array_equal(prepare([folder / BLANK], 32, detect=True).batch, whole)


def test_a_large_non_square_photo_among_chips_is_named_with_a_hint(chips_and_model, tmp_path) -> None:
    data, model = chips_and_model
    folder = _with_photos(data, tmp_path)
    out = tmp_path / "score"
    res = runner.invoke(app, [str(folder), "--model", str(model), *QUICK, "--n", "8", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "not face crops, by their size and shape" in line]
    assert len(lines) == 1, res.output  # one line, naming the photo and its size, suggesting --detect
    assert f"{WILD} 640x480" in lines[0] and "--detect" in lines[0] and "1 of the 8 photos" in lines[0]
    assert BLANK not in lines[0]  # square: a face crop's shape
    meta = _meta(out)
    assert meta["detect"] is False and meta["not_face_crops"] == [WILD]
    assert "face_found" not in meta  # the default run scores the photos as given


def test_a_folder_of_square_chips_gets_no_warning(chips_and_model, tmp_path) -> None:
    data, model = chips_and_model
    out = tmp_path / "score"
    res = runner.invoke(app, [str(data), "--model", str(model), *QUICK, "--n", "6", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "not face crops, by their size and shape" not in res.output and "--detect" not in res.output
    meta = _meta(out)
    assert meta["detect"] is False and meta["not_face_crops"] == []


def test_the_rule_never_fires_on_utkface_sized_chips(tmp_path) -> None:
    from agelens.model.faces import not_face_crops

    def photo(name: str, w: int, h: int) -> Path:
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / name)
        return tmp_path / name

    chips = [photo(f"c{i}.jpg", 200, 200) for i in range(3)] + [photo(f"s{i}.jpg", 64, 64) for i in range(3)]
    for size in (32, 112, 224):  # squares never count, whatever the model's input
        assert not_face_crops(chips, size) == []
    celeba = photo("celeba.jpg", 178, 218)  # an aligned face crop, nearly square
    assert not_face_crops([*chips, celeba], 112) == []
    wild = photo("wild.jpg", 2000, 1500)
    assert not_face_crops([*chips, wild], 112) == [(wild, (2000, 1500))]
    modest = photo("modest.jpg", 600, 450)  # under 4x a 224 input, but 3x the chips most photos are
    assert not_face_crops([*[chips[0]] * 4, modest], 224) == [(modest, (600, 450))]


def test_detect_refuses_masks_the_crops_would_not_fit(chips_and_model, tmp_path) -> None:
    data, model = chips_and_model
    masks = tmp_path / "masks.npz"
    masks.write_bytes(b"")
    res = runner.invoke(app, [str(data), "--model", str(model), "--masks", str(masks), "--detect"])
    assert res.exit_code == 2 and "--masks" in res.output and "--detect" in res.output


def test_evaluate_names_photos_in_the_wild_as_score_does(chips_and_model, tmp_path) -> None:
    """evaluate scored a 640x480 photo among the chips as a face crop without a word; it says so in
    score's words (none for square chips), and the JSON lists it; --detect needs no warning."""
    from agelens.cli.main import app as main_app

    data, model = chips_and_model
    folder = _with_photos(data, tmp_path)
    res = runner.invoke(main_app, ["evaluate", str(folder), "--model", str(model), "--engine", "keras"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if "not face crops, by their size and shape" in line]
    assert len(lines) == 1 and f"{WILD} 640x480" in lines[0] and "--detect" in lines[0], res.stderr
    as_json = runner.invoke(
        main_app, ["evaluate", str(folder), "--model", str(model), "--json", "--engine", "keras"]
    )
    assert as_json.exit_code == 0 and "not face crops" not in as_json.stderr  # JSON runs stay quiet
    assert [Path(p).name for p in json.loads(as_json.stdout)["not_face_crops"]] == [WILD]
    chips = runner.invoke(main_app, ["evaluate", str(data), "--model", str(model), "--engine", "keras"])
    assert chips.exit_code == 0 and "not face crops" not in chips.stderr
    found = runner.invoke(
        main_app, ["evaluate", str(folder), "--model", str(model), "--detect", "--engine", "keras"]
    )
    assert found.exit_code == 0 and "not face crops" not in found.stderr
