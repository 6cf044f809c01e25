"""What a filter looks for: activation maximisation and the filter atlas, on filters whose answer is known."""

from __future__ import annotations

import json
import warnings

import keras
import numpy as np
import pytest

from agelens.explain.feature_vis import (
    colour_transform,
    filter_atlas,
    filter_patterns,
    save_atlas,
)

SIZE = 24
RED, BLUE, HORIZONTAL, VERTICAL = 0, 1, 2, 3


def detector_model() -> keras.Model:
    """conv "detect" (3x3, 4 filters) -> ReLU "detect_relu" -> global mean -> dense -> softmax.

    Filter 0 fires on red (R - G - B), 1 on blue (B - R - G), 2 on horizontal edges (bright above,
    dark below), 3 on vertical ones (bright left, dark right); all over 0..1 pixels.
    """
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inp)
    conv = keras.layers.Conv2D(4, 3, padding="same", name="detect")
    x = keras.layers.ReLU(name="detect_relu")(conv(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    dense = keras.layers.Dense(3, name="logits")
    out = keras.layers.Activation("softmax", name="probs")(dense(x))
    model = keras.Model(inp, out, name="detector")
    k = np.zeros((3, 3, 3, 4), np.float32)
    k[1, 1, :, RED] = [1.0, -1.0, -1.0]
    k[1, 1, :, BLUE] = [-1.0, -1.0, 1.0]
    k[0, :, :, HORIZONTAL], k[2, :, :, HORIZONTAL] = 1 / 9, -1 / 9
    k[:, 0, :, VERTICAL], k[:, 2, :, VERTICAL] = 1 / 9, -1 / 9
    conv.set_weights([k, np.zeros(4, np.float32)])
    dense.set_weights([np.eye(4, 3, dtype=np.float32), np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return detector_model()


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Noisy photos: the first four reddish, the next four bluish."""
    rng = np.random.default_rng(0)
    x = rng.uniform(60, 120, (8, SIZE, SIZE, 3))
    x[:4, ..., 0] += 110
    x[4:, ..., 2] += 110
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def patterns(model, photos):
    return filter_patterns(model, "detect_relu", [RED, BLUE, HORIZONTAL, VERTICAL], photos=photos, steps=96)


def test_colour_filters_find_their_colour(patterns) -> None:
    """Also the silent-start case: no pixel of the grey start is red enough to fire the filter."""
    mean = patterns.images.reshape(4, -1, 3).mean(axis=1)
    assert mean[RED, 0] > max(mean[RED, 1], mean[RED, 2]) + 80, mean[RED]
    assert mean[BLUE, 2] > max(mean[BLUE, 0], mean[BLUE, 1]) + 80, mean[BLUE]


def test_edge_filters_find_stripes_of_their_orientation(patterns) -> None:
    grey = patterns.images.astype(np.float64).mean(axis=-1)
    across_rows = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2))  # changes going down: horizontal edges
    across_cols = np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))
    # ~1 for noise or blobs; about 2 here (the stripes wave), below 1 for the other orientation
    assert across_rows[HORIZONTAL] > 1.5 * across_cols[HORIZONTAL], (across_rows, across_cols)
    assert across_cols[VERTICAL] > 1.5 * across_rows[VERTICAL], (across_rows, across_cols)


def test_each_pattern_drives_its_filter_harder_than_the_start_and_any_photo(model, photos, patterns) -> None:
    sub = keras.Model(model.input, model.get_layer("detect_relu").output)
    on_photos = np.asarray(sub(photos.astype(np.float32))).mean(axis=(1, 2)).max(axis=0)  # (4,)
    assert (patterns.activation > patterns.start_activation).all()
    assert (patterns.activation > on_photos).all(), (patterns.activation, on_photos)


def test_the_reported_activation_is_that_of_the_saved_uint8_images(model, patterns) -> None:
    assert patterns.images.dtype == np.uint8 and patterns.images.shape == (4, SIZE, SIZE, 3)
    sub = keras.Model(model.input, model.get_layer("detect_relu").output)
    acts = np.asarray(sub(patterns.images.astype(np.float32)))
    own = [acts[i, ..., f].mean() for i, f in enumerate(patterns.filters)]
    np.testing.assert_allclose(patterns.activation, own, rtol=1e-5)


def test_zero_steps_leave_the_start(model) -> None:
    p = filter_patterns(model, "detect_relu", [RED, BLUE], steps=0)
    np.testing.assert_array_equal(p.activation, p.start_activation)


def test_same_seed_same_images_another_seed_others(model) -> None:
    a = filter_patterns(model, "detect_relu", [HORIZONTAL], steps=16, seed=5)
    b = filter_patterns(model, "detect_relu", [HORIZONTAL], steps=16, seed=5)
    c = filter_patterns(model, "detect_relu", [HORIZONTAL], steps=16, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    big = filter_patterns(model, "detect_relu", [HORIZONTAL], steps=2, seed=2**40)  # beyond int32
    assert big.settings["seed"] == 2**40
    assert a.settings["seed"] == 5 and a.settings["steps"] == 16
    assert a.settings["pre_activation_leak"] == 0.01  # detect_relu is a ReLU layer of its own
    fused = filter_patterns(model, "detect", [HORIZONTAL], steps=2)  # the conv: no separate input
    assert fused.settings["pre_activation_leak"] == 0.0


def test_the_callers_model_is_not_changed(photos) -> None:
    m = detector_model()
    m.get_layer("detect").trainable = False
    before = [w.copy() for w in m.get_weights()]
    filter_atlas(m, photos, "detect_relu", 2, top=2, steps=8)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))
    assert m.get_layer("detect").trainable is False and m.get_layer("logits").trainable is True


def test_bad_filters_and_steps_are_refused_with_the_layer_named(model, photos) -> None:
    with pytest.raises(ValueError, match=r"filters \[4\] out of range: layer 'detect_relu' has 4 filters"):
        filter_patterns(model, "detect_relu", [0, 4])
    with pytest.raises(ValueError, match="steps must be >= 0"):
        filter_patterns(model, "detect_relu", [0], steps=-1)
    with pytest.raises(ValueError, match=r"filters \[9\] out of range"):
        filter_atlas(model, photos, "detect_relu", [9])
    with pytest.raises(ValueError, match="at least 1"):
        filter_atlas(model, photos, "detect_relu", 0)
    with pytest.raises(
        ValueError, match=r"filter_atlas takes .*\(N, 24, 24, 3\).*got shape \(8, 12, 12, 3\)"
    ):
        filter_atlas(model, photos[:, :12, :12], "detect_relu")


def test_the_atlas_picks_the_most_used_filters_and_their_strongest_photos(model, photos) -> None:
    reddish = photos.copy()
    reddish[4:] = reddish[:4]  # every photo red: the red filter is the most active
    reddish[5, ..., 0] = 255  # and photo 5 the reddest
    atlas = filter_atlas(model, reddish, "detect_relu", 1, top=3, steps=8)
    assert atlas.filters == [RED] and atlas.chosen_by == "most active on these photos"
    assert atlas.top[0][0].index == 5
    named = filter_atlas(model, photos, "detect_relu", [BLUE, RED], top=4, steps=8)
    assert named.filters == [BLUE, RED] and named.chosen_by == "named"
    assert {t.index for t in named.top[0]} == {4, 5, 6, 7}  # the bluish photos
    assert {t.index for t in named.top[1]} == {0, 1, 2, 3}
    t = named.top[0][0]
    top, left, bottom, right = t.box
    np.testing.assert_array_equal(t.patch, photos[t.index][top:bottom, left:right])
    assert bottom - top <= 3 and right - left <= 3  # a 3x3 conv sees 3x3 pixels
    sub = keras.Model(model.input, model.get_layer("detect_relu").output)
    means = np.asarray(sub(photos.astype(np.float32))).mean(axis=(1, 2))
    np.testing.assert_allclose(named.photo_best, means[:, [BLUE, RED]].max(axis=0), rtol=1e-5)
    np.testing.assert_allclose(named.photo_mean, means[:, [BLUE, RED]].mean(axis=0), rtol=1e-5)


def test_unit_float_photos_are_scaled_with_a_warning(model, photos) -> None:
    with pytest.warns(UserWarning, match="0..1"):
        a = filter_atlas(model, photos.astype(np.float32) / 255.0, "detect_relu", [RED], top=2, steps=4)
    b = filter_atlas(model, photos, "detect_relu", [RED], top=2, steps=4)
    assert [t.index for t in a.top[0]] == [t.index for t in b.top[0]]


def test_colour_transform_follows_the_photos_colour_spread() -> None:
    rng = np.random.default_rng(1)
    x = np.full((4, 8, 8, 3), 128.0)
    x[..., 0] = rng.uniform(0, 255, (4, 8, 8))  # only red varies
    mix, mean = colour_transform(x)
    norms = np.linalg.norm(mix, axis=0)
    assert norms[0] == pytest.approx(1.0, abs=1e-3) and norms[1:].max() < 0.05
    assert mean[1] == pytest.approx(np.log(128 / 127), abs=0.01)  # logit of 128/255
    eye, zero = colour_transform(None)
    np.testing.assert_allclose(eye, np.eye(3) / np.sqrt(3), rtol=1e-6)
    assert not zero.any()


def test_save_atlas_writes_everything_once_and_refuses_to_overwrite(model, photos, tmp_path) -> None:
    atlas = filter_atlas(model, photos, "detect_relu", [RED, VERTICAL], top=2, steps=8)
    names = [f"p{i}.png" for i in range(len(photos))]
    out = tmp_path / "atlas"
    extra = {"note": np.float32(0.5), "conventions": {"note": "what the caller adds"}}
    written = save_atlas(atlas, out, names=names, extra=extra)
    assert [p.name for p in written] == [
        "atlas.png",
        "filter_0_pattern.png",
        "filter_3_pattern.png",
        "patterns.npy",
        "manifest.json",
    ]
    assert all(p.is_file() for p in written)
    np.testing.assert_array_equal(np.load(out / "patterns.npy"), atlas.patterns.images)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "filters" and manifest["layer"] == "detect_relu" and manifest["note"] == 0.5
    assert manifest["conventions"]["note"] == "what the caller adds" and "box_tlbr" in manifest["conventions"]
    assert manifest["filters"] == [RED, VERTICAL] and manifest["settings"]["top"] == 2
    first = manifest["per_filter"][0]
    assert first["pattern_activation"] == pytest.approx(float(atlas.patterns.activation[0]))
    assert first["top"][0]["photo"] == names[atlas.top[0][0].index]
    assert "agelens_version" in manifest and manifest["files"][-1] == "manifest.json"
    with pytest.raises(FileExistsError):
        save_atlas(atlas, out, names=names)
    again = filter_atlas(model, photos, "detect_relu", [BLUE], top=1, steps=4)
    save_atlas(again, out, names=names, force=True)
    assert not (out / "filter_0_pattern.png").exists() and (out / "filter_1_pattern.png").is_file()


def test_a_failed_save_leaves_no_folder(model, photos, tmp_path, monkeypatch) -> None:
    import agelens.explain.feature_vis as fv

    atlas = filter_atlas(model, photos, "detect_relu", [RED], top=1, steps=4)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fv, "atlas_figure", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_atlas(atlas, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert not list(tmp_path.iterdir())  # no partial folder left beside it either


def test_a_pattern_search_runs_on_a_mobilenet_layer_without_warnings() -> None:
    from agelens.model.builder import ModelConfig, build_age_model

    m = build_age_model(ModelConfig(input_size=32, alpha=0.35, num_classes=3), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = filter_patterns(m, "block_3_expand_relu", [0, 1, 2], steps=4)
    assert p.images.shape == (3, 32, 32, 3) and np.isfinite(p.activation).all()
