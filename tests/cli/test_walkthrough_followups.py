"""Follow-ups of a user walkthrough with one-unit models (an age regressor, a sigmoid unit):

1. an age just under a bin edge was printed rounded across it ("young ~30 y" for 29.96 y);
2. the TFLite conversion note said "once" again for every new --bins (or --one-unit...);
3. no line said which pixel range was guessed for a plain Keras model;
4. the app's probability bars of an age cut had no caveat of their own;
5. a linear unit flattened to (N,) by a Reshape, read as a probability, was clipped to 0..1.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from keras_toys import constant_regressor
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()
SIZE = 32


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def just_young(tmp_path_factory) -> Path:
    """29.96 years: "young" (below 30), and 30 when rounded to whole years or to 0.1 y."""
    return constant_regressor(tmp_path_factory.mktemp("young") / "regressor.keras", 29.96)


def _predict(*args: str) -> SimpleNamespace:
    res = runner.invoke(app, ["predict", *map(str, args), "--no-detect"])
    assert res.exit_code == 0, res.output
    return res


# ------------------------------------------------------------ 1. the age printed beside its group


def test_an_age_just_under_an_edge_is_printed_on_its_groups_side(just_young, photo) -> None:
    """predict said "young  ~30 y" for 29.96 y: the group and the printed age disagreed."""
    from agelens.cli.common import prediction_line
    from agelens.data.bins import AgeBins
    from agelens.report.app_logic import status_line

    text = _predict(photo, "--model", just_young, "--engine", "keras").stdout
    assert "young  ~29.9 y" in text and "~30 y" not in text, text
    (row,) = map(json.loads, _predict(photo, "--model", just_young, "--json").stdout.splitlines())
    assert row["predicted"] == "young" and row["age"] == pytest.approx(29.96, abs=1e-5)  # not 30.0

    bins = AgeBins()
    assert "middle-aged  ~59.5 y" in prediction_line("middle-aged", {"middle-aged": 1.0}, 59.5, bins)
    assert "old  ~60 y" in prediction_line("old", {"old": 1.0}, 60.0, bins)
    assert "middle-aged  ~42 y" in prediction_line("middle-aged", {"middle-aged": 1.0}, 42.3, bins)
    edge = AgeBins((30.3, 60.0))  # a lower edge crossed: 30.31 rounds to 30, below the group's 30.3
    assert "middle-aged  ~30.3 y" in prediction_line("middle-aged", {"middle-aged": 1.0}, 30.31, edge)
    # a classifier with a separate age head: its group may differ from its age, printed as always
    assert "young  ~30 y" in prediction_line("young", {"young": 1.0}, 29.96)

    exp = SimpleNamespace(ages=np.array([29.96]), target="predicted class", method="saliency", layer="c")
    line = status_line(exp, {"young": 0.6, "middle-aged": 0.3, "old": 0.1}, from_age=bins)
    assert "**young** (about 29.9 years" in line


# -------------------------------------------------------------- 2. why a model is converted again


def test_the_tflite_note_says_which_options_a_new_conversion_is_for(tmp_path, photo) -> None:
    """The conversion is cached per converted graph, and other --bins make another graph: the note
    said "once: later runs start in about a second" on each new --bins, which read as a broken cache."""
    model = constant_regressor(tmp_path / "regressor.keras", 41.0)
    first = _predict(photo, "--model", model, "--bins", "20,40", "--json")
    assert "converting the model to TFLite for these options (--bins 20,40)" in first.stderr, first.stderr
    assert json.loads(first.stdout)["predicted"] == "40+"
    again = _predict(photo, "--model", model, "--bins", "20,40", "--json")  # cached: no conversion
    assert "converting" not in again.stderr and json.loads(again.stdout)["predicted"] == "40+"
    # the guessed pixel range is said by the TFLite copy (no Keras load) too, once
    assert again.stderr.count("pixels fed as 0..1, a guess") == 1, again.stderr

    from agelens.cli.predict_cmd import conversion_note

    plain = conversion_note({"input_size": None, "class_names": "a,b,c", "bins": None, "input_range": "0-1"})
    assert plain == "converting the model to TFLite (once: later runs start in about a second)"


# --------------------------------------------------------------------------- 3. the guessed range


def test_a_guessed_pixel_range_is_said_once_and_a_given_or_recorded_one_is_not(tmp_path, photo) -> None:
    from agelens.model.io import load_model, save_model

    scaled = tmp_path / "scaled.keras"
    plain = constant_regressor(tmp_path / "plain.keras", 41.0)
    constant_regressor(scaled, 41.0, rescaling=True)
    base = ["--engine", "keras"]

    said = _predict(photo, "--model", plain, *base).stderr
    lines = [line for line in said.splitlines() if "pixels fed as" in line]
    assert lines == [
        f"{plain}: pixels fed as 0..1, a guess (no Rescaling or Normalization layer acts on its input); "
        "give --input-range 0-255 if it was trained on raw 0..255 pixels, or -1-1, caffe or torch for "
        "keras.applications' preprocess_input (-1-1: mobilenet_v2, xception, inception_v3...; "
        "caffe: resnet50, vgg16; torch: densenet)"
    ], said
    said = _predict(photo, "--model", scaled, *base).stderr
    assert (
        "pixels fed as 0..255, a guess (a Rescaling layer acts on its input); give --input-range 0-1 " in said
    )
    assert "pixels fed as" not in _predict(photo, "--model", plain, *base, "--input-range", "0-1").stderr

    ours = save_model(load_model(plain), tmp_path / "ours.keras")  # an agelens file records its range
    assert "pixels fed as" not in _predict(photo, "--model", ours, *base).stderr
    assert load_model(ours).input_range == "0-1" and load_model(ours).input_range_guessed == ""


# ------------------------------------------------------------------ 4. the app's bars of an age cut


def test_the_apps_bars_of_an_age_cut_say_they_are_no_confidence(tmp_path: Path) -> None:
    import keras

    from agelens.model.wrap import wrap_keras_model
    from agelens.report import app

    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="c")(inp))
    regressor = wrap_keras_model(keras.Model(inp, keras.layers.Dense(1)(h)), bins=[20, 40])
    classifier = wrap_keras_model(keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h)))
    assert regressor.groups_from_age and not classifier.groups_from_age

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
        mp.setattr(app, "_workdir", lambda: tmp_path)
        demo = app.build_app(regressor)
    (bars,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "al-probs"]
    assert "cut at 20, 40 y" in bars.label and "softmax of how many years" in bars.label
    assert "not a confidence" in bars.label
    assert app.probabilities_label(classifier) == "Class probabilities"  # an ordinary classifier: as before


# ------------------------------------------------------- 5. a flattened linear unit is its logit


def _flattened(activation: str | None, flat: bool):
    """A one-unit model ending in ``Dense(1, activation)``, flattened to ``(N,)`` by a Reshape or not."""
    import keras

    inp = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(1, activation=activation, name="unit")
    out = dense(keras.layers.GlobalAveragePooling2D()(inp))
    dense.set_weights([np.array([[4.0], [-3.0], [1.0]], np.float32), np.array([-1.0], np.float32)])
    if flat:
        out = keras.layers.Reshape((), name="flat")(out)
    return keras.Model(inp, out)


def test_a_flattened_linear_unit_read_as_a_probability_is_its_logit() -> None:
    """(N, 1) was fixed; (N,) after a Reshape was still clipped: p = 1.0 or 0.0 for most photos."""
    from agelens.model.wrap import wrap_keras_model

    x = np.random.default_rng(1).uniform(0, 255, (6, SIZE, SIZE, 3)).astype(np.float32)
    z = _flattened(None, flat=False).predict(x / 255.0, verbose=0).reshape(-1)
    flat = wrap_keras_model(_flattened(None, flat=True), one_unit="probability")
    column = wrap_keras_model(_flattened(None, flat=False), one_unit="probability")
    p_flat, p_column = flat.predict(x)["probabilities"], column.predict(x)["probabilities"]
    assert _flattened(None, flat=True).outputs[0].shape == (None,)
    np.testing.assert_allclose(p_flat, p_column, atol=1e-6)
    np.testing.assert_allclose(p_flat[:, 1], 1 / (1 + np.exp(-z)), atol=1e-6)
    assert ((p_flat[:, 1] > 0.01) & (p_flat[:, 1] < 0.99)).any() and not np.isin(p_flat, (0.0, 1.0)).any()

    # a flattened sigmoid is guessed a probability, as its (N, 1) form is, not an age in years
    sig = wrap_keras_model(_flattened("sigmoid", flat=True))
    assert sig.metadata["one_unit"] == "probability" and not sig.groups_from_age
    np.testing.assert_allclose(sig.predict(x)["probabilities"], p_column, atol=1e-6)
