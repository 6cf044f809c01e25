"""Class activation maps: a layer's activations weighted by what each channel contributes.

:class:`CAM` owns everything but the weighting: the compiled forward+gradient step (one
``tf.function`` per target kind, batch dimension left open so batches of any size reuse
one trace), target scoring, ReLU, bilinear upsampling to the input size and multi-layer
fusion (the mean, or max, of per-layer normalised maps). A method overrides
:meth:`CAM.channel_weights` (``(N, K)`` weights from activations ``A`` and gradients
``G``, both ``(N, h, w, K)``) or, for per-pixel methods, :meth:`CAM.layer_map`.

Grad-CAM++ normalises the second-order ``alpha`` coefficients to sum to 1 over space per
channel, as tf-keras-vis does, so its maps equal our correctness peer's. The three usual
implementations differ here: the authors' reference code sums only the alphas where the gradient
is positive, pytorch-grad-cam does not normalise. On the shipped model (200 held-out UTKFace
photos, ``block_13_expand_relu``) the authors' normalisation moves a [0, 1] map by 0.06 at the
median photo (0.23 at most; per-photo Spearman 0.995 median, 0.96 lowest), and neither it nor
pytorch-grad-cam's is more faithful: deletion AUC minus ours +0.0002 [-0.0028, +0.0034] and
+0.0004 [-0.0018, +0.0027], insertion +0.0018 [+0.0002, +0.0033] and +0.0012 [-0.0004, +0.0027]
(``benchmarks/gradcampp_normalisation.py --n 200 --score``). A cell whose ``2 g^2 + sum(A) g^3`` is 0 gets
alpha 0 (the peers guard only ``g^2 = 0`` and would divide by zero there). The ``exp(score)`` factor
of its derivation is dropped, as pytorch-grad-cam drops it: it scales each image's map by a
positive constant, which the min-max normalisation removes; with ``normalize=False`` the raw
magnitudes therefore compare as pytorch-grad-cam's do, not as tf-keras-vis's (which keep it).

Gradient-free methods (Score-CAM, Ablation-CAM) live in :mod:`agelens.explain.perturb`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from keras import ops

from agelens.explain.base import (
    CLASS_SPEC,
    Method,
    as_list,
    check_signed,
    compiled,
    image_spec,
    normalize_maps,
    normalize_signed,
    resolve_classes,
    score,
    split_outputs,
    upsample,
)
from agelens.explain.layers import model_view
from agelens.explain.targets import Target

EPS = 1e-7
FUSIONS = ("mean", "max")


class CAM(Method):
    """Base class: ``layer`` is a name, index, keyword or list (see :mod:`agelens.explain.layers`)."""

    name = "cam"
    uses_gradients = True

    def __init__(
        self,
        model: Any,
        layer: Any = None,
        *,
        fuse: str = "mean",
        upsample: bool = True,
        batch_size: int = 32,
        signed: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size)
        if fuse not in FUSIONS:
            raise ValueError(f"fuse must be one of {FUSIONS}, not {fuse!r}")
        # signed: no ReLU, so regions that lower the target's score show as negative evidence
        self.signed_maps = check_signed(self, signed)
        if self.signed_maps and fuse == "max":
            raise ValueError("signed maps fuse layers with fuse='mean' only (a max would drop the negatives)")
        self.layers = self.view.resolve(layer)
        if not upsample and len(self.layers) > 1:
            raise ValueError("upsample=False needs a single layer (layers differ in resolution)")
        self.fuse, self.upsample = fuse, upsample
        self._layer_view = model_view(model, fold=self.layers)  # folded graph that keeps these layers
        self._sub = self._layer_view.feature_model(self.layers, with_age=True)
        self._steps: dict = {}

    # ------------------------------------------------------------ method hooks
    def channel_weights(self, acts: Any, grads: Any) -> Any:
        """``(N, K)`` weight per channel; override this (or :meth:`layer_map`)."""
        raise NotImplementedError

    def layer_map(self, acts: Any, grads: Any) -> Any:
        """``(N, h, w)`` map before ReLU: by default the weighted sum of channels."""
        weights = self.channel_weights(acts, grads)
        return ops.sum(acts * weights[:, None, None, :], axis=-1)

    # ------------------------------------------------------------------ engine
    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        return self.cached_step(self._steps, target, self._compile)(x, classes)

    def _compile(self, target: Target) -> Any:
        sub, n_layers = self._sub, len(self.layers)
        has_age, feed = self.view.age is not None, self.view.feed

        @compiled([image_spec(self.size), CLASS_SPEC])
        def step(x: Any, classes: Any) -> tuple[Any, Any, Any]:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                outs = as_list(sub(feed(x), training=False))
                logits, probs, age = split_outputs(outs, has_age)
                s = score(target, logits, probs, age, resolve_classes(classes, logits))
            feats = outs[:n_layers]
            grads = tape.gradient(s, feats) if self.uses_gradients else [None] * n_layers
            maps = [self.layer_map(a, g) for a, g in zip(feats, grads, strict=True)]
            return self.finish(maps), probs, age

        return step

    def finish(self, maps: list[Any]) -> Any:
        """ReLU (not for signed maps), upsample to the input size, and fuse several layers' maps."""
        if not self.signed_maps:
            maps = [ops.relu(m) for m in maps]
        if self.upsample:
            maps = [upsample(m, self.size) for m in maps]
        if len(maps) == 1:
            return maps[0]
        scale = normalize_signed if self.signed_maps else normalize_maps
        stacked = ops.stack([scale(m) for m in maps], axis=0)
        return ops.mean(stacked, axis=0) if self.fuse == "mean" else ops.max(stacked, axis=0)


def _spatial_mean(t: Any) -> Any:
    return ops.mean(t, axis=(1, 2))


class GradCAM(CAM):
    """Grad-CAM: channel weight = spatial mean of the score's gradient (Selvaraju et al. 2017)."""

    name = "gradcam"
    signed_form = True

    def channel_weights(self, acts: Any, grads: Any) -> Any:
        return _spatial_mean(grads)


class GradCAMPlusPlus(CAM):
    """Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted by second-order alphas."""

    name = "gradcam++"

    def channel_weights(self, acts: Any, grads: Any) -> Any:
        g2, g3 = grads**2, grads**3
        denom = 2.0 * g2 + ops.sum(acts, axis=(1, 2), keepdims=True) * g3
        alphas = ops.where(denom == 0.0, 0.0, g2 / ops.where(denom == 0.0, ops.ones_like(denom), denom))
        norm = ops.sum(alphas, axis=(1, 2), keepdims=True)
        alphas = alphas / ops.where(norm == 0.0, ops.ones_like(norm), norm)
        return ops.sum(ops.relu(grads) * alphas, axis=(1, 2))


class XGradCAM(CAM):
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalised activations."""

    name = "xgradcam"
    signed_form = True

    def channel_weights(self, acts: Any, grads: Any) -> Any:
        return ops.sum(grads * acts, axis=(1, 2)) / (ops.sum(acts, axis=(1, 2)) + EPS)


class HiResCAM(CAM):
    """HiResCAM (Draelos & Carin 2020): per-pixel gradient x activation, summed over channels.

    Faithful to the model where Grad-CAM's spatial averaging blurs location (e.g. dense heads).
    """

    name = "hirescam"
    signed_form = True

    def layer_map(self, acts: Any, grads: Any) -> Any:
        return ops.sum(grads * acts, axis=-1)


class LayerCAM(CAM):
    """Layer-CAM (Jiang et al. 2021): per-pixel positive gradients x activations; works on early layers."""

    name = "layercam"

    def layer_map(self, acts: Any, grads: Any) -> Any:
        return ops.sum(ops.relu(grads) * acts, axis=-1)


class EigenCAM(CAM):
    """Eigen-CAM (Muhammad & Yeasin 2020): first principal component of the activations.

    Class-agnostic (the target is ignored). SVD's sign is arbitrary, so the component is
    oriented to agree with the channel-summed activation (pytorch-grad-cam leaves it to chance).
    """

    name = "eigencam"
    uses_gradients = False
    class_agnostic = True

    def layer_map(self, acts: Any, grads: Any) -> Any:
        shape = ops.shape(acts)
        flat = ops.reshape(acts, (shape[0], shape[1] * shape[2], shape[3]))
        centred = flat - ops.mean(flat, axis=1, keepdims=True)
        u, s, _ = ops.svd(centred, full_matrices=False)
        proj = u[:, :, 0] * s[:, :1]
        ref = ops.sum(flat, axis=-1)
        ref = ref - ops.mean(ref, axis=1, keepdims=True)
        sign = ops.where(ops.sum(proj * ref, axis=1, keepdims=True) < 0, -1.0, 1.0)
        return ops.reshape(proj * sign, (shape[0], shape[1], shape[2]))
