"""Training batches whose order and augmentation are a function of the seed and the epoch alone.

Why: ``tf.data``'s ``reshuffle_each_iteration`` and Keras' random layers draw each epoch from a
state that advances through the run. A run resumed at epoch ``k`` restarts that state, so it
trained on other batches than the uninterrupted run's epoch ``k`` (epoch 2's training loss 3.22
resumed against 3.70 uninterrupted). Here epoch ``e``'s order is a stateless permutation keyed by
``(seed, e)`` and batch ``i``'s augmentation a stateless draw keyed by ``(seed, e, i)``, so
epoch ``e`` is the same batches however the run got there. The same holds for dropout through
:func:`key_random_layers_to_epoch`.

The images stay in memory once (one tensor); each batch gathers its rows, so nothing but the
batch in flight is copied (a shuffle buffer held up to 20,000 images twice over).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from agelens.data.pipeline import augment_batch

_ORDER_STREAM, _AUGMENT_STREAM = 1, 2  # separate key streams, so order and augmentation never share draws
_STEPS_PER_EPOCH_KEYS = 1 << 20  # a dropout counter range per epoch, far above any run's steps per epoch


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch: the last one may be smaller (no photo is left out of an epoch)."""
    return math.ceil(n / batch_size)


def epoch_keyed_batches(
    images: np.ndarray,
    targets: dict[str, np.ndarray],
    weights: np.ndarray,
    *,
    batch_size: int,
    augment: float,
    seed: int,
    first_epoch: int,
    epochs: int,
) -> tf.data.Dataset:
    """``(images, targets, weights)`` batches for epochs ``first_epoch`` .. ``epochs - 1``, one after
    the other (fit it with ``steps_per_epoch=steps_per_epoch(len(images), batch_size)``).

    ``images`` are uint8 ``(N, H, W, 3)``; batches come out float32 in 0..255, augmented by
    :func:`~agelens.data.pipeline.augment_batch` at strength ``augment`` (0: not at all).
    """
    n = len(images)
    x = tf.convert_to_tensor(images)
    y = {name: tf.convert_to_tensor(value) for name, value in targets.items()}
    w = tf.convert_to_tensor(weights)
    seed = int(seed)

    def batch(epoch: tf.Tensor, step: tf.Tensor, rows: tf.Tensor):
        pixels = tf.cast(tf.gather(x, rows), tf.float32)
        if augment > 0:
            key = tf.random.experimental.stateless_fold_in(_key(seed, _AUGMENT_STREAM), epoch)
            pixels = augment_batch(pixels, augment, tf.random.experimental.stateless_fold_in(key, step))
        return pixels, {name: tf.gather(value, rows) for name, value in y.items()}, tf.gather(w, rows)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.random.experimental.stateless_fold_in(_key(seed, _ORDER_STREAM), epoch)
        order = tf.random.experimental.index_shuffle(tf.range(n, dtype=tf.int64), key, max_index=n - 1)
        rows = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return rows.map(lambda step, r: batch(epoch, step, r))

    epochs_ds = tf.data.Dataset.range(first_epoch, epochs)
    return epochs_ds.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def _key(seed: int, stream: int) -> tf.Tensor:
    return tf.constant([seed, stream], tf.int64)


def key_random_layers_to_epoch(model: keras.Model, epoch: int) -> None:
    """Set every random layer's draw counter (dropout's) to one that depends on ``epoch`` alone.

    Keras' seed generators count their draws through the run, and a checkpoint does not keep the
    count, so a resumed run's dropout masks were not the uninterrupted run's. Each generator keeps
    its own seed (element 0 of its state, set when the model was built from the run's seed).
    """
    for variable in model.non_trainable_variables:
        if variable.path.endswith("seed_generator_state"):
            state = keras.ops.convert_to_numpy(variable.value)
            variable.assign(np.array([state[0], epoch * _STEPS_PER_EPOCH_KEYS], dtype=state.dtype))
