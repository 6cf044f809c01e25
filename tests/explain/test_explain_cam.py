"""CAM engine: equality with plain reference computations and with tf-keras-vis, batching, fusion."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from explain_models import small_convnet

from agelens.explain import make_method
from agelens.explain.base import normalize_maps
from agelens.model.wrap import wrap_keras_model

SIZE = 24


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return small_convnet(seed=3, size=SIZE, softmax_in_dense=False)


@pytest.fixture(scope="module")
def x_small() -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)


def _minmax(m: np.ndarray) -> np.ndarray:
    lo = m.min(axis=(1, 2), keepdims=True)
    hi = m.max(axis=(1, 2), keepdims=True)
    rng = hi - lo
    return np.where(rng > 0, (m - lo) / np.where(rng > 0, rng, 1), 0.0)


def reference(model: keras.Model, layer: str, logits: str, x: np.ndarray, classes, plusplus: bool, up: bool):
    """Grad-CAM / Grad-CAM++ written out plainly (the authors' normalised-alpha form for ++)."""
    sub = keras.Model(model.input, [model.get_layer(layer).output, model.get_layer(logits).output])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        acts, z = sub(xt, training=False)
        cls = np.argmax(z.numpy(), 1) if classes is None else np.asarray(classes)
        score = tf.reduce_sum(z * tf.one_hot(cls, z.shape[-1]), axis=1)
    a, g = acts.numpy().astype(np.float64), tape.gradient(score, acts).numpy().astype(np.float64)
    if plusplus:
        g2, g3 = g**2, g**3
        denom = 2 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.where(g2 != 0, g2 / np.where(g2 != 0, denom, 1), 0)
        norm = alpha.sum(axis=(1, 2), keepdims=True)
        alpha = alpha / np.where(norm != 0, norm, 1)
        w = (np.maximum(g, 0) * alpha).sum(axis=(1, 2))
    else:
        w = g.mean(axis=(1, 2))
    cam = np.maximum((a * w[:, None, None, :]).sum(-1), 0).astype(np.float32)
    if up:
        size = x.shape[1]
        cam = tf.image.resize(cam[..., None], (size, size), method="bilinear").numpy()[..., 0]
    return _minmax(cam)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("layer", ["r2", "c3", "c1"])  # c1 feeds a batch norm: must not be folded away
@pytest.mark.parametrize("classes", [None, [0, 1, 2, 1, 0]])
def test_matches_plain_reference_on_small_model(small, x_small, method, layer, classes):
    ours = make_method(small, method, layer).attribute(x_small, classes)
    ref = reference(small, layer, "head_logits", x_small, classes, method == "gradcam++", up=True)
    assert ours.shape == (5, SIZE, SIZE)
    assert np.abs(ours - ref).max() < 1e-4
    assert ours.max() == pytest.approx(1.0)  # not a trivially all-zero comparison


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_matches_plain_reference_on_our_architecture(age_model, faces64, method):
    ours = make_method(age_model, method).attribute(faces64, [0, 1, 2, 0])
    ref = reference(
        age_model.keras_model,
        "out_relu",
        "age_group_logits",
        faces64,
        [0, 1, 2, 0],
        method == "gradcam++",
        up=True,
    )
    assert np.abs(ours - ref).max() < 1e-4


def _tfkv_single_output(km: keras.Model) -> keras.Model:
    out = km.output["age_group"] if isinstance(km.output, dict) else km.output
    return keras.Model(km.input, out)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_agrees_with_tf_keras_vis(small, x_small, age_model, faces64, method):
    """Same maps as the peer before upsampling (it zooms with scipy, we resize bilinearly).

    The peer's raw maps are normalised with our rule: it adds 1e-7 to the range, which is a
    visible 2e-4 error on maps whose raw range is ~1e-3 (and Grad-CAM++ differs from it by
    the positive per-image factor exp(score), which normalisation removes).
    """
    pytest.importorskip("tf_keras_vis")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    peer_cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "layercam": Layercam}[method]
    cases = ((small, x_small, "r2", [2, 1, 0, 1, 2]), (age_model, faces64, "out_relu", [1, 2, 0, 1]))
    for model, x, layer, classes in cases:
        km = model.keras_model if hasattr(model, "keras_model") else model
        peer = peer_cls(_tfkv_single_output(km), model_modifier=ReplaceToLinear(), clone=True)
        raw = peer(
            CategoricalScore(classes),
            x,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
            expand_cam=False,
            normalize_cam=False,
        )
        theirs = np.asarray(normalize_maps(tf.constant(np.asarray(raw, np.float32))))
        ours = make_method(model, method, layer, upsample=False).attribute(x, classes)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4
        assert ours.max() == pytest.approx(1.0)


def test_score_cam_ranks_as_tf_keras_vis_does(small, x_small):
    """Close to the peer's Score-CAM, not equal, even before upsampling: its channel masks are
    zoomed to the input with corners aligned, ours resized as the Score-CAM authors' code does
    (docs/explain.md says so)."""
    pytest.importorskip("tf_keras_vis")
    from scipy.stats import spearmanr
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    classes = [2, 1, 0, 1, 2]
    peer = Scorecam(_tfkv_single_output(small), model_modifier=ReplaceToLinear(), clone=True)
    raw = peer(
        CategoricalScore(classes),
        x_small,
        penultimate_layer="r2",
        seek_penultimate_conv_layer=False,
        expand_cam=False,
        normalize_cam=False,
        max_N=None,
    )
    theirs = np.asarray(normalize_maps(tf.constant(np.asarray(raw, np.float32))))
    ours = make_method(small, "scorecam", "r2", max_channels=None, upsample=False).attribute(x_small, classes)
    assert np.abs(ours - theirs).max() < 1e-2
    assert min(spearmanr(o.ravel(), t.ravel())[0] for o, t in zip(ours, theirs, strict=True)) > 0.99


def test_batching_and_per_image_targets_do_not_change_maps(small, x_small):
    whole = make_method(small, "gradcam", "r2", batch_size=32).attribute(x_small, [0, 1, 2, 0, 1])
    ones = make_method(small, "gradcam", "r2", batch_size=2).attribute(x_small, [0, 1, 2, 0, 1])
    single = np.concatenate(
        [
            make_method(small, "gradcam", "r2").attribute(x_small[i : i + 1], c)
            for i, c in enumerate([0, 1, 2, 0, 1])
        ]
    )
    np.testing.assert_allclose(whole, ones, atol=1e-5)
    np.testing.assert_allclose(whole, single, atol=1e-5)


def test_one_trace_serves_every_batch_size_and_class(small, x_small):
    method = make_method(small, "gradcam", "r2", batch_size=3)
    for target, first in ((None, None), (0, 0), ([0, 1, 2, 0, 1], [0]), ("1", "1")):
        method.attribute(x_small, target)
        method.attribute(x_small[:1], first)
    (step,) = method._steps.values()
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("fuse", ["mean", "max"])
def test_multi_layer_fusion_combines_normalised_layer_maps(small, x_small, fuse):
    both = make_method(small, "gradcam", ["r1", "r2"], fuse=fuse).attribute(x_small, 1)
    r1 = make_method(small, "gradcam", "r1").attribute(x_small, 1)
    r2 = make_method(small, "gradcam", "r2").attribute(x_small, 1)
    stacked = np.stack([r1, r2])
    expected = _minmax(stacked.mean(0) if fuse == "mean" else stacked.max(0))
    np.testing.assert_allclose(both, expected, atol=1e-5)


def test_multi_layer_without_upsampling_is_refused(small):
    with pytest.raises(ValueError, match="single layer"):
        make_method(small, "gradcam", "r1,r2", upsample=False)


@pytest.mark.parametrize(("method", "option"), [("scorecam", "max_batch"), ("ablationcam", "memory_mb")])
def test_perturbation_chunk_size_does_not_change_maps(small, x_small, method, option):
    tiny = {"max_batch": 1} if option == "max_batch" else {"memory_mb": 1e-4}
    a = make_method(small, method, "r2", **tiny).attribute(x_small, [0, 1, 2, 0, 1])
    b = make_method(small, method, "r2").attribute(x_small, [0, 1, 2, 0, 1])
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert b.max() == pytest.approx(1.0)


def test_score_cam_weights_by_class_probability(small, x_small):
    """Score-CAM with all 12 channels, recomputed plainly: masked input scored by softmax probability."""
    km = small
    sub = keras.Model(km.input, km.get_layer("r2").output)
    acts = sub(x_small, training=False).numpy()
    ours = make_method(km, "scorecam", "r2", max_channels=None, upsample=False).attribute(x_small, 2)
    for i in range(2):
        masks = tf.image.resize(np.moveaxis(acts[i], -1, 0)[..., None], (SIZE, SIZE)).numpy()[..., 0]
        masks = np.asarray(normalize_maps(tf.constant(masks)))
        probs = km.predict(x_small[i][None] * masks[..., None], verbose=0)[:, 2]
        cam = np.maximum((acts[i] * probs).sum(-1), 0)
        np.testing.assert_allclose(ours[i], _minmax(cam[None])[0], atol=1e-4)


def test_score_cam_weights_a_contrast_by_its_own_value(small, x_small):
    """A target without a softmax (the logit contrast 2-0) weighs each channel by its value on the
    masked image, with no black-image baseline: the paper's f(X_b) blanked the shipped model's age
    maps of every face it reads as younger than a black image (36 y; ScoreCAM's docstring)."""
    sub = keras.Model(small.input, small.get_layer("r2").output)
    acts = sub(x_small, training=False).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the weak-target warning, checked below
        method = make_method(small, "scorecam", "r2", max_channels=None, upsample=False)
        ours = method.attribute(x_small, "2-0")

    def contrast(images: np.ndarray) -> np.ndarray:  # log-probability differences are logit differences
        p = small.predict(images, verbose=0).astype(np.float64)
        return np.log(p[:, 2]) - np.log(p[:, 0])

    for i in range(2):
        masks = tf.image.resize(np.moveaxis(acts[i], -1, 0)[..., None], (SIZE, SIZE)).numpy()[..., 0]
        masks = np.asarray(normalize_maps(tf.constant(masks)))
        weights = contrast(x_small[i][None] * masks[..., None])
        cam = np.maximum((acts[i] * weights).sum(-1), 0)
        np.testing.assert_allclose(ours[i], _minmax(cam[None])[0], atol=1e-4)


def test_score_cam_says_when_a_target_has_no_class_competition(small, x_small):
    """A contrast (or the age) is scored by its raw value: every channel weighs about the same."""
    method = make_method(small, "scorecam", "r2", max_channels=None)
    with pytest.warns(UserWarning, match="scorecam: a target other than a class"):
        method.attribute(x_small[:2], "2-0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method.attribute(x_small[:2], 2)  # a class competes through the softmax: no warning


def test_eigen_cam_is_oriented_along_the_activations(small, x_small):
    maps = make_method(small, "eigencam", "r2", upsample=False).attribute(x_small)
    total = keras.Model(small.input, small.get_layer("r2").output)(x_small).numpy().sum(-1)
    for m, t in zip(maps, total, strict=True):
        assert np.corrcoef(m.ravel(), t.ravel())[0, 1] > 0


def test_dense_softmax_head_gives_the_same_maps_as_a_separate_softmax():
    """Logits rebuilt from a Dense(softmax) layer's kernel and bias equal an explicit logits layer."""
    fused = small_convnet(seed=4, size=SIZE, softmax_in_dense=True)
    split = small_convnet(seed=4, size=SIZE, softmax_in_dense=False)
    split.set_weights(fused.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    a = make_method(wrap_keras_model(fused), "gradcam", "r2").attribute(x, [0, 1, 2])
    b = make_method(wrap_keras_model(split), "gradcam", "r2").attribute(x, [0, 1, 2])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_gradcam_plus_plus_alpha_is_zero_where_its_denominator_is() -> None:
    """2 g^2 + sum(A) g^3 = 0 at g = -2 / sum(A): the peers' guard (g^2 = 0) divides by zero there
    and the channel's weight became NaN; the cell gets alpha 0 and the positive cell keeps it all."""
    from agelens.explain.cam import GradCAMPlusPlus

    acts = tf.ones((1, 2, 2, 1))  # sum(A) = 4
    grads = tf.constant([1.0, -0.5, 0.0, 0.0], shape=(1, 2, 2, 1))  # 2(0.25) + 4(-0.125) = 0
    weights = np.asarray(GradCAMPlusPlus.channel_weights(None, acts, grads))
    np.testing.assert_allclose(weights, [[1.0]], rtol=1e-6)
