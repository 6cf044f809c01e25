"""Prediction without TensorFlow: a model file's recorded TFLite copy, used only for that very file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from agelens.model import light
from agelens.model.io import load_model, save_model
from agelens.model.wrap import wrap_keras_model

pytestmark = pytest.mark.skipif(not light.litert_installed(), reason="ai-edge-litert is not installed")


def _save(path: Path, seed: int) -> Path:
    """A tiny two-head model whose answers differ between photos (an untrained MobileNetV2's do not)."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255)(x)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(h))
    out = {
        "age_group": keras.layers.Dense(3, activation="softmax", name="age_group")(h),
        "age": keras.layers.Dense(1, name="age")(h),
    }
    return save_model(wrap_keras_model(keras.Model(x, out)), path)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AGELENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def recorded(tmp_path, cache) -> tuple[Path, np.ndarray, dict]:
    """A tiny model file, predicted once through TFLite and recorded; the inputs and outputs."""
    path = _save(tmp_path / "tiny.keras", seed=1)
    model = load_model(path)
    ramp = np.linspace(0, 1, 32)[None, None, :, None] ** np.array([1, 2, 3])  # bright on the right
    x = (np.array([40, 90, 140, 200, 255])[:, None, None, None] * ramp).repeat(32, axis=1).astype(np.uint8)
    out = model.predict(x, fast=True)
    assert light.remember(model, {})
    return path, x, out


def test_a_recorded_file_predicts_the_same_without_keras(recorded) -> None:
    path, x, out = recorded
    m = light.light_model(path)
    assert m is not None and m.keras_model is None
    assert m.class_names == ["young", "middle-aged", "old"] and m.input_size == 32 and m.has_age
    got = m.predict(x, fast=True)
    np.testing.assert_allclose(got["probabilities"], out["probabilities"], atol=1e-6)
    np.testing.assert_allclose(got["age"], out["age"], atol=1e-4)
    assert got["probabilities"].std(axis=0).max() > 1e-3  # answers that differ between photos
    flipped = m.predict(x, fast=True, flip=True)["probabilities"]
    assert not np.allclose(flipped, got["probabilities"], atol=1e-3)  # the mirror view is averaged in
    keras_flipped = load_model(path).predict(x, flip=True)["probabilities"]
    np.testing.assert_allclose(flipped, keras_flipped, atol=1e-4)


def test_another_file_or_other_options_find_no_record(recorded, tmp_path) -> None:
    path, _, _ = recorded
    assert light.light_model(path, {"class_names": "a,b,c"}) is None  # options are part of the key
    assert light.light_model(path, {"input_size": 32}) is None
    moved = Path(shutil.copy(path, tmp_path / "elsewhere.keras"))
    assert light.light_model(moved) is not None  # the same bytes anywhere are the same model
    _save(path, seed=2)  # same name, new weights: the old copy must not answer for them
    assert light.light_model(path) is None


def test_a_damaged_record_or_a_missing_copy_means_loading_as_usual(recorded, cache) -> None:
    path, _, _ = recorded
    (record,) = cache.glob("*.light.json")
    record.write_text("{not json")
    assert light.light_model(path) is None
    record.unlink()
    assert light.light_model(path) is None
    model = load_model(path)
    model.predict(np.zeros((1, 32, 32, 3), np.uint8), fast=True)
    assert light.remember(model, {})
    for copy in cache.glob("*.tflite"):
        copy.unlink()
    assert light.light_model(path) is None


def test_a_model_never_converted_is_not_recorded(tmp_path, cache) -> None:
    model = load_model(_save(tmp_path / "m.keras", seed=1))
    assert not light.remember(model, {})  # no TFLite copy yet: nothing to point at
    assert not list(cache.glob("*.light.json"))


_PROBE = """
import sys
from agelens.cli.main import run
sys.argv = ["agelens", *sys.argv[1:]]
try:
    run()
except SystemExit as e:
    assert not e.code, e.code
print("tensorflow loaded:", "tensorflow" in sys.modules, file=sys.stderr)
"""


def test_the_second_predict_run_never_imports_tensorflow(tmp_path) -> None:
    path = _save(tmp_path / "tiny.keras", seed=1)
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    env = {**os.environ, "AGELENS_CACHE": str(tmp_path / "cache")}
    args = [
        sys.executable,
        "-c",
        _PROBE,
        "predict",
        str(tmp_path),
        "--model",
        str(path),
        "--json",
        "--no-detect",
    ]
    runs = [subprocess.run(args, capture_output=True, text=True, env=env, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert "converting the model to TFLite" in runs[0].stderr
    assert "tensorflow loaded: True" in runs[0].stderr and "tensorflow loaded: False" in runs[1].stderr
    rows = [[json.loads(line) for line in r.stdout.splitlines()] for r in runs]
    assert len(rows[0]) == 3 and rows[0] == rows[1]


def test_a_file_replaced_after_loading_is_not_recorded(tmp_path, cache) -> None:
    """The record must name the bytes that were converted, not whatever the file holds by then."""
    path = _save(tmp_path / "m.keras", seed=1)
    model = light.note_loaded(load_model(path), light.light_key(path, {}))
    model.predict(np.zeros((1, 32, 32, 3), np.uint8), fast=True)
    _save(path, seed=2)  # replaced while the first run was still converting and predicting
    assert not light.remember(model, {})
    assert light.light_model(path) is None
