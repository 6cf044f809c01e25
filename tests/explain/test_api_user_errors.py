"""What a user of the Python API gets back for a mistake: one plain error line, never a
TensorFlow trace or an AttributeError from inside agelens (user test h69, items 3, 5, 6, 7)."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from agelens.explain import attribute, explain, make_method, resolve_layer
from agelens.explain.api import canonical
from agelens.explain.targets import CallableTarget, resolve_target
from agelens.model.age_model import AgeModel

SIZE = 32
NO_AGE = AgeModel(None, ["young", "middle-aged", "old"], SIZE, age_output=None)
# wrap_keras_model's and load_model's keywords: how a model is read, not how a method runs
MODEL_READING = ("class_names", "input_range", "input_size", "class_output", "age_output", "one_unit", "bins")


@pytest.fixture(scope="module")
def km() -> keras.Model:
    """Two convolutions, three classes, no age output."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(x), name="tiny")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)


# --------------------------------------------------------------- 3: a callable target reading age
def reads_age(logits, probs, age):
    return age


def adds_age(logits, probs, age):
    return logits[:, 0] + age


@pytest.mark.parametrize("fn", [reads_age, adds_age])
def test_a_callable_reading_age_on_a_model_without_one_is_refused_in_one_line(fn):
    """It passed the check (traced with a dummy age) and then failed inside the compiled step
    with 60 lines ending in TensorFlow's "None values not supported"."""
    said = f"target {fn.__name__} reads age, which needs a model with an age output; this model has none"
    with pytest.raises(ValueError, match=said):
        resolve_target(fn, NO_AGE)


def test_the_age_error_comes_before_any_compiled_step(km, x):
    with pytest.raises(ValueError) as err:
        attribute(km, x, target=lambda logits, probs, age: age)
    said = str(err.value)
    assert "reads age" in said and "None values" not in said and "\n" not in said


def test_a_callable_gets_age_none_on_a_model_without_one_as_documented(km, x):
    """targets.py: "``age`` is None when the model has no age output" (it was a tensor of zeros)."""

    def class0_unless_age(logits, probs, age):
        return logits[:, 0] if age is None else age

    maps = attribute(km, x, target=class0_unless_age)
    np.testing.assert_allclose(maps, attribute(km, x, target=0), atol=1e-6)


def test_a_callable_not_reading_age_is_unchanged(km, x):
    def diff(logits, probs, age):
        return logits[:, 2] - logits[:, 0]

    assert resolve_target(diff, NO_AGE) == CallableTarget(diff, has_age=False)
    np.testing.assert_allclose(attribute(km, x, target=diff), attribute(km, x, target="old-young"), atol=1e-6)


def test_python_control_flow_on_tensors_still_works(km, x):
    """Callables run as written (no AutoGraph warning); one with ``if`` on a tensor is converted."""

    def branch(logits, probs, age):
        if keras.ops.mean(logits) > -1e9:  # always true, but a tensor
            return logits[:, 1]
        return logits[:, 2]

    assert resolve_target(branch, NO_AGE).autograph
    np.testing.assert_allclose(attribute(km, x, target=branch), attribute(km, x, target=1), atol=1e-6)


def test_two_lambdas_on_one_line_give_no_autograph_warning(km, x, capfd, caplog):
    """AutoGraph cannot parse a line holding two lambdas: it warned ~10 lines per lambda."""
    first, second = lambda logits, probs, age: logits[:, 0], lambda logits, probs, age: logits[:, 1]
    with caplog.at_level(logging.WARNING):
        attribute(km, x, target=first)
        attribute(km, x, target=second)
    out, err = capfd.readouterr()
    said = out + err + caplog.text
    assert "AutoGraph could not transform" not in said


# ------------------------------------------------------------------------ 5: layer objects
def test_a_keras_layer_is_taken_as_its_name(km, x):
    """pytorch-grad-cam users pass the layer object: it was "no layer named <Conv2D name=c2 ...>"."""
    by_name = attribute(km, x, layer="c2")
    np.testing.assert_array_equal(attribute(km, x, layer=km.get_layer("c2")), by_name)
    np.testing.assert_array_equal(attribute(km, x, layer=km.get_layer("c2").output), by_name)
    assert make_method(km, "gradcam", km.get_layer("c2")) is make_method(km, "gradcam", "c2")
    assert resolve_layer(km, [km.get_layer("c1"), km.get_layer("c2")]) == ["c1", "c2"]
    photo = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert explain(km, photo, layer=km.get_layer("c2"), target=1).layer == "c2"


def test_a_layer_inside_a_nested_model_resolves_to_its_path():
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="c2")
    inner = keras.Model(inner_in, conv(inner_in), name="backbone")
    inp = keras.Input((SIZE, SIZE, 3))
    y = keras.layers.GlobalAveragePooling2D()(inner(inp))
    outer = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(y))
    assert resolve_layer(outer, conv) == ["backbone/c2"]


def test_the_input_tensor_and_other_objects_are_refused_plainly(km):
    with pytest.raises(ValueError, match="'input'.* is not a feature layer"):
        resolve_layer(km, km.input)
    with pytest.raises(TypeError, match="layer must be a name, an index, .*a keras Layer .*not float"):
        resolve_layer(km, 1.5)


# --------------------------------------------------- 6: options that say how to read the model
@pytest.mark.parametrize("option", MODEL_READING)
def test_model_reading_options_say_where_they_belong(km, option):
    with pytest.raises(TypeError) as err:
        make_method(km, "gradcam", **{option: "x"})
    said = str(err.value)
    assert "unknown options" in said  # the old message stays, with the way out added
    assert f"{option} is how the model is read: pass it to agelens.wrap_keras_model(model, {option}=...)" in (
        said
    )
    assert f"load_model(path, {option}=...)" in said


def test_explain_with_class_names_says_to_wrap_the_model(km):
    with pytest.raises(TypeError, match=r"class_names, input_range are how the model is read: pass them to"):
        explain(km, np.zeros((40, 40, 3), np.uint8), class_names=["a", "b", "c"], input_range="0-255")


# -------------------------------------------------------------------- 7: one method per call
@pytest.mark.parametrize("method", [["gradcam", "hirescam"], ("gradcam",), None, 3])
def test_method_must_be_one_name(km, method):
    """A list gave "AttributeError: 'list' object has no attribute 'strip'"."""
    message = r"method must be one name \(str\), e.g. 'gradcam'.*call explain once per method"
    with pytest.raises(TypeError, match=message):
        explain(km, np.zeros((40, 40, 3), np.uint8), method=method)
    with pytest.raises(TypeError, match=message):
        make_method(km, method)
    with pytest.raises(TypeError, match=message):
        canonical(method)


@pytest.mark.parametrize("method", ["gradcam,hirescam", "smooth-gradcam,saliency", "gradcam, magic"])
def test_a_comma_list_of_methods_says_the_api_takes_one(km, method):
    said = "unknown method .*the API takes one method per call; loop over them"
    with pytest.raises(ValueError, match=said):
        make_method(km, method)


def test_an_unknown_method_without_a_comma_keeps_its_message():
    with pytest.raises(ValueError) as err:
        canonical("magic")
    assert "unknown method 'magic'" in str(err.value) and "one method per call" not in str(err.value)
