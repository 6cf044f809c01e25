"""Gradient-free CAMs: weight each channel by what the model does when the input (Score-CAM)
or the channel itself (Ablation-CAM) is perturbed.

Both need one extra forward pass per (image, channel). The perturbed batches are built and
scored chunk by chunk inside a compiled function, at most ``max_batch`` perturbed rows at a
time, so memory stays bounded however many channels a layer has (tf-keras-vis builds every
masked image at once; with 1280 channels that is gigabytes). Rows never leave TensorFlow
between chunks.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from agelens.explain.base import (
    CLASS_SPEC,
    as_list,
    compiled,
    image_spec,
    normalize_maps,
    resolve_classes,
    score,
    split_outputs,
)
from agelens.explain.cam import CAM
from agelens.explain.masked import check_max_batch
from agelens.explain.targets import ClassTarget, Target, trace_key
from agelens.user_warnings import caller_stacklevel


class _Perturbation(CAM):
    uses_gradients = False

    def __init__(self, model: Any, layer: Any = None, *, max_batch: int = 64, **kwargs: Any) -> None:
        super().__init__(model, layer, **kwargs)
        self.max_batch = check_max_batch(max_batch)
        self._features: Any = None
        self._chunks: dict = {}

    def _forward_features(self, x: Any) -> tuple[list[Any], Any, Any, Any]:
        if self._features is None:
            sub, n, has_age, feed = (
                self._sub,
                len(self.layers),
                self.view.age is not None,
                self.view.feed,
            )

            @compiled([image_spec(self.size)])
            def features(x: Any) -> Any:
                outs = as_list(sub(feed(x), training=False))
                return (outs[:n], *split_outputs(outs, has_age))

            self._features = features
        feats, logits, probs, age = self._features(x)
        return list(feats), logits, probs, age


WEAK_TARGET = (
    "scorecam: a target other than a class (the age, a contrast) is weighted by its own value on each "
    "masked image, without the softmax that makes classes compete: an age weighs every channel about "
    "the same, so the map follows the activations more than the target, and a contrast that is negative "
    "on every masked image (old-young on a young face) gives a blank map; compare with gradcam, "
    "hirescam or occlusion"
)
"""Measured on 4 photos at the default layer: Score-CAM(age) correlated 0.990-0.9997 with the
plain sum of the same channels, and 0.977-0.999 with Score-CAM of the predicted class. On 6
photos aged 8-80, old-young maps were blank for 5 (young-old for none).

The paper's baseline, ``f(X o H_k) - f(X_b)`` with a black ``X_b``, was tried for these targets and
dropped (2026-11-29): the shipped model reads a black image as 36 years, so every age map of a face
predicted younger was blank (30 of 30 held-out photos aged 1-23), and on 100 held-out photos its age
maps scored worse than random maps as smooth on deletion (+25.0 years [+21.2, +28.9]) where the raw
value's are not told apart from them (+1.0 [-0.4, +2.5]; at commit 9684098, `agelens score
../shared/data/utkface-200 --n 100 --methods scorecam --metrics deletion,insertion --target age
--holdout benchmarks/results/shipped_split.json`, 265 s; the raw value's from score_utk100_age.md)."""


class ScoreCAM(_Perturbation):
    """Score-CAM (Wang et al. 2020): channel weight = target score of the input masked by that channel.

    ``max_channels`` keeps each image's channels with the highest spatial standard deviation
    (Faster Score-CAM; ``None`` uses all). Class targets are scored by their softmax
    probability, as in the paper and tf-keras-vis (pytorch-grad-cam takes a softmax of the
    raw scores across channels instead); other targets (the age, a
    logit contrast, a callable) by their own value, with a warning (:data:`WEAK_TARGET` says why,
    and why not the paper's black-image baseline).
    ``max_batch`` bounds the masked images per forward pass (``max_batch * S*S*3*4`` bytes
    of input, plus the network's activations for that many images).
    """

    name = "scorecam"

    def __init__(
        self, model: Any, layer: Any = None, *, max_channels: int | None = 64, **kwargs: Any
    ) -> None:
        super().__init__(model, layer, **kwargs)
        self.max_channels = max_channels

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        feats, logits, probs, age = self._forward_features(x)
        classes = resolve_classes(classes, logits)
        t = target.on_probs() if isinstance(target, ClassTarget) else target
        if not isinstance(target, ClassTarget):
            warnings.warn(WEAK_TARGET, stacklevel=caller_stacklevel())
        step = self.cached_step(self._chunks, t, self._compile_chunk)
        maps = [self._layer(step, x, a, classes) for a in feats]
        return self.finish(maps), probs, age

    def _layer(self, step: Any, x: Any, acts: Any, classes: Any) -> Any:
        k = int(acts.shape[-1])
        if self.max_channels and self.max_channels < k:
            _, idx = tf.math.top_k(tf.math.reduce_std(acts, axis=(1, 2)), self.max_channels)
            acts = tf.gather(acts, idx, axis=-1, batch_dims=1)
            k = self.max_channels
        chunk = max(1, self.max_batch // int(x.shape[0]))
        weights = [step(x, acts[..., c : c + chunk], classes) for c in range(0, k, chunk)]
        return ops.sum(acts * ops.concatenate(weights, axis=1)[:, None, None, :], axis=-1)

    def _compile_chunk(self, target: Target) -> Any:
        model, size = self._fast.output_model(with_age=True), self.size
        has_age, feed = self.view.age is not None, self.view.feed

        @compiled([image_spec(size), tf.TensorSpec((None, None, None, None), tf.float32), CLASS_SPEC])
        def chunk_scores(x: Any, acts: Any, classes: Any) -> Any:
            n, h, w, c = tf.unstack(tf.shape(acts))
            masks = tf.reshape(tf.transpose(acts, (0, 3, 1, 2)), (n * c, h, w))
            masks = normalize_maps(tf.image.resize(masks[..., None], (size, size))[..., 0])
            masked = x[:, None] * tf.reshape(masks, (n, c, size, size, 1))
            outs = as_list(model(feed(tf.reshape(masked, (n * c, size, size, 3))), training=False))
            logits, probs, age = split_outputs(outs, has_age)
            s = score(target, logits, probs, age, tf.repeat(classes, c))
            return tf.reshape(s, (n, c))

        return chunk_scores


class AblationCAM(_Perturbation):
    """Ablation-CAM (Desai & Ramaswamy 2020): channel weight = drop in the score when it is zeroed.

    Only the part of the network *after* the layer is re-run (plus any skip connections
    that cross it), so at the last conv layer this is nearly as cheap as Grad-CAM. Each
    pass holds at most ``max_batch`` ablated rows and ``memory_mb`` of ablated activations
    (the head's own activations for those rows come on top, usually of the same order). The
    weight is the plain drop ``y - y_k``: the paper divides by ``y``, which only rescales
    each image's map and flips it when the logit is negative.
    """

    name = "ablationcam"

    def __init__(
        self, model: Any, layer: Any = None, *, max_batch: int = 4096, memory_mb: float = 128, **kwargs: Any
    ) -> None:
        super().__init__(model, layer, max_batch=max_batch, **kwargs)
        self.memory_mb = float(memory_mb)
        self._splits = [self._layer_view.split(name, with_age=True) for name in self.layers]
        self._prefix: list[Any] = [None] * len(self.layers)

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        maps, probs, age = [], None, None
        for i in range(len(self.layers)):
            acts, skips = self._run_prefix(i, x)
            chunk = self._chunk(acts)
            key = (i, trace_key(target))
            if key not in self._chunks:
                self._chunks[key] = self._compile_chunk(i, target)
            base_fn, drops_fn = self._chunks[key]
            base, logits, p, a = base_fn(acts, skips, classes)
            classes = resolve_classes(classes, logits)
            if probs is None:
                probs, age = p, a
            k = int(acts.shape[-1])
            drops = [
                drops_fn(acts, skips, classes, base, tf.range(c, min(k, c + chunk)))
                for c in range(0, k, chunk)
            ]
            maps.append(ops.sum(acts * ops.concatenate(drops, axis=1)[:, None, None, :], axis=-1))
        return self.finish(maps), probs, age

    def _chunk(self, acts: Any) -> int:
        """Channels per pass: at most ``max_batch`` ablated rows, and ``memory_mb`` of ablated activations."""
        n, per_row = int(acts.shape[0]), 4 * int(np.prod(acts.shape[1:]))
        rows = min(self.max_batch, int(self.memory_mb * 2**20) // per_row)
        return max(1, rows // n)

    def _run_prefix(self, i: int, x: Any) -> tuple[Any, list[Any]]:
        if self._prefix[i] is None:
            prefix, feed = self._splits[i][0], self.view.feed

            @compiled([image_spec(self.size)])
            def run(x: Any) -> Any:
                return as_list(prefix(feed(x), training=False))

            self._prefix[i] = run
        outs = self._prefix[i](x)
        return outs[0], list(outs[1:])

    def _compile_chunk(self, i: int, target: Target) -> Any:
        prefix, head = self._splits[i]
        has_age = self.view.age is not None
        specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in prefix.outputs]
        acts_spec, skip_specs = specs[0], specs[1:]

        def head_score(acts: Any, skips: list[Any], classes: Any) -> tuple[Any, Any, Any, Any]:
            logits, probs, age = split_outputs(as_list(head([acts, *skips], training=False)), has_age)
            fixed = resolve_classes(classes, logits)
            return score(target, logits, probs, age, fixed), logits, probs, age

        @compiled([acts_spec, skip_specs, CLASS_SPEC])
        def base(acts: Any, skips: list[Any], classes: Any) -> Any:
            return head_score(acts, skips, classes)

        @compiled([acts_spec, skip_specs, CLASS_SPEC, tf.TensorSpec((None,), tf.float32), CLASS_SPEC])
        def drops(acts: Any, skips: list[Any], classes: Any, base_score: Any, channels: Any) -> Any:
            n, c = tf.shape(acts)[0], tf.shape(channels)[0]
            keep = 1.0 - tf.one_hot(channels, tf.shape(acts)[-1], dtype=acts.dtype)  # (c, K)
            ablated = acts[:, None] * keep[None, :, None, None, :]
            ablated = tf.reshape(ablated, tf.concat([[n * c], tf.shape(acts)[1:]], 0))
            rep = [tf.repeat(s, c, axis=0) for s in skips]
            s, *_ = head_score(ablated, rep, tf.repeat(classes, c))
            return base_score[:, None] - tf.reshape(s, (n, c))

        return base, drops
