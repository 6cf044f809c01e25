"""Layer listing and resolution across Functional, Sequential and nested models; logits."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from explain_models import small_convnet

from agelens.explain import list_layers, make_method, resolve_layer
from agelens.explain.base import compiled_forward
from agelens.explain.layers import model_view


def test_our_model_lists_flat_layers_and_resolves_keywords(age_model):
    infos = list_layers(age_model)
    names = [i.name for i in infos]
    assert names[0] == "input" and "out_relu" in names and "age_group_logits" in names
    out = infos[names.index("out_relu")]
    assert out.shape == (2, 2, 1280) and out.is_feature
    assert not infos[names.index("rescale")].is_feature  # preprocessing is never a CAM layer
    assert resolve_layer(age_model) == ["out_relu"]
    assert resolve_layer(age_model, "last-conv") == ["out_relu"]
    # 64 px: activations at 32, 16, 8, 4, 2 -> strides 4, 8, 16 for early / mid / late
    assert resolve_layer(age_model, "early") == ["block_3_expand_relu"]
    assert resolve_layer(age_model, "mid") == ["block_6_expand_relu"]
    assert resolve_layer(age_model, "late") == ["block_13_expand_relu"]
    idx = names.index("block_16_project")
    assert resolve_layer(age_model, idx) == ["block_16_project"]
    assert resolve_layer(age_model, str(idx)) == ["block_16_project"]
    assert resolve_layer(age_model, "early, out_relu") == ["block_3_expand_relu", "out_relu"]


def test_padding_layers_are_never_feature_layers():
    # At 32 px out_relu is 1x1; last-conv must be the last real 2x2 map, not block_13_pad
    # (3x3 of zero padding whose map, stretched over the photo, lands off-centre).
    from agelens.model.builder import ModelConfig, build_age_model

    km = build_age_model(ModelConfig(input_size=32, alpha=0.35), seed=0)
    infos = list_layers(km)
    assert not [i.name for i in infos if i.is_feature and i.kind in ("ZeroPadding2D", "Cropping2D")]
    assert resolve_layer(km, "last-conv") == ["block_13_expand_relu"]
    with pytest.raises(ValueError, match="1x1 grid"):  # asked for by name, a 1x1 map is refused too
        resolve_layer(km, "out_relu")


def test_a_model_may_declare_its_default_layer(age_model, faces64):
    """No layer given -> the metadata's ``explain_layer`` (the shipped model declares one);
    keywords keep their meaning, and the same Keras model without it still defaults to last-conv."""
    from dataclasses import replace

    from agelens.explain import explain
    from agelens.report.app_logic import build_engine

    declared = replace(age_model, metadata={**age_model.metadata, "explain_layer": "block_13_expand_relu"})
    assert resolve_layer(declared, None) == ["block_13_expand_relu"]
    assert resolve_layer(declared, "last-conv") == ["out_relu"]
    assert resolve_layer(age_model, None) == ["out_relu"]
    assert explain(declared, faces64[:1], method="gradcam").layer == "block_13_expand_relu"
    assert explain(age_model, faces64[:1], method="gradcam").layer == "out_relu"
    assert build_engine(declared, Path(".")).default_layer == "block_13_expand_relu"
    assert build_engine(age_model, Path(".")).default_layer == "last-conv"


def test_bad_layer_specs_say_what_is_wrong(age_model):
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        resolve_layer(age_model, "nope")
    with pytest.raises(ValueError, match="4-D"):
        resolve_layer(age_model, "pool")
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer(age_model, 10_000)
    for photo_itself in ("input", "rescale", "block_1_pad", 0):  # the pixels, not learned features
        with pytest.raises(ValueError, match="not a feature layer.*marks with"):
            resolve_layer(age_model, photo_itself)


def test_logits_and_age_come_from_our_heads(age_model, faces64):
    view = model_view(age_model)
    assert view.logits is view.output_of("age_group_logits")
    logits, probs, age = compiled_forward(view, 64)(faces64)
    ref = age_model.keras_model.predict(faces64, verbose=0)
    np.testing.assert_allclose(probs, ref["age_group"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(age), ref["age"].reshape(-1), rtol=1e-5)
    e = np.exp(logits - np.max(logits, 1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), probs, atol=1e-5)


def test_dense_softmax_logits_are_rebuilt_from_kernel_and_bias():
    model = small_convnet(seed=2, size=16, softmax_in_dense=True)
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    logits, probs, _ = compiled_forward(model_view(model), 16)(x)
    gap = keras.Model(model.input, model.get_layer("gap").output)(x).numpy()
    kernel, bias = model.get_layer("head").get_weights()
    np.testing.assert_allclose(logits, gap @ kernel + bias, atol=1e-5)
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-6)


def test_sequential_model():
    model = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="c2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    assert resolve_layer(model) == ["c2"]
    assert resolve_layer(model, "early") == ["c1"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 20, 20, 3)).astype(np.float32)
    maps = make_method(model, "gradcam++").attribute(x)
    assert maps.shape == (2, 20, 20) and np.isfinite(maps).all()


def test_layers_inside_a_nested_base_model_are_reachable():
    base = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None
    )
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    names = [i.name for i in list_layers(model)]
    assert f"{base.name}/out_relu" in names
    assert resolve_layer(model) == [f"{base.name}/out_relu"]
    assert resolve_layer(model, "out_relu") == [f"{base.name}/out_relu"]  # bare name works too
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = model.predict(x, verbose=0)
    maps = make_method(model, "gradcam", "mid").attribute(x)
    assert maps.shape == (2, 64, 64)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    assert (
        len(model.layers) == 5
    )  # input, rescaling, base, pooling, dense: nothing added or flattened in place


def test_batch_norm_folding_is_exact_and_keeps_requested_layers(age_model, faces64):
    plain, fast = model_view(age_model), model_view(age_model, fold=())
    assert "Conv1" in plain.graph.by_path and "Conv1" not in fast.graph.by_path  # conv+BN became one op
    assert "bn_Conv1" in fast.graph.by_path
    kept = model_view(age_model, fold=["block_16_project"])
    assert "block_16_project" in kept.graph.by_path and "Conv1" not in kept.graph.by_path
    a = compiled_forward(plain, 64)(faces64)
    b = compiled_forward(fast, 64)(faces64)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    # a CAM on a conv that feeds a BN still sees the conv's own output
    km = age_model.keras_model
    sub = keras.Model(km.input, km.get_layer("block_16_project").output)
    acts = sub(faces64).numpy()
    feats = model_view(age_model, fold=["block_16_project"]).feature_model(["block_16_project"])(faces64)[0]
    np.testing.assert_allclose(feats, acts, rtol=1e-4, atol=1e-5)


def test_folding_handles_depthwise_and_nontrivial_statistics():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=True, name="dw")(inp)
    x = keras.layers.BatchNormalization(name="bn_dw")(x)
    x = keras.layers.Conv2D(5, 3, strides=2, name="c")(x)
    x = keras.layers.BatchNormalization(name="bn_c", center=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU(6.0)(x))
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    rng = np.random.default_rng(0)
    for name, n in (("bn_dw", 6), ("bn_c", 5)):
        layer = model.get_layer(name)
        layer.set_weights([w if w.ndim == 0 else rng.uniform(0.5, 2.0, n).astype(np.float32)
                           for w in layer.get_weights()])  # fmt: skip
    x = rng.uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)
    fast = model_view(model, fold=())
    assert "dw" not in fast.graph.by_path and "c" not in fast.graph.by_path
    logits = compiled_forward(fast, 12)(x)[0]
    # no Rescaling layer: agelens treats the model as taking [0, 1] input (see wrap_keras_model)
    np.testing.assert_allclose(logits, model.predict(x / 255.0, verbose=0), rtol=1e-4, atol=1e-4)
