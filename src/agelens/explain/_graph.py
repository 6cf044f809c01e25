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


def flatten(model: Any, substitute: Substitute | None = None) -> Graph:
    """Re-run ``model`` on new ``keras.Input`` tensors, walking into nested models.

    ``substitute(op, path)`` may return a callable to use instead of ``op`` at that step
    (e.g. a guided-gradient ReLU); returning None keeps the original layer.
    """
    fn = functional_of(model)
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name) for x in fn.inputs]
    tensors = {id(x): y for x, y in zip(fn.inputs, inputs, strict=True)}
    graph = Graph(inputs, [], tensors)
    _walk(fn, "", graph, substitute)
    return graph


def _walk(fn: Any, prefix: str, graph: Graph, substitute: Substitute | None) -> None:
    tensors = graph.tensor_map
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            if op is None or node.is_input:
                continue
            if any(id(x) not in tensors for x in node.input_tensors):
                continue  # not reachable from the inputs (as in Keras' own walk)
            args, kwargs = node.arguments.fill_in(tensors)
            if is_model(op):
                inner = functional_of(op)
                flat_args = [a for a in tree.flatten(args) if isinstance(a, keras.KerasTensor)]
                for x, y in zip(inner.inputs, flat_args, strict=True):
                    tensors[id(x)] = y
                _walk(inner, f"{prefix}{op.name}/", graph, substitute)
                outs = [tensors[id(o)] for o in inner.outputs]
            else:
                path = f"{prefix}{op.name}"
                call = (substitute(op, path) if substitute else None) or op
                outs = tree.flatten(call(*args, **kwargs))
                step = Step(path, op, [a for a in tree.flatten((args, kwargs)) if _is_kt(a)], outs)
                graph.steps.append(step)
                graph.by_path.setdefault(path, step)  # a shared layer keeps its first call
                for y in outs:
                    graph.producer[id(y)] = step
            for x, y in zip(node.outputs, outs, strict=True):
                tensors[id(x)] = y


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
