"""Class outputs for a class output with one unit: an age in years, or a sigmoid probability.

agelens reads every model through one probability per class. A one-unit output (a model's only
one, or the one ``class_output=`` names) gets a class head built on top of it here, so predict,
evaluate, explain and the metrics read it like any other model:

- an **age in years** (a regressor: a linear or ReLU unit, the usual UTKFace tutorial model)
  stays the age output, and its age group is the age cut by the age bins. Each group's score
  (its logit) is its *margin* in years, ``min(age - lower edge, upper edge - age)``: positive
  for the group the age falls in, negative (or zero) for every other one, so the argmax is
  exactly that group. The probabilities are a softmax over those margins: how far inside its
  bin the age lies, not a trained classifier's confidence. The explain engine explains the
  margins (the input of the added softmax), so a class target differentiates the age itself:
  "old" (``age - 60``) follows the age's gradient, "young" (``30 - age``) its negative.
- a **sigmoid probability** ``p = sigmoid(z)`` becomes two classes ``[1 - p, p]``, computed as
  ``sigmoid([-z, z])``; the explain engine explains ``[-z, z]`` (the input of that sigmoid),
  so class 1 is explained by the pre-sigmoid logit and class 0 by its negative, as the logits
  under a softmax are for a model with one unit per class. A linear unit read as a probability
  (``one_unit="probability"`` on a binary classifier trained ``from_logits=True``) is that logit
  ``z`` itself, and is read the same way.

The heads are made of stock Keras layers (frozen ``Dense``, ``Minimum``, ``Softmax``,
``Activation``), plus :class:`SigmoidLogit`, which reads a sigmoid ``Dense`` layer's own
weights (shared, never copied: training the model later changes what agelens reads too), and
:class:`ProbabilityLogit` for a probability from any other layer. Both are registered with
Keras (package ``agelens``), so a wrapped model saved with :func:`agelens.model.io.save_model`
loads again through :func:`agelens.model.io.load_model`, which imports this module first.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from agelens.data.bins import AgeBins
from agelens.model.age_model import ONE_UNIT_READINGS
from agelens.model.wrap import SOFTMAX_ADDED

__all__ = ["ONE_UNIT_READINGS", "ProbabilityLogit", "SigmoidLogit", "age_group_head", "probability_head"]

MARGINS = "agelens_age_margins"
"""Name of the layer whose output is each age group's margin in years (the logits explained)."""
BINARY_LOGITS = "agelens_binary_logits"
"""Name of the layer whose output is ``[-z, z]`` for a sigmoid probability ``p = sigmoid(z)``."""


def producer(tensor: Any) -> tuple[Any, Any]:
    """The operation that made ``tensor`` and the node of that call (``(None, None)`` for an input)."""
    history = getattr(tensor, "_keras_history", None)
    op = getattr(history, "operation", None)
    if op is None:
        return None, None
    nodes = getattr(op, "_inbound_nodes", [])
    index = getattr(history, "node_index", 0)
    return op, nodes[index] if index < len(nodes) else None


SHAPE_ONLY = ("Reshape", "Flatten", "Identity", "Squeeze", "ExpandDims")
"""Layers (and Keras ops) that change a tensor's shape and none of its values: a one-unit output
flattened from ``(N, 1)`` to ``(N,)`` by one of them is read as the output it was made from."""


def _one_value(tensor: Any) -> bool:
    """Whether ``tensor`` holds one value per image, ``(N, 1)`` or ``(N,)``."""
    shape = tuple(tensor.shape)
    return len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)


def unshaped(tensor: Any) -> Any:
    """The tensor a one-value-per-image ``tensor`` was reshaped from (``tensor`` itself when none was).

    A ``Reshape(())`` (or ``Flatten``, ``ops.squeeze``...) turning a ``Dense(1)``'s ``(N, 1)`` into
    ``(N,)`` hides that layer's activation behind a layer that has none: the output was then read
    as neither linear nor a sigmoid. Only shape changes between one value per image are followed.
    """
    for _ in range(32):
        op, node = producer(tensor)
        if op is None or node is None or type(op).__name__ not in SHAPE_ONLY:
            return tensor
        inputs = list(node.input_tensors)
        if len(inputs) != 1 or not _one_value(inputs[0]):
            return tensor
        tensor = inputs[0]
    return tensor


def _final_op(tensor: Any) -> Any:
    """The last layer that computed ``tensor``, looking inside a nested model that produced it and
    through layers that only reshape one value per image (:func:`unshaped`)."""
    op = None
    for _ in range(32):  # a model nested in a model...: follow it down to a layer
        op, _ = producer(unshaped(tensor))
        if not isinstance(op, keras.Model):
            return op
        outputs = getattr(op, "outputs", None) or []
        if len(outputs) != 1:
            return op
        tensor = outputs[0]
    return op


def _activation(op: Any) -> str:
    """The name of the activation ``op`` ends in ("" when none can be named)."""
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    fn = getattr(op, "activation", None)
    if fn is None:
        return ""
    try:
        return str(keras.activations.serialize(fn))
    except Exception:  # noqa: BLE001 - a custom callable has no registered name
        return str(getattr(fn, "__name__", ""))


def ends_in(tensor: Any) -> str:
    """The activation of the layer that made ``tensor`` (``sigmoid``, ``linear``, ``relu``...)."""
    return _activation(_final_op(tensor))


def guess_reading(tensor: Any) -> str:
    """How to read a one-unit output: ``probability`` after a sigmoid, else ``age`` (in years)."""
    return "probability" if ends_in(tensor) == "sigmoid" else "age"


def _float32_edge(edge: float) -> np.float32:
    """The smallest float32 at or above ``edge``: a float32 age is at or above one exactly when it
    is at or above the other, so the head cuts ages where :meth:`AgeBins.index` does."""
    e = np.float32(edge)
    return np.nextafter(e, np.float32(np.inf)) if float(e) < edge else e


def age_group_head(age: Any, bins: AgeBins) -> Any:
    """Probabilities of the age groups of ``bins`` for ``age`` (years, ``(N, 1)`` or ``(N,)``).

    Group ``i`` covers ``[e(i-1), e(i))`` (``e(-1) = -inf``, the last edge ``+inf``); its logit
    is ``min(age - e(i-1), e(i) - age)``, with each lower edge taken one float32 step below
    itself. That step (2e-6 years at 30) makes an age exactly on an edge score for the group
    above it (margin 2e-6, against 0 for the group below), as the bins say: without it the two
    tied and the argmax took the lower group. The margins of the other groups are negative or
    zero, so the group the age falls in always has the largest logit, and the largest
    probability (a softmax keeps the order; ties could only come from edges below about one
    year, where float32 steps are smaller than the softmax resolves).

    Built as two frozen ``Dense`` layers (age times +1 or -1, plus an edge) and their elementwise
    ``Minimum``: the group at each end has one edge, so both of its terms are that one edge's.
    """
    k = bins.num_classes
    up = [_float32_edge(e) for e in bins.edges]  # an age at or above this is at or above the edge
    below = [np.nextafter(u, np.float32(-np.inf)) for u in up]  # the float32 just below it
    # Term a: group 0 "e(0) - age"; group i >= 1 "age - below e(i-1)".
    a_kernel = np.array([[-1.0] + [1.0] * (k - 1)], np.float32)
    a_bias = np.array([up[0]] + [-below[i - 1] for i in range(1, k)], np.float32)
    # Term b: group i <= k-2 "e(i) - age"; the last group "age - below e(k-2)".
    b_kernel = np.array([[-1.0] * (k - 1) + [1.0]], np.float32)
    b_bias = np.array([up[i] for i in range(k - 1)] + [-below[k - 2]], np.float32)
    if len(age.shape) == 1:
        age = keras.layers.Reshape((1,), name="agelens_age_column")(age)
    terms = []
    for name, kernel, bias in (("lower", a_kernel, a_bias), ("upper", b_kernel, b_bias)):
        dense = keras.layers.Dense(k, trainable=False, dtype="float32", name=f"agelens_age_margin_{name}")
        terms.append(dense(age))
        dense.set_weights([kernel, bias])
    margins = keras.layers.Minimum(name=MARGINS, dtype="float32")(terms)
    return keras.layers.Softmax(name=SOFTMAX_ADDED, dtype="float32")(margins)


def probability_head(p: Any) -> Any:
    """Probabilities ``[1 - p, p]`` of a one-unit probability output, as ``sigmoid([-z, z])``.

    ``z`` is the pre-sigmoid score where the graph has it: the input of a sigmoid ``Activation``
    layer, or a sigmoid ``Dense`` layer's own kernel and bias (:class:`SigmoidLogit`, which
    replaces that layer in the wrapped graph). A linear unit read as a probability (a binary
    classifier trained ``from_logits=True``, no sigmoid) *is* that score: ``z`` is the output itself.
    Any other output read as a probability (e.g. a custom activation ending in 0..1) gets
    ``z = log(p / (1 - p))``, with ``p`` clipped to ``[1e-7, 1 - 1e-7]``. An output flattened
    from ``(N, 1)`` to ``(N,)`` (a ``Reshape``, ``Flatten``...) is read as the output it was made
    from: a linear unit's is still its logit, a sigmoid ``Dense`` layer's still its own score.
    """
    op, node = producer(unshaped(p))  # a (N, 1) output flattened to (N,) is read as the (N, 1) one
    z = None
    if node is not None and _activation(op) == "sigmoid":
        inputs = list(node.input_tensors)
        if isinstance(op, keras.layers.Activation) and len(inputs) == 1 and _one_value(inputs[0]):
            z = inputs[0]
        elif isinstance(op, keras.layers.Dense) and len(inputs) == 1 and len(inputs[0].shape) == 2:
            z = SigmoidLogit(op, name=f"{op.name}_logit")(inputs[0])
    if z is None:
        # A linear output is a logit: clipped as a probability it became 1.0 or 0.0 for most images.
        linear = ends_in(p) == "linear"
        if len(p.shape) == 1:
            p = keras.layers.Reshape((1,), name="agelens_probability_column")(p)
        z = p if linear else ProbabilityLogit(name="agelens_logit_of_probability")(p)
    elif len(z.shape) == 1:
        z = keras.layers.Reshape((1,), name="agelens_logit_column")(z)
    pair = keras.layers.Dense(2, use_bias=False, trainable=False, dtype="float32", name=BINARY_LOGITS)
    logits = pair(z)
    pair.set_weights([np.array([[-1.0, 1.0]], np.float32)])
    # A sigmoid, not a softmax: sigmoid(-z) = 1 - sigmoid(z). The name is the one the explain
    # engine (and agelens.explain.layers' Sequential check) looks for on a head agelens added.
    return keras.layers.Activation("sigmoid", name=SOFTMAX_ADDED, dtype="float32")(logits)


@keras.saving.register_keras_serializable(package="agelens")
class SigmoidLogit(keras.layers.Layer):
    """The pre-sigmoid score ``x @ kernel + bias`` of a ``Dense(1, activation="sigmoid")`` layer.

    Holds that layer and reads its variables on every call (shared, so they never go stale);
    a saved copy stores the layer with it and loads as one.
    """

    def __init__(self, dense: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = dense

    def build(self, input_shape: Any) -> None:
        if not self.dense.built:
            self.dense.build(input_shape)
        self.built = True

    def call(self, x: Any) -> Any:
        y = ops.matmul(x, self.dense.kernel)
        return ops.add(y, self.dense.bias) if self.dense.use_bias else y

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*tuple(input_shape)[:-1], self.dense.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "dense": keras.saving.serialize_keras_object(self.dense)}

    @classmethod
    def from_config(cls, config: dict) -> SigmoidLogit:
        config = dict(config)
        config["dense"] = keras.saving.deserialize_keras_object(config["dense"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="agelens")
class ProbabilityLogit(keras.layers.Layer):
    """``log(p / (1 - p))`` of a probability, clipped to ``[eps, 1 - eps]`` first (finite at 0 and 1)."""

    def __init__(self, eps: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = float(eps)

    def call(self, p: Any) -> Any:
        p = ops.clip(ops.cast(p, "float32"), self.eps, 1.0 - self.eps)
        return ops.log(p) - ops.log1p(-p)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps}
