"""Turn an :class:`AgeModel` and a method name into the plain callables the metrics take.

Kept apart from the metrics so they never import TensorFlow or the explain engine
themselves: tests feed numpy toys, the CLI feeds the real model through here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agelens.metrics.base import Explainer, ModelExplainer, PredictFn, random_maps

RANDOM = "random"


def predict_fn_of(model: Any, batch_size: int = 64) -> PredictFn:
    """``x -> probabilities`` for an AgeModel (``.keras_model``) or a plain callable.

    Why not ``AgeModel.predict``: Keras retraces its predict step for every new batch
    shape, and perturbation metrics feed many odd-sized chunks. One ``tf.function`` with
    a free batch dimension is traced once.
    """
    if hasattr(model, "keras_model"):
        return _compiled_predict(model, batch_size)
    if callable(model):
        return model
    raise TypeError(f"cannot predict with {type(model).__name__}")


def _compiled_predict(model: Any, batch_size: int) -> PredictFn:
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


def available_methods() -> list[str]:
    """Method names of the explain engine (empty when it is not installed yet)."""
    try:
        from agelens.explain import METHODS
    except ImportError:
        return []
    return list(METHODS)
