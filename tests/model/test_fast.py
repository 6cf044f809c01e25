"""The TFLite engine gives Keras' answers, caches its conversion, and falls back when it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.model import fast
from agelens.model.builder import ModelConfig, build_age_model
from agelens.model.io import load_model, save_model
from agelens.model.wrap import wrap_keras_model


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=3)
    return save_model(wrap_keras_model(km), tmp_path_factory.mktemp("fast") / "tiny.keras")


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    """One conversion cache for this module: the model is converted once, by whichever test is first."""
    path = tmp_path_factory.getbasetemp() / "fast-cache"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("AGELENS_CACHE", str(path))
    return path


def test_tflite_matches_keras_on_probabilities_and_ages(tiny_file, cache) -> None:
    model = load_model(tiny_file)
    x = np.random.default_rng(0).integers(0, 256, (70, 32, 32, 3)).astype(np.uint8)
    assert fast.fast_predictor(model) is not None, "TensorFlow Lite should be available in TF 2.21"
    for flip in (False, True):  # the mirror view is a non-contiguous array
        ref = model.predict(x, flip=flip)
        got = model.predict(x, flip=flip, fast=True, batch_size=16)  # 70 = 4 full batches + 6
        np.testing.assert_allclose(got["probabilities"], ref["probabilities"], atol=1e-4)
        np.testing.assert_allclose(got["age"], ref["age"], atol=1e-2)
        assert got["age"].shape == (70,)


def test_conversion_is_cached_per_model_file(tiny_file, cache, monkeypatch) -> None:
    assert fast.fast_predictor(load_model(tiny_file)) is not None  # converts, unless the test above did
    assert len(list(cache.glob("*.tflite"))) == 1

    def no_conversion(_model):
        raise AssertionError("converted again instead of reading the cache")

    monkeypatch.setattr(fast, "_convert", no_conversion)
    assert fast.fast_predictor(load_model(tiny_file)) is not None


def test_without_tflite_fast_falls_back_to_keras(tiny_file, monkeypatch) -> None:
    monkeypatch.setattr(fast, "_interpreter_class", lambda: None)
    model = load_model(tiny_file)
    x = np.zeros((3, 32, 32, 3), np.uint8)
    assert fast.fast_predictor(model) is None
    np.testing.assert_array_equal(
        model.predict(x, fast=True)["probabilities"], model.predict(x)["probabilities"]
    )
