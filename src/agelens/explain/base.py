"""The one verb every explain method shares: ``method.attribute(images, target) -> maps``.

A method subclass implements :meth:`Method._raw`: for one batch of model-sized images it
returns non-negative maps at input size (unnormalised) plus the clean-input probabilities
and ages. The base owns target resolution, batching, the single numpy conversion at the
end, and the per-image min-max normalisation, so wrappers such as SmoothGrad can average
*raw* maps of any method before normalising.

Normalisation (documented behaviour): each map is scaled to ``(m - min) / (max - min)``
so it spans [0, 1]. A flat map (range below 1e-6 of its magnitude, including all zeros)
carries no location information and becomes all zeros rather than noise or NaN.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from agelens.data.images import UNDO_PREPROCESSING, is_unit_range, unit_floats_note
from agelens.explain.layers import ModelView, model_view
from agelens.explain.targets import PREDICTED, ClassTarget, Target, resolve_target, trace_key

FLAT_TOLERANCE = 1e-6


@dataclass
class Attribution:
    """What one run of a method returns (arrays, already on the host)."""

    maps: np.ndarray  # (N, H, W) float32 in [0, 1]
    probabilities: np.ndarray  # (N, C) clean-input class probabilities
    ages: np.ndarray | None  # (N,) expected age in years, when the model has one
    target: Target


def normalize_maps(maps: Any) -> Any:
    """Per-image min-max to [0, 1] over the last two axes; flat maps become zeros."""
    mn = ops.min(maps, axis=(-2, -1), keepdims=True)
    mx = ops.max(maps, axis=(-2, -1), keepdims=True)
    rng = mx - mn
    flat = rng <= FLAT_TOLERANCE * ops.maximum(ops.abs(mx), ops.abs(mn))
    safe = ops.where(flat, ops.ones_like(rng), rng)
    return ops.where(flat, ops.zeros_like(maps), (maps - mn) / safe)


def normalize_signed(maps: Any) -> Any:
    """Per-image scaling to [-1, 1] by the largest magnitude: 0 stays 0, so sign keeps its meaning
    (a min-max scale would put a map's most negative pixel at 0 and call it "unimportant")."""
    top = ops.max(ops.abs(maps), axis=(-2, -1), keepdims=True)
    return ops.where(top > 0, maps / ops.where(top > 0, top, ops.ones_like(top)), ops.zeros_like(maps))


def check_signed(method: Method, signed: bool) -> bool:
    """``signed`` if ``method``'s class has a signed form (``signed_form``), else a ValueError naming
    the methods that do."""
    if signed and not type(method).signed_form:
        from agelens.explain.api import signed_methods  # the registry; loaded by the time a method runs

        raise ValueError(
            f"{method.name} has no signed form (its map is >= 0 by construction); signed maps: "
            + ", ".join(signed_methods())
        )
    return bool(signed)


def upsample(maps: Any, size: int) -> Any:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, size, size)``."""
    if maps.shape[1] == size and maps.shape[2] == size:
        return maps
    return tf.image.resize(maps[..., None], (size, size), method="bilinear")[..., 0]


def resolve_classes(classes: Any, logits: Any) -> Any:
    """Replace ``PREDICTED`` (-1) entries with each image's argmax class."""
    return ops.where(classes < 0, ops.cast(ops.argmax(logits, axis=-1), "int32"), classes)


def score(target: Target, logits: Any, probs: Any, age: Any, classes: Any) -> Any:
    """Per-image score of ``target`` (class targets read the per-image ``classes`` tensor)."""
    if isinstance(target, ClassTarget):
        return target(logits, probs, age, classes)
    return target(logits, probs, age)


class Method(ABC):
    """Base of every explain method: construct once per model, then ``attribute`` many batches."""

    name = "method"
    layers: list[str]
    # True for methods whose map does not depend on the target (EigenCAM): the result says so.
    class_agnostic = False
    # True for methods whose raw map keeps a sign (evidence against the target < 0): ``signed=True``.
    signed_form = False
    # False (``make_method(..., normalize=False)``): maps as computed, not scaled per image; set by
    # make_method on the outermost method, whose run() does the scaling.
    normalize = True

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        self.view: ModelView = model_view(model)
        self.model = self.view.model
        self.size = int(self.model.input_size)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.layers = ["input"]
        self._fast = model_view(model, fold=())  # batch norms folded: the graph we compute with
        self._forward: Any = None
        self.signed_maps = False  # set by methods whose class has a signed form (signed=True)

    # ---------------------------------------------------------------- public verb
    def attribute(self, images: Any, target: Any = None) -> np.ndarray:
        """Maps ``(N, S, S)`` float32 in [0, 1] (in [-1, 1] with ``signed=True``) for model-sized
        RGB images in 0..255; made with ``normalize=False``, the maps as computed, unscaled."""
        return self.run(images, target).maps

    def run(self, images: Any, target: Any = None) -> Attribution:
        """Maps plus the clean-input probabilities and ages, in one pass over the images."""
        x = _as_batch(images, self.size)
        resolved = resolve_target(target, self.model)
        n = int(x.shape[0])
        classes = resolved.class_vector(n) if isinstance(resolved, ClassTarget) else np.zeros(n, np.int32)
        classes_t = tf.constant(classes)
        maps, probs, ages = [], [], []
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            m, p, a = self._raw(x[lo:hi], classes_t[lo:hi], resolved)
            if self.normalize:
                m = normalize_signed(m) if self.signed_maps else normalize_maps(m)
            maps.append(m)
            probs.append(p)
            ages.append(a)
        if not maps:
            empty = np.zeros((0, self.size, self.size), np.float32)
            return Attribution(empty, np.zeros((0, self.model.num_classes), np.float32), None, resolved)
        has_age = self.view.age is not None
        return Attribution(
            np.asarray(tf.concat(maps, 0), np.float32),
            np.asarray(tf.concat(probs, 0), np.float32),
            np.asarray(tf.concat(ages, 0), np.float32).reshape(-1) if has_age else None,
            resolved,
        )

    @abstractmethod
    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        """``(maps (n, S, S) unnormalised, >= 0 unless signed, probs (n, C), age (n,) or zeros)``."""

    # ------------------------------------------------------------------ helpers
    def outputs(self, x: Any) -> tuple[Any, Any, Any]:
        """Compiled clean forward pass: ``(logits, probs, age-or-zeros)``."""
        if self._forward is None:
            self._forward = compiled_forward(self._fast, self.size)
        return self._forward(x)

    def cached_step(self, cache: dict, target: Target, build: Any) -> Any:
        key = trace_key(target)
        if key not in cache:
            cache[key] = build(target)
        return cache[key]


def compiled(input_signature: list[Any]) -> Any:
    """``tf.function`` with a fixed signature (batch dimension open: one trace for any batch size).

    Each method builds one step per target kind on purpose, so TensorFlow's "frequent
    retracing" heuristic (which counts traces per *source line* across instances) would
    warn falsely; it is switched off for these functions only.
    """

    def wrap(fn: Any) -> Any:
        f = tf.function(fn, input_signature=input_signature)
        if hasattr(f, "_omit_frequent_tracing_warning"):
            f._omit_frequent_tracing_warning = True
        return f

    return wrap


def as_list(outputs: Any) -> list[Any]:
    """A Keras model's outputs as a list (a single-output model returns a bare tensor)."""
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]


def image_spec(size: int) -> tf.TensorSpec:
    return tf.TensorSpec((None, size, size, 3), tf.float32)


CLASS_SPEC = tf.TensorSpec((None,), tf.int32)


def split_outputs(outs: list[Any], has_age: bool) -> tuple[Any, Any, Any]:
    """``[..., logits, probs(, age)]`` -> (logits, probs, age-or-zeros) from a sub-model's output list."""
    if has_age:
        logits, probs, age = outs[-3], outs[-2], ops.reshape(outs[-1], (-1,))
    else:
        logits, probs = outs[-2], outs[-1]
        age = ops.zeros((ops.shape(logits)[0],), "float32")
    return logits, probs, age


def compiled_forward(view: ModelView, size: int) -> Any:
    model = view.output_model(with_age=True)
    has_age, feed = view.age is not None, view.feed

    @compiled([image_spec(size)])
    def forward(x: Any) -> tuple[Any, Any, Any]:
        return split_outputs(as_list(model(feed(x), training=False)), has_age)

    return forward


def _as_batch(images: Any, size: int) -> Any:
    """``images`` as a float32 ``(N, size, size, 3)`` tensor in 0..255, checked at the one door
    every method's ``attribute``/``run``/``signed`` goes through.

    Floats all in 0..1 (captum's and torchvision's convention) are scaled with a warning, as
    :func:`agelens.data.images.scale_unit_floats` does for arrays, tensors included: read as
    0..255 they are a black image whose map is wrong, not just scaled. The rule reads the
    caller's dtype: integer pixels (uint8 above all) are never rescaled, whatever their values,
    so a caller holding uint8 photos (``explain``) must pass them as uint8, not cast to float
    first (a dark photo of 0s and 1s would be scaled by 255). NaN or infinite pixels are
    refused, naming the images: they give NaN maps, or all-zero ones that read as "no evidence".

    Pixels outside 0..255 are fed to the model as they are, with a warning naming the images
    and the span (as the metrics' ``as_pixels`` says it), not refused: here nothing is
    converted, so nothing is lost, and the metrics, whose rule for such pixels is to warn,
    pass their tensors through this door. (``load_image``, which must turn pixels into uint8,
    refuses negative ones instead: clipping would hide that the image is another one.)
    """
    floating = images.dtype.is_floating if isinstance(images, tf.Tensor) else _is_float_array(images)
    x = tf.convert_to_tensor(images, tf.float32) if not isinstance(images, tf.Tensor) else images
    x = tf.cast(x, tf.float32)
    if x.shape.rank == 3:
        x = x[None]
    if x.shape.rank != 4 or x.shape[1] != size or x.shape[2] != size or x.shape[3] != 3:
        raise ValueError(
            f"attribute() takes model-sized images (N, {size}, {size}, 3) in 0..255, got shape "
            f"{tuple(x.shape)}; use agelens.explain.explain() for photos of any size"
        )
    n = int(x.shape[0])
    if n == 0:
        return x
    finite_all = tf.cast(tf.reduce_all(tf.math.is_finite(x)), tf.float32)
    lo, hi, ok = tf.stack([tf.reduce_min(x), tf.reduce_max(x), finite_all]).numpy()  # one sync per call
    if not ok:  # NaN or inf somewhere: name the images holding it
        finite = tf.reduce_all(tf.math.is_finite(tf.reshape(x, (n, -1))), axis=1).numpy()
        raise ValueError(
            f"images hold NaN or infinite pixels (image {_which(~finite)} of {n}): "
            "no map of them means anything"
        )
    from agelens.user_warnings import caller_stacklevel

    if floating and is_unit_range(float(lo), float(hi)):
        warnings.warn(unit_floats_note("x"), stacklevel=caller_stacklevel())
        return x * 255.0
    if lo < 0 or hi > 255.0 + 1e-3:  # the metrics' tolerance (float32 arithmetic lands on 255.00002)
        flat = tf.reshape(x, (n, -1))
        out = ((tf.reduce_min(flat, axis=1) < 0) | (tf.reduce_max(flat, axis=1) > 255.0 + 1e-3)).numpy()
        fix = f"; {UNDO_PREPROCESSING}" if lo < 0 else ""
        warnings.warn(
            f"x: values span [{lo:.3g}, {hi:.3g}], outside 0..255 (image {_which(out)} of {n}); "
            f"agelens models expect RGB 0..255{fix}",
            stacklevel=caller_stacklevel(),
        )
    return x


def _which(bad: np.ndarray) -> str:
    """The indices where ``bad`` is True, the first five of them: ``"0, 2, ..."``."""
    idx = np.flatnonzero(bad)
    return ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")


def _is_float_array(images: Any) -> bool:
    dtype = getattr(images, "dtype", None)
    if dtype is None:
        images = np.asarray(images)
        dtype = images.dtype
    return np.dtype(dtype).kind == "f"


__all__ = ["PREDICTED", "Attribution", "Method", "normalize_maps", "upsample", "score"]
