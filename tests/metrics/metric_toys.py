"""Toy models, maps and explainers for the metric tests (numpy where possible: fast, exact, TF-free)."""

from __future__ import annotations

import numpy as np

SIZE = 32


def checker_images(n: int = 4, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Grey images (with a little noise) whose top-left quadrant is a 0/255 pixel checkerboard."""
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size, 3), 128.0, np.float32) + rng.normal(0, 4, (n, size, size, 1)).astype(
        np.float32
    )
    h = size // 2
    sign = _checker_sign(h)
    x[:, :h, :h, :] = np.where(sign > 0, 255.0, 0.0)[None, :, :, None]
    return np.clip(x, 0, 255)


def _checker_sign(h: int) -> np.ndarray:
    r, c = np.mgrid[:h, :h]
    return np.where((r + c) % 2 == 0, 1.0, -1.0)


def quadrant_model(calls: list[int] | None = None):
    """A 2-class "model" whose class-1 probability depends only on the top-left quadrant's checker pattern.

    ``s`` is the correlation of the quadrant with the checkerboard (1 for the intact pattern,
    0 for black, grey or blurred); p(class 1) = sigmoid(8 (s - 0.5)). ``calls`` records batch sizes.
    """

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if calls is not None:
            calls.append(len(x))
        h = x.shape[1] // 2
        q = x[:, :h, :h, :].mean(-1)
        s = ((q - 127.5) * _checker_sign(h)).mean(axis=(1, 2)) / 127.5
        p = 1 / (1 + np.exp(-8 * (s - 0.5)))
        return np.stack([1 - p, p], axis=1)

    return predict


def quadrant_maps(n: int, where: str = "tl", size: int = SIZE) -> np.ndarray:
    """1 on one quadrant (tl, tr, bl, br), 0 elsewhere."""
    h = size // 2
    m = np.zeros((n, size, size), np.float32)
    rows = slice(0, h) if where[0] == "t" else slice(h, size)
    cols = slice(0, h) if where[1] == "l" else slice(h, size)
    m[:, rows, cols] = 1.0
    return m


def sobel_model_explainer(model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A deliberately model-blind "method": edge magnitude of the input (ignores model and targets)."""
    from scipy.ndimage import sobel

    g = np.asarray(x, dtype=np.float64).mean(-1)
    mag = np.hypot(sobel(g, axis=1), sobel(g, axis=2))
    peak = mag.max(axis=(1, 2), keepdims=True)
    return (mag / np.where(peak > 0, peak, 1)).astype(np.float32)


def toy_backbone(size: int = SIZE, seed: int = 0, pool: str = "avg"):
    """``(input, pooled features)``: rescale -> conv -> pool -> conv ("last_conv") -> global pool."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    x = (keras.layers.GlobalMaxPooling2D() if pool == "max" else keras.layers.GlobalAveragePooling2D())(x)
    return inp, x


def tiny_convnet(size: int = SIZE, seed: int = 0, classes: int = 2, pool: str = "avg"):
    """Rescale -> conv -> pool -> conv ("last_conv") -> global avg/max pool -> Dense logits -> softmax.

    ``pool="max"`` lets the net notice a few-pixel detail (a corner stamp) that averaging would drown.
    """
    import keras

    inp, x = toy_backbone(size, seed, pool)
    logits = keras.layers.Dense(classes, name="logits")(x)
    out = keras.layers.Activation("softmax", name="probs")(logits)
    return keras.Model(inp, out)


def gradcam(model, x: np.ndarray, targets: np.ndarray, layer: str = "last_conv") -> np.ndarray:
    """Stand-in Grad-CAM (pre-softmax logits) until ``agelens.explain`` lands; model may be an AgeModel."""
    import keras
    import tensorflow as tf

    km = getattr(model, "keras_model", model)
    sub = keras.Model(km.inputs, [km.get_layer(layer).output, km.get_layer("logits").output])
    xt = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        conv, logits = sub(xt, training=False)
        score = tf.gather(logits, tf.convert_to_tensor(np.asarray(targets)), batch_dims=1)
    grads = tape.gradient(score, conv)
    w = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(w * conv, axis=-1))[..., None]
    cam = tf.image.resize(cam, x.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.max(axis=(1, 2), keepdims=True)
    return (cam / np.where(peak > 0, peak, 1)).astype(np.float32)


def two_headed_convnet(size: int = 32, seed: int = 0):
    """Conv backbone -> pool -> a class head (``age_group_logits`` -> softmax) and an age head
    (``age_logits`` -> softmax -> frozen expected-age Dense), named as the shipped model's."""
    import keras

    inp, x = toy_backbone(size, seed)
    group = keras.layers.Activation("softmax", name="age_group")(
        keras.layers.Dense(3, name="age_group_logits")(x)
    )
    dist = keras.layers.Activation("softmax")(keras.layers.Dense(8, name="age_logits")(x))
    expected = keras.layers.Dense(1, use_bias=False, trainable=False, name="age")
    age = expected(dist)
    expected.set_weights([np.arange(8, dtype="float32")[:, None] * 10])
    return keras.Model(inp, {"age_group": group, "age": age})
