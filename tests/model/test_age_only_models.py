"""Models whose only output has one unit: an age regressor (in years) or a sigmoid probability.

Both were refused ("agelens needs one probability per class"), and the docs told users to add a
``Concatenate()([1 - p, p])`` head by hand. Now agelens builds the class head itself
(:mod:`agelens.model.age_head`): an age's groups are the age cut by the bins, scored by their
margins in years; a sigmoid ``p`` becomes ``[1 - p, p]``.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import agelens
from agelens.data.bins import AgeBins
from agelens.explain.api import attribute
from agelens.explain.layers import model_view
from agelens.model.age_model import ModelLoadError
from agelens.model.evaluate import classification_metrics
from agelens.model.io import load_model, save_model
from agelens.model.wrap import wrap_keras_model

SIZE = 32
EDGE_NEIGHBOURS = [np.nextafter(np.float32(e), np.float32(d)) for e in (30, 60) for d in (0, 200)]
AGES = np.array([0, 1, 12.5, 29, 29.5, 30, 30.5, 45, 59.75, 60, 61, 80, 116, *EDGE_NEIGHBOURS], np.float32)


def pixel_regressor(sequential: bool = False) -> keras.Model:
    """A linear regressor whose age in years is exactly the red value of the top-left pixel.

    rescale (x1, so agelens feeds raw values) -> 1x1 conv keeping red (a 32x32 map for the CAMs)
    -> flatten -> Dense(1) reading one cell: every product but one is by zero, so the age is exact.
    """
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="red")
    dense = keras.layers.Dense(1, name="years")
    layers = [keras.layers.Rescaling(1.0, name="rescale"), conv, keras.layers.Flatten(name="flat"), dense]
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), *layers], name="pixel_regressor")
    if not sequential:
        inp = keras.Input((SIZE, SIZE, 3), name="image")
        x = inp
        for layer in layers:
            x = layer(x)
        model = keras.Model(inp, x, name="pixel_regressor")
    conv.set_weights([np.array([1, 0, 0], np.float32).reshape(1, 1, 3, 1)])
    kernel = np.zeros((SIZE * SIZE, 1), np.float32)
    kernel[0] = 1.0
    dense.set_weights([kernel, np.zeros(1, np.float32)])
    return model


def images_aged(ages: np.ndarray) -> np.ndarray:
    """Grey images whose top-left red value is each age (the pixel regressor reads it exactly)."""
    x = np.full((len(ages), SIZE, SIZE, 3), 100.0, np.float32)
    x[:, 0, 0, 0] = ages
    return x


def convnet(
    activation: str | None = None, sequential: bool = False, seed: int = 0, rescale: bool = False
) -> keras.Model:
    """A small random CNN ending in one unit (the usual UTKFace tutorial shape), on 0..1 input
    (``rescale``: on 0..255 input, with a Rescaling layer inside)."""
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Rescaling(1 / 255, name="rescale")] if rescale else []
    layers += [
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.Conv2D(8, 3, activation="relu", name="c2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(1, activation=activation, name="head", kernel_initializer="random_normal"),
    ]
    if sequential:
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), *layers], name="tiny_seq")
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x, name="tiny")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def regressor(x) -> keras.Model:
    """A random CNN age regressor, its head scaled so that the ages of ``x`` spread over 45 +- 30 y."""
    km = convnet()
    head = km.get_layer("head")
    features = keras.Model(km.inputs, km.get_layer("gap").output).predict(x / 255.0, verbose=0)
    kernel, _ = head.get_weights()
    z = features @ kernel
    scale = np.float32(30.0 / z.std())
    head.set_weights([kernel * scale, np.array([45.0 - z.mean() * scale], np.float32)])
    return km


# ----------------------------------------------------------------------- an age regressor


def test_an_age_regressor_loads_with_its_groups_cut_from_its_age() -> None:
    model = wrap_keras_model(pixel_regressor())
    assert model.class_names == ["young", "middle-aged", "old"]
    assert model.has_age and model.age_output == "age" and model.group_output == "age_group"
    assert model.groups_from_age and model.bins == AgeBins()
    assert model.metadata["groups_from_age"] is True and model.metadata["one_unit"] == "age"
    read = model.read_as  # what a manifest records: the classes are not a trained classifier's
    assert read["one_unit"] == "age" and read["groups_from_age"] is True and read["age_bins"] == [30.0, 60.0]
    out = model.predict(images_aged(AGES))
    np.testing.assert_array_equal(out["age"], AGES)  # the model's own output, read as years


@pytest.mark.parametrize(
    "bins",
    [AgeBins(), AgeBins((20.0, 40.0, 65.5), ("a", "b", "c", "d")), AgeBins((18.0,), ("minor", "adult"))],
    ids=["default", "four-groups", "two-groups"],
)
def test_the_predicted_group_is_the_bin_of_the_predicted_age_even_on_an_edge(bins: AgeBins) -> None:
    """min(age - lower, upper - age) alone ties at an edge (0 and 0) and the argmax took the group
    below; an age on an edge belongs to the group above (young < 30 <= middle-aged)."""
    model = wrap_keras_model(pixel_regressor(), bins=bins)
    assert model.class_names == list(bins.names) and model.bins == bins
    near = [np.nextafter(np.float32(e), np.float32(d)) for e in bins.edges for d in (0, 200)]
    ages = np.concatenate([AGES, np.float32(bins.edges), np.float32(near)]).astype(np.float32)
    out = model.predict(images_aged(ages))
    np.testing.assert_array_equal(out["probabilities"].argmax(1), bins.index(out["age"]))
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=1e-6)


def test_the_class_logits_are_each_groups_margin_in_years() -> None:
    model = wrap_keras_model(pixel_regressor())
    ages = np.array([10, 45, 70], np.float32)
    logits, probs = model_view(model).output_model()(images_aged(ages))
    margins = [[20, -20, -50], [-15, 15, -15], [-40, -10, 10]]  # young < 30 <= middle < 60 <= old
    np.testing.assert_allclose(np.asarray(logits), margins, atol=1e-4)
    e = np.exp(np.asarray(margins, np.float64))
    np.testing.assert_allclose(np.asarray(probs), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_class_targets_explain_the_age_old_with_its_sign_young_against_it(regressor, x) -> None:
    """The margin of "old" is age - 60 and of "young" 30 - age: their gradients are the age's and
    its negative, so a map of "old" shows what pushes the age up, one of "young" what pulls it down."""
    model = wrap_keras_model(regressor)
    assert len(set(model.predict(x)["probabilities"].argmax(1))) > 1  # not one group for all
    grads = {
        t: attribute(model, x, "gradient-x-input", target=t, signed=True, normalize=False)
        for t in ("age", "old", "young")
    }
    assert np.abs(grads["age"]).max() > 0
    np.testing.assert_allclose(grads["old"], grads["age"], rtol=1e-5, atol=1e-6 * np.abs(grads["age"]).max())
    np.testing.assert_allclose(
        grads["young"], -grads["age"], rtol=1e-5, atol=1e-6 * np.abs(grads["age"]).max()
    )
    cams = {t: attribute(model, x, "gradcam", target=t) for t in ("age", "old")}
    np.testing.assert_allclose(cams["old"], cams["age"], atol=1e-5)  # Grad-CAM of "old" is the age's


def test_explain_runs_on_a_regressor_for_the_age_and_the_groups(regressor, x) -> None:
    photos = list(x.astype(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-zero map of a random network is not this test's point
        e = agelens.explain(regressor, photos, method="gradcam", target="age")
        g = agelens.explain(regressor, photos, method="gradcam")  # each photo's predicted group
    assert e.target == "expected age" and e.class_names == ["young", "middle-aged", "old"]
    assert e.maps.shape == (4, SIZE, SIZE) and np.isfinite(e.maps).all()
    direct = regressor.predict(x.astype(np.uint8).astype(np.float32) / 255.0, verbose=0).reshape(-1)
    # 0..1 input (no Rescaling layer): a wrong range would be off by far more than 1e-4. Not 1e-5:
    # the traced forward and Keras' predict differ by up to 1.7e-5 on some runs (oneDNN's order).
    np.testing.assert_allclose(e.ages, direct, rtol=1e-4)
    np.testing.assert_array_equal(g.probabilities.argmax(1), AgeBins().index(g.ages))


def test_a_sequential_regressor_is_explained_through_its_head(x) -> None:
    """agelens.explain keeps a Sequential caller's own model unless agelens added a head on it."""
    seq = pixel_regressor(sequential=True)
    ages = np.array([25, 30, 65], np.float32)
    e = agelens.explain(seq, list(images_aged(ages)), method="hirescam", layer="red", target="old")
    np.testing.assert_array_equal(e.ages, ages)
    np.testing.assert_array_equal(e.probabilities.argmax(1), [0, 1, 2])


def test_evaluating_a_regressor_scores_the_groups_of_its_ages() -> None:
    """As ``agelens evaluate`` does it: the argmax of the probabilities against the labels, with
    Keras and through TensorFlow Lite (the converted copy keeps the head)."""
    from agelens.model.fast import fast_predictor

    model = wrap_keras_model(pixel_regressor())
    true_ages = np.array([5, 29, 30, 31, 59, 60, 90, 45], np.float32)
    labels = AgeBins().index(true_ages)
    predicted_ages = true_ages.copy()
    predicted_ages[-1] = 25.0  # one miss: a middle-aged face read as young
    x = images_aged(predicted_ages)
    for fast in (False, True):
        probs = model.predict(x, fast=fast)["probabilities"]
        m = classification_metrics(labels, probs.argmax(1), model.class_names)
        assert m["accuracy"] == pytest.approx(7 / 8)
        assert m["confusion_matrix"][1] == [1, 3, 0]
    assert fast_predictor(model) is not None


def test_a_plain_regressor_saved_by_keras_loads_from_disk(tmp_path) -> None:
    km = pixel_regressor()
    for name in ("regressor.keras", "regressor.h5"):
        km.save(tmp_path / name)
        model = load_model(tmp_path / name)
        assert model.groups_from_age and model.age_output == "age"
        out = model.predict(images_aged(AGES))
        np.testing.assert_array_equal(out["age"], AGES)
        np.testing.assert_array_equal(out["probabilities"].argmax(1), AgeBins().index(AGES))
    custom = load_model(tmp_path / "regressor.keras", bins=AgeBins((50.0,), ("under 50", "50 and over")))
    assert custom.class_names == ["under 50", "50 and over"]


def test_a_wrapped_regressor_saved_with_agelens_keeps_its_reading(tmp_path) -> None:
    bins = AgeBins((20.0, 40.0, 65.5), ("a", "b", "c", "d"))
    path = save_model(wrap_keras_model(pixel_regressor(), bins=bins), tmp_path / "wrapped.keras")
    again = load_model(path)
    assert again.groups_from_age and again.bins == bins and again.class_names == ["a", "b", "c", "d"]
    ages = np.array([19, 20, 40, 65.5, 70], np.float32)
    np.testing.assert_array_equal(
        again.predict(images_aged(ages))["probabilities"].argmax(1), [0, 1, 2, 3, 3]
    )


def test_class_names_name_the_age_groups() -> None:
    model = wrap_keras_model(pixel_regressor(), class_names=["child", "adult", "senior"])
    assert model.class_names == ["child", "adult", "senior"] and model.bins.edges == (30.0, 60.0)
    with pytest.raises(ModelLoadError, match="2 class names given for 3 age groups") as exc:
        wrap_keras_model(pixel_regressor(), class_names=["a", "b"])
    assert "\n" not in str(exc.value)


# ----------------------------------------------------------------------- a sigmoid probability


def test_a_sigmoid_model_gives_one_minus_p_and_p(x) -> None:
    km = convnet("sigmoid")
    model = wrap_keras_model(km)
    assert model.class_names == ["class 0", "class 1"] and not model.has_age
    assert model.metadata["one_unit"] == "probability" and not model.groups_from_age
    assert model.read_as["one_unit"] == "probability" and "age_bins" not in model.read_as
    p = km.predict(x / 255.0, verbose=0).reshape(-1)
    probs = model.predict(x)["probabilities"]
    np.testing.assert_allclose(probs, np.stack([1 - p, p], 1), atol=1e-6)
    named = wrap_keras_model(km, class_names=["not old", "old"])
    assert named.class_names == ["not old", "old"]


def test_a_sigmoid_model_is_explained_by_its_logit_and_its_negative(x) -> None:
    km = convnet("sigmoid")
    model = wrap_keras_model(km)
    p = km.predict(x / 255.0, verbose=0).reshape(-1).astype(np.float64)
    logits, _ = model_view(model).output_model()(x / 255.0)
    z = np.log(p / (1 - p))
    np.testing.assert_allclose(np.asarray(logits), np.stack([-z, z], 1), atol=1e-5)
    g1, g0 = (attribute(model, x, "gradient-x-input", target=t, signed=True, normalize=False) for t in (1, 0))
    assert np.abs(g1).max() > 0
    np.testing.assert_allclose(g0, -g1, atol=1e-6 * np.abs(g1).max())


def test_a_sequential_sigmoid_model_is_explained_and_saved(x, tmp_path) -> None:
    seq = convnet("sigmoid", sequential=True, rescale=True)  # save_model records no 0..1 input range
    e = agelens.explain(seq, list(x.astype(np.uint8)), method="gradcam", target="class 1")
    p = seq.predict(x.astype(np.uint8).astype(np.float32), verbose=0).reshape(-1)
    np.testing.assert_allclose(e.probabilities[:, 1], p, atol=1e-6)
    path = save_model(wrap_keras_model(seq), tmp_path / "sigmoid.keras")  # its logit layer loads again
    again = load_model(path)
    assert again.metadata["one_unit"] == "probability"
    np.testing.assert_allclose(again.predict(x.astype(np.uint8))["probabilities"][:, 1], p, atol=1e-6)


# ----------------------------------------------------------------------- forcing the reading, errors


def test_one_unit_overrules_the_guess(x) -> None:
    as_probability = wrap_keras_model(pixel_regressor(), one_unit="probability")
    assert as_probability.class_names == ["class 0", "class 1"] and not as_probability.has_age
    probs = as_probability.predict(images_aged(np.array([0.25, 0.75], np.float32)))["probabilities"]
    p = 1 / (1 + np.exp(-np.array([0.25, 0.75])))  # a linear unit read as a probability is its logit
    np.testing.assert_allclose(probs, np.stack([1 - p, p], 1), atol=1e-6)
    as_age = wrap_keras_model(convnet("sigmoid"), one_unit="age")  # a sigmoid of age / 100, say
    assert as_age.groups_from_age and as_age.has_age
    assert np.all(as_age.predict(x)["probabilities"].argmax(1) == 0)  # 0..1 "years": all young
    assert wrap_keras_model(pixel_regressor(), age_output=0).groups_from_age  # naming it the age


@pytest.mark.parametrize(
    ("make", "options", "words"),
    [
        (pixel_regressor, {"one_unit": "years"}, "one_unit 'years': use one of age, probability"),
        (pixel_regressor, {"bins": "30,60"}, "bins must be an AgeBins"),
        (pixel_regressor, {"bins": AgeBins((), ("all",))}, "one age group"),
        (lambda: convnet("sigmoid"), {"bins": AgeBins()}, "read as the probability of class 1 of 2"),
        (pixel_regressor, {"one_unit": "probability", "age_output": 0}, "both the age"),
        (lambda: convnet("softmax"), {}, "softmax over one unit, which is always 1"),
    ],
)
def test_what_cannot_be_read_is_refused_in_one_line(make, options, words) -> None:
    with pytest.raises(ModelLoadError, match=words) as exc:
        wrap_keras_model(make(), **options)
    assert "\n" not in str(exc.value)


def test_one_unit_and_bins_on_a_model_with_a_class_per_group() -> None:
    """A two-output model (an age beside the classes) reads as before; ``bins`` names its groups."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    km = keras.Model(
        inp, {"years": keras.layers.Dense(1)(h), "kind": keras.layers.Dense(4, activation="softmax")(h)}
    )
    bins = AgeBins((20.0, 40.0, 60.0), ("0-20", "20-40", "40-60", "60+"))
    model = wrap_keras_model(km, age_output="years", bins=bins)
    assert model.group_output == "kind" and model.age_output == "years" and model.bins == bins
    assert model.class_names == list(bins.names) and not model.groups_from_age
    assert "one_unit" not in model.read_as
    with pytest.raises(ModelLoadError, match="make 3 age groups; the model has 4 classes"):
        wrap_keras_model(km, bins=AgeBins())
    with pytest.raises(ModelLoadError, match="one_unit='age' is for a class output of one unit"):
        wrap_keras_model(km, one_unit="age")


def test_a_model_with_an_age_and_a_sigmoid_reads_either_as_the_classes(x) -> None:
    """UTKFace's multi-task shape: a one-unit age and a one-unit sigmoid (e.g. gender) beside it."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    km = keras.Model(
        inp, {"age": keras.layers.Dense(1)(h), "gender": keras.layers.Dense(1, activation="sigmoid")(h)}
    )
    by_age = wrap_keras_model(km)
    assert by_age.groups_from_age and by_age.age_output == "age" and by_age.group_output == "age_group"
    by_gender = wrap_keras_model(km, class_output="gender", class_names=["male", "female"])
    assert by_gender.age_output == "age" and by_gender.class_names == ["male", "female"]
    out = by_gender.predict(x)
    assert out["probabilities"].shape == (4, 2) and out["age"].shape == (4,)
    with pytest.raises(
        ModelLoadError, match="output 'gender' has one unit, read as an age, but output 'age'"
    ):
        wrap_keras_model(km, class_output="gender", one_unit="age")
