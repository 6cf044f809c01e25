"""Shared fixtures for the metric tests (the toy builders live in metric_toys.py)."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import tiny_convnet


@pytest.fixture(scope="session")
def squares_model():
    """A tiny convnet trained (8 epochs) to tell a red from a blue square on noise, and 40 held-out images.

    Returns ``(AgeModel, x (40, 32, 32, 3) float 0..255, labels)``; the evidence is the square.
    """
    import keras

    from agelens.model.io import wrap_keras_model

    rng = np.random.default_rng(0)
    n = 232
    x = rng.uniform(0, 100, (n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(2, 24, 2)
        x[i, r : r + 6, c : c + 6, 0 if y[i] else 2] += 150
    km = tiny_convnet()
    km.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    km.fit(x[:192], y[:192], epochs=8, batch_size=32, verbose=0)
    return wrap_keras_model(km, class_names=["blue", "red"]), x[192:], y[192:]
