"""Precise BatchNorm (agelens.model.bn_stats): the statistics it stores are the exact ones, and
nothing else about the model changes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from agelens.model import bn_stats
from agelens.model.bn_stats import batchnorm_layers, recalibrate_batchnorm


def two_bn_model(seed: int = 0) -> keras.Model:
    """conv -> BN -> ReLU -> conv -> BN -> pool -> dense, with momenta that are not Keras' default."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 3), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inp)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = keras.layers.ReLU(name="r1")(h)
    h = keras.layers.Conv2D(5, 3, padding="same", name="c2")(h)
    h = keras.layers.BatchNormalization(momentum=0.95, name="bn2")(h)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(h))
    return keras.Model(inp, out)


def images(n: int = 45, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 6, 6, 3)).astype(np.float32)


def stats(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    bn = model.get_layer(name)
    return bn.moving_mean.numpy(), bn.moving_variance.numpy()


def exact(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance over every pixel of every image, in float64."""
    a = np.asarray(a, np.float64)
    return a.mean((0, 1, 2)), a.var((0, 1, 2))


def layer_by_layer_reference(model: keras.Model, x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The slow definition on a copy: each BN in turn gets the exact statistics of its input,
    computed in inference mode with the BNs before it already set."""
    ref = keras.models.clone_model(model)
    ref.set_weights(model.get_weights())
    out = {}
    for name, conv in (("bn1", "c1"), ("bn2", "c2")):
        feats = keras.Model(ref.inputs, ref.get_layer(conv).output).predict(x, verbose=0)
        out[name] = exact(feats)
        bn = ref.get_layer(name)
        bn.moving_mean.assign(out[name][0].astype(np.float32))
        bn.moving_variance.assign(out[name][1].astype(np.float32))
    return out


def assert_stats(model: keras.Model, name: str, want: tuple[np.ndarray, np.ndarray]) -> None:
    mean, var = stats(model, name)
    np.testing.assert_allclose(mean, want[0], rtol=1e-4, atol=1e-4 * np.abs(want[0]).max())
    np.testing.assert_allclose(var, want[1], rtol=1e-4)


def test_one_batch_matches_the_layer_by_layer_reference():
    """With every photo in one batch, training-mode batch statistics are the population ones, so
    both layers must equal the sequential exact reference."""
    model, x = two_bn_model(), images()
    ref = layer_by_layer_reference(model, x)
    rec = recalibrate_batchnorm(model, x, batch_size=len(x))
    assert rec.layers == ["bn1", "bn2"] and rec.n_batches == 1 and rec.n_images == len(x)
    assert_stats(model, "bn1", ref["bn1"])
    assert_stats(model, "bn2", ref["bn2"])


def test_many_batches_pool_exactly():
    """Uneven batches: the first BN's input does not depend on batching, so its stored statistics
    are the exact population ones; the second's are the pooled statistics of its training-mode
    inputs (each batch normalised by its own statistics, as in training), pixel-weighted."""
    model, x = two_bn_model(), images(45)
    first = exact(keras.Model(model.inputs, model.get_layer("c1").output).predict(x, verbose=0))
    probe = keras.Model(model.inputs[0], model.get_layer("c2").output)
    batches = bn_stats._batches(len(x), 8, None, seed=0)
    assert len({len(b) for b in batches}) == 2  # 45 photos in 6 batches of 7 or 8
    feats = np.concatenate([np.asarray(probe(x[b], training=True)) for b in batches])
    second = exact(feats)
    recalibrate_batchnorm(model, x, batch_size=8)
    assert_stats(model, "bn1", first)
    assert_stats(model, "bn2", second)


def test_max_images_uses_a_sample():
    model, x = two_bn_model(), images(40)
    rec = recalibrate_batchnorm(model, x, batch_size=40, max_images=10)
    assert rec.n_images == 10
    sample = np.sort(np.random.default_rng(0).permutation(40)[:10])
    first = exact(keras.Model(model.inputs, model.get_layer("c1").output).predict(x[sample], verbose=0))
    assert_stats(model, "bn1", first)


def test_only_the_moving_statistics_change():
    model, x = two_bn_model(), images()
    bns = batchnorm_layers(model)
    before = {v.path: v.numpy().copy() for v in model.weights}
    moving = {v.path for bn in bns for v in (bn.moving_mean, bn.moving_variance)}
    rec = recalibrate_batchnorm(model, x, batch_size=16)
    assert [bn.momentum for bn in bns] == [0.9, 0.95]
    for v in model.weights:
        if v.path in moving:
            assert not np.allclose(v.numpy(), before[v.path]), v.path
        else:
            np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)
    rec.revert()
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), before[v.path], err_msg=v.path)


def test_an_error_puts_statistics_and_momentum_back(monkeypatch):
    model, x = two_bn_model(), images()
    bns = batchnorm_layers(model)
    before = [(bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()) for bn in bns]
    seen = []

    def broken(km, layers, *a):
        seen.append([bn.momentum for bn in layers])
        for bn in layers:
            bn.moving_mean.assign(np.full(bn.moving_mean.shape, 7.0, np.float32))
        raise RuntimeError("interrupted")

    monkeypatch.setattr(bn_stats, "_pool_statistics", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        recalibrate_batchnorm(model, x)
    assert seen == [[0.0, 0.0]]
    assert [bn.momentum for bn in bns] == [0.9, 0.95]
    for bn, (mean, var) in zip(bns, before, strict=True):
        np.testing.assert_array_equal(bn.moving_mean.numpy(), mean)
        np.testing.assert_array_equal(bn.moving_variance.numpy(), var)


def test_frozen_batchnorm_keeps_its_statistics():
    """Keras runs a non-trainable BN in inference mode even in training: its statistics are
    deliberately fixed (fine-tuning), so they are left alone and reported."""
    model, x = two_bn_model(), images()
    model.get_layer("bn1").trainable = False
    mean, var = stats(model, "bn1")
    rec = recalibrate_batchnorm(model, x, batch_size=len(x))
    assert rec.layers == ["bn2"] and rec.skipped == ["bn1"]
    np.testing.assert_array_equal(stats(model, "bn1")[0], mean)
    np.testing.assert_array_equal(stats(model, "bn1")[1], var)
    feats = keras.Model(model.inputs, model.get_layer("c2").output).predict(x, verbose=0)
    assert_stats(model, "bn2", exact(feats))


def test_uint8_images_and_nested_models():
    """Photos as agelens keeps them (uint8) and a BN inside a nested model are handled."""
    inner = two_bn_model()
    inp = keras.Input((6, 6, 3))
    outer = keras.Model(inp, inner(inp))
    x = images().round().astype(np.uint8)
    rec = recalibrate_batchnorm(outer, x, batch_size=len(x))
    assert rec.layers == ["bn1", "bn2"]
    first = exact(
        keras.Model(inner.inputs, inner.get_layer("c1").output).predict(x.astype(np.float32), verbose=0)
    )
    assert_stats(inner, "bn1", first)


@pytest.mark.parametrize(
    ("shape", "kw", "message"),
    [
        ((0, 6, 6, 3), {}, "need a batch"),
        ((4, 7, 7, 3), {}, "do not fit"),
        ((4, 6, 6, 3), {"batch_size": 0}, "batch_size"),
        ((4, 6, 6, 3), {"max_images": 0}, "max_images"),
    ],
)
def test_bad_arguments_are_one_line_errors(shape, kw, message):
    with pytest.raises(ValueError, match=message):
        recalibrate_batchnorm(two_bn_model(), np.zeros(shape, np.float32), **kw)


def test_a_collapsed_model_answers_differently_after_recalibration():
    """The reviewer's symptom: moving statistics still at their initial 0 / 1 (a short run's are
    close to them; here, no step at all, which is the same state and costs no training) make
    MobileNetV2 give every photo the same probabilities; recalibrated, the photos are told apart."""
    from agelens.data.synthetic import generate
    from agelens.model.builder import GROUP_OUTPUT, ModelConfig, build_age_model

    faces = generate(48, size=32, seed=0)
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=False), seed=0)
    x = faces.images.astype(np.float32)
    before = np.asarray(km(x, training=False)[GROUP_OUTPUT])
    assert before.std(0).max() < 1e-4 and len(np.unique(before.argmax(1))) == 1
    recalibrate_batchnorm(km, faces.images, batch_size=16)
    after = np.asarray(km(x, training=False)[GROUP_OUTPUT])
    assert after.std(0).max() > 0.05
    assert len(np.unique(after.argmax(1))) > 1
