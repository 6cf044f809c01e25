"""``--input-range -1-1 | caffe | torch`` on the command line: a model trained on a
``keras.applications`` ``preprocess_input`` mode outside it is fed that mode by ``predict`` (Keras,
TFLite, and the TFLite copy a later run reads without TensorFlow) and ``explain``, whose manifest
names it; the note on a guessed 0..1 names these choices. Before, the option took 0-255 or 0-1 only."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()
SIZE = 32


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A model-sized photo (no resizing, no face to find), a colour plus noise."""
    rng = np.random.default_rng(5)
    pixels = np.clip(rng.integers(60, 200, (1, 1, 3)) + rng.integers(-40, 41, (SIZE, SIZE, 3)), 0, 255)
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def caffe_model(tmp_path_factory, photo) -> Path:
    """A plain Keras classifier (no preprocessing layer) whose logits spread on caffe inputs."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c2")(h)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
    km = keras.Model(inp, keras.layers.Softmax()(logits))
    rng = np.random.default_rng(2)
    some = np.clip(rng.integers(30, 226, (16, 1, 1, 3)) + rng.integers(-30, 31, (16, SIZE, SIZE, 3)), 0, 255)
    z = keras.Model(inp, logits).predict(_caffe(some), verbose=0)
    dense = km.get_layer("logits")
    kernel, bias = dense.get_weights()
    k = 2.0 / max(float((z - z.mean(0)).std()), 1e-6)
    dense.set_weights([kernel * k, (bias - z.mean(0)) * k])
    path = tmp_path_factory.mktemp("model") / "resnet_like.keras"
    km.save(path)
    return path


def _caffe(x: np.ndarray) -> np.ndarray:
    return keras.applications.resnet50.preprocess_input(np.array(x, np.float32, copy=True))


def _expected(model: Path, photo: Path) -> np.ndarray:
    """The model's probabilities on Keras' own caffe preprocessing of the photo's raw pixels."""
    x = np.asarray(Image.open(photo).convert("RGB"), np.float32)[None]
    return keras.models.load_model(model).predict(_caffe(x), verbose=0)[0]


def _predict_json(photo: Path, model: Path, *extra: str) -> tuple[dict, str]:
    res = runner.invoke(app, ["predict", str(photo), "--model", str(model), "--no-detect", "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def test_predict_feeds_caffe_pixels_on_keras_tflite_and_the_light_copy(
    caffe_model, photo, monkeypatch
) -> None:
    from agelens.model import light

    read_light = []  # the ranges of the TFLite-only models rebuilt from a record (no TensorFlow)
    real = light.light_model

    def spy(*args, **kwargs):
        found = real(*args, **kwargs)
        read_light.append(None if found is None else found.input_range)
        return found

    monkeypatch.setattr(light, "light_model", spy)
    want = _expected(caffe_model, photo)
    for engine in ("keras", "tflite", None):  # None: the second TFLite run, read from its record
        row, said = _predict_json(
            photo, caffe_model, "--input-range", "caffe", *(["--engine", engine] if engine else [])
        )
        got = [row["probabilities"][k] for k in ("young", "middle-aged", "old")]
        np.testing.assert_allclose(got, want, atol=1.5e-4)
        assert "pixels fed as" not in said  # given, not guessed
    if light.litert_installed():  # the third run read the record the second wrote
        assert read_light[-1] == "caffe", read_light
    row, _ = _predict_json(photo, caffe_model, "--engine", "keras", "--input-range", "0-1")
    assert (
        max(abs(row["probabilities"]["young"] - want[0]), abs(row["probabilities"]["old"] - want[2])) > 0.01
    )


def test_a_range_starting_with_a_dash_is_taken_as_the_value(caffe_model, photo) -> None:
    row, _ = _predict_json(photo, caffe_model, "--engine", "keras", "--input-range", "-1-1")
    x = np.asarray(Image.open(photo).convert("RGB"), np.float32)[None]
    want = keras.models.load_model(caffe_model).predict(x / np.float32(127.5) - 1, verbose=0)[0]
    np.testing.assert_allclose(
        [row["probabilities"][k] for k in ("young", "middle-aged", "old")], want, atol=1e-4
    )


def test_explain_manifest_records_the_range_it_fed(caffe_model, photo, tmp_path) -> None:
    out = tmp_path / "out"
    args = ["explain", str(photo), "--model", str(caffe_model), "--input-range", "caffe", "--no-detect",
            "--method", "saliency", "--out", str(out)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_read_as"]["input_range"] == "caffe"
    assert manifest["runs"][0]["settings"]["input_range"] == "caffe"


def test_the_note_on_a_guessed_0_1_names_the_preprocess_input_ranges(caffe_model, photo) -> None:
    _, said = _predict_json(photo, caffe_model, "--engine", "keras")
    (line,) = [ln for ln in said.splitlines() if "pixels fed as" in ln]
    assert line == (
        f"{caffe_model}: pixels fed as 0..1, a guess (no Rescaling or Normalization layer acts on its "
        "input); "
        "give --input-range 0-255 if it was trained on raw 0..255 pixels, or -1-1, caffe or torch for "
        "keras.applications' preprocess_input (-1-1: mobilenet_v2, xception, inception_v3...; "
        "caffe: resnet50, vgg16; torch: densenet)"
    )
    help_text = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output
    assert "-1-1" in help_text and "caffe" in help_text and "torch" in help_text


def test_overruling_a_recorded_caffe_range_is_warned_with_its_name(caffe_model, photo, tmp_path) -> None:
    from agelens.model.io import load_model, save_model

    ours = save_model(load_model(caffe_model, input_range="caffe"), tmp_path / "ours.keras")
    row, said = _predict_json(photo, ours, "--engine", "keras")  # the file says caffe: no option needed
    np.testing.assert_allclose(
        [row["probabilities"][k] for k in ("young", "middle-aged", "old")],
        _expected(caffe_model, photo),
        atol=1e-4,
    )
    assert "pixels fed as" not in said and "overrules" not in said
    _, said = _predict_json(photo, ours, "--engine", "keras", "--input-range", "0-1")
    assert "warning: --input-range 0-1 overrules the model's own record (caffe)" in said
