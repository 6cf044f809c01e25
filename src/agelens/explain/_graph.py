"""Re-run a Keras model's graph on fresh symbolic inputs, flattening nested models.

Why our own walk rather than ``keras.Model(model.input, layer.output)`` or ``clone_model``:

- A layer inside a nested model (a MobileNetV2 base used as one layer of a user's model)
  is not reachable from the outer model's tensors; walking into the nested graph is.
- ``clone_model`` creates new layers with new weights; re-calling the *same* layers on new
  symbolic tensors builds a new graph that shares the caller's weights and never changes
  them. Only layers we deliberately *substitute* (guided ReLUs) are new objects.
- The walk records every tensor it produces, so callers can pick any layer's output, the
  input of the softmax (logits), or cut the graph at a layer (Ablation-CAM's head).

It uses Keras 3's node API (``_nodes_by_depth``, ``node.arguments.fill_in``) exactly as
``keras.models.clone_model`` does internally; Keras is pinned below 4 in pyproject.
Calling a layer symbolically appends a node to that layer's node list, which leaves the
original model's graph, weights, config and predictions as they were (tests check this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import tree

Substitute = Callable[[Any, str], Callable[..., Any] | None]


@dataclass
class Step:
    """One executed node of the flattened graph."""

    path: str  # "layer" at top level, "nested_model/layer" inside a nested model
    op: Any  # the original layer or operation (never modified)
    inputs: list[Any]  # new KerasTensors fed to it
    outputs: list[Any]  # new KerasTensors it produced


@dataclass
class Graph:
    """A flattened graph: new input tensors, the steps in topological order, and a tensor map."""

    inputs: list[Any]
    steps: list[Step]
    tensor_map: dict[int, Any] = field(repr=False)  # id(original KerasTensor) -> new KerasTensor
    by_path: dict[str, Step] = field(default_factory=dict, repr=False)
    producer: dict[int, Step] = field(default_factory=dict, repr=False)  # id(new tensor) -> Step

    def new(self, original_tensor: Any) -> Any:
        """The new tensor standing for ``original_tensor`` of the caller's model."""
        return self.tensor_map[id(original_tensor)]


def is_model(op: Any) -> bool:
    return isinstance(op, keras.Model)


def functional_of(model: Any) -> Any:
    """The Functional graph behind a Functional or (built) Sequential model."""
    fn = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if fn is None or not hasattr(fn, "_nodes_by_depth"):
        raise ValueError(
            f"model {model.name!r} has no static graph (subclassed, or a Sequential without an "
            "input shape); rebuild it with keras.Input or the functional API"
        )
    return fn


def flatten(
    model: Any, substitute: Substitute | None = None, fold_keep: frozenset[str] | None = None
) -> Graph:
    """Re-run ``model`` on new ``keras.Input`` tensors, walking into nested models.

    ``substitute(op, path)`` may return a callable to use instead of ``op`` at that step
    (e.g. a guided-gradient ReLU); returning None keeps the original layer.

    ``fold_keep`` (a set of layer paths, possibly empty) turns on batch-norm folding: each
    convolution whose only consumer is a BatchNormalization becomes one
    :class:`FoldedConvBN` (the pair's output, recorded under the BN layer's path; the
    convolution's own pre-BN output no longer exists), except convolutions named in
    ``fold_keep``. None (default) folds nothing.
    """
    fn = functional_of(model)
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name) for x in fn.inputs]
    tensors = {id(x): y for x, y in zip(fn.inputs, inputs, strict=True)}
    graph = Graph(inputs, [], tensors)
    _walk(fn, "", graph, substitute, fold_keep)
    return graph


def _walk(
    fn: Any, prefix: str, graph: Graph, substitute: Substitute | None, keep: frozenset[str] | None
) -> None:
    tensors = graph.tensor_map
    folds = _foldable(fn, prefix, keep) if keep is not None else {}
    folded: dict[int, list[Any]] = {}  # id(BN node) -> outputs already computed by its conv
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if id(node) in folded:
                outs = folded.pop(id(node))
            elif any(id(x) not in tensors for x in node.input_tensors):
                continue  # not reachable from the inputs (as in Keras' own walk)
            elif is_model(op):
                args, _ = node.arguments.fill_in(tensors)
                inner = functional_of(op)
                flat_args = [a for a in tree.flatten(args) if isinstance(a, keras.KerasTensor)]
                for x, y in zip(inner.inputs, flat_args, strict=True):
                    tensors[id(x)] = y
                _walk(inner, f"{prefix}{op.name}/", graph, substitute, keep)
                outs = [tensors[id(o)] for o in inner.outputs]
            elif id(node) in folds:
                bn_node = folds[id(node)]
                args, _ = node.arguments.fill_in(tensors)
                outs = [FoldedConvBN(op, bn_node.operation)(args[0])]
                _record(graph, f"{prefix}{bn_node.operation.name}", bn_node.operation, [args[0]], outs)
                folded[id(bn_node)] = outs
                continue  # the conv's own (pre-BN) output tensor is never created
            else:
                args, kwargs = node.arguments.fill_in(tensors)
                path = f"{prefix}{op.name}"
                call = (substitute(op, path) if substitute else None) or op
                outs = tree.flatten(call(*args, **kwargs))
                _record(graph, path, op, [a for a in tree.flatten((args, kwargs)) if _is_kt(a)], outs)
            for x, y in zip(node.outputs, outs, strict=True):
                tensors[id(x)] = y


def _record(graph: Graph, path: str, op: Any, inputs: list[Any], outs: list[Any]) -> None:
    step = Step(path, op, inputs, outs)
    graph.steps.append(step)
    graph.by_path.setdefault(path, step)  # a shared layer keeps its first call
    for y in outs:
        graph.producer[id(y)] = step


def _foldable(fn: Any, prefix: str, keep: frozenset[str]) -> dict[int, Any]:
    """``id(conv node) -> BN node`` for conv -> BN pairs that can be folded into one op."""
    consumers: dict[int, list[Any]] = {}
    for nodes in fn._nodes_by_depth.values():
        for node in nodes:
            for t in node.input_tensors:
                consumers.setdefault(id(t), []).append(node)
    outputs = {id(t) for t in fn.outputs}
    pairs = {}
    for nodes in fn._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if not _foldable_conv(op) or f"{prefix}{op.name}" in keep or len(node.outputs) != 1:
                continue
            out = node.outputs[0]
            users = consumers.get(id(out), [])
            if id(out) in outputs or len(users) != 1:
                continue
            bn = users[0].operation
            if (
                isinstance(bn, keras.layers.BatchNormalization)
                and bn.axis in (-1, 3)
                and len(users[0].input_tensors) == 1
            ):
                pairs[id(node)] = users[0]
    return pairs


def _foldable_conv(op: Any) -> bool:
    if isinstance(op, keras.layers.DepthwiseConv2D):
        ok = True
    elif type(op) is keras.layers.Conv2D:
        ok = getattr(op, "groups", 1) == 1
    else:
        return False
    return ok and op.data_format == "channels_last" and op.activation is keras.activations.linear


class FoldedConvBN(keras.layers.Layer):
    """A convolution followed by inference-mode batch norm, computed as one convolution.

    The folded kernel and bias are computed *inside the graph from the layers' own
    variables* on every call, so they never go stale when the caller's model is trained
    or re-randomised, and nothing is copied. The result equals ``bn(conv(x))`` up to float
    rounding; the win is that TensorFlow's CPU backend fuses conv + bias + ReLU6 into one
    kernel where the separate BN ops stay unfused (a small one on the shipped model: Grad-CAM
    1.06x, saliency 1.11x, ``benchmarks/bn_folding.py``).
    """

    def __init__(self, conv: Any, bn: Any, **kwargs: Any) -> None:
        super().__init__(name=f"{conv.name}_folded_bn", **kwargs)
        self._conv, self._bn = conv, bn

    def call(self, x: Any) -> Any:
        import tensorflow as tf
        from keras import ops

        conv, bn = self._conv, self._bn
        scale = ops.rsqrt(bn.moving_variance + bn.epsilon)
        if bn.scale:
            scale = scale * bn.gamma
        shift = -bn.moving_mean * scale
        if bn.center:
            shift = shift + bn.beta
        if conv.use_bias:
            shift = shift + conv.bias * scale
        opts = {"strides": conv.strides, "padding": conv.padding, "dilation_rate": conv.dilation_rate}
        if isinstance(conv, keras.layers.DepthwiseConv2D):
            kernel = conv.kernel * ops.reshape(scale, (1, 1, -1, conv.depth_multiplier))
            y = ops.depthwise_conv(x, kernel, **opts)
        else:
            y = ops.conv(x, conv.kernel * scale, **opts)
        return tf.nn.bias_add(y, shift)  # BiasAdd (not AddV2) is what the conv fusion matches

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self._conv.compute_output_shape(input_shape)


def _is_kt(x: Any) -> bool:
    return isinstance(x, keras.KerasTensor)


def downstream_inputs(graph: Graph, cut: Any) -> list[Any]:
    """Tensors computed *before* ``cut`` that are consumed *after* it (skip connections).

    A head model that starts at ``cut`` must take these as extra inputs; for the last
    conv layer of a plain CNN the list is empty.
    """
    dependent = {id(cut)}
    crossing: dict[int, Any] = {}
    for step in graph.steps:
        if any(id(t) in dependent for t in step.inputs):
            dependent.update(id(y) for y in step.outputs)
            for t in step.inputs:
                if id(t) not in dependent:
                    crossing.setdefault(id(t), t)
    return [t for k, t in crossing.items() if k not in dependent]
