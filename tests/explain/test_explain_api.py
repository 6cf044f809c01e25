"""explain()/attribute() entry points and Explanation.save."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import agelens
from agelens.data.images import ImageError
from agelens.explain import Explanation, attribute, explain, list_methods
from agelens.explain import explanation as explanation_mod
from agelens.explain.api import canonical, make_method, takes_layer, to_photo


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_maps_come_back_at_each_photos_own_size(age_model, tmp_path):
    png = tmp_path / "wide.png"
    Image.fromarray(_photo(40, 90, 1)).save(png)
    photos = [_photo(64, 64, 0), str(png), Image.fromarray(_photo(100, 50, 2))]
    e = explain(age_model, photos, method="gradcam")
    assert isinstance(e.maps, list)
    assert [m.shape for m in e.maps] == [(64, 64), (40, 90), (100, 50)]
    assert all(m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 for m in e.maps)
    assert e.probabilities.shape == (3, 3) and e.predicted.shape == (3,)
    assert e.class_names == ["young", "middle-aged", "old"] and e.layer == "out_relu"
    assert e.ages is not None and e.ages.shape == (3,)
    assert e.sources[1] == str(png) and e.images[1].shape == (40, 90, 3)
    # the model saw the centred 40x40 square of the wide photo; outside it the map is zero
    assert not e.maps[1][:, :25].any() and not e.maps[1][:, 65:].any()


def test_same_sized_photos_give_an_array_and_match_attribute(age_model):
    batch = np.stack([_photo(64, 64, s) for s in range(3)])
    e = explain(age_model, batch, method="layercam", target="old")
    assert isinstance(e.maps, np.ndarray) and e.maps.shape == (3, 64, 64)
    direct = attribute(age_model, batch.astype(np.float32), method="layercam", target="old")
    np.testing.assert_allclose(e.maps, direct, atol=1e-6)
    assert e.target == "old" and e.method == "layercam"


def test_agelens_explain_is_callable_both_ways(age_model):
    e = agelens.explain(age_model, _photo(64, 64, 0))
    assert isinstance(e, Explanation) and e.maps.shape == (1, 64, 64)
    import inspect

    import agelens.explain as package  # once imported, the attribute is the package: same signature

    assert list(inspect.signature(package).parameters)[:3] == ["model", "images", "method"]


def test_to_photo_inverts_the_centre_crop():
    m = np.ones((8, 8), np.float32)
    tall = to_photo(m, (20, 10))
    assert tall.shape == (20, 10) and tall[5:15].all() and not tall[:5].any() and not tall[15:].any()


@pytest.mark.parametrize("side", [37, 150, 333])  # smaller and larger than the map, off its grid
@pytest.mark.parametrize("signed", [False, True])
def test_a_map_placed_on_a_photo_keeps_its_peak(side, signed):
    """A one-pixel peak came out at 0.9 after bilinear resizing; the colour scale's ends went unused."""
    m = np.zeros((64, 64), np.float32)
    m[20, 31], m[40, 9] = (-1.0, 0.5) if signed else (1.0, 0.5)
    out = to_photo(m, (side, side + 11), signed=signed)
    assert np.abs(out).max() == pytest.approx(1.0, abs=1e-6)
    assert (out.min() < -0.99) if signed else (out.min() >= 0)  # the sign and the zero stay as they were
    assert not to_photo(np.zeros((64, 64), np.float32), (side, side)).any()  # a blank map stays blank


def test_raw_keras_model_and_bad_inputs(age_model):
    e = explain(age_model.keras_model, _photo(30, 30, 0), method="eigencam")
    assert e.maps.shape == (1, 30, 30)
    with pytest.raises(ImageError, match="file not found"):
        explain(age_model, "/nonexistent/face.jpg")
    with pytest.raises(ValueError, match="unknown method"):
        explain(age_model, _photo(64, 64, 0), method="magic")
    with pytest.raises(ValueError, match="takes no layer"):
        explain(age_model, _photo(64, 64, 0), method="saliency", layer="out_relu")
    with pytest.raises(TypeError, match="unknown options"):
        explain(age_model, _photo(64, 64, 0), method="gradcam", stepz=3)
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        attribute(age_model, np.zeros((2, 32, 32, 3), np.float32))


def test_method_names_and_caching(age_model):
    assert {"gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam",
            "eigencam", "saliency", "smoothgrad", "integrated-gradients", "guided-backprop",
            "guided-gradcam"} <= set(list_methods())  # fmt: skip
    assert canonical("Grad-CAM") == "gradcam" and canonical("smooth-GradCAMpp") == "smooth-gradcam++"
    assert takes_layer("scorecam") and not takes_layer("integrated-gradients")
    assert make_method(age_model, "gradcam") is make_method(age_model, "gradcam")
    assert make_method(age_model, "scorecam", max_batch=8) is not make_method(age_model, "scorecam")


@pytest.fixture(scope="module")
def expl(age_model) -> Explanation:
    return explain(age_model, [_photo(64, 64, 0), _photo(48, 80, 1)], method="gradcam++", target="old-young")


def test_save_writes_every_file_and_a_manifest_listing_them(expl, tmp_path):
    out = tmp_path / "out"
    written = expl.save(out)
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = sorted(p.name for p in out.iterdir())
    assert sorted(manifest["files"]) == on_disk == sorted(p.name for p in written)
    assert len(on_disk) == 2 * 4 + 1  # per photo overlay, panel, map and (given in memory) the image
    assert all("_gradcampp_" in n for n in on_disk if n != "manifest.json")  # the method is in the name
    ran = {"fuse": "mean", "upsample": True, "batch_size": 32, "detect": False, "input_range": "0-255"}
    assert manifest["runs"][0] == {"method": "gradcam++", "layer": "out_relu", "target": "old minus young",
                                   "settings": ran}  # fmt: skip
    assert {"agelens_version", "keras_version", "tensorflow_version"} <= set(manifest)
    img = manifest["images"][1]
    assert img["size"] == [80, 48] and set(img["prediction"]["probabilities"]) == set(expl.class_names)
    for name in img["files"]:
        assert (out / name).stat().st_size > 0
    np.testing.assert_array_equal(np.load(out / img["files"][2]), expl.maps[1])
    assert Image.open(out / img["files"][0]).size == (80, 48)


def test_a_large_photos_map_is_stored_shrunk_with_its_size_in_the_manifest(age_model, tmp_path, monkeypatch):
    monkeypatch.setattr(explanation_mod, "MAP_MAX_SIDE", 60)  # stands in for 1024 with a 4000 px photo
    e = explain(age_model, [_photo(90, 150, 3), _photo(40, 50, 4)], method="gradcam")
    e.save(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    big, small = manifest["images"]
    assert big["size"] == [150, 90] and big["map_size"] == [60, 36]
    stored = np.load(tmp_path / "out" / big["files"][2])
    assert stored.shape == (36, 60) and stored.dtype == np.float32 and 0 <= stored.min() <= stored.max() <= 1
    # area-averaged: the shrunk map is the full one at a coarser grain, not a different map
    np.testing.assert_allclose(stored.mean(), e.maps[0].mean(), atol=0.02)
    assert not stored[:, :12].any() and not stored[:, -12:].any()  # still zero outside the square
    assert small["map_size"] == small["size"] == [50, 40]
    np.testing.assert_array_equal(np.load(tmp_path / "out" / small["files"][2]), e.maps[1])


def test_save_refuses_a_non_empty_directory_unless_forced(expl, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        expl.save(out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    expl.save(out, force=True)
    assert (out / "keep.txt").read_text() == "mine" and (out / "manifest.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    expl.save(empty)  # an empty directory is fine without force
    assert (empty / "manifest.json").exists()


def test_a_failed_save_leaves_no_partial_directory(expl, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = explanation_mod.save_png

    def flaky(rgb, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(rgb, path)

    monkeypatch.setattr(explanation_mod, "save_png", flaky)
    with pytest.raises(OSError, match="disk full"):
        expl.save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp dir is left behind


def test_forced_save_that_fails_leaves_the_existing_directory_untouched(expl, tmp_path, monkeypatch):
    out = tmp_path / "prev"
    out.mkdir()
    (out / "a.txt").write_text("a")
    monkeypatch.setattr(explanation_mod, "write_manifest", _boom)
    with pytest.raises(RuntimeError):
        expl.save(out, force=True)
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]


def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_save_stems_are_unique_and_safe():
    stems = explanation_mod.stems(["a/b/face one.JPG", "c/face one.jpg", "<image 2>"])
    assert stems == ["000_face_one", "001_face_one", "002_image"]
    assert all(Path(s).name == s for s in stems)
    # Any script's letters stay readable (ASCII-only made "_n_c_d_f_ce_" of this); separators go.
    odd = explanation_mod.stems(["Ünïcødé fäce 写真.jpg", "a/..\\b:c*?.png", "x+y.jpg"])
    assert odd == ["000_Ünïcødé_fäce_写真", "001_.._b_c_", "002_xpy"]
    assert all(Path(s).name == s and "/" not in s and "\\" not in s for s in odd)


def test_detect_explains_the_largest_face_crop(age_model, monkeypatch, tmp_path):
    from agelens.model import faces

    photo = _photo(200, 300, 4)
    monkeypatch.setattr(faces, "detect_faces", lambda im: [(120, 60, 40, 40)])
    e = explain(age_model, photo, method="gradcam", detect=True)
    side = round(40 * faces.SIDE_PER_WIDTH)
    assert e.maps.shape == (1, side, side) and e.images[0].shape == (side, side, 3)
    assert e.settings["detect"] is True and e.settings["batch_size"] == 32  # defaults are recorded too
    assert e.faces == [
        {
            "photo_size": [300, 200],
            "face_found": True,
            "face_box_xywh": [120, 60, 40, 40],
            "crop_box_xywh": [115, 59, side, side],  # side 1.25 box widths, centre 0.10 box below
        }
    ]
    e.save(tmp_path / "saved")
    (record,) = json.loads((tmp_path / "saved" / "manifest.json").read_text())["images"]
    assert record["face_found"] is True and record["face_box_xywh"] == [120, 60, 40, 40]  # as the CLI's
    plain = explain(age_model, photo, method="gradcam")
    assert plain.maps.shape == (1, 200, 300) and plain.settings["detect"] is False and plain.faces is None
    monkeypatch.setattr(faces, "detect_faces", lambda im: [])
    with pytest.warns(
        UserWarning, match=r"no face found: the model sees the centred square \(67% of the photo\)"
    ):
        missed = explain(age_model, photo, method="gradcam", detect=True)
    assert missed.maps.shape == (1, 200, 300) and missed.faces[0]["face_found"] is False


def test_the_settings_say_what_ran_defaults_included(age_model, faces64):
    """A manifest's settings were {} for the defaults: a reader could not tell steps or channel caps."""
    e = explain(age_model, faces64[:1], method="integrated-gradients", steps=8)
    assert e.settings["steps"] == 8 and e.settings["baseline"] == "black"
    occ = explain(age_model, faces64[:1], method="occlusion")
    assert occ.settings["window"] == max(2, round(age_model.input_size / 7)) and occ.settings["stride"] >= 1
    smooth = explain(age_model, faces64[:1], method="smooth-gradcam", n=2)
    assert (
        smooth.settings["n"] == 2
        and smooth.settings["sigma"] == 0.15
        and smooth.settings["nt_type"] == "smoothgrad"
    )
    with pytest.raises(ValueError, match="baseline 'blur'"):
        explain(age_model, faces64[:1], method="integrated-gradients", baseline="blur")
    with pytest.raises(ValueError, match="fraction of the 0..255 range"):
        explain(age_model, faces64[:1], method="smoothgrad", sigma=25)


def test_api_mistakes_are_plain_errors(age_model, faces64):
    import agelens

    with pytest.raises(TypeError, match="model must be an AgeModel"):
        agelens.explain(None, faces64[:1])
    with pytest.raises(ValueError, match="wraps a method once"):
        agelens.explain(age_model, faces64[:1], method="smooth-smooth-gradcam")
    with pytest.raises(ValueError, match="two different classes"):
        agelens.explain(age_model, faces64[:1], target="old-old")


def test_float_images_in_0_1_are_scaled_with_a_warning(age_model, faces64):
    import agelens

    as_uint8 = agelens.explain(age_model, faces64[:1], method="saliency")
    with pytest.warns(UserWarning, match="0..1 scaled to 0..255"):
        as_unit = agelens.explain(age_model, faces64[:1].astype(np.float32) / 255, method="saliency")
    np.testing.assert_allclose(as_unit.probabilities, as_uint8.probabilities, atol=1e-5)
    from agelens.explain import attribute  # the fast path agrees with explain() on 0..1 floats

    x = faces64[:2].astype(np.float32)
    with pytest.warns(UserWarning, match="0..1 scaled to 0..255"):
        unit = attribute(age_model, x / 255, "saliency")
    np.testing.assert_allclose(unit, attribute(age_model, x, "saliency"), atol=1e-4)


def test_a_class_agnostic_method_does_not_claim_a_target(age_model, faces64):
    import agelens

    e = agelens.explain(age_model, faces64[:1], method="eigencam", target="old")
    assert "class-agnostic" in e.target


def _logits_model() -> keras.Model:
    inp = keras.Input((32, 32, 3))
    c = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(keras.layers.Rescaling(1 / 255)(inp))
    return keras.Model(inp, keras.layers.Dense(5, name="logits")(keras.layers.GlobalAveragePooling2D()(c)))


def test_a_raw_keras_model_is_wrapped_once_and_left_as_it_was():
    """Each call wrapped a logits model anew: a new softmax graph and 3 more nodes on the user's layers."""
    from agelens.explain.layers import as_age_model

    km = _logits_model()
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    first = agelens.explain(km, img)
    nodes = len(km.get_layer("c2")._inbound_nodes)  # the first call's graphs, built once
    for _ in range(3):
        again = agelens.explain(km, img)
    assert as_age_model(km) is as_age_model(km)
    assert len(km.get_layer("c2")._inbound_nodes) == nodes  # not 3 more a call, as before
    np.testing.assert_array_equal(first.maps, again.maps)
    np.testing.assert_allclose(first.probabilities.sum(1), 1, atol=1e-5)


def test_a_sequential_model_in_logits_gets_probabilities_too():
    seq = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    seq.layers[-1].set_weights([np.random.default_rng(0).normal(0, 0.1, (768, 3)), np.zeros(3)])
    x = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    exp = agelens.explain(seq, x, method="saliency")
    np.testing.assert_allclose(exp.probabilities.sum(1), 1, atol=1e-5)
    assert (exp.probabilities > 0).all()


def test_a_subclassed_model_gets_the_one_line_reason():
    class Sub(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.d = keras.layers.Dense(3)

        def call(self, x):
            return self.d(keras.ops.mean(x, axis=(1, 2)))

    with pytest.raises(ValueError, match="no static graph .*rebuild it with keras.Input"):
        agelens.explain(Sub(), np.zeros((16, 16, 3), np.uint8))


def test_the_pixel_range_the_model_was_fed_is_recorded():
    km = _logits_model()  # it rescales: 0..255
    img = np.zeros((32, 32, 3), np.uint8)
    assert agelens.explain(km, img).settings["input_range"] == "0-255"
    told = agelens.wrap_keras_model(_logits_model(), input_range="0-1")
    assert agelens.explain(told, img).settings["input_range"] == "0-1"


def test_two_wraps_of_one_model_with_other_input_ranges_do_not_share_a_method():
    km = _logits_model()
    img = np.full((32, 32, 3), 200, np.uint8)
    low = agelens.explain(agelens.wrap_keras_model(km, input_range="0-1"), img)
    high = agelens.explain(agelens.wrap_keras_model(km, input_range="0-255"), img)
    assert (low.settings["input_range"], high.settings["input_range"]) == ("0-1", "0-255")


def test_a_sequential_changed_after_explaining_is_wrapped_again():
    seq = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    img = np.zeros((16, 16, 3), np.uint8)
    assert agelens.explain(seq, img, method="saliency").probabilities.shape == (1, 3)
    seq.pop()
    seq.add(keras.layers.Dense(5, activation="softmax"))
    assert agelens.explain(seq, img, method="saliency").probabilities.shape == (1, 5)


def test_a_signed_explanation_keeps_its_negatives_through_save(tmp_path):
    km = _logits_model()
    img = np.random.default_rng(3).integers(0, 256, (40, 32, 3)).astype(np.uint8)
    e = agelens.explain(km, img, method="integrated-gradients", signed=True, steps=8)
    assert e.signed and e.settings["signed"] is True and float(np.min(e.maps)) < 0 <= float(np.max(e.maps))
    e.save(tmp_path / "s")
    (record,) = json.loads((tmp_path / "s" / "manifest.json").read_text())["images"]
    stored = np.load(tmp_path / "s" / record["files"][2])
    np.testing.assert_array_equal(stored, e.maps[0])  # not clipped to 0..1 on the way out
    assert not agelens.explain(km, img, method="integrated-gradients", steps=8).signed


def test_normalize_true_said_is_the_default_method_not_a_second_trace():
    model = agelens.wrap_keras_model(_logits_model())
    assert make_method(model, "gradcam") is make_method(model, "gradcam", normalize=True)
    assert make_method(model, "gradcam") is not make_method(model, "gradcam", normalize=False)
