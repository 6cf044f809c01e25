"""Input-gradient attributions: saliency, gradient x input, SmoothGrad, Integrated Gradients, guided backprop.

Maps are reduced over colour channels: saliency and guided backprop take the largest
absolute gradient of the three channels (Simonyan et al.), Integrated Gradients the
absolute value of the channel-summed attribution (so its completeness property holds
per pixel before the absolute value).

Guided backprop and ReLU6: MobileNetV2's activations are ``min(max(x, 0), 6)``. Treating
them as plain ReLUs (as tf-keras-vis and most ports do) lets gradient through where
``x >= 6``, where the forward function is flat. Our guided gradient passes only where
``0 < x < 6`` *and* the incoming gradient is positive. It is computed on a rebuilt graph in
which ReLU/ReLU6 layers are replaced by :class:`GuidedReLU` (fused ``activation="relu"``
layers by a linear copy with copied weights followed by :class:`GuidedReLU`); the caller's
model is never touched.

Other activations (gelu, silu/swish, hard_silu/hard_swish, elu, leaky_relu, PReLU...) have no
guided rule, here as in captum's ``GuidedBackprop`` (which overrides ``nn.ReLU`` only) and
pytorch-grad-cam: the plain gradient passes through them. A model with none of its activations
guided (ConvNeXt, EfficientNet) gets saliency's map; one with some (MobileNetV3) a partly guided
one. Guided backprop and Guided Grad-CAM say so in a warning when they are built (once per method
object) and record the count in the run's settings (``guided_activations``,
``unguided_activations``), so neither the user nor a saved explanation takes the map for more.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from agelens.explain.base import (
    CLASS_SPEC,
    Method,
    _as_batch,
    as_list,
    check_signed,
    compiled,
    image_spec,
    normalize_maps,
    resolve_classes,
    score,
    split_outputs,
)
from agelens.explain.cam import GradCAM
from agelens.explain.layers import activation_name, model_view
from agelens.explain.targets import ClassTarget, Target, resolve_target


def guided_relu(x: Any, max_value: float | None = None) -> Any:
    """ReLU (or ReLU6 with ``max_value=6``) whose gradient is the guided-backprop rule."""

    @tf.custom_gradient
    def fn(x: Any) -> Any:
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def grad(dy: Any) -> Any:
            gate = tf.logical_and(dy > 0, x > 0)
            if max_value is not None:
                gate = tf.logical_and(gate, x < max_value)
            return dy * tf.cast(gate, dy.dtype)

        return y, grad

    return fn(x)


class GuidedReLU(keras.layers.Layer):
    """Forward: ReLU / ReLU6. Backward: guided (see :func:`guided_relu`)."""

    def __init__(self, max_value: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else float(max_value)

    def call(self, x: Any) -> Any:
        return guided_relu(x, self.max_value)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _relu_cap(op: Any) -> tuple[bool, float | None]:
    """(is a plain ReLU/ReLU6, its cap) for a layer, its fused activation or a bare ``keras.ops`` call."""
    if isinstance(op, keras.layers.ReLU):
        plain = not op.negative_slope and not op.threshold
        return plain, None if op.max_value is None else float(op.max_value)
    name = _op_activation(op) or activation_name(getattr(op, "activation", None))
    return (name in ("relu", "relu6")), (6.0 if name == "relu6" else None)


# ``keras.ops`` activations called on a functional model's tensors are graph nodes of these classes.
_OPS = {
    "Relu": "relu", "Relu6": "relu6", "Gelu": "gelu", "Silu": "silu", "HardSilu": "hard_silu",
    "Sigmoid": "sigmoid", "HardSigmoid": "hard_sigmoid", "Elu": "elu", "Selu": "selu", "Celu": "celu",
    "LeakyRelu": "leaky_relu", "Softplus": "softplus", "Softsign": "softsign", "Glu": "glu",
    "HardTanh": "hard_tanh", "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "log_softmax",
}  # fmt: skip
_LAYERS = {keras.layers.LeakyReLU: "leaky_relu", keras.layers.PReLU: "prelu", keras.layers.ELU: "elu"}
_NOT_HIDDEN = ("softmax", "log_softmax")  # a head's (or attention's) normalisation, not a unit's activation
_SHOWN = {"silu": "silu/swish", "hard_silu": "hard_silu/hard_swish"}  # Keras's names, and the ones models use


def _op_activation(op: Any) -> str | None:
    """The activation a bare ``keras.ops`` node (``keras.ops.relu(x)`` in a functional model) applies."""
    is_op = not isinstance(op, keras.layers.Layer) and type(op).__module__.startswith("keras.")
    return _OPS.get(type(op).__name__) if is_op else None


def activation_kind(op: Any) -> str | None:
    """The non-linearity a graph step applies, by Keras's name (``"gelu"``, ``"silu"`` for swish,
    ``"prelu"``), or None for a linear step: what guided backprop would have to guide there."""
    if isinstance(op, keras.layers.ReLU):
        if op.negative_slope:
            return "leaky_relu"
        return "thresholded_relu" if op.threshold else ("relu6" if op.max_value == 6 else "relu")
    for cls, kind in _LAYERS.items():
        if isinstance(op, cls):
            return kind
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    if not isinstance(op, keras.layers.Layer):
        return _op_activation(op)
    name = activation_name(getattr(op, "activation", None))
    return None if name in ("", "linear") else name


def guided_census(view: Any) -> dict[str, Any]:
    """How many activations of ``view``'s graph were guided, and the others by kind (most first).

    Counted on the graph :func:`guided_substitute` rebuilt, with its own test (:func:`_relu_cap`),
    so the count is what ran. The model's output activation (a softmax or sigmoid head) is not a
    hidden unit's and is left out, as are softmaxes anywhere.
    """
    head = {id(view.graph.producer.get(id(t))) for t in (view.probs, view.age) if t is not None}
    guided, unguided = 0, {}
    for step in view.graph.steps:
        kind = None if id(step) in head else activation_kind(step.op)
        if _relu_cap(step.op)[0]:
            guided += 1
        elif kind is not None and kind not in _NOT_HIDDEN:
            unguided[kind] = unguided.get(kind, 0) + 1
    ordered = dict(sorted(unguided.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"guided_activations": guided, "unguided_activations": ordered}


class UnguidedActivationsWarning(UserWarning):
    """Guided backprop could guide none or only some of the model's activations (no ReLU there)."""


def unguided_note(name: str, census: dict[str, Any], plain: str) -> str | None:
    """One line on what ``census`` left unguided, or None when every activation was guided.

    ``plain``: what the map is when nothing was guided (guided backprop: saliency's map).
    """
    guided, unguided = census["guided_activations"], census["unguided_activations"]
    kinds = ", ".join(f"{n} {_SHOWN.get(k, k)}" for k, n in unguided.items())
    if guided == 0:
        has = f"its activations: {kinds}" if kinds else "it has no activations"
        return f"{name}: this model has no ReLU to guide ({has}), so the map is {plain}"
    if not unguided:
        return None
    other = sum(unguided.values())
    return (
        f"{name}: {guided} of {guided + other} activations were guided (ReLU/ReLU6); the other {other} "
        f"({kinds}) pass the plain gradient, so the map is only partly guided"
    )


def warn_unguided(name: str, census: dict[str, Any], plain: str) -> None:
    """Warn (:class:`UnguidedActivationsWarning`) with :func:`unguided_note`, at the caller's line."""
    from agelens.user_warnings import caller_stacklevel

    note = unguided_note(name, census, plain)
    if note:
        warnings.warn(UnguidedActivationsWarning(note), stacklevel=caller_stacklevel())


def guided_substitute(op: Any, path: str) -> Any:
    """Graph-rebuild hook: the guided replacement for ``op``, or None to keep it."""
    is_relu, cap = _relu_cap(op)
    if not is_relu:
        return None
    if isinstance(op, keras.layers.ReLU | keras.layers.Activation) or _op_activation(op):
        return GuidedReLU(cap, name=f"{op.name}_guided")
    config = dict(op.get_config(), activation="linear", name=f"{op.name}_guided_linear")
    linear = type(op).from_config(config)
    linear._agelens_source = weakref.ref(op)  # a weakref: Keras does not track it as a sub-layer

    def call(*args: Any, **kwargs: Any) -> Any:
        y = linear(*args, **kwargs)
        linear.set_weights(op.get_weights())  # a copy: the caller's layer keeps its own
        return GuidedReLU(cap, name=f"{op.name}_guided")(y)

    return call


def sync_guided_copies(model: Any) -> None:
    """Copy the caller's current weights into the guided graph's linear copies.

    The copies are made once, when the guided graph is built (and cached); without this a
    model trained or randomised in place afterwards would be explained with its old weights.
    """
    for layer in model._flatten_layers(include_self=False, recursive=True):
        source = getattr(layer, "_agelens_source", None)
        op = source() if source is not None else None
        if op is not None:
            layer.set_weights(op.get_weights())


class _InputGradient(Method):
    """Base of methods that differentiate the target score with respect to the input pixels."""

    variant = "plain"

    def __init__(self, model: Any, *, batch_size: int = 32, max_batch: int = 64) -> None:
        super().__init__(model, batch_size=batch_size)
        sub = guided_substitute if self.variant == "guided" else None
        self._gview = model_view(model, self.variant, sub, fold=())
        self._gmodel = self._gview.output_model(with_age=True)
        self.max_batch = int(max_batch)
        self._steps: dict = {}

    def _grad_step(self, target: Target) -> Any:
        model, has_age, feed = self._gmodel, self._gview.age is not None, self._gview.feed

        @compiled([image_spec(self.size), CLASS_SPEC])
        def step(x: Any, classes: Any) -> Any:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                logits, probs, age = split_outputs(as_list(model(feed(x), training=False)), has_age)
                s = score(target, logits, probs, age, resolve_classes(classes, logits))
            return tape.gradient(s, x), probs, age

        return step

    def gradients(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        """Input gradients ``(n, S, S, 3)`` of the target score, with probabilities and ages."""
        if self.variant == "guided":
            sync_guided_copies(self._gmodel)
        return self.cached_step(self._steps, target, self._grad_step)(x, classes)

    def input_gradients(self, images: Any, target: Any = None) -> np.ndarray:
        """Signed input gradients for model-sized images (for inspection and tests)."""
        x = tf.convert_to_tensor(np.asarray(images, np.float32))
        t = resolve_target(target, self.model)
        n = int(x.shape[0])
        classes = tf.constant(t.class_vector(n) if isinstance(t, ClassTarget) else np.zeros(n, np.int32))
        return np.asarray(self.gradients(x, classes, t)[0])

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        g, probs, age = self.gradients(x, classes, target)
        return ops.max(ops.abs(g), axis=-1), probs, age


class Saliency(_InputGradient):
    """Vanilla gradient saliency (Simonyan et al. 2014): max over channels of |d score / d pixel|."""

    name = "saliency"


class GradientXInput(_InputGradient):
    """Gradient x input (Shrikumar et al. 2016; captum's ``InputXGradient``), summed over RGB.

    Each pixel's value times the score's gradient there: the first-order share of the score
    that pixel carries against a black image, i.e. Integrated Gradients from agelens' default
    black baseline with one right-endpoint step (``IntegratedGradients`` itself takes midpoint
    steps, so its ``steps=1`` reads the gradient at ``x / 2`` instead). Pixels are the raw
    0..255 input, converted to the model's range (``AgeModel.feed``) inside the traced step. One
    backward pass, like saliency, but signed (``signed=True`` keeps evidence against the target
    negative) and weighted by what is actually there, so a dark background adds nothing.
    Unsigned maps are the absolute channel sum.
    """

    name = "gradient-x-input"
    signed_form = True

    def __init__(self, model: Any, *, signed: bool = False, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.signed_maps = check_signed(self, signed)

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        g, probs, age = self.gradients(x, classes, target)
        total = ops.sum(g * x, axis=-1)
        return (total if self.signed_maps else ops.abs(total)), probs, age


class GuidedBackprop(_InputGradient):
    """Guided backpropagation (Springenberg et al. 2015) with the ReLU6-aware rule.

    Only ReLU/ReLU6 activations are guided (see the module's notes): ``recorded`` counts them and
    the activations left plain, a warning says when that is none or only some of them.
    """

    name = "guided-backprop"
    variant = "guided"
    _says_unguided = True  # False inside Guided Grad-CAM, which says it under its own name

    def __init__(self, model: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.recorded = guided_census(self._gview)  # the run's settings carry it (api._settings)
        if self._says_unguided:
            warn_unguided(self.name, self.recorded, "the plain input gradient, as saliency gives")


class _QuietGuidedBackprop(GuidedBackprop):
    """Guided backprop inside Guided Grad-CAM: one warning, under the method the user asked for."""

    _says_unguided = False


def _checked_baseline(baseline: np.ndarray, size: int) -> np.ndarray:
    """A baseline every image of any batch can use, checked when the method is made: a wrong shape
    used to fail at the first call with a TensorFlow broadcast error, and -5 passed as a grey level.

    One baseline serves all images (captum also takes one per image; here batches are split, so a
    per-image one would pair with the wrong images): a grey level, an RGB colour ``(3,)``, or a
    model-sized image ``(size, size, 3)``, all in 0..255.
    """
    shapes = {(), (3,), (size, size, 3), (1, size, size, 3)}
    if baseline.shape not in shapes:
        raise ValueError(
            f"baseline shaped {baseline.shape}: use a grey level, an RGB colour (3,) or one model-sized "
            f"image ({size}, {size}, 3), the same for every image"
        )
    if not np.isfinite(baseline).all():
        raise ValueError("baseline holds NaN or infinite values: pixels are 0..255 (black 0, white 255)")
    if baseline.min() < 0 or baseline.max() > 255:
        raise ValueError(
            f"baseline values {float(baseline.min()):g}..{float(baseline.max()):g}: "
            "pixels are 0..255 (black 0, white 255)"
        )
    return baseline.reshape(baseline.shape[1:]) if baseline.ndim == 4 else baseline


class IntegratedGradients(_InputGradient):
    """Integrated Gradients (Sundararajan et al. 2017), midpoint Riemann sum over ``steps``.

    ``baseline``: "black" (0, default), "white" (255), a grey level, or a model-sized image.
    Interpolated images are evaluated ``max_batch`` at a time.

    Why 64 steps: completeness (attributions summing to score(x) - score(baseline)) is the
    method's promise, and on 48 held-out UTKFace photos with the shipped model the sum
    missed it by a mean 9.6% (max 63%) at 32 steps, 4.1% (14%) at 64 and 1.6% (6.2%) at 128
    (``python benchmarks/ig_completeness.py --n 48``); 64 halves the gap at twice the cost.
    """

    name = "integrated-gradients"
    signed_form = True

    def __init__(
        self, model: Any, *, steps: int = 64, baseline: Any = "black", signed: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(model, **kwargs)
        self.signed_maps = check_signed(self, signed)  # the channel sum without its absolute value
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.steps = int(steps)
        named = {"black": 0.0, "white": 255.0}
        if isinstance(baseline, str) and baseline not in named:
            raise ValueError(
                f"baseline {baseline!r}: use 'black', 'white', a grey level 0..255 or an image-shaped array"
            )
        self.baseline = _checked_baseline(
            np.asarray(named[baseline] if isinstance(baseline, str) else baseline, np.float32), self.size
        )
        self._chunks: dict = {}

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        attr, _, (_, probs, age) = self._signed(x, classes, target)
        total = ops.sum(attr, axis=-1)
        return (total if self.signed_maps else ops.abs(total)), probs, age

    def _signed(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, tuple[Any, Any, Any]]:
        """``(attributions (n, S, S, 3), the classes explained, clean outputs)`` for one batch."""
        logits, probs, age = self.outputs(x)
        fixed = resolve_classes(classes, logits)
        base = tf.broadcast_to(tf.constant(self.baseline, tf.float32), tf.shape(x))
        alphas = (tf.range(self.steps, dtype=tf.float32) + 0.5) / self.steps
        chunk = max(1, self.max_batch // int(x.shape[0]))
        step = self.cached_step(self._chunks, target, self._chunk_step)
        total = tf.add_n([step(x, base, alphas[c : c + chunk], fixed) for c in range(0, self.steps, chunk)])
        return (x - base) * total / self.steps, fixed, (logits, probs, age)

    def signed(
        self, images: Any, target: Any = None, return_convergence_delta: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Signed, unnormalised attributions ``(N, S, S, 3)`` in units of the target's score.

        The maps from :meth:`attribute` are ``|channel sum|`` scaled to [0, 1] per image, which
        hides direction: pixels that lower an ``age`` or ``old-young`` score look like pixels that
        raise it. These are ``(x - baseline) x mean path gradient`` as the paper defines them;
        their sum over an image approximates ``score(x) - score(baseline)`` (completeness, checked
        by :meth:`convergence_delta`). ``images``: model-sized RGB in 0..255, as for ``attribute``.
        ``return_convergence_delta`` (captum's name) returns ``(attributions, delta)`` from one pass.
        """
        attr, delta = self._batched(images, target)
        return (attr, delta) if return_convergence_delta else attr

    def convergence_delta(self, images: Any, target: Any = None) -> np.ndarray:
        """``sum(signed attributions) - (score(x) - score(baseline))`` per image (captum's
        ``return_convergence_delta``): near 0 when ``steps`` is enough; raise ``steps`` if not."""
        return self._batched(images, target)[1]

    def _batched(self, images: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
        x = _as_batch(images, self.size)
        resolved = resolve_target(target, self.model)
        n = int(x.shape[0])
        classes = resolved.class_vector(n) if isinstance(resolved, ClassTarget) else np.zeros(n, np.int32)
        attrs, deltas = [], []
        for lo in range(0, n, self.batch_size):
            xb = x[lo : lo + self.batch_size]
            attr, fixed, (logits, probs, age) = self._signed(
                xb, tf.constant(classes[lo : lo + len(xb)]), resolved
            )
            base = tf.broadcast_to(tf.constant(self.baseline, tf.float32), tf.shape(xb))
            want = score(resolved, logits, probs, age, fixed) - score(resolved, *self.outputs(base), fixed)
            attrs.append(np.asarray(attr, np.float32))
            deltas.append(np.asarray(tf.reduce_sum(attr, axis=(1, 2, 3)) - want, np.float32))
        if not attrs:
            return np.zeros((0, self.size, self.size, 3), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(attrs), np.concatenate(deltas)

    def _chunk_step(self, target: Target) -> Any:
        grad = self._grad_step(target)
        size = self.size

        @compiled([image_spec(size), image_spec(size), tf.TensorSpec((None,), tf.float32), CLASS_SPEC])
        def chunk(x: Any, base: Any, alphas: Any, classes: Any) -> Any:
            n, c = tf.shape(x)[0], tf.shape(alphas)[0]
            path = base[:, None] + alphas[None, :, None, None, None] * (x - base)[:, None]
            g, _, _ = grad(tf.reshape(path, (n * c, size, size, 3)), tf.repeat(classes, c))
            return tf.reduce_sum(tf.reshape(g, (n, c, size, size, 3)), axis=1)

        return chunk


class GuidedGradCAM(Method):
    """Guided Grad-CAM: the guided-backprop map times the (normalised) Grad-CAM map."""

    name = "guided-gradcam"

    def __init__(self, model: Any, layer: Any = None, *, batch_size: int = 32) -> None:
        super().__init__(model, batch_size=batch_size)
        self.cam = GradCAM(model, layer, batch_size=batch_size)
        self.guided = _QuietGuidedBackprop(model, batch_size=batch_size)
        self.layers = self.cam.layers
        self.recorded = self.guided.recorded
        plain = "Grad-CAM times the plain input gradient (saliency's map)"
        warn_unguided(self.name, self.recorded, plain)

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        cam, probs, age = self.cam._raw(x, classes, target)
        guided, _, _ = self.guided._raw(x, classes, target)
        return guided * normalize_maps(cam), probs, age


NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")
"""What SmoothGrad keeps of the noisy maps (captum's NoiseTunnel ``nt_type`` names)."""


class SmoothGrad(Method):
    """SmoothGrad (Smilkov et al. 2017) around *any* method: average its raw maps over noisy copies.

    ``sigma`` is the noise standard deviation as a fraction of the 0..255 pixel range. The
    target class is fixed on the clean image first, so noise never changes what is explained.
    The ``n`` noise images are drawn once from ``seed`` and every image gets the same ones,
    so an image's map does not depend on the batch it is in, its position there, or the run.

    ``nt_type`` picks what is kept of the noisy maps, with captum's NoiseTunnel names:
    ``"smoothgrad"`` their mean, ``"smoothgrad_sq"`` the mean of their squares (SmoothGrad²,
    Hooker et al. 2019: sharper, as large values dominate) and ``"vargrad"`` their variance
    (Adebayo et al. 2018: where the method is unsure, not where it points).
    """

    def __init__(
        self, method: Method, *, n: int = 25, sigma: float = 0.15, seed: int = 0, nt_type: str = "smoothgrad"
    ) -> None:
        if n < 1 or not 0 <= sigma <= 1:
            raise ValueError(
                f"SmoothGrad needs n >= 1 and 0 <= sigma <= 1 (a fraction of the 0..255 range: "
                f"0.15 is 38 grey levels), got n={n}, sigma={sigma}"
            )
        if nt_type not in NT_TYPES:
            raise ValueError(f"nt_type must be one of {', '.join(NT_TYPES)}, got {nt_type!r}")
        if nt_type == "vargrad" and n < 2:
            raise ValueError("vargrad needs n >= 2 noisy copies (a variance of one copy is 0)")
        self.signed_maps = method.signed_maps  # the mean of signed maps keeps their sign
        if self.signed_maps and nt_type != "smoothgrad":
            raise ValueError(
                f"{nt_type} squares the maps: signed maps average with nt_type='smoothgrad' only"
            )
        self.nt_type = nt_type
        self.inner = method
        self.class_agnostic = method.class_agnostic
        self.view, self.model, self.size, self._fast = method.view, method.model, method.size, method._fast
        self.batch_size, self.layers, self._forward = method.batch_size, method.layers, None
        self.n, self.sigma, self.seed = int(n), float(sigma), int(seed)
        # SmoothGrad around saliency is SmoothGrad itself: users asked for and read "smoothgrad".
        self.name = "smoothgrad" if method.name == "saliency" else f"smooth-{method.name}"
        self._noise: Any = None  # (n, S, S, 3), drawn on first use

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        logits, probs, age = self.outputs(x)
        fixed = resolve_classes(classes, logits)
        if self._noise is None:
            rng = tf.random.Generator.from_seed(self.seed)
            self._noise = rng.normal((self.n, self.size, self.size, 3), stddev=self.sigma * 255.0)
        total = squares = None
        for k in range(self.n):
            noisy = x + self._noise[k][None]
            m, _, _ = self.inner._raw(noisy, fixed, target)
            total = m if total is None else total + m
            if self.nt_type != "smoothgrad":
                squares = m * m if squares is None else squares + m * m
        mean = total / self.n
        if self.nt_type == "smoothgrad":
            return mean, probs, age
        if self.nt_type == "smoothgrad_sq":
            return squares / self.n, probs, age
        return tf.nn.relu(squares / self.n - mean * mean), probs, age  # float error can dip below 0
