"""Tiny Keras models the CLI and report tests share (built in seconds, saved where a test asks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def constant_regressor(path: Path, age: float, size: int = 32, rescaling: bool = False) -> Path:
    """A plain Keras age regressor answering ``age`` years for every photo (a bias, no weight),
    saved to ``path``; ``rescaling`` puts a ``Rescaling(1/255)`` on its input."""
    import keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inp) if rescaling else inp
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(x))
    dense = keras.layers.Dense(1, name="years")
    km = keras.Model(inp, dense(h))
    dense.set_weights([np.zeros((2, 1), np.float32), np.array([age], np.float32)])
    km.save(path)
    return path
