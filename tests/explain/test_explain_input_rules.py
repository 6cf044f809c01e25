"""The rules every method's ``attribute`` shares (API review): 0..1 floats scaled with a warning,
non-finite pixels refused, blank maps said, warnings pointing at the caller's line, and
``agelens.explain`` the same object however it is first reached."""

from __future__ import annotations

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from explain_models import small_convnet

import agelens
from agelens.explain import make_method
from agelens.explain.api import BlankMapsWarning
from agelens.model.wrap import wrap_keras_model

SIZE = 24


@pytest.fixture(scope="module")
def small():
    return wrap_keras_model(small_convnet(seed=2, size=SIZE))


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(3).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("method", ["gradcam", "saliency", "integrated-gradients"])
def test_a_method_object_scales_unit_floats_as_the_attribute_function_does(small, x, method) -> None:
    """make_method(...).attribute(x / 255) used to explain a near-black image without a word."""
    m = make_method(small, method, **({"steps": 8} if method == "integrated-gradients" else {}))
    expected = m.attribute(x, 1)
    for given in (x / 255.0, tf.constant(x / 255.0)):  # arrays and tensors alike
        with pytest.warns(UserWarning, match="0..1 scaled to 0..255") as said:
            got = m.attribute(given, 1)
        assert said[0].filename == __file__  # the caller's line, not an agelens file
        np.testing.assert_allclose(got, expected, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.attribute(x.astype(np.uint8), 1)  # integers and floats past 1 are 0..255 already: no warning
        m.attribute(np.zeros_like(x), 1)  # a black image stays black


def test_non_finite_pixels_are_refused_naming_the_images(small, x) -> None:
    bad = x.copy()
    bad[2, 5, 5, 0] = np.nan
    bad[0, 1, 1, 1] = np.inf
    for method in ("gradcam", "saliency"):
        with pytest.raises(ValueError, match=r"NaN or infinite pixels \(image 0, 2 of 3\)"):
            make_method(small, method).attribute(bad, 1)
    with pytest.raises(ValueError, match="image 2 of 3"):
        make_method(small, "integrated-gradients", steps=4).signed(np.where(np.isnan(bad), np.nan, x), 1)


def _dead_layer_model() -> keras.Model:
    """A conv layer whose kernel is all zero: its ReLU output, and every CAM of it, is 0."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, kernel_initializer="zeros", activation="relu", name="dead")(inp)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="after")(h)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, out)


def test_explain_warns_about_all_zero_maps_as_the_docs_say(small, x) -> None:
    """docs/explain.md promised "explain warns"; only the CLI did."""
    photos = list(x.astype(np.uint8))
    blank = "gradcam: 3 of 3 maps are all zero .* try another layer"
    with pytest.warns(BlankMapsWarning, match=blank) as said:
        agelens.explain(_dead_layer_model(), photos, method="gradcam", layer="dead")
    assert said[0].filename == __file__
    with pytest.warns(BlankMapsWarning, match=r"occlusion: 3 of 3 .*; try another method\)$"):
        agelens.explain(_dead_layer_model(), photos, method="occlusion")  # a constant model: nothing matters
    with warnings.catch_warnings():
        warnings.simplefilter("error", BlankMapsWarning)
        agelens.explain(small, photos, method="saliency")  # maps with evidence: nothing said


def test_agelens_explain_is_the_callable_package_on_first_access() -> None:
    """The first ``agelens.explain`` used to be the bare function: ``.list_methods()`` failed once."""
    code = "import agelens; print(agelens.explain.list_methods()[0]); print(callable(agelens.explain))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["gradcam", "True"]


def test_integrated_gradients_checks_its_baseline_when_made(small, x) -> None:
    """A wrong shape failed only at the first call, with a TensorFlow broadcast error; -5 passed."""
    for bad, said in [
        (np.zeros((10, 10, 3)), r"baseline shaped \(10, 10, 3\): use a grey level"),
        (np.zeros((2, SIZE, SIZE, 3)), "the same for every image"),
        (-5, "baseline values -5..-5: pixels are 0..255"),
        (np.full(3, np.nan), "pixels are 0..255"),
    ]:
        with pytest.raises(ValueError, match=said):
            make_method(small, "integrated-gradients", baseline=bad)
    grey = make_method(small, "integrated-gradients", steps=4, baseline=100).attribute(x, 1)
    for same in (np.full(3, 100.0), np.full((SIZE, SIZE, 3), 100.0), np.full((1, SIZE, SIZE, 3), 100.0)):
        got = make_method(small, "integrated-gradients", steps=4, baseline=same).attribute(x, 1)
        np.testing.assert_allclose(got, grey, atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion", "smoothgrad"])
def test_normalize_false_gives_the_maps_as_computed(small, x, method) -> None:
    """Every map was min-max scaled per image: no magnitude could be compared across images or fed
    to a toolkit that wants raw attributions (captum's default; tf-keras-vis's normalize_cam=False)."""
    opts = {"n": 3} if method == "smoothgrad" else {}
    scaled = make_method(small, method, **opts).attribute(x, 1)
    raw = make_method(small, method, normalize=False, **opts).attribute(x, 1)
    assert raw.dtype == np.float32 and raw.shape == scaled.shape
    assert not np.allclose(raw.max(axis=(1, 2)), 1.0)  # not scaled per image
    lo, hi = raw.min(axis=(1, 2), keepdims=True), raw.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose((raw - lo) / (hi - lo), scaled, atol=1e-4)  # the same maps, unscaled
    with pytest.raises(ValueError, match="explain\\(\\) lays maps scaled to"):
        agelens.explain(small, list(x.astype(np.uint8)), method=method, normalize=False, **opts)


def _years_and_kind() -> keras.Model:
    """docs/explain.md's own-model example: a regression head not named ``age`` beside the classes."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu", name="c")(inp))
    return keras.Model(inp, {"years": keras.layers.Dense(1)(h), "kind": keras.layers.Dense(2)(h)})


def test_age_output_names_a_regression_head_for_the_age_target(x) -> None:
    """Only an output named ``age`` was read as years: target="age" could not reach "years"."""
    from agelens.model.age_model import ModelLoadError

    km = _years_and_kind()
    plain = wrap_keras_model(km, class_output="kind", input_range="0-1")
    with pytest.raises(ValueError, match="age"):
        make_method(plain, "gradcam", "c").attribute(x, "age")
    model = wrap_keras_model(km, class_output="kind", age_output="years", input_range="0-1")
    assert model.read_as["age_output"] == "years"
    expected = km.predict(x / 255.0, verbose=0)["years"].reshape(-1)
    np.testing.assert_allclose(model.predict(x)["age"], expected, rtol=1e-4, atol=1e-4)
    maps = make_method(model, "saliency").attribute(x, "age")
    assert maps.shape == (3, SIZE, SIZE) and maps.max() == pytest.approx(1.0)
    seen = make_method(model, "saliency").attribute(x, lambda logits, probs, age: age * 2.0)
    np.testing.assert_allclose(seen, maps, atol=1e-5)  # a callable target's age is that output too
    for bad, said in [("kind", "holds the classes"), ("nope", "no output 'nope'")]:
        with pytest.raises(ModelLoadError, match=said):
            wrap_keras_model(km, class_output="kind", age_output=bad)
