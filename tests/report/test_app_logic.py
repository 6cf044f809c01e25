"""The web app's logic without a server: upload checks, explaining, filter grids, the zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agelens.report.app_logic import MAX_UPLOAD_BYTES, UploadError, build_engine, check_upload


def test_upload_checks(tmp_path: Path) -> None:
    good = tmp_path / "face.png"
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(good)
    assert check_upload(good).shape == (40, 30, 3)

    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(UploadError, match=r"^photo\.png: not an image"):
        check_upload(text, name="photo.png")

    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:  # sparse: no 20 MB actually written
        fh.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(UploadError, match=r"big\.jpg: file is 20\.0 MB; the limit is 20 MB"):
        check_upload(big)
    assert "\n" not in str(pytest.raises(UploadError, check_upload, tmp_path / "gone.png").value)


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    from agelens.model.io import load_model

    return build_engine(load_model(tiny_model_path), tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from agelens.data.synthetic import generate

    return generate(1, size=96, seed=1).images[0]


def test_engine_options(engine) -> None:
    assert engine.methods[0] == "gradcam" and "scorecam" in engine.methods
    assert engine.layers[:4] == ["last-conv", "early", "mid", "late"] and "out_relu" in engine.layers
    assert engine.targets[0] == "predicted class" and engine.targets[1:4] == ["young", "middle-aged", "old"]


def test_explain_view_grid_and_zip(engine, photo: np.ndarray) -> None:
    exp = engine.explain(photo, "gradcam", "last-conv", "old")
    assert np.asarray(exp.maps).shape == (1, 96, 96)
    probs = engine.probabilities(exp)
    assert list(probs) == ["young", "middle-aged", "old"] and abs(sum(probs.values()) - 1) < 1e-4
    shown, heat = engine.view(photo, np.asarray(exp.maps[0]))
    assert shown.shape == heat.shape == (320, 320, 3) and not np.array_equal(shown, heat)
    grid = engine.filter_grid(photo, "out_relu")
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.std() > 0
    archive = engine.save_zip(exp)
    assert archive.parent.is_relative_to(engine.workdir)
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert any(n.endswith("manifest.json") for n in names) and any(n.endswith("_overlay.png") for n in names)
    assert not (archive.parent / "agelens-explanation").exists()  # only the zip stays


def test_pixel_methods_ignore_the_layer_choice(engine, photo: np.ndarray) -> None:
    exp = engine.explain(photo, "saliency", "out_relu", "predicted class")  # saliency takes no layer
    assert np.asarray(exp.maps).shape == (1, 96, 96)


def test_face_detection_falls_back_to_whole_photo(engine) -> None:
    blank = np.full((80, 120, 3), 200, np.uint8)
    out, note = engine.prepare(blank, detect=True)
    assert out is blank and "no face found; using the whole photo" in note
    assert "single flat colour" in note  # e.g. a fully transparent PNG: nothing to judge
    tiny = np.random.default_rng(0).integers(0, 256, (25, 40, 3), dtype=np.uint8)
    assert engine.prepare(tiny, detect=False)[1] == "face only 25 px: unreliable below 32"
