"""The web app's logic without a server: upload checks, explaining, filter grids, the zip."""

from __future__ import annotations

import re
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
    prep = engine.prepare(blank, detect=True)
    assert prep.photo is blank and prep.no_face
    assert prep.face == {"photo_size": [120, 80], "face_found": False, "crop_box_xywh": [0, 0, 120, 80]}
    # 3:2: the model sees the centred 80x80 square, two thirds of the photo, not "the whole photo"
    assert prep.note.startswith("no face found; the model sees the centred square (67% of the photo)")
    assert "single flat colour" in prep.note  # e.g. a fully transparent PNG: nothing to judge
    squareish = engine.prepare(np.full((100, 95, 3), 200, np.uint8), detect=True)
    assert squareish.note.startswith("no face found; using the whole photo;")
    tiny = np.random.default_rng(0).integers(0, 256, (25, 40, 3), dtype=np.uint8)
    plain = engine.prepare(tiny, detect=False)
    assert (
        plain.note
        == "the model sees the centred square (62% of the photo); face only 25 px: unreliable below 32"
    )
    assert (
        engine.prepare(tiny[:, 8:33], detect=False).note == "face only 25 px: unreliable below 32"
    )  # square
    assert plain.face == {"photo_size": [40, 25]} and not plain.no_face  # nothing looked for, nothing claimed


def test_a_face_crop_is_not_called_cropped(
    engine, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photo that already is a face crop is returned whole by the detector: "cropped" was untrue."""
    from agelens.model import faces
    from agelens.report.app_logic import face_note

    monkeypatch.setattr(faces, "crop_largest_face", lambda img: (img, (4, 6, 88, 86)))
    prep = engine.prepare(photo, detect=True)
    assert prep.note == "face found (the photo is already a face crop)" and not prep.no_face
    assert prep.face == {
        "photo_size": [96, 96],
        "face_found": True,
        "face_box_xywh": [4, 6, 88, 86],
        "crop_box_xywh": [0, 0, 96, 96],  # the photo kept whole: the map lies on all of it
    }
    monkeypatch.setattr(faces, "crop_largest_face", lambda img: (img[10:60, 10:60].copy(), (12, 12, 40, 40)))
    assert engine.prepare(photo, detect=True).note == "face detected and cropped"
    wide = np.zeros((100, 400, 3), np.uint8)
    assert (
        face_note(wide, wide, None) == "no face found; the model sees the centred square (25% of the photo)"
    )


def test_huge_photo_is_shrunk_before_explaining(engine) -> None:
    """A 6000 px photo took over 30 s per click and zipped to 100 MB at full size; the model sees 112 px."""
    from agelens.report.app_logic import MAX_WORK_SIDE

    big = np.random.default_rng(1).integers(0, 256, (3000, 2000, 3), dtype=np.uint8)
    prep = engine.prepare(big, detect=False)
    out = prep.photo
    assert out.shape == (MAX_WORK_SIDE, round(2000 * MAX_WORK_SIDE / 3000), 3) and out.dtype == np.uint8
    assert prep.note == "the model sees the centred square (67% of the photo)"
    assert prep.face == {"photo_size": [2000, 3000]}  # the photo's own size
    small = np.random.default_rng(2).integers(0, 256, (25, 40, 3), dtype=np.uint8)
    prep = engine.prepare(small, detect=False)
    assert prep.photo is small and prep.note.endswith(
        "face only 25 px: unreliable below 32"
    )  # before any resize


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
    shown, heat, probs, grid, grid_warning, archive, status, last = out
    top = max(probs, key=probs.__getitem__)
    assert f"target: {top} (predicted)" in status and "predicted class" not in status
    assert np.array_equal(shown, heat)  # opacity 0: the photo alone
    assert grid is not None and grid_warning == "" and "filter grid" not in status
    assert last[0] is shown and last[1].shape == shown.shape[:2] and last[2].method == "gradcam"
    assert "target: old" in _explain(engine, photo, False, "gradcam", "last-conv", "old", "out_relu")[6]
    assert "No face found" not in status  # detection was off: nothing is claimed about faces


@pytest.fixture(scope="module")
def app_demo(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One built (not launched) app for the handler tests, its temp folder in pytest's."""
    from agelens.report import app

    work = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(work / "gradio"))
        mp.setattr(app, "_workdir", lambda: work)
        yield app.build_app(tiny_model_path), work


def _handler(demo, name: str):
    return next(f for f in demo.fns.values() if f.name == name)


def _by_output(demo, name: str, values: tuple) -> dict:
    """A handler's returned values keyed by output: elem_id, or "map state" for the opacity slider's map."""
    stored_map = _handler(demo, "on_opacity").inputs[0]
    keys = [
        "map state" if b is stored_map else (b.elem_id or f"state {i}")
        for i, b in enumerate(_handler(demo, name).outputs)
    ]
    assert len(keys) == len(values)
    return dict(zip(keys, values, strict=True))


def test_app_layout_opacity_slider_and_no_dead_share_button(app_demo, photo: np.ndarray) -> None:
    """Gradio's image "share" button only works on Hugging Face Spaces: locally it just errors."""
    import gradio as gr

    from agelens.report import app

    demo, work = app_demo
    blocks = list(demo.blocks.values())
    shareable = [b for b in blocks if "share" in (getattr(b, "buttons", None) or [])]
    assert shareable == []
    sliders = [b for b in blocks if isinstance(b, gr.Slider) and b.elem_id == "al-opacity"]
    assert len(sliders) == 1 and sliders[0].value == 0.45

    fns = {f.name: f.fn for f in demo.fns.values()}
    opacity_fn = _handler(demo, "on_opacity")
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
    before = sorted((work / "outputs").rglob("*.zip"))
    assert {Path(out[5]) for out in explained} <= set(before)  # one per explanation, still there
    for step in range(12):
        for *_, last in explained:
            fns["on_opacity"](last, step / 11)
    assert sorted((work / "outputs").rglob("*.zip")) == before


RESULTS = ["al-map", "al-probs", "al-grid", "al-grid-note", "al-download", "map state"]
"""Every output an Explain fills, and the map the opacity slider re-blends."""


def test_a_new_photo_clears_every_result(app_demo, photo: np.ndarray, tmp_path: Path) -> None:
    """The previous photo's map, probabilities, grid and zip stayed on screen beside a new photo."""
    from types import SimpleNamespace

    from agelens.report import app

    demo, _ = app_demo
    fns = {f.name: f.fn for f in demo.fns.values()}
    face = tmp_path / "face.png"
    Image.fromarray(photo).save(face)
    args = (photo, None, False, "gradcam", "last-conv", "predicted class", "out_relu", 0.45)
    explained = _by_output(demo, "on_explain", fns["on_explain"](*args))
    assert all(explained[k] is not None for k in RESULTS if k != "al-grid-note")
    assert explained["al-face"]["label"] == app.MODEL_INPUT_LABEL

    events = [
        ("on_upload", (str(face),), app.PREVIEW_LABEL),
        ("on_sample", (SimpleNamespace(index=4),), app.PREVIEW_LABEL),
        ("on_clear", (), None),
    ]
    for name, event_args, preview in events:
        out = _by_output(demo, name, fns[name](*event_args))
        assert {k: out[k] for k in RESULTS} == dict.fromkeys(RESULTS), name
        if preview is None:
            assert out["al-face"]["value"] is None, name
        else:  # the upload uncropped: not labelled "Model input"
            assert "model input" not in preview.lower()
            assert out["al-face"]["label"] == preview and out["al-face"]["value"] is not None, name


def test_a_bad_filter_layer_costs_only_the_grid(app_demo, photo: np.ndarray) -> None:
    """A typo in the grid's layer box used to fail the whole Explain: no map, no probabilities."""
    from agelens.report.app import _explain

    demo, _ = app_demo
    engine = demo.agelens_engine
    args = ("gradcam", "last-conv", "predicted class", "no_such_layer", 0.45)
    out = _explain(engine, photo, False, *args)
    shown, heat, probs, grid, warning, archive, status, last = out
    assert heat is not None and set(probs) == {"young", "middle-aged", "old"} and Path(archive).is_file()
    assert last is not None and "Could not explain" not in status and "**" in status
    assert grid is None and warning.startswith("⚠️ Filter grid not drawn:") and "no_such_layer" in warning
    assert "\n" not in warning and "agelens layers" not in warning  # a CLI command web users cannot run
    failed = _explain(engine, photo, False, "gradcam", "no_such_layer", "predicted class", "out_relu")[6]
    assert failed.startswith("⚠️ Could not explain: no layer named 'no_such_layer'")
    assert "agelens layers" not in failed and "layer list" in failed
    opened = _by_output(demo, "on_explain", _handler(demo, "on_explain").fn(photo, None, False, *args))
    assert opened["al-filters"]["open"] is True and opened["al-grid-note"] == warning  # shown, not hidden

    on_filter = _handler(demo, "on_filter")
    assert [b.elem_id for b in on_filter.outputs] == ["al-grid", "al-grid-note"]
    grid, warning = on_filter.fn(photo, False, "no_such_layer")
    assert grid is None and "no_such_layer" in warning
    grid, warning = on_filter.fn(photo, False, "out_relu")
    assert grid.ndim == 3 and warning == ""


def test_the_download_names_the_photo_and_records_the_face(
    engine, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zip was always agelens-explanation.zip, its files 000_image_*, its source "<image 0>"."""
    import json

    from agelens.model import faces
    from agelens.report.app import _explain
    from agelens.report.app_logic import NO_FACE_WARNING, Source

    def unzip(archive: str) -> tuple[list[str], dict]:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            return names, json.loads(z.read(next(n for n in names if n.endswith("manifest.json"))))

    blank = np.full((80, 120, 3), 200, np.uint8)  # no face in it
    out = _explain(
        engine,
        blank,
        True,
        "gradcam++",
        "last-conv",
        "predicted class",
        "out_relu",
        None,
        Source("my holiday.JPG"),
    )
    assert Path(out[5]).name == "agelens-my_holiday-gradcampp.zip"
    names, manifest = unzip(out[5])
    assert "agelens-my_holiday-gradcampp/000_my_holiday_gradcampp_overlay.png" in names
    record = manifest["images"][0]
    assert record["source"] == "my holiday.JPG" and record["face_found"] is False
    assert record["photo_size"] == [120, 80] and "face_box_xywh" not in record
    assert record["crop_box_xywh"] == [0, 0, 120, 80]
    # a faceless photo's prediction is flagged right after its numbers, which stay
    status = out[6]
    assert re.search(r"^\*\*[a-z-]+\*\* \(\d+%[^)]*\) · ⚠️", status) and NO_FACE_WARNING in status
    assert status.lower().count("no face found") == 1 and "centred square (67% of the photo)" in status

    monkeypatch.setattr(faces, "crop_largest_face", lambda img: (img[8:88, 8:88].copy(), (20, 20, 50, 50)))
    out = _explain(
        engine, photo, True, "gradcam", "last-conv", "old", "out_relu", None, Source("sample-5-old")
    )
    assert Path(out[5]).name == "agelens-sample-5-old-gradcam.zip" and "No face found" not in out[6]
    names, manifest = unzip(out[5])
    record = manifest["images"][0]
    assert record["source"] == "sample-5-old" and any("/000_sample-5-old_gradcam_" in n for n in names)
    assert record["face_found"] is True and record["face_box_xywh"] == [20, 20, 50, 50]
    assert record["crop_box_xywh"] == [14, 19, 62, 62]  # the chip square around the box, as explain says
    assert record["photo_size"] == [96, 96] and record["size"] == [80, 80]  # the crop was explained


def test_samples_are_named_for_the_download(app_demo) -> None:
    from types import SimpleNamespace

    demo, _ = app_demo
    out = _by_output(demo, "on_sample", _handler(demo, "on_sample").fn(SimpleNamespace(index=4)))
    sources = [v for k, v in out.items() if k.startswith("state") and v is not None and hasattr(v, "name")]
    assert [s.name for s in sources] == ["sample-5-old"]


def test_an_animated_image_says_its_first_frame_is_used(app_demo, tmp_path: Path) -> None:
    from agelens.report.app import _explain
    from agelens.report.app_logic import Source, read_upload

    frames = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (10, 240)]
    gif = tmp_path / "wave.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    img, source = read_upload(gif)
    assert source == Source("wave.gif", "animated image: first frame used") and img.mean() < 50
    still = tmp_path / "still.gif"
    frames[1].save(still)
    assert read_upload(still)[1] == Source("still.gif", "")

    demo, _ = app_demo
    out = _by_output(demo, "on_upload", _handler(demo, "on_upload").fn(str(gif)))
    assert "animated image: first frame used" in out["al-status"]
    explained = _explain(
        demo.agelens_engine, img, False, "gradcam", "last-conv", "old", "out_relu", None, source
    )
    assert "animated image: first frame used" in explained[6]


def test_the_app_says_how_to_read_a_map_and_each_method(app_demo) -> None:
    import gradio as gr

    from agelens.explain.api import list_methods
    from agelens.report.app_logic import HOW_TO_READ, MAP_KEY, METHOD_INFO, method_note

    assert list(METHOD_INFO) == list_methods()
    assert all(line and "\n" not in line for line in METHOD_INFO.values())
    words = " ".join(HOW_TO_READ.lower().split())
    for needed in ("red means", "scaled per photo", "not comparable", "not proof", "occlusion", "hirescam"):
        assert needed in words, needed

    demo, _ = app_demo
    blocks = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert blocks["al-method-info"].value == method_note("gradcam") == METHOD_INFO["gradcam"]
    described = _handler(demo, "method_note")
    assert described.targets == [(blocks["al-method"]._id, "change")]
    assert [b.elem_id for b in described.outputs] == ["al-method-info"]
    assert described.fn("occlusion") == METHOD_INFO["occlusion"]
    markdown = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert HOW_TO_READ.strip() in markdown and MAP_KEY in markdown
    assert "agelens layers" not in blocks["al-layer"].info  # a CLI command web users cannot run


def test_filter_grid_titles_clear_the_row_above_and_a_caption_says_what_mean_is(
    engine, photo: np.ndarray
) -> None:
    from agelens.data.images import resize_for_model
    from agelens.explain.filters import filter_grid, filter_maps

    x = resize_for_model(photo, engine.model.input_size)
    fig = filter_grid(x, filter_maps(engine.model, x, "out_relu", k=7), cols=4)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tiles = [ax.get_window_extent(renderer) for ax in fig.axes if ax.images]
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    assert len(tiles) == len(titles) == 8
    assert not [t for t in titles if any(t.overlaps(b) for b in tiles)]
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "layer out_relu" in caption and "'mean' is that filter's average activation" in caption


def test_a_signed_map_is_blended_red_and_blue_and_other_methods_say_why_not(
    engine, photo: np.ndarray
) -> None:
    from agelens.report.app import _explain, _reblend

    out = _explain(engine, photo, False, "hirescam", "last-conv", "old-young", "", None, None, True)
    back = _explain(engine, photo, False, "hirescam", "last-conv", "young-old", "", None, None, True)
    exp, other = out[-1][2], back[-1][2]
    assert exp.signed and np.abs(exp.maps).max() == pytest.approx(1.0)
    # HiResCAM is linear in the score: the reverse contrast is the same map with its sign flipped,
    # so evidence against a target survives as negative values instead of being cut at 0
    np.testing.assert_allclose(other.maps, -exp.maps, atol=1e-5)
    np.testing.assert_array_equal(_reblend(out[-1], 0.45), out[1])  # the slider keeps the signed colours
    refused = _explain(engine, photo, False, "saliency", "last-conv", "old", "", None, None, True)
    assert "saliency has no signed form; untick 'For and against'" in refused[6]


def test_an_age_regressors_status_gives_its_age_and_cuts_not_a_confidence(tmp_path: Path, photo) -> None:
    """A one-unit age model's group "probability" is a softmax of margins in years: "young (100%)"
    read as certainty. The line gives the age and where the groups are cut instead."""
    import keras

    from agelens.model.wrap import wrap_keras_model
    from agelens.report.app import _explain

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="c")(inp))
    # An age well inside a group: unseeded weights once put it just below 0, shown as "0" not "-0".
    head = keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(40.0))
    model = wrap_keras_model(keras.Model(inp, head(h)))
    assert model.groups_from_age
    out = _explain(build_engine(model, tmp_path), photo, False, "saliency", "c", "predicted class", "c")
    status, age = out[6], float(out[7][2].ages[0])
    group = ["young", "middle-aged", "old"][int(age >= 30) + int(age >= 60)]
    assert "years; the groups are that age cut at 30, 60)" in status and "%" not in status.split("·")[0]
    assert f"**{group}** (about {age:.0f} years" in status
