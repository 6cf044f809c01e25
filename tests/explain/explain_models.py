"""Small hand-built models with known answers for the explain tests (no training needed)."""

from __future__ import annotations

import keras
import numpy as np

QUAD = 32  # input size of the quadrant model


def quadrant_model() -> keras.Model:
    """Class 1 ("bright") iff the *top-left* quadrant is bright; nothing else matters.

    rescale -> conv1 (ch0: mean brightness - 0.5, ch1: 0.5 - mean, 3x3) -> relu1 -> 2x2 max
    pool -> conv2 (identity 3x3 centre tap) -> relu2 (16x16x2) -> flatten -> dense logits
    reading channel 0 over the top-left 8x8 cells only -> softmax.
    """
    inp = keras.Input((QUAD, QUAD, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inp)
    conv1 = keras.layers.Conv2D(2, 3, padding="same", name="conv1")
    x = keras.layers.ReLU(name="relu1")(conv1(x))
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    conv2 = keras.layers.Conv2D(2, 3, padding="same", name="conv2")
    x = keras.layers.ReLU(name="relu2")(conv2(x))
    x = keras.layers.Flatten(name="flat")(x)
    dense = keras.layers.Dense(2, name="logits")
    out = keras.layers.Activation("softmax", name="probs")(dense(x))
    model = keras.Model(inp, out, name="quadrant")

    k1 = np.full((3, 3, 3, 2), 1.0 / 27, np.float32)
    k1[..., 1] *= -1
    conv1.set_weights([k1, np.array([-0.5, 0.5], np.float32)])
    k2 = np.zeros((3, 3, 2, 2), np.float32)
    k2[1, 1, 0, 0] = k2[1, 1, 1, 1] = 1.0
    conv2.set_weights([k2, np.zeros(2, np.float32)])
    w = np.zeros((16, 16, 2), np.float32)
    w[:8, :8, 0] = 50.0 / 64  # 50 x mean activation of channel 0 over the top-left quadrant
    kernel = np.stack([-w.reshape(-1), w.reshape(-1)], axis=1)
    dense.set_weights([kernel, np.array([10.0, -10.0], np.float32)])
    return model


def quadrant_images(n: int, seed: int = 0, also_bottom_right: bool = False) -> np.ndarray:
    """Mid-grey noise with a bright top-left quadrant (and optionally a bright bottom-right one)."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(128, 25, (n, QUAD, QUAD, 3)), 0, 255)
    h = QUAD // 2
    x[:, :h, :h] = rng.uniform(215, 245, (n, h, h, 3))
    if also_bottom_right:
        x[:, h:, h:] = rng.uniform(215, 245, (n, h, h, 3))
    return x.astype(np.float32)


def relu6_model(fused: bool = False) -> keras.Model:
    """``logits = +-sum(relu6(R))``: left half of the 4x4 grid votes for class 0, right half against.

    The pre-activation equals the red channel (Rescaling(1) keeps pixel values), so a test
    can put it below 0, inside (0, 6) and at or above 6. ``fused=True`` builds a plain ReLU
    fused into the conv layer instead, to exercise the rebuilt-linear-copy path.
    """
    inp = keras.Input((4, 4, 3), name="image")
    x = keras.layers.Rescaling(1.0, name="rescale")(inp)
    conv = keras.layers.Conv2D(1, 1, name="pre", activation="relu" if fused else None)
    x = conv(x)
    if not fused:
        x = keras.layers.ReLU(6.0, name="relu6")(x)
    x = keras.layers.Flatten(name="flat")(x)
    dense = keras.layers.Dense(2, name="logits")
    out = keras.layers.Activation("softmax", name="probs")(dense(x))
    model = keras.Model(inp, out, name="relu6_model")
    conv.set_weights([np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.zeros(1, np.float32)])
    side = np.where(np.arange(16) % 4 < 2, 1.0, -1.0).astype(np.float32)
    dense.set_weights([np.stack([side, -side], axis=1), np.zeros(2, np.float32)])
    return model


def small_convnet(seed: int = 0, size: int = 24, softmax_in_dense: bool = True) -> keras.Model:
    """A random 3-conv network with BN and ReLU6 (reference-computation tests)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1, name="rescale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(6.0, name="r1")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ReLU(6.0, name="r2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="c3", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if softmax_in_dense:
        out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    else:
        x = keras.layers.Dense(3, name="head_logits")(x)
        out = keras.layers.Activation("softmax", name="head")(x)
    model = keras.Model(inp, out, name="small")
    bn = model.get_layer("bn1")
    rng = np.random.default_rng(seed)
    bn.set_weights(
        [rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.1, 8), rng.normal(0, 0.1, 8), rng.uniform(0.5, 2, 8)]
    )
    return model
