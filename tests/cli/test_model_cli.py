"""``agelens evaluate`` and ``agelens predict`` end to end on a tiny model and a UTKFace-style folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def folder_and_model(tmp_path_factory) -> tuple[Path, Path]:
    from agelens.data.synthetic import generate
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model, wrap_keras_model

    root = tmp_path_factory.mktemp("cli")
    data = root / "utk"
    data.mkdir()
    faces = generate(9, size=48, seed=2)
    for i, (img, age) in enumerate(zip(faces.images, faces.ages, strict=True)):
        Image.fromarray(img).save(data / f"{int(age)}_0_0_2017010{i:02d}.jpg.chip.jpg", quality=95)
    (data / "40_1_0_20170109999.jpg.chip.jpg").write_bytes(b"not a jpeg")  # one broken photo
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=0)
    path = save_model(wrap_keras_model(km), root / "tiny.keras")
    return data, path


def test_evaluate_json_has_the_promised_fields_and_counts_the_broken_photo(folder_and_model) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names"):
        assert key in m, key
    assert m["n_images"] == 9 and m["n_skipped"] == 1 and m["test_time_flip"] is False
    flipped = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json", "--flip"])
    assert json.loads(flipped.stdout.strip().splitlines()[-1])["test_time_flip"] is True


def test_predict_folder_and_glob_give_one_row_per_readable_photo(folder_and_model) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, ["predict", str(data), "--model", str(model), "--json", "--no-detect"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 9
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 and "age" in r for r in rows)
    assert "40_1_0_20170109999.jpg.chip.jpg" in res.output  # the broken photo is named, not fatal
    glob = runner.invoke(
        app, ["predict", str(data / "1*.jpg"), "--model", str(model), "--json", "--no-detect"]
    )
    assert glob.exit_code == 0
    n = len(list(data.glob("1*.jpg")))
    assert n == sum(line.startswith("{") for line in glob.stdout.splitlines())


def test_a_corrupt_model_file_is_one_clear_line_and_exit_1(tmp_path, folder_and_model) -> None:
    data, _ = folder_and_model
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 truncated")
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(bad)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken.keras" in lines[0]


def test_predict_detects_and_crops_a_face_and_says_when_there_is_none(tmp_path, folder_and_model) -> None:
    from agelens.data.synthetic import generate
    from agelens.model.faces import detect_faces

    _, model = folder_and_model
    rng = np.random.default_rng(4)
    # A synthetic face the cascade finds, pasted into a larger canvas; and a photo of noise.
    face = next(im for im in generate(12, size=96, seed=5).images if detect_faces(im))
    canvas = rng.integers(110, 130, (300, 400, 3)).astype(np.uint8)
    canvas[60:156, 200:296] = face
    Image.fromarray(canvas).save(tmp_path / "holiday.png")
    Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    res = runner.invoke(app, ["predict", str(tmp_path / "holiday.png"), str(tmp_path / "noise.png"),
                              "--model", str(model), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    rows = {Path(r["file"]).name: r for r in lines}
    assert rows["holiday.png"]["face_found"] is True and rows["noise.png"]["face_found"] is False
    plain = runner.invoke(app, ["predict", str(tmp_path / "noise.png"), "--model", str(model)])
    assert "no face found: whole image used" in plain.output
