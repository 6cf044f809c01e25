"""Known answers: every method finds the quadrant the model reads; guided backprop respects
ReLU6; no method changes the caller's model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from explain_models import quadrant_images, quadrant_model, relu6_model, small_convnet

from agelens.explain import METHODS, make_method
from agelens.explain.gradients import GuidedBackprop, Saliency

ALL = [*METHODS, "smooth-gradcam++"]
PER_PIXEL = ["hirescam", "layercam", "saliency", "smoothgrad", "integrated-gradients", "guided-backprop",
             "guided-gradcam", "occlusion", "gradient-x-input"]  # fmt: skip


def _options(name: str) -> dict:
    return {"n": 4} if name.startswith("smooth") else {}


def _quadrant_shares(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = maps.shape[1] // 2
    total = maps.sum(axis=(1, 2))
    return maps[:, :h, :h].sum(axis=(1, 2)) / total, maps[:, h:, h:].sum(axis=(1, 2)) / total


@pytest.fixture(scope="module")
def quad() -> keras.Model:
    return quadrant_model()


def test_quadrant_model_does_what_it_says(quad):
    bright = quad.predict(quadrant_images(4), verbose=0)
    grey = quad.predict(np.full((2, 32, 32, 3), 128.0, np.float32), verbose=0)
    assert (bright.argmax(1) == 1).all() and (grey.argmax(1) == 0).all()


@pytest.mark.parametrize("name", ALL)
def test_every_method_puts_most_energy_in_the_quadrant_the_model_reads(quad, name):
    maps = make_method(quad, name, **_options(name)).attribute(quadrant_images(4), "class 1")
    top_left, _ = _quadrant_shares(maps)
    assert (top_left > 0.7).all(), top_left  # a quarter by chance


@pytest.mark.parametrize("name", PER_PIXEL)
def test_per_pixel_methods_ignore_an_equally_bright_quadrant_the_model_does_not_read(quad, name):
    """Bright top-left *and* bottom-right: only the top-left drives the class.

    (Channel-weighted CAMs cannot tell the two apart here: their one weight per channel
    highlights both bright quadrants. That is a property of those methods, not a bug.)
    """
    maps = make_method(quad, name, **_options(name)).attribute(quadrant_images(4, 1, True), 1)
    top_left, bottom_right = _quadrant_shares(maps)
    assert (top_left > 0.9).all() and (bottom_right < 0.05).all(), (top_left, bottom_right)


def test_guided_backprop_blocks_gradient_where_relu6_is_saturated():
    model = relu6_model()
    red = np.array([[-2, 3, 7, 0.5], [6, 5.9, 2, 9], [0.1, 12, -1, 4], [6.5, 1, 3, 6]], np.float32)
    x = np.zeros((1, 4, 4, 3), np.float32)
    x[0, :, :, 0] = red
    left = np.arange(4) < 2  # dense weights: +1 on the left half (class 0), -1 on the right
    inside = (red > 0) & (red < 6)
    guided = GuidedBackprop(model).input_gradients(x, 0)[0, :, :, 0]
    vanilla = Saliency(model).input_gradients(x, 0)[0, :, :, 0]
    np.testing.assert_array_equal(guided, np.where(inside & left[None, :], 1.0, 0.0))
    assert (guided[red >= 6] == 0).all()  # where ReLU6 is flat, never any gradient
    # and the guided rule really differs from the plain gradient (negative signal is dropped)
    off_kink = red != 6  # the plain ReLU6 derivative at exactly 6 is backend-defined
    expected = np.where(inside, np.where(left[None, :], 1.0, -1.0), 0.0)
    np.testing.assert_array_equal(vanilla[off_kink], expected[off_kink])


def test_guided_backprop_on_a_fused_relu_uses_a_rebuilt_copy():
    model = relu6_model(fused=True)
    red = np.array([[-2, 3, 7, 0.5], [6, -5.9, 2, 9], [0.1, 12, -1, 4], [6.5, 1, -3, 6]], np.float32)
    x = np.zeros((1, 4, 4, 3), np.float32)
    x[0, :, :, 0] = red
    guided = GuidedBackprop(model).input_gradients(x, 0)[0, :, :, 0]
    left = np.arange(4) < 2
    np.testing.assert_array_equal(guided, np.where((red > 0) & left[None, :], 1.0, 0.0))
    assert model.get_layer("pre").activation is keras.activations.relu


def test_guided_backprop_follows_weights_changed_after_its_graph_was_built():
    from agelens.explain.api import make_method
    from agelens.model.wrap import wrap_keras_model

    model = wrap_keras_model(relu6_model(fused=True))
    x = np.zeros((1, 4, 4, 3), np.float32)
    x[0, :, :, 0] = 2.0
    method = make_method(model, "guided-backprop")  # cached per model: built once
    before = method.input_gradients(x, 0)[0, :, :, 0]
    pre = model.keras_model.get_layer("pre")
    pre.set_weights([w * 3 for w in pre.get_weights()])  # e.g. trained or randomised in place
    after = make_method(model, "guided-backprop").input_gradients(x, 0)[0, :, :, 0]
    np.testing.assert_allclose(after, 3 * before)  # the stale copy gave `before` again


def _snapshot(model: keras.Model, x: np.ndarray) -> dict:
    return {
        "config": json.dumps(model.get_config(), sort_keys=True, default=str),
        "weights": [w.copy() for w in model.get_weights()],
        "activations": [getattr(layer, "activation", None) for layer in model.layers],
        "layers": [id(layer) for layer in model.layers],
        "predictions": np.asarray(model.predict(x, verbose=0)),
    }


@pytest.mark.parametrize("build", [quadrant_model, lambda: relu6_model(fused=True), lambda: small_convnet(7)])
def test_no_method_changes_the_callers_model(build):
    model = build()
    size = model.input_shape[1]
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    before = _snapshot(model, x)
    for name in ALL:
        maps = make_method(model, name, **_options(name)).attribute(x)
        assert maps.shape == (2, size, size)
    after = _snapshot(model, x)
    assert after["config"] == before["config"]
    assert after["activations"] == before["activations"]
    assert after["layers"] == before["layers"]
    for a, b in zip(after["weights"], before["weights"], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(after["predictions"], before["predictions"])


@pytest.mark.parametrize("name", ["smoothgrad", "smooth-gradcam"])
def test_smoothgrad_map_of_an_image_does_not_depend_on_its_batch(name):
    model = small_convnet(seed=5)
    x = np.random.default_rng(3).uniform(0, 255, (3, 24, 24, 3)).astype(np.float32)
    method = make_method(model, name, n=4)
    together = method.attribute(x, [0, 1, 2])
    alone = make_method(model, name, n=4).attribute(x[2:], [2])
    reversed_ = method.attribute(x[::-1], [2, 1, 0])
    np.testing.assert_allclose(alone[0], together[2], atol=1e-5)  # old: a fresh noise draw per batch
    np.testing.assert_allclose(reversed_[0], together[2], atol=1e-5)


@pytest.mark.parametrize(
    ("asked", "named"), [("smoothgrad", "smoothgrad"), ("smooth-gradcam", "smooth-gradcam")]
)
def test_smoothgrad_is_named_as_asked_in_explanations(asked, named):
    """The app's status line and saved manifests said 'smooth-saliency' for a user who picked smoothgrad."""
    import agelens

    model = small_convnet(seed=5)
    x = np.random.default_rng(3).uniform(0, 255, (1, 24, 24, 3)).astype(np.uint8)
    assert make_method(model, asked, n=2).name == named
    assert agelens.explain(model, x, method=asked, n=2).method == named


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("inner", ["saliency", "gradcam"])
def test_noise_tunnel_types_keep_the_mean_the_mean_square_or_the_variance(inner, nt_type):
    """captum's NoiseTunnel types, checked against the inner method run by hand on the same noisy copies."""
    import tensorflow as tf

    from agelens.explain.base import normalize_maps
    from agelens.explain.targets import resolve_target

    model = small_convnet(seed=5)
    x = np.random.default_rng(3).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    method = make_method(model, f"smooth-{inner}", n=3, nt_type=nt_type)
    got = method.attribute(x, [0, 2])
    plain = make_method(model, inner)
    target = resolve_target([0, 2], plain.model)
    raw = np.stack(
        [
            np.asarray(plain._raw(tf.constant(x) + method._noise[k][None], tf.constant([0, 2]), target)[0])
            for k in range(3)
        ]
    ).astype(np.float64)
    kept = {"smoothgrad": raw.mean(0), "smoothgrad_sq": (raw**2).mean(0), "vargrad": raw.var(0)}[nt_type]
    want = np.asarray(normalize_maps(tf.constant(kept, tf.float32)))
    np.testing.assert_allclose(got, want, atol=2e-4)
    assert not np.allclose(got, make_method(model, f"smooth-{inner}", n=3).attribute(x, [0, 2])) or (
        nt_type == "smoothgrad"
    )


def test_noise_tunnel_type_is_checked():
    model = small_convnet(seed=5)
    with pytest.raises(ValueError, match="nt_type must be one of smoothgrad, smoothgrad_sq, vargrad"):
        make_method(model, "smoothgrad", nt_type="var")
    with pytest.raises(ValueError, match="vargrad needs n >= 2"):
        make_method(model, "smoothgrad", nt_type="vargrad", n=1)
    with pytest.raises(TypeError, match="nt_type"):
        make_method(model, "gradcam", nt_type="vargrad")  # only smooth-* methods take it


def test_integrated_gradients_signed_attributions_are_exact_on_a_linear_model():
    """For a linear logit, IG is (x - baseline) x weight exactly: signs kept, completeness delta ~0."""
    inp = keras.Input((8, 8, 3))
    dense = keras.layers.Dense(2, name="logits")
    out = keras.layers.Activation("softmax")(dense(keras.layers.Flatten()(inp)))
    model = keras.Model(inp, out)
    w = np.random.default_rng(0).normal(size=(8 * 8 * 3,)).astype(np.float32) / 100
    dense.set_weights([np.stack([-w, w], axis=1), np.zeros(2, np.float32)])
    x = np.random.default_rng(1).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    ig = make_method(model, "integrated-gradients", steps=4)
    attr = ig.signed(x, "class 1")
    # no Rescaling layer: agelens feeds such a plain model x / 255, so the logit is w . x / 255
    np.testing.assert_allclose(attr, x * w.reshape(8, 8, 3) / 255, rtol=1e-4, atol=1e-6)
    assert (attr < 0).any() and (attr > 0).any()  # the [0, 1] maps hide this direction
    np.testing.assert_allclose(ig.convergence_delta(x, "class 1"), 0.0, atol=1e-4)
    np.testing.assert_allclose(ig.signed(x, "class 0"), -attr, rtol=1e-4, atol=1e-6)


def test_gradient_x_input_is_pixel_times_weight_on_a_linear_model():
    """For a linear logit, gradient x input is x x weight summed over RGB: one backward pass, signed."""
    inp = keras.Input((8, 8, 3))
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inp, keras.layers.Activation("softmax")(dense(keras.layers.Flatten()(inp))))
    w = np.random.default_rng(2).normal(size=(8 * 8 * 3,)).astype(np.float32) / 100
    dense.set_weights([np.stack([-w, w], axis=1), np.zeros(2, np.float32)])
    x = np.random.default_rng(3).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    want = (x * w.reshape(8, 8, 3) / 255).sum(-1)  # a plain model is fed x / 255
    want /= np.abs(want).max(axis=(1, 2), keepdims=True)
    got = make_method(model, "gradient-x-input", signed=True).attribute(x, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    unsigned = make_method(model, "gradient-x-input").attribute(x, 1)
    mag = np.abs(want)  # unsigned maps are min-max scaled like every other method's
    lo, hi = mag.min(axis=(1, 2), keepdims=True), mag.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(unsigned, (mag - lo) / (hi - lo), atol=1e-5)


def _left_for_right_against() -> keras.Model:
    """Class 0's logit = brightness summed over the left half minus over the right half (class 1: the
    reverse): on an evenly bright image the left half is evidence for class 0, the right half against."""
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inp)
    conv = keras.layers.Conv2D(1, 1, name="bright")
    x = keras.layers.ReLU(name="relu")(conv(x))
    dense = keras.layers.Dense(2, name="logits")
    out = keras.layers.Activation("softmax", name="probs")(dense(keras.layers.Flatten(name="flat")(x)))
    conv.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), np.zeros(1, np.float32)])
    side = np.where(np.arange(32 * 32) % 32 < 16, 1.0, -1.0).astype(np.float32) / 64
    dense.set_weights([np.stack([side, -side], axis=1), np.zeros(2, np.float32)])
    return keras.Model(inp, out)


SIGNED = ["hirescam", "integrated-gradients", "occlusion", "gradient-x-input", "rise"]


@pytest.mark.parametrize("name", SIGNED)
def test_signed_maps_show_evidence_against_the_target_as_negative(name):
    from agelens.explain import attribute

    model = _left_for_right_against()
    x = np.random.default_rng(0).uniform(150, 200, (2, 32, 32, 3)).astype(np.float32)
    opts = {"hirescam": {"layer": "relu"}, "occlusion": {"fill": 0}}.get(name, {})  # black patches
    signed = attribute(model, x, method=name, target=0, signed=True, **opts)
    left, right = signed[:, 4:28, 2:14], signed[:, 4:28, 18:30]  # off the edges occlusion patches share
    assert left.mean() > 0.3 and right.mean() < -0.3, (left.mean(), right.mean())
    assert np.abs(signed).max() == pytest.approx(1.0, abs=1e-5) and signed.min() >= -1.0
    plain = attribute(model, x, method=name, target=0, **opts)
    assert plain.min() >= 0.0  # the unsigned map cannot say "against"


def test_methods_without_a_signed_form_say_which_have_one():
    from agelens.explain import attribute

    model = _left_for_right_against()
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(
        ValueError, match="gradcam\\+\\+ has no signed form.*hirescam, gradient-x-input, integrated-gradients"
    ):
        attribute(model, x, method="gradcam++", signed=True)
    with pytest.raises(ValueError, match="fuse='mean' only"):
        attribute(model, x, method="gradcam", layer=["relu", "bright"], fuse="max", signed=True)
