"""The randomisation test redraws a frozen backbone's learned weights (Adebayo et al., Quantus):
``trainable_weights`` is empty once a layer is frozen, so the cascade's "every layer random" stage
used to keep the whole backbone. The readouts agelens fixes by construction stay as they are."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.metrics.sanity import learned_weights, randomisable_layers, randomisation_test


def _frozen_backbone_model():
    """Two conv layers frozen inside a nested backbone, the usual Keras fine-tuning recipe, under a
    trainable head."""
    import keras

    keras.utils.set_random_seed(0)
    base_in = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="b_conv1")(base_in)
    h = keras.layers.BatchNormalization(name="b_bn")(h)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="b_conv2")(h)
    base = keras.Model(base_in, h, name="base")
    base.trainable = False
    inp = keras.Input((32, 32, 3))
    f = keras.layers.Conv2D(8, 1, activation="relu", name="head_conv")(base(inp))
    f = keras.layers.GlobalAveragePooling2D()(f)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="cls")(f))


def _input_gradient(model, x, targets):
    """|d p(target) / d input| summed over colour: a map every layer on the path can change."""
    import tensorflow as tf

    xt = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        p = model.keras_model(xt, training=False)
        score = tf.reduce_sum(tf.gather(p, np.asarray(targets), axis=1, batch_dims=1))
    return np.abs(tape.gradient(score, xt).numpy()).sum(-1)


def test_frozen_backbone_layers_are_randomised() -> None:
    km = _frozen_backbone_model()
    assert randomisable_layers(km) == ["cls", "head_conv", "b_conv2", "b_conv1"]
    bn = km.get_layer("base").get_layer("b_bn")
    assert [w.path.split("/")[-1] for w in learned_weights(bn)] == ["gamma", "beta"]  # no moving stats


def test_last_stage_redraws_the_frozen_backbone_and_leaves_the_callers_model() -> None:
    from agelens.model.wrap import wrap_keras_model

    km = _frozen_backbone_model()
    before = [np.array(w) for w in km.get_weights()]
    model = wrap_keras_model(km, input_range="0-1")
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    res = randomisation_test(model, _input_gradient, x, targets=[0, 1, 2])
    assert res.layers[-1] == ["cls", "head_conv", "b_conv2", "b_conv1"]
    only_head = randomisation_test(model, _input_gradient, x, targets=[0, 1, 2], layers=["cls", "head_conv"])
    assert res.final_spearman < only_head.final_spearman  # the backbone's stages changed the maps more
    for a, b in zip(before, km.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not km.get_layer("base").trainable and km.get_layer("cls").trainable


def test_fixed_readouts_stay_fixed() -> None:
    """The builder's expected-age layer (kernel 0..116) and the layers added to read a one-unit
    model are readouts, not learned: redrawing them would change what the output means."""
    import keras

    from agelens.model.builder import AGE_OUTPUT, ModelConfig, build_age_model
    from agelens.model.wrap import wrap_keras_model

    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=0)
    age_path = randomisable_layers(wrap_keras_model(km), "age")
    assert age_path[0] == "age_logits" and AGE_OUTPUT not in age_path
    assert learned_weights(km.get_layer(AGE_OUTPUT)) == []

    inp = keras.Input((32, 32, 3))
    f = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="c")(inp))
    regressor = wrap_keras_model(keras.Model(inp, keras.layers.Dense(1, name="years")(f)), input_range="0-1")
    names = randomisable_layers(regressor)
    assert names == ["years", "c"], names


@pytest.mark.parametrize("frozen", [False, True])
def test_a_users_layer_named_age_is_learned(frozen: bool) -> None:
    """Only a frozen layer whose kernel steps evenly up (an expected value over bins) is a readout;
    a frozen one-unit Dense with any other kernel was learned, whatever its name."""
    import keras

    layer = keras.layers.Dense(1, use_bias=False, name="age")
    layer.build((None, 5))
    layer.set_weights([np.array([[0.3], [0.1], [0.9], [0.2], [0.5]], dtype="float32")])
    layer.trainable = not frozen
    assert len(learned_weights(layer)) == 1
    layer.set_weights([np.arange(5, dtype="float32")[:, None] * 10 + 2.5])  # bins' centres
    assert (learned_weights(layer) == []) is frozen


def test_a_bare_keras_model_takes_class_names_as_explain_does() -> None:
    """randomisation_test(keras_model, ..., targets="old") was refused ("got names such as 'old'"),
    though explain() reads the same model's classes by those names; now it is read the same way."""
    import tensorflow as tf

    km = _frozen_backbone_model()

    def gradient(model, x, targets):
        xt = tf.convert_to_tensor(np.asarray(x, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            score = tf.reduce_sum(tf.gather(model(xt), np.asarray(targets), axis=1, batch_dims=1))
        return np.abs(tape.gradient(score, xt).numpy()).sum(-1)

    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    named = randomisation_test(km, gradient, x, targets="old", stages=2)
    indexed = randomisation_test(km, gradient, x, targets=[2, 2], stages=2)
    np.testing.assert_allclose(named.spearman, indexed.spearman)
