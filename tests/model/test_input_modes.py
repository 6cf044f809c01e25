"""Models trained on ``keras.applications``' ``preprocess_input`` (applied outside the model) are fed
what they were trained on: ``input_range="-1-1"`` ("tf" mode), ``"caffe"`` or ``"torch"``.

Before, agelens fed a plain model raw 0..255 or 0..1 pixels only, so every prediction and map of
such a model came from pixels it never saw, without an error. Each check here compares agelens
with Keras' own ``preprocess_input`` (the real one, per architecture family) on a tiny plain model.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import agelens
from agelens.explain import make_method
from agelens.model.age_model import INPUT_RANGES, AgeModel, ModelLoadError
from agelens.model.io import load_model, save_model, write_metadata

SIZE = 32
MODES = {  # --input-range -> the keras.applications module whose preprocess_input it is
    "-1-1": keras.applications.mobilenet_v2,
    "caffe": keras.applications.resnet50,
    "torch": keras.applications.densenet,
}


def _preprocess(mode: str, x: np.ndarray) -> np.ndarray:
    """Keras' own preprocessing of raw 0..255 pixels for ``mode`` (on a copy: it works in place)."""
    return MODES[mode].preprocess_input(np.array(x, np.float32, copy=True))


def _plain_model(mode: str, seed: int = 0) -> keras.Model:
    """Two convolutions, a dense ``logits`` layer and a softmax; no preprocessing layer. The logits
    are centred and scaled to a spread of about 2 across images on ``mode``'s inputs, so the
    probabilities differ from image to image, far from 0 and 1, and a wrong feed shows in them."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c2")(h)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
    km = keras.Model(inp, keras.layers.Softmax(name="probs")(logits))
    z = keras.Model(inp, logits).predict(_preprocess(mode, _images(16, seed=9)), verbose=0)
    dense = km.get_layer("logits")
    kernel, bias = dense.get_weights()
    k = 2.0 / max(float((z - z.mean(0)).std()), 1e-6)
    dense.set_weights([kernel * k, (bias - z.mean(0)) * k])
    return km


def _images(n: int = 4, seed: int = 3) -> np.ndarray:
    """Raw RGB pixels, whole numbers across 0..255, as photos are read: each image a colour of its
    own plus noise, so a model's pooled features differ from image to image."""
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 226, (n, 1, 1, 3))
    return np.clip(base + rng.integers(-30, 31, (n, SIZE, SIZE, 3)), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def plain_files(tmp_path_factory) -> dict[str, Path]:
    """Each mode's tiny model, saved by Keras alone (no agelens metadata: a user's file)."""
    root = tmp_path_factory.mktemp("modes")
    paths = {}
    for mode in MODES:
        paths[mode] = root / f"plain_{len(paths)}.keras"
        _plain_model(mode).save(paths[mode])
    return paths


@pytest.fixture(scope="module")
def loaded(plain_files) -> dict[str, AgeModel]:
    return {mode: load_model(path, input_range=mode) for mode, path in plain_files.items()}


# ------------------------------------------------------------------------- the conversion itself


@pytest.mark.parametrize("mode", list(MODES))
def test_each_feed_is_keras_preprocess_input_bit_for_bit_on_arrays_and_tensors(mode) -> None:
    from agelens.model.pixel_range import PIXEL_FEEDS

    x = _images(2) + np.float32(0.5)  # halves as well as whole numbers
    want = _preprocess(mode, x)
    np.testing.assert_array_equal(PIXEL_FEEDS[mode](x), want)
    np.testing.assert_array_equal(PIXEL_FEEDS[mode](tf.constant(x)).numpy(), want)
    # traced, TensorFlow turns a division by a constant into a product (1 ulp off): as it does Keras'
    spec = [tf.TensorSpec((None, SIZE, SIZE, 3))]
    traced = tf.function(PIXEL_FEEDS[mode], input_signature=spec)(tf.constant(x)).numpy()
    keras_traced = tf.function(MODES[mode].preprocess_input, input_signature=spec)(tf.constant(x)).numpy()
    np.testing.assert_array_equal(traced, keras_traced)
    np.testing.assert_allclose(traced, want, rtol=3e-7, atol=3e-7)


def test_the_range_names_are_the_options_and_others_are_refused_naming_them(plain_files) -> None:
    assert INPUT_RANGES == ("0-255", "0-1", "-1-1", "caffe", "torch")
    with pytest.raises(ModelLoadError, match=r"input range 'tf': use one of 0-255, 0-1, -1-1, caffe, torch$"):
        load_model(plain_files["caffe"], input_range="tf")


# ----------------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("mode", list(MODES))
def test_predict_gives_the_model_on_keras_preprocess_input_on_keras_and_tflite(
    mode, plain_files, loaded
) -> None:
    am, x = loaded[mode], _images()
    km = keras.models.load_model(plain_files[mode])
    want = km.predict(_preprocess(mode, x), verbose=0)
    assert am.input_range == mode and am.read_as["input_range"] == mode and not am.rescales_input
    np.testing.assert_allclose(am.predict(x)["probabilities"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(am.predict(x, fast=True)["probabilities"], want, rtol=1e-4, atol=1e-5)
    wrong = km.predict(x / 255.0, verbose=0)  # what a 0..1 feed (the old guess) gives
    assert np.abs(want - wrong).max() > 0.05  # so the checks above can tell the feeds apart


@pytest.mark.parametrize("mode", list(MODES))
def test_an_agelens_file_keeps_the_range_it_was_read_with(mode, loaded, tmp_path) -> None:
    saved = save_model(loaded[mode], tmp_path / "ours.keras")
    again = load_model(saved)
    assert again.input_range == mode and again.input_range_guessed == ""
    assert again.metadata["input_range"] == mode and again.metadata["rescales_input"] is False
    np.testing.assert_array_equal(
        again.predict(_images())["probabilities"], loaded[mode].predict(_images())["probabilities"]
    )


# ------------------------------------------------------------------------------ explanations


def _hand_gradient(km: keras.Model, mode: str, x: np.ndarray, cls: int) -> np.ndarray:
    """d logit[cls] / d raw pixels, through Keras' own (tensor) preprocess_input."""
    logits = keras.Model(km.inputs, km.get_layer("logits").output)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        z = logits(MODES[mode].preprocess_input(tf.identity(xt)), training=False)[:, cls]
    return tape.gradient(z, xt).numpy()


@pytest.mark.parametrize("mode", list(MODES))
def test_gradient_maps_are_the_gradient_through_preprocess_input_wrt_raw_pixels(
    mode, plain_files, loaded
) -> None:
    am, x = loaded[mode], _images(3)
    g = _hand_gradient(keras.models.load_model(plain_files[mode]), mode, x, cls=1)
    assert np.abs(g).max() > 0
    saliency = make_method(am, "saliency", normalize=False)
    np.testing.assert_allclose(
        saliency.input_gradients(x, target=1), g, rtol=1e-4, atol=1e-6 * np.abs(g).max()
    )
    np.testing.assert_allclose(
        saliency.attribute(x, target=1), np.abs(g).max(-1), rtol=1e-4, atol=1e-6 * np.abs(g).max()
    )
    gxi = make_method(am, "gradient-x-input", normalize=False, signed=True).attribute(x, target=1)
    want = (g * x).sum(-1)
    np.testing.assert_allclose(gxi, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "occlusion"])
@pytest.mark.parametrize("mode", list(MODES))
def test_cams_and_perturbations_run_on_the_probabilities_predict_gives(mode, method, loaded) -> None:
    am, x = loaded[mode], _images(2)
    ran = make_method(am, method).run(x, target=0)
    np.testing.assert_allclose(
        ran.probabilities, am.predict(x, flip=False)["probabilities"], rtol=1e-5, atol=1e-6
    )
    assert np.isfinite(ran.maps).all() and ran.maps.max() > 0


def test_explain_records_the_range_it_fed(loaded) -> None:
    e = agelens.explain(loaded["torch"], list(_images(1).astype(np.uint8)), method="gradcam")
    assert e.settings["input_range"] == "torch"
    np.testing.assert_allclose(
        e.probabilities,
        loaded["torch"].predict(_images(1), flip=False)["probabilities"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_metrics_forward_pass_feeds_the_range(loaded) -> None:
    from agelens.metrics.adapters import predict_fn_of

    am, x = loaded["caffe"], _images(3)
    predict = predict_fn_of(am)
    np.testing.assert_allclose(predict(x), am.predict(x, flip=False)["probabilities"], rtol=1e-5, atol=1e-6)


def test_one_keras_model_read_with_two_ranges_shares_no_method_or_forward_pass(plain_files) -> None:
    """The caches of methods, views and the metrics' traces were keyed by 0..255-or-not: a caffe
    and a torch reading of one Keras model would both have been "not 0..255"."""
    from agelens.metrics.adapters import predict_fn_of
    from agelens.model.wrap import wrap_keras_model

    km, x = keras.models.load_model(plain_files["caffe"]), _images(2)
    caffe, torch = wrap_keras_model(km, input_range="caffe"), wrap_keras_model(km, input_range="torch")
    for am, mode in ((caffe, "caffe"), (torch, "torch")):
        want = km.predict(_preprocess(mode, x), verbose=0)
        np.testing.assert_allclose(
            make_method(am, "gradcam").run(x).probabilities, want, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(predict_fn_of(am)(x), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- old files unchanged


def test_files_that_record_only_rescales_input_read_as_before(plain_files, tmp_path) -> None:
    """agelens files made before the new ranges record ``rescales_input`` alone: False is 0..1."""
    path = tmp_path / "old.keras"
    keras.models.load_model(plain_files["caffe"]).save(path)
    write_metadata(path, {"class_names": ["a", "b", "c"], "input_size": SIZE, "rescales_input": False})
    old = load_model(path)
    assert old.input_range == "0-1" and not old.rescales_input and old.input_range_guessed == ""
    want = keras.models.load_model(path).predict(_images() / np.float32(255), verbose=0)
    np.testing.assert_allclose(old.predict(_images())["probabilities"], want, rtol=1e-6, atol=1e-7)
    write_metadata(path, {"class_names": ["a", "b", "c"], "input_size": SIZE, "rescales_input": True})
    assert load_model(path).input_range == "0-255"
    raw = keras.models.load_model(path).predict(_images(), verbose=0)
    np.testing.assert_array_equal(load_model(path).predict(_images())["probabilities"], raw)
