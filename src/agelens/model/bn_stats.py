"""Precise BatchNorm: recompute every BatchNorm layer's moving statistics after training.

Why: inference normalises with the moving mean and variance, an exponential average that on a
short run (a few dozen steps) still mostly holds its initial 0 / 1 or statistics of weights long
gone. Such a model can answer the same probabilities for every photo although its features vary
in training mode. Wu & Johnson ("Rethinking 'Batch' in BatchNorm", 2021) call the fix *precise
BN*: with the weights fixed, feed (a sample of) the training photos, unaugmented, through the
network in training mode and store the population statistics of each layer's input; PyTorch's
``torch.optim.swa_utils.update_bn`` does the same for averaged weights.

How: during the passes every BatchNorm's momentum is 0, so after a batch its moving mean and
variance *are* that batch's statistics (Keras computes them as the layer normalises with them);
a compiled step reads them back and pools them per channel (Chan et al.'s merge, in float64) into
the exact mean and variance over all pixels of all images. Each batch normalises the later layers
with its own statistics, exactly as in training: that is what precise BN and ``update_bn``
measure. A layer-by-layer pass, with the layers before at their new population statistics as in
inference, would cost one pass per layer; the two agree when one batch holds every photo, and
differ by as much as batch statistics differ from population ones.

Variance convention: the pooled *biased* variance over every pixel seen, i.e. E[var_B] +
Var[mean_B] weighted by batch size (Wu & Johnson's population variance). Keras' own moving
variance averages biased batch variances; ``update_bn`` averages PyTorch's unbiased batch
variances with equal weight per batch and leaves out the spread of the batch means. With B x H x W
pixels per channel in a batch the n / (n - 1) factor is negligible; the left-out spread is not
where the feature map is 1 x 1 (late layers at 32 px input).

Training mode also switches on Dropout and any augmentation layers *inside* the model, as in
``update_bn``; agelens models augment in their input pipeline and drop out after the last
BatchNorm, so neither touches the statistics. BatchNorm layers with ``trainable=False`` ignore
training mode in Keras and keep their statistics; they are listed as skipped.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf


@dataclass
class BNRecalibration:
    """What :func:`recalibrate_batchnorm` did, and the statistics it replaced (for :meth:`revert`)."""

    layers: list[str]
    skipped: list[str]
    n_images: int
    batch_size: int
    n_batches: int
    seconds: float
    _previous: list[tuple[keras.layers.BatchNormalization, np.ndarray, np.ndarray]] = field(
        default_factory=list, repr=False
    )

    def revert(self) -> None:
        """Put the moving statistics back as they were before recalibration.

        Why: the caller decides on held-out data whether to keep the new statistics (a run
        whose moving averages were already good can lose a little), and must be able to undo.
        """
        _assign(self._previous)

    def to_dict(self) -> dict:
        return {
            "layers": len(self.layers),
            "skipped": list(self.skipped),
            "n_images": self.n_images,
            "batch_size": self.batch_size,
            "n_batches": self.n_batches,
            "seconds": round(self.seconds, 3),
        }


def batchnorm_layers(keras_model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of a model, nested models included, each once, in order."""
    found: list = []
    seen: set[int] = set()

    def walk(layer) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        for sub in getattr(layer, "layers", None) or []:
            walk(sub)

    walk(keras_model)
    return found


def _assign(stats: list[tuple[keras.layers.BatchNormalization, np.ndarray, np.ndarray]]) -> None:
    for bn, mean, var in stats:
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(var)


def _batches(n: int, batch_size: int, max_images: int | None, seed: int) -> list[np.ndarray]:
    """A seeded shuffled sample of indices, split into near-equal batches.

    Shuffled: a folder sorted by class would give batches of one class, whose batch
    statistics normalise the later layers unlike any training batch did. Near-equal: a last
    batch of one or two photos would be normalised by its own near-zero variance.
    """
    order = np.random.default_rng(seed).permutation(n)
    if max_images is not None:
        order = order[:max_images]
    k = max(1, -(-len(order) // batch_size))
    return [np.sort(b) for b in np.array_split(order, k)]


def _check_images(keras_model: keras.Model, images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"recalibrate_batchnorm: need a batch of images, got an array of shape {x.shape}")
    inputs = getattr(keras_model, "inputs", None) or []
    if len(inputs) > 1:
        raise ValueError(
            f"recalibrate_batchnorm: {keras_model.name} has {len(inputs)} inputs; only one is supported"
        )
    if inputs:
        want = tuple(inputs[0].shape[1:])
        if len(want) != x.ndim - 1 or any(
            w is not None and w != g for w, g in zip(want, x.shape[1:], strict=True)
        ):
            raise ValueError(
                f"recalibrate_batchnorm: images of shape {x.shape[1:]} do not fit "
                f"{keras_model.name}'s input {want}"
            )
    return x


def recalibrate_batchnorm(
    keras_model: keras.Model,
    images: np.ndarray,
    batch_size: int = 64,
    max_images: int | None = 4000,
    seed: int = 0,
) -> BNRecalibration:
    """Set every trainable BatchNorm's moving mean and variance to its input's population statistics.

    ``images`` are what the model takes (agelens models: uint8 or float RGB in 0..255), clean
    training photos without augmentation; at most ``max_images`` of them (a seeded random
    sample; None: all) go through in batches of about ``batch_size``, the batch size the model
    trained with being the natural choice, since later layers are normalised by batch
    statistics as in training. Weights, momentum and everything else stay as they were; on any
    error the old statistics and momenta are put back. Returns what was done, with
    :meth:`BNRecalibration.revert` to undo it.
    """
    if batch_size < 1:
        raise ValueError(f"recalibrate_batchnorm: batch_size must be at least 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"recalibrate_batchnorm: max_images must be at least 1 or None, got {max_images}")
    t0 = time.perf_counter()
    x = _check_images(keras_model, images)
    all_bns = batchnorm_layers(keras_model)
    bns = [bn for bn in all_bns if bn.trainable and not getattr(bn, "renorm", False)]
    skipped = [bn.name for bn in all_bns if bn not in bns]
    previous = [(bn, bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()) for bn in all_bns]
    batches = _batches(len(x), batch_size, max_images, seed)
    result = BNRecalibration(
        [bn.name for bn in bns],
        skipped,
        int(sum(len(b) for b in batches)),
        batch_size,
        len(batches),
        0.0,
        previous,
    )
    if not bns:
        result.seconds = time.perf_counter() - t0
        return result
    momenta = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0  # read when the step is traced below: moving stats := batch stats
        _pool_statistics(keras_model, bns, x, batches)
    except BaseException:
        _assign(previous)
        raise
    finally:
        for bn, m in zip(bns, momenta, strict=True):
            bn.momentum = m
    result.seconds = time.perf_counter() - t0
    return result


def _pool_statistics(
    keras_model: keras.Model,
    bns: list[keras.layers.BatchNormalization],
    x: np.ndarray,
    batches: list[np.ndarray],
) -> None:
    """Run the batches in training mode and store each layer's pooled mean and biased variance."""
    count = tf.Variable(tf.zeros((), tf.float64), trainable=False)
    means = [tf.Variable(tf.zeros(bn.moving_mean.shape, tf.float64), trainable=False) for bn in bns]
    m2s = [tf.Variable(tf.zeros(bn.moving_mean.shape, tf.float64), trainable=False) for bn in bns]
    in_dtype = (
        getattr(keras_model.inputs[0], "dtype", "float32")
        if getattr(keras_model, "inputs", None)
        else "float32"
    )
    for bn in bns:  # a NaN or inf left in them would survive the momentum-0 update (0 * nan)
        bn.moving_mean.assign(np.zeros(bn.moving_mean.shape, np.float32))
        bn.moving_variance.assign(np.ones(bn.moving_variance.shape, np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype))])
    def step(batch: tf.Tensor) -> None:
        keras_model(tf.cast(batch, in_dtype), training=True)
        # Every pixel of every image counts once; all images have the same size, so image
        # counts weight the batches exactly as pixel counts would.
        n_b = tf.cast(tf.shape(batch)[0], tf.float64)
        n_a = count.read_value()
        n = n_a + n_b
        for bn, mean, m2 in zip(bns, means, m2s, strict=True):
            mean_b = tf.cast(tf.convert_to_tensor(bn.moving_mean), tf.float64)
            var_b = tf.cast(tf.convert_to_tensor(bn.moving_variance), tf.float64)
            delta = mean_b - mean
            mean.assign_add(delta * n_b / n)
            m2.assign_add(var_b * n_b + tf.square(delta) * n_a * n_b / n)
        count.assign(n)

    with warnings.catch_warnings():  # a model built on [input] warns when called on a tensor
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        for idx in batches:
            step(x[idx])
    total = count.numpy()
    for bn, mean, m2 in zip(bns, means, m2s, strict=True):
        bn.moving_mean.assign(mean.numpy().astype(np.float32))
        bn.moving_variance.assign((m2.numpy() / total).astype(np.float32))
