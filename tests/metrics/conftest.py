"""Shared fixtures for the metric tests (the toy builders live in metric_toys.py)."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import tiny_convnet


def _squares(n: int = 232) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, (n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(2, 24, 2)
        x[i, r : r + 6, c : c + 6, 0 if y[i] else 2] += 150
    return x, y


def _fit_squares(labels: np.ndarray, x: np.ndarray, seed: int = 0):
    import keras

    from agelens.model.wrap import wrap_keras_model

    km = tiny_convnet(seed=seed)
    km.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    km.fit(x[:192], labels[:192], epochs=8, batch_size=32, verbose=0)
    return wrap_keras_model(km, class_names=["blue", "red"])


@pytest.fixture(scope="session")
def squares_model():
    """A tiny convnet trained (8 epochs) to tell a red from a blue square on noise, and 40 held-out images.

    Returns ``(AgeModel, x (40, 32, 32, 3) float 0..255, labels)``; the evidence is the square.
    """
    x, y = _squares()
    return _fit_squares(y, x), x[192:], y[192:]


@pytest.fixture(scope="session")
def shuffled_squares_model():
    """The same network and recipe as ``squares_model`` trained on permuted labels from another initial
    seed: it cannot have learned that the square's colour is the class (the data-randomisation control).

    Why another seed: from ``squares_model``'s own initial weights its Grad-CAM maps kept a 0.64
    Spearman with the real model's (the toy cannot memorise the labels, so it stays near its
    start), against 0.33 from seed 1.
    """
    x, y = _squares()
    return _fit_squares(np.random.default_rng(5).permutation(y), x, seed=1)


@pytest.fixture(scope="session")
def reseeded_squares_model():
    """``squares_model`` retrained on the real labels from the shuffled model's seed: the reference
    for how alike maps of two models that learned the same thing are."""
    x, y = _squares()
    return _fit_squares(y, x, seed=1)
