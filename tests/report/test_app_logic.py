"""The web app's logic without a server: upload checks, explaining, filter grids, the zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agelens.report.app_logic import (
    MAX_UPLOAD_BYTES,
    UploadError,
    blend,
    build_engine,
    check_upload,
    is_predicted,
    square,
)


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
    assert engine.targets[4:6] == ["old-young", "young-old"]  # the CLI's contrast, offered in the app too


def test_a_contrast_target_explains_the_difference(engine, photo) -> None:
    exp = engine.explain(photo, "gradcam", "last-conv", "old-young")
    assert exp.target == "old minus young" and np.isfinite(np.asarray(exp.maps)).all()


def test_layer_choices_are_the_activation_outputs_and_other_names_still_work(engine, photo) -> None:
    from agelens.explain.layers import list_layers

    names = engine.layers[4:]
    kinds = {i.name: i.kind for i in list_layers(engine.model)}
    assert names and all(kinds[n] in ("ReLU", "Activation") for n in names)  # no BatchNorm or pre-activations
    assert len(names) < sum(i.is_feature for i in list_layers(engine.model)) / 2
    assert engine.default_layer in engine.layers
    bn = [i.name for i in list_layers(engine.model) if i.is_feature and i.kind == "BatchNormalization"]
    unlisted = bn[-1]
    exp = engine.explain(photo, "gradcam", unlisted, "predicted class")  # a typed name is still explained
    assert exp.layer == unlisted and np.isfinite(np.asarray(exp.maps)).all()


def test_explain_view_grid_and_zip(engine, photo: np.ndarray) -> None:
    exp = engine.explain(photo, "gradcam", "last-conv", "old")
    assert np.asarray(exp.maps).shape == (1, 96, 96)
    probs = engine.probabilities(exp)
    assert list(probs) == ["young", "middle-aged", "old"] and abs(sum(probs.values()) - 1) < 1e-4
    shown = square(photo)
    heat = blend(shown, square(np.asarray(exp.maps[0], np.float32)))
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


def test_huge_photo_is_shrunk_before_explaining(engine) -> None:
    """A 6000 px photo took over 30 s per click and zipped to 100 MB at full size; the model sees 112 px."""
    from agelens.report.app_logic import MAX_WORK_SIDE

    big = np.random.default_rng(1).integers(0, 256, (3000, 2000, 3), dtype=np.uint8)
    out, note = engine.prepare(big, detect=False)
    assert out.shape == (MAX_WORK_SIDE, round(2000 * MAX_WORK_SIDE / 3000), 3) and out.dtype == np.uint8
    assert note == ""
    small = np.random.default_rng(2).integers(0, 256, (25, 40, 3), dtype=np.uint8)
    out, note = engine.prepare(small, detect=False)
    assert out is small and note == "face only 25 px: unreliable below 32"  # judged before any resize


def test_overlay_opacity(photo: np.ndarray) -> None:
    shown, heat_map = square(photo), square(np.linspace(0, 1, 96 * 96, dtype=np.float32).reshape(96, 96))
    assert np.array_equal(shown, blend(shown, heat_map, alpha=0.0))
    default = blend(shown, heat_map)
    assert np.array_equal(default, blend(shown, heat_map, alpha=0.45))
    map_only = blend(shown, heat_map, alpha=1.0)
    assert not np.array_equal(map_only, default) and not np.array_equal(map_only, shown)
    assert np.array_equal(blend(shown, heat_map, alpha=7), map_only)  # clipped, never an error


@pytest.mark.parametrize(
    ("target", "predicted"),
    [("predicted class", True), ("", True), (None, True), ("old", False), ("old minus young", False)],
)
def test_one_rule_for_the_predicted_target(target: object, predicted: bool) -> None:
    """The dropdown's choice going in and ``Explanation.target`` coming out are read the same way."""
    from agelens.report.app_logic import _target

    assert is_predicted(target) is predicted
    if target is not None:
        assert (_target(target) is None) is predicted


def test_explain_click_status_names_the_predicted_class(engine, photo: np.ndarray) -> None:
    from agelens.report.app import _explain

    out = _explain(engine, photo, False, "gradcam", "last-conv", "predicted class", "out_relu", 0.0)
    shown, heat, probs, grid, archive, status, last = out
    top = max(probs, key=probs.__getitem__)
    assert f"target: {top} (predicted)" in status and "predicted class" not in status
    assert np.array_equal(shown, heat)  # opacity 0: the photo alone
    assert last[0] is shown and last[1].shape == shown.shape[:2] and last[2].method == "gradcam"
    assert "target: old" in _explain(engine, photo, False, "gradcam", "last-conv", "old", "out_relu")[5]


def test_app_layout_opacity_slider_and_no_dead_share_button(
    tiny_model_path: Path, photo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio's image "share" button only works on Hugging Face Spaces: locally it just errors."""
    import gradio as gr

    from agelens.report import app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(app, "_workdir", lambda: tmp_path)
    demo = app.build_app(tiny_model_path)
    blocks = list(demo.blocks.values())
    shareable = [b for b in blocks if "share" in (getattr(b, "buttons", None) or [])]
    assert shareable == []
    sliders = [b for b in blocks if isinstance(b, gr.Slider) and b.elem_id == "al-opacity"]
    assert len(sliders) == 1 and sliders[0].value == 0.45

    fns = {f.name: f.fn for f in demo.fns.values()}
    opacity_fn = next(f for f in demo.fns.values() if f.name == "on_opacity")
    assert opacity_fn.targets == [(sliders[0]._id, "change")]  # typing a value in its box fires no "release"
    assert [b.elem_id for b in opacity_fn.outputs] == ["al-map"]  # only the overlay: no download, no state
    engine = demo.agelens_engine
    explained = [
        app._explain(engine, photo, False, "gradcam", "last-conv", t, "out_relu") for t in ("old", "young")
    ]
    for *_, last in explained:
        heat = fns["on_opacity"](last, 1.0)
        assert np.array_equal(heat, app.blend(last[0], last[1], 1.0))

    # Each slider step used to write one more zip into the temp folder, never deleted.
    for step in range(12):
        for *_, last in explained:
            fns["on_opacity"](last, step / 11)
    archives = sorted((tmp_path / "outputs").rglob("*.zip"))
    assert archives == sorted(Path(out[4]) for out in explained)  # one per explanation, still there
