"""Turn an :class:`AgeModel` and a method name into the plain callables the metrics take.

Kept apart from the metrics so they never import TensorFlow or the explain engine
themselves: tests feed numpy toys, the CLI feeds the real model through here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from agelens.metrics.base import Explainer, ModelExplainer, PredictFn, random_maps

RANDOM = "random"


def predict_fn_of(model: Any, batch_size: int = 64) -> PredictFn:
    """``x -> probabilities`` for an AgeModel, a keras.Model, their bound ``predict``, or a plain callable.

    Why not ``AgeModel.predict``: Keras retraces its predict step for every new batch
    shape, and perturbation metrics feed many odd-sized chunks. One ``tf.function`` with
    a free batch dimension is traced once. It never averages in the mirror image
    (``flip=False``): the maps explain the un-flipped forward pass.
    """
    return resolve_predict_fn(model, batch_size)[0]


def resolve_predict_fn(model: Any, batch_size: int = 64) -> tuple[PredictFn, int | None]:
    """:func:`predict_fn_of` plus the number of classes when the model says it (None for a bare callable).

    Metrics call this on whatever was passed as ``predict_fn``, so ``predict_fn=model``
    works for the objects users naturally hold; the class count lets targets be
    range-checked before any prediction.
    """
    am = as_age_model(model)
    if am is not None:
        return _compiled_predict(am, batch_size), len(getattr(am, "class_names", ())) or None
    if callable(model):
        return model, None
    raise TypeError(
        f"cannot predict with {type(model).__name__}; pass an AgeModel, a keras.Model "
        "or a callable x -> (N, C) probabilities"
    )


def _is_keras_model(obj: Any) -> bool:
    keras = sys.modules.get("keras")  # a Keras model cannot exist unless keras was imported
    return keras is not None and isinstance(obj, keras.Model)


def as_age_model(obj: Any) -> Any:
    """The AgeModel behind ``obj`` (an AgeModel, a keras.Model, or either's bound ``predict``), else None.

    Why bound ``predict`` too: ``predict_fn=model.predict`` is the natural guess, but
    AgeModel.predict returns a dict and Keras' predict prints a progress bar per batch.
    A keras.Model is wrapped the way the explain engine wraps it.
    """
    owner = getattr(obj, "__self__", None)
    if owner is not None and getattr(obj, "__name__", "") == "predict":
        obj = owner
    if hasattr(obj, "keras_model"):
        return obj
    if _is_keras_model(obj):
        from agelens.explain.layers import as_age_model as wrap

        return wrap(obj)
    return None


def _compiled_predict(model: Any, batch_size: int) -> PredictFn:
    """One traced forward pass per model and batch size, kept on the model: every metric call
    with ``predict_fn=model`` would otherwise trace MobileNetV2 again (about a second each)."""
    cache = getattr(model, "_metric_predicts", None)
    if cache is None:
        cache = {}
        object.__setattr__(model, "_metric_predicts", cache)  # dies with the model, as fast.py's does
    if batch_size not in cache:
        cache[batch_size] = _trace_predict(model, batch_size)
    return cache[batch_size]


def _trace_predict(model: Any, batch_size: int) -> PredictFn:
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda x: np.asarray(model.predict(x, batch_size=batch_size, flip=False)["probabilities"])
    import tensorflow as tf

    km, size = model.keras_model, int(model.input_size)
    scale = 1.0 if getattr(model, "rescales_input", True) else 1.0 / 255.0

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def forward(x: Any) -> Any:
        return model._pick(km(x * scale, training=False), model.group_output)

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [forward(tf.constant(x[s : s + batch_size])).numpy() for s in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(model.class_names)), np.float32)

    return predict


def attribute_by_target(
    model: Any, x: np.ndarray, targets: np.ndarray, method: str, **opts: Any
) -> np.ndarray:
    """Maps ``(N, S, S)`` from ``agelens.explain.attribute`` explaining each image's own target class.

    ``random`` is answered here (pixel-noise maps, seeded by ``opts["seed"]``) so the
    baseline runs through the same path as real methods.
    """
    if method == RANDOM:
        return random_maps(len(x), x.shape[1], seed=int(opts.get("seed", 0)))
    from agelens.explain import attribute

    per_image = [int(t) for t in np.asarray(targets).reshape(-1)]
    return np.asarray(attribute(model, np.asarray(x, np.float32), method=method, target=per_image, **opts))


def method_explainer(model: Any, method: str, **opts: Any) -> Explainer:
    """An :data:`Explainer` bound to ``model`` for one method name of ``agelens.explain.METHODS``."""
    return lambda x, targets: attribute_by_target(model, x, targets, method, **opts)


def method_model_explainer(method: str, **opts: Any) -> ModelExplainer:
    """A :data:`ModelExplainer` (model passed per call) for the sanity checks."""
    return lambda model, x, targets: attribute_by_target(model, x, targets, method, **opts)


def explanation_inputs(explanation: Any, size: Any) -> tuple[np.ndarray, np.ndarray]:
    """Model-size ``x`` (float RGB 0..255) and ``maps (N, S, S)`` from an :class:`Explanation`, for metrics.

    ``agelens.explain`` feeds the model the centred square crop of each photo resized by
    :func:`agelens.data.images.resize_for_model` and upsamples the map back onto the whole
    photo; metrics must perturb what the model saw. So ``x`` is that same crop and each
    map is cut to the same square and resized back to ``size``, keeping map and image
    pixels aligned. ``size`` is an int or a model with ``input_size``. (With model-size
    arrays already in hand, ``agelens.explain.attribute`` gives such maps directly.)
    """
    from agelens.data.images import fit_square, resize_for_model

    size = int(getattr(size, "input_size", size))
    x = np.stack([resize_for_model(img, size) for img in explanation.images]).astype(np.float32)
    maps = [np.clip(fit_square(np.asarray(m, np.float32), size), 0.0, 1.0) for m in explanation.maps]
    return x, np.stack(maps)


def available_methods() -> list[str]:
    """Method names of the explain engine (empty when it is not installed yet)."""
    try:
        from agelens.explain import METHODS
    except ImportError:
        return []
    return list(METHODS)
