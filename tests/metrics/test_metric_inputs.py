"""Input checks of the metrics API (Quantus-style): clear errors naming the argument, before scoring."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, quadrant_maps, quadrant_model

from agelens.metrics import (
    AverageDrop,
    Deletion,
    IncreaseInConfidence,
    explanation_inputs,
    get_metric,
    method_model_explainer,
    predict_fn_of,
)

N = 4


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return checker_images(N), quadrant_maps(N), np.ones(N, int)


# ----------------------------------------------------------------------------- 1. non-finite values


@pytest.mark.parametrize("metric", ["average_drop", "deletion", "road_morf"])
def test_one_nan_in_a_map_is_refused_with_its_count(metric: str) -> None:
    x, maps, t = _inputs()
    maps[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=rf"maps: 1 of {N * SIZE * SIZE} entries are non-finite"):
        get_metric(metric)(x, maps, t, predict_fn=quadrant_model())


def test_all_nan_maps_and_inf_images_are_refused() -> None:
    x, maps, t = _inputs()
    with pytest.raises(ValueError, match=r"maps: .* non-finite"):
        Deletion()(x, np.full_like(maps, np.nan), t, predict_fn=quadrant_model())
    x[1, 0, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"x: 1 of .* non-finite"):
        Deletion()(x, maps, t, predict_fn=quadrant_model())


def test_non_finite_masks_are_refused() -> None:
    x, maps, t = _inputs()
    masks = quadrant_maps(N)
    masks[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="masks: 1 of"):
        get_metric("energy_in_mask")(x, maps, t, masks=masks)


# ----------------------------------------------------------------------------- 2. images in 0..1


def test_images_in_0_1_are_scaled_like_the_loader_with_a_warning() -> None:
    x, maps, t = _inputs()
    want = AverageDrop()(x, maps, t, predict_fn=quadrant_model())
    with pytest.warns(UserWarning, match=r"x: float images with values in 0\.\.1 scaled to 0\.\.255"):
        got = AverageDrop()(x / 255.0, maps, t, predict_fn=quadrant_model())
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_score_methods_predicts_its_targets_on_scaled_images(squares_model) -> None:
    """The targets used to be predicted on the raw input: 0..1 floats gave an almost black image's class."""
    from agelens.metrics import score_methods

    model, x, _ = squares_model
    x = x[:12]
    want = predict_fn_of(model)(x).argmax(1)
    assert len(set(want.tolist())) == 2  # both classes, so a wrong scale cannot pass by luck
    seen = {}

    def record(xs, targets):
        seen["x"], seen["targets"] = xs, targets
        return quadrant_maps(len(xs), size=xs.shape[1])

    def run(images: np.ndarray) -> None:
        labels = np.zeros(len(images), int)
        explainers = {"rec": record}
        score_methods(
            model, images, labels, ["rec"], ["average_drop"], explainers=explainers, random_baseline=False
        )

    run(x)
    np.testing.assert_array_equal(seen["targets"], want)
    with pytest.warns(UserWarning, match=r"images: float images with values in 0\.\.1 scaled"):
        run(x / 255.0)
    np.testing.assert_array_equal(seen["targets"], want)
    np.testing.assert_allclose(seen["x"], x, rtol=1e-5)  # explainers see 0..255 too


def test_images_in_0_255_raise_no_warning() -> None:
    x, maps, t = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AverageDrop()(x, maps, t, predict_fn=quadrant_model())


def test_uint8_images_of_0_and_1_are_a_dark_photo_never_rescaled(squares_model) -> None:
    """uint8 is 0..255 by definition, as explain() reads it; the metrics cast to float and then
    took a dark uint8 photo (values 0 and 1) for 0..1 floats, scoring a 0/255 picture instead."""
    from agelens.metrics import score_methods

    x, maps, t = _inputs()
    dark = (x > 127).astype(np.uint8)  # the checkerboard in pixel values 0 and 1
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AverageDrop()(dark, maps, t, predict_fn=lambda b: (seen.append(np.array(b)), quadrant_model()(b))[1])
    assert max(float(b.max()) for b in seen) <= 1.0  # the model saw the dark photo, not a 0/255 one
    model, xs, _ = squares_model
    small = (xs[:4] > 127).astype(np.uint8)
    got = {}

    def record(images, targets):
        got["x"] = images
        return quadrant_maps(len(images), size=images.shape[1])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_methods(
            model,
            small,
            np.zeros(4, int),
            ["rec"],
            ["average_drop"],
            explainers={"rec": record},
            random_baseline=False,
        )
    assert float(got["x"].max()) <= 1.0


# ----------------------------------------------------------------------------- 3. signed maps


@pytest.mark.parametrize("cls", [AverageDrop, IncreaseInConfidence])
def test_signed_maps_are_clipped_to_zero_for_the_soft_mask(cls: type) -> None:
    x, _, t = _inputs()
    rng = np.random.default_rng(0)
    signed = rng.random((N, SIZE, SIZE)).astype(np.float32) - 0.5
    seen: list[float] = []
    model = quadrant_model()

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(float(np.min(batch)))
        return model(batch)

    with pytest.warns(UserWarning, match="negative attributions; they are clipped to 0"):
        got = cls()(x, signed, t, predict_fn=spy)
    assert min(seen) >= 0.0  # the model never sees negative pixels
    np.testing.assert_allclose(got, cls()(x, np.maximum(signed, 0), t, predict_fn=model))


def test_ranking_metrics_use_signed_maps_by_order() -> None:
    x, maps, t = _inputs()
    a = Deletion(step=0.1)(x, maps, t, predict_fn=quadrant_model())
    b = Deletion(step=0.1)(x, maps - 0.5, t, predict_fn=quadrant_model())
    np.testing.assert_allclose(a, b)


# ----------------------------------------------------------------------------- 4. targets


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (-1, r"class indices >= 0, got -1"),
        (5, r"class indices in \[0, 2\) for this predict_fn, got 5"),
        (0.5, "integer class indices, got non-integer"),
        ("old", "got names such as 'old', but nothing given names the classes.*agelens.wrap_keras_model"),
    ],
)
def test_targets_must_be_class_indices_in_range(targets: object, message: str) -> None:
    x, maps, _ = _inputs()
    calls: list[int] = []
    with pytest.raises(ValueError, match=message):
        AverageDrop()(x, maps, [targets] * N, predict_fn=quadrant_model(calls))
    assert sum(calls) <= N  # refused on the first batch at the latest, never after scoring


def test_targets_are_range_checked_before_predicting_when_the_model_says_its_classes(squares_model) -> None:
    model, x, _ = squares_model
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\), got 2"):
        Deletion()(x[:2], quadrant_maps(2), [0, 2], predict_fn=model)


def test_a_class_name_or_one_index_means_every_image_as_in_explain(squares_model) -> None:
    """explain takes target="old"; the metrics refused names and wanted one index per image."""
    model, x, _ = squares_model
    maps = quadrant_maps(3)
    name = model.class_names[1]
    by_index = Deletion()(x[:3], maps, [1, 1, 1], predict_fn=model)
    np.testing.assert_allclose(Deletion()(x[:3], maps, name, predict_fn=model), by_index)
    np.testing.assert_allclose(Deletion()(x[:3], maps, [name] * 3, predict_fn=model), by_index)
    np.testing.assert_allclose(Deletion()(x[:3], maps, 1, predict_fn=model), by_index)
    with pytest.raises(ValueError, match="unknown class 'nope'; the model's classes are"):
        Deletion()(x[:3], maps, "nope", predict_fn=model)


# ----------------------------------------------------------------------------- 5. probabilities


def test_logits_are_refused_with_a_softmax_hint() -> None:
    x, maps, t = _inputs()

    def logits(batch: np.ndarray) -> np.ndarray:
        return 4 * quadrant_model()(batch) - 1

    with pytest.raises(ValueError, match="predict_fn must return probabilities.*add a softmax"):
        Deletion()(x, maps, t, predict_fn=logits)


def test_predict_fn_returning_a_dict_or_wrong_shape_is_refused() -> None:
    x, maps, t = _inputs()
    with pytest.raises(ValueError, match="returned a dict.*predict_fn=model"):
        AverageDrop()(x, maps, t, predict_fn=lambda b: {"probabilities": quadrant_model()(b)})
    with pytest.raises(ValueError, match=r"\(N, C\) class probabilities"):
        AverageDrop()(x, maps, t, predict_fn=lambda b: quadrant_model()(b)[:, 1])


# ----------------------------------------------------------------------------- 6. models as predict_fn


def test_an_age_model_keras_model_or_bound_predict_is_a_predict_fn(squares_model) -> None:
    model, x, y = squares_model
    x, y = x[:6], y[:6]
    maps = quadrant_maps(6)
    want = AverageDrop()(x, maps, y, predict_fn=predict_fn_of(model))
    for fn in (model, model.keras_model, model.predict):
        np.testing.assert_allclose(AverageDrop()(x, maps, y, predict_fn=fn), want, atol=1e-5)


def test_missing_model_explainer_says_how_to_build_one(squares_model) -> None:
    model, x, y = squares_model
    with pytest.raises(ValueError, match=r"needs model_explainer: build one with .*method_model_explainer"):
        get_metric("randomisation")(x[:2], quadrant_maps(2), y[:2], model=model)
    assert callable(method_model_explainer("gradcam"))


def test_explanation_inputs_undo_the_photo_upsampling() -> None:
    from agelens.data.images import resize_for_model
    from agelens.explain.api import to_photo

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # landscape: centre square is cols 8..56
    small = np.zeros((16, 16), np.float32)
    small[4:12, 2:8] = 1.0
    exp = SimpleNamespace(images=[photo, photo], maps=np.stack([to_photo(small, photo.shape[:2])] * 2))
    x, maps = explanation_inputs(exp, SimpleNamespace(input_size=16))
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32 and maps.shape == (2, 16, 16)
    np.testing.assert_array_equal(x[0], resize_for_model(photo, 16))
    assert np.abs(maps[0] - small).mean() < 0.05 and maps[0][small > 0].mean() > 0.9


def test_one_traced_forward_pass_per_keras_model_serves_every_wrapper_and_batch_size():
    """A plain keras.Model is wrapped anew on every metric call: the trace must outlive the wrapper."""
    import gc
    import weakref

    from agelens.metrics import predict_fn_of
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.wrap import wrap_keras_model

    km = build_age_model(ModelConfig(input_size=32, alpha=0.35), seed=0)
    fns = [predict_fn_of(km), predict_fn_of(km, batch_size=3), predict_fn_of(wrap_keras_model(km), 8)]
    forward = fns[0].forward
    assert all(f.forward is forward for f in fns)
    x = np.random.default_rng(0).uniform(0, 255, (7, 32, 32, 3)).astype(np.float32)
    outs = [f(x) for f in fns]
    assert forward.experimental_get_tracing_count() == 1  # every wrapper, chunk and batch size
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], atol=1e-6)
    gone = weakref.ref(km)
    del km, fns, forward
    gc.collect()
    assert gone() is None  # the cache keyed by the model does not keep it alive


def test_a_users_logits_model_works_as_predict_fn_and_for_explanation_inputs():
    """``predict_fn=keras_model`` crashed ('NoneType' is not callable): the traced forward pass
    held the softmax-wrapped copy weakly, and that copy was gone by the time it ran."""
    import gc

    import keras

    import agelens

    inp = keras.Input((SIZE, SIZE, 3))
    c = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inp))
    km = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(c)))
    x, maps, targets = _inputs()
    gc.collect()
    probs = predict_fn_of(km)(x)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert AverageDrop().score(x, maps, targets, predict_fn=km).n == N
    exp = agelens.explain(km, x[:2].astype(np.uint8))
    xi, mi = explanation_inputs(exp, km)  # the keras.Model itself says the size
    assert xi.shape == (2, SIZE, SIZE, 3) and mi.shape == (2, SIZE, SIZE)
    with pytest.raises(TypeError, match="size must be a pixel count or the model explained"):
        explanation_inputs(exp, "big")
