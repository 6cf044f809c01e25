"""``tf.data`` input pipeline: records -> decoded, cached, augmented batches of raw RGB.

Design (and why):

- Decoding runs :func:`agelens.data.images.load_image` + :func:`resize_for_model` inside
  ``tf.numpy_function``, so training sees exactly the pixels every other part of agelens
  sees (EXIF, CMYK, 16-bit, alpha rules included). Native ``tf.io.decode_jpeg`` +
  ``tf.image.resize`` is not pixel-identical (no EXIF or CMYK handling, another IDCT and
  resampler: 0 of 2,000 utkface-200 images came out identical at 128 px, mean difference
  0.9 levels, max 5) and was not faster on 2 CPUs (1,570 img/s in ``tf.data`` against
  1,820 img/s for ``load_image`` + ``resize_for_model`` in one Python thread). Decoding is
  paid once anyway: the decoded uint8 images are cached in memory, so from the second
  epoch on only augmentation runs (see ``benchmarks/pipeline_speed.py``).
- The cache sits *before* the shuffle, so it holds each image once and every epoch is
  reshuffled (a shuffle before a cache would freeze the first epoch's order). The shuffle
  buffer spans the whole dataset because records are sorted by path, which for UTKFace
  means sorted by age: a smaller buffer would give single-age batches.
- Augmentation runs on whole batches in graph mode with stateless random ops whose seeds
  come from ``Dataset.random(seed)``: the same ``seed`` gives the same batches on every run,
  and every epoch gets fresh augmentation. One projective transform does flip, shift,
  rotation and zoom together, so pixels are interpolated once.
- Images stay float32 in 0..255: models rescale internally, so nothing normalises here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from agelens.data.images import load_image, resize_for_model
from agelens.data.sources import Dataset, Record

AUTOTUNE = tf.data.AUTOTUNE

# Augmentation ranges at strength 1 (the shipped training recipe's ranges).
MAX_ROTATION = 0.04 * 2 * math.pi  # radians (+-14.4 degrees)
MAX_SHIFT = 0.06  # fraction of the image side
MAX_ZOOM = 0.12  # +-12 % scale
MAX_BRIGHTNESS = 0.15 * 255.0  # additive, in pixel units
MAX_CONTRAST = 0.2  # factor 1 +- 0.2 around each image's per-channel mean
FLIP_PROBABILITY = 0.5


def make_tf_dataset(
    data: Dataset | Sequence[Record],
    size: int,
    batch_size: int = 64,
    augment: float = 0.0,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = True,
    with_ages: bool = False,
    num_classes: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(images, labels)`` from a :class:`Dataset` or a list of :class:`Record`.

    ``images`` is float32 ``(B, size, size, 3)`` RGB in 0..255, ``labels`` int32 ``(B,)``.
    With ``with_ages`` the targets are ``{"age_group": one-hot float32 (B, C), "age": float32
    (B, 1)}``, matching the model's output names and shapes; every record needs an age, and
    ``C`` is ``len(data.class_names)`` or ``num_classes`` for a plain record list.
    ``augment`` in 0..1 scales every augmentation range (0 = none, the images are exactly
    ``resize_for_model(load_image(path), size)``); flips happen with probability ``0.5 * augment``.
    An unreadable file stops iteration with its :class:`ImageError` message: pass a dataset
    loaded with ``check_images=True`` to rule that out.
    """
    records = list(data.records if isinstance(data, Dataset) else data)
    if not records:
        raise ValueError("make_tf_dataset() needs at least one record")
    if not 0.0 <= augment <= 1.0:
        raise ValueError(f"augment is a strength in 0..1, got {augment}")
    if size <= 0 or batch_size <= 0:
        raise ValueError(f"size and batch_size must be positive, got {size} and {batch_size}")
    paths = np.array([os.fsencode(str(r.path)) for r in records], dtype=object)
    labels = np.array([r.label for r in records], dtype=np.int32)
    columns: tuple[np.ndarray, ...] = (paths, labels)
    if with_ages:
        if any(r.age is None for r in records):
            raise ValueError("with_ages=True needs an age for every record (this source has labels only)")
        if num_classes is None:
            if not isinstance(data, Dataset):
                raise ValueError("with_ages=True on a record list needs num_classes")
            num_classes = len(data.class_names)
        columns += (np.array([r.age for r in records], dtype=np.float32),)

    def decode(path: bytes) -> np.ndarray:
        return resize_for_model(load_image(os.fsdecode(path)), size)

    def decode_element(path: tf.Tensor, *rest: tf.Tensor) -> tuple[tf.Tensor, ...]:
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((size, size, 3))
        return (image, *rest)

    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(decode_element, num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE, deterministic=True)

    if augment > 0:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, s: (augment_batch(tf.cast(batch[0], tf.float32), augment, s), *batch[1:]),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        ds = ds.map(lambda image, *rest: (tf.cast(image, tf.float32), *rest), num_parallel_calls=AUTOTUNE)

    if with_ages:
        depth = int(num_classes)  # type: ignore[arg-type]
        ds = ds.map(
            lambda image, label, age: (
                image,
                {"age_group": tf.one_hot(label, depth, dtype=tf.float32), "age": age[:, None]},
            )
        )
    return ds.prefetch(AUTOTUNE)


def augment_batch(images: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """Randomly flip, shift, rotate, zoom and change brightness/contrast of a float batch.

    ``images`` is ``(B, H, W, 3)`` float32 in 0..255; ``seed`` a shape ``[2]`` integer
    tensor (stateless randomness: same seed, same output). Returns the same shape, 0..255.
    """
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    keys = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=6)

    def uniform(key: tf.Tensor, limit: float) -> tf.Tensor:
        return tf.random.stateless_uniform([n], key, minval=-limit, maxval=limit)

    flip = tf.random.stateless_uniform([n], keys[0]) < FLIP_PROBABILITY * strength
    angle = uniform(keys[1], MAX_ROTATION * strength)
    zoom = 1.0 + uniform(keys[2], MAX_ZOOM * strength)
    shift = tf.random.stateless_uniform([n, 2], keys[3], -MAX_SHIFT * strength, MAX_SHIFT * strength)
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    tx, ty = shift[:, 0] * wf, shift[:, 1] * hf

    # Output pixel o samples input i = c + R(angle) F (o - c) / zoom - t, with c the centre
    # and F the optional horizontal mirror. ImageProjectiveTransformV3 wants that map as
    # [a0, a1, a2, b0, b1, b2, 0, 0] with i_x = a0 x + a1 y + a2, i_y = b0 x + b1 y + b2.
    cx, cy = (wf - 1.0) / 2.0, (hf - 1.0) / 2.0
    mirror = tf.where(flip, -1.0, 1.0)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos * mirror, -sin
    b0, b1 = sin * mirror, cos
    a2 = cx - a0 * cx - a1 * cy - tx
    b2 = cy - b0 * cx - b1 * cy - ty
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.stack([h, w]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )

    brightness = uniform(keys[4], MAX_BRIGHTNESS * strength)[:, None, None, None]
    contrast = (1.0 + uniform(keys[5], MAX_CONTRAST * strength))[:, None, None, None]
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    # (x - mean) * contrast + mean + brightness, as one multiply-add over the big tensor
    images = images * contrast + (mean * (1.0 - contrast) + brightness)
    return tf.clip_by_value(images, 0.0, 255.0)
