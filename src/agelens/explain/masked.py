"""Target scores of a photo seen through masks: the forward passes occlusion and RISE are made of.

Why one module: both methods show the model copies of each photo with part of it replaced by a fill
colour, score each copy, and differ only in which masks they draw and how they add the scores up.
The copies are built and scored inside one compiled function, at most ``max_batch`` of them per
pass, so memory stays bounded however many masks there are (Score-CAM's peers build them all at
once), and the scores never leave TensorFlow between passes.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from agelens.explain.base import CLASS_SPEC, Method, as_list, compiled, image_spec, score, split_outputs
from agelens.explain.targets import Target


def check_fill(method: str, fill: str | float) -> None:
    """Refuse a fill other than ``"mean"`` or a grey level in 0..255, naming the method."""
    if not (fill == "mean" or isinstance(fill, int | float) and 0 <= fill <= 255):
        raise ValueError(f"{method} fill must be 'mean' or a grey level in 0..255, got {fill!r}")


def check_max_batch(max_batch: int) -> int:
    """``max_batch`` as an int, refused below 1."""
    if int(max_batch) < 1:
        raise ValueError("max_batch must be at least 1")
    return int(max_batch)


def masked_scores(
    method: Method, cache: dict, x: Any, classes: Any, target: Target, keep: Any, fill: str | float
) -> Any:
    """``(n, M)`` target scores of each photo in ``x`` seen through each of the ``M`` masks in
    ``keep`` (``(M, S, S)``, 1 keeps a pixel, 0 replaces it by ``fill``: the photo's mean colour
    for ``"mean"``, else that grey level); ``cache`` holds the method's compiled steps per target."""
    n = int(x.shape[0])
    colours = tf.reduce_mean(x, axis=(1, 2)) if fill == "mean" else tf.fill((n, 3), float(fill))
    step = method.cached_step(cache, target, lambda t: _compile_step(method, t))
    chunk = max(1, method.max_batch // n)
    passes = [step(x, colours, keep[k : k + chunk], classes) for k in range(0, int(keep.shape[0]), chunk)]
    return tf.concat(passes, axis=1)


def _compile_step(method: Method, target: Target) -> Any:
    model, size = method._fast.output_model(with_age=True), method.size
    has_age, feed = method.view.age is not None, method.view.feed

    @compiled(
        [
            image_spec(size),
            tf.TensorSpec((None, 3), tf.float32),
            tf.TensorSpec((None, size, size), tf.float32),
            CLASS_SPEC,
        ]
    )
    def scores(x: Any, colours: Any, keep: Any, classes: Any) -> Any:
        n, c = tf.shape(x)[0], tf.shape(keep)[0]
        m = keep[None, :, :, :, None]  # (1, c, S, S, 1)
        shown = x[:, None] * m + colours[:, None, None, None, :] * (1.0 - m)
        outs = as_list(model(feed(tf.reshape(shown, (n * c, size, size, 3))), training=False))
        logits, probs, age = split_outputs(outs, has_age)
        return tf.reshape(score(target, logits, probs, age, tf.repeat(classes, c)), (n, c))

    return scores
