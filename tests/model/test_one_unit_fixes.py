"""A user walkthrough of plain Keras models with one-unit outputs, and what it found.

- a ``Rescaling(100)`` on the *output* (age / 100 back into years) made the model read as taking
  0..255 pixels: it predicted ages of about -4000 years, silently;
- ``one_unit="probability"`` on a linear unit (a ``from_logits=True`` classifier) clipped its logit
  as if it were a probability: every image 1.0 or 0.0;
- ``age_output="nope"`` said "no output 'nope' to read classes from", and the only output's name
  was refused as ``age_output``;
- ``bins=`` relabelled a model file that records its own bins, silently;
- ``bins=[20, 40, 60]`` was refused (an AgeBins only);
- a model with several one-unit outputs had its first read as the classes, silently.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from agelens.data.bins import AgeBins
from agelens.explain.layers import model_view
from agelens.model.age_model import ModelLoadError
from agelens.model.io import load_model, save_model
from agelens.model.wrap import wrap_keras_model

SIZE = 16


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (5, SIZE, SIZE, 3)).astype(np.float32)


def _trunk(inp: keras.KerasTensor, seed: int = 0) -> keras.KerasTensor:
    keras.utils.set_random_seed(seed)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inp)
    return keras.layers.GlobalAveragePooling2D(name="gap")(h)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------- 1. the pixel range guess


def _tutorial_regressor(sequential: bool = False) -> keras.Model:
    """Trained on x / 255 to predict age / 100, with Rescaling(100) on its output (years again)."""
    keras.utils.set_random_seed(0)
    layers = [
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(
            1, kernel_initializer="random_normal", bias_initializer=keras.initializers.Constant(0.4)
        ),
        keras.layers.Rescaling(100.0, name="to_years"),
    ]
    if sequential:
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), *layers])
    inp = keras.Input((SIZE, SIZE, 3))
    h = inp
    for layer in layers:
        h = layer(h)
    return keras.Model(inp, h)


@pytest.mark.parametrize("sequential", [False, True], ids=["functional", "sequential"])
def test_a_rescaling_on_the_output_does_not_make_the_input_0_to_255(sequential, x) -> None:
    km = _tutorial_regressor(sequential)
    model = wrap_keras_model(km)
    assert model.input_range == "0-1"
    expected = km.predict(x / 255.0, verbose=0).reshape(-1)  # what it was trained on
    np.testing.assert_allclose(model.predict(x)["age"], expected, rtol=1e-5, atol=1e-4)


def test_a_rescaling_on_the_input_still_means_0_to_255() -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    first = keras.Model(inp, keras.layers.Dense(1)(_trunk(keras.layers.Rescaling(1 / 255)(inp))))
    assert wrap_keras_model(first).input_range == "0-255"
    # Keras' tutorial shape: augmentation (a nested Sequential), then Rescaling, then the network
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    h = keras.layers.Resizing(SIZE, SIZE)(augment(inp))
    tutorial = keras.Model(
        inp, keras.layers.Dense(3, activation="softmax")(_trunk(keras.layers.Rescaling(1 / 255)(h)))
    )
    assert wrap_keras_model(tutorial).input_range == "0-255"
    # a keras.applications-style base (Rescaling inside a nested model), in a Sequential or not
    base = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1)])
    base = keras.Model(base.inputs, _trunk(base.outputs[0]), name="base")
    head = keras.layers.Dense(3, activation="softmax")
    assert wrap_keras_model(keras.Model(inp, head(base(inp)))).input_range == "0-255"
    assert (
        wrap_keras_model(keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, head])).input_range == "0-255"
    )


def test_only_an_input_normalization_tells_the_range() -> None:
    """A Normalization after the network (an un-adapted one reads as 0..255) says nothing of pixels."""
    inp = keras.Input((SIZE, SIZE, 3))
    out = keras.layers.Normalization(mean=40.0, variance=200.0, invert=True)(
        keras.layers.Dense(1)(_trunk(inp))
    )
    assert wrap_keras_model(keras.Model(inp, out)).input_range == "0-1"
    on_input = keras.layers.Normalization(mean=120.0, variance=3000.0)(inp)
    assert wrap_keras_model(keras.Model(inp, keras.layers.Dense(1)(_trunk(on_input)))).input_range == "0-255"


# ------------------------------------------------------------ 2. a linear unit read as a probability


def _binary(activation: str | None) -> keras.Model:
    """The same weights ending in a linear unit (from_logits=True) or in a sigmoid."""
    inp = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(1, activation=activation, name="head")
    km = keras.Model(inp, dense(_trunk(inp)))
    dense.set_weights([np.array([[3.0], [-2.0], [1.5], [-1.0]], np.float32), np.array([-0.2], np.float32)])
    return km


def test_a_linear_unit_read_as_a_probability_is_its_logit(x) -> None:
    sig = wrap_keras_model(_binary("sigmoid"))
    lin = wrap_keras_model(_binary(None), one_unit="probability")
    assert lin.metadata["one_unit"] == "probability" and not lin.has_age
    p_sig, p_lin = sig.predict(x)["probabilities"], lin.predict(x)["probabilities"]
    np.testing.assert_allclose(p_lin, p_sig, atol=1e-6)
    assert ((p_lin > 0.01) & (p_lin < 0.99)).any()  # not clipped to 1.0 / 0.0
    z = _binary(None).predict(x / 255.0, verbose=0).reshape(-1)
    logits, _ = model_view(lin).output_model()(x / 255.0)  # explained through [-z, z]
    np.testing.assert_allclose(np.asarray(logits), np.stack([-z, z], 1), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------- 3. naming the age output


def test_a_wrong_age_output_is_named_as_the_age() -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    km = keras.Model(inp, keras.layers.Dense(1, name="dense")(_trunk(inp)))
    with pytest.raises(
        ModelLoadError, match="no output 'nope' to read the age from; outputs: 0 \\(dense\\)"
    ) as e:
        wrap_keras_model(km, age_output="nope")
    _one_line(e)
    with pytest.raises(ModelLoadError, match="no output 'nope' to read classes from"):
        wrap_keras_model(km, class_output="nope")


@pytest.mark.parametrize("name", [0, "0", "dense"])
def test_the_only_output_may_be_named_the_age(name, x) -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    km = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid", name="dense")(_trunk(inp)))
    model = wrap_keras_model(km, age_output=name)  # even after a sigmoid: named the age, read as one
    assert model.groups_from_age and model.has_age and model.metadata["one_unit"] == "age"
    np.testing.assert_allclose(
        model.predict(x)["age"], km.predict(x / 255.0, verbose=0).reshape(-1), atol=1e-6
    )


def test_a_list_output_may_be_named_by_its_keras_name() -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    h = _trunk(inp)
    km = keras.Model(inp, [keras.layers.Dense(1, name="years")(h), keras.layers.Dense(4, name="group")(h)])
    model = wrap_keras_model(km, age_output="years", class_output="group")
    assert model.age_output == 0 and model.group_output == 1
    with pytest.raises(
        ModelLoadError, match="no output 'nope' to read the age from; outputs: 0 \\(years\\), 1 \\(group\\)"
    ):
        wrap_keras_model(km, age_output="nope")


# ------------------------------------------------------------ 4. bins for a model that records its own


def test_other_bins_for_a_saved_model_with_its_own_are_refused(tmp_path) -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    regressor = keras.Model(inp, keras.layers.Dense(1, name="years")(_trunk(inp)))
    recorded = AgeBins((20.0, 40.0, 65.5), ("a", "b", "c", "d"))
    path = save_model(wrap_keras_model(regressor, bins=recorded), tmp_path / "wrapped.keras")
    for other in (AgeBins((30.0, 50.0, 70.0), ("a", "b", "c", "d")), AgeBins()):
        with pytest.raises(ModelLoadError, match="records its own age bins \\(20,40,65.5\\)") as e:
            load_model(path, bins=other)
        assert "bins (--bins) are for plain Keras models" in _one_line(e)
    same = load_model(path, bins=AgeBins((20.0, 40.0, 65.5), ("w", "x", "y", "z")))
    assert same.bins.edges == recorded.edges and same.class_names == ["a", "b", "c", "d"]
    assert load_model(path, bins=[20, 40, 65.5]).bins == recorded
    # a classifier saved by agelens with its bins, and read from its metadata in memory
    classifier = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(_trunk(inp)))
    meta = {"bins": AgeBins().to_dict(), "class_names": list(AgeBins().names), "group_output": 0}
    with pytest.raises(ModelLoadError, match="records its own age bins \\(30,60\\)"):
        wrap_keras_model(classifier, metadata=meta, bins=AgeBins((25.0, 50.0)))
    assert wrap_keras_model(classifier, metadata=meta, bins=AgeBins()).bins == AgeBins()
    assert wrap_keras_model(classifier, bins=AgeBins((25.0, 50.0))).bins.edges == (25.0, 50.0)  # plain: fine


# ----------------------------------------------------------------------- 5. bins as edges


@pytest.mark.parametrize("edges", [[20, 40, 60], (20.0, 40.0, 60.0), np.array([20, 40, 60])])
def test_bins_may_be_given_as_edges(edges, x) -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    km = keras.Model(inp, keras.layers.Dense(1)(_trunk(inp)))
    model = wrap_keras_model(km, bins=edges)
    assert model.bins == AgeBins.parse([20, 40, 60]) and model.class_names == list(model.bins.names)
    assert model.predict(x)["probabilities"].shape == (5, 4)


@pytest.mark.parametrize(
    ("bins", "words"),
    [
        ("20,40,60", "bins must be an AgeBins \\(agelens.data.bins\\) or its edges in years"),
        ({"edges": [30]}, "bins must be an AgeBins"),
        ([30, "x"], "bins must be an AgeBins"),
        ([True], "bins must be an AgeBins"),
        ([], "no edge"),
        ([60, 30], "strictly increasing"),
    ],
)
def test_other_bins_are_refused_in_one_line(bins, words) -> None:
    inp = keras.Input((SIZE, SIZE, 3))
    km = keras.Model(inp, keras.layers.Dense(1)(_trunk(inp)))
    with pytest.raises(ModelLoadError, match=words) as e:
        wrap_keras_model(km, bins=bins)
    _one_line(e)


# ----------------------------------------------------------------------- 6. several one-unit outputs


def _gender_and_age(kind: str, age_name: str = "age_output") -> keras.Model:
    """UTKFace's multi-task tutorial: a gender sigmoid and a linear age, as a list or a dict."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = _trunk(inp)
    gender = keras.layers.Dense(1, activation="sigmoid", name="gender")(h)
    age = keras.layers.Dense(1, name=age_name, bias_initializer=keras.initializers.Constant(40.0))(h)
    return keras.Model(inp, [gender, age] if kind == "list" else {"gender": gender, age_name: age})


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_an_output_named_as_the_age_is_the_age(kind, x) -> None:
    km = _gender_and_age(kind)
    model = wrap_keras_model(km)
    age_key = 1 if kind == "list" else "age_output"
    assert model.age_output == age_key and model.groups_from_age
    assert model.class_names == ["young", "middle-aged", "old"]
    raw = km.predict(x / 255.0, verbose=0)
    np.testing.assert_allclose(model.predict(x)["age"], np.asarray(raw[age_key]).reshape(-1), rtol=1e-5)
    by_gender = wrap_keras_model(km, class_output="gender", class_names=["male", "female"])
    assert by_gender.age_output == age_key and not by_gender.groups_from_age
    out = by_gender.predict(x)
    np.testing.assert_allclose(
        out["probabilities"][:, 1], np.asarray(raw[0 if kind == "list" else "gender"]).reshape(-1), atol=1e-6
    )
    assert out["age"].shape == (5,)
    with pytest.raises(
        ModelLoadError, match="name the output to read as a probability \\(class_output="
    ) as e:
        wrap_keras_model(km, one_unit="probability")
    _one_line(e)


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_several_one_unit_outputs_none_named_are_not_guessed(kind, x) -> None:
    km = _gender_and_age(kind, age_name="years")
    with pytest.raises(ModelLoadError, match="each have one unit: name the one holding the classes") as e:
        wrap_keras_model(km)
    assert "--class-output" in _one_line(e) and "--age-output" in str(e.value)
    gender, years = (0, 1) if kind == "list" else ("gender", "years")
    as_gender = wrap_keras_model(km, class_output=gender)
    assert as_gender.metadata["one_unit"] == "probability" and not as_gender.has_age
    for name in {years, "years"}:  # a list's output by its index or its Keras name
        as_age = wrap_keras_model(km, age_output=name)
        assert as_age.groups_from_age and as_age.age_output == years
        raw = np.asarray(km.predict(x / 255.0, verbose=0)[years]).reshape(-1)
        np.testing.assert_allclose(as_age.predict(x)["age"], raw, rtol=1e-5)
    both = wrap_keras_model(km, class_output=gender, age_output=years)
    assert both.age_output == years and both.metadata["one_unit"] == "probability"


def test_a_wide_output_stays_the_classes_beside_a_list_output_named_age() -> None:
    """A 2+-unit output is the classes as before, whatever else has one unit; a list output (not only
    a dict key) named age is now the age."""
    inp = keras.Input((SIZE, SIZE, 3))
    h = _trunk(inp)
    km = keras.Model(
        inp,
        [
            keras.layers.Dense(1, activation="sigmoid", name="gender")(h),
            keras.layers.Dense(3, activation="softmax", name="group")(h),
            keras.layers.Dense(1, name="age")(h),
        ],
    )
    model = wrap_keras_model(km)
    assert model.group_output == 1 and model.age_output == 2 and not model.groups_from_age
