"""Find the layers worth explaining and build read-only sub-models that expose them.

Every explain method needs the same thing: for a batch of images, the feature maps of
one or more layers *and* the class logits (the score before the softmax, which the
Grad-CAM paper differentiates). :class:`ModelView` builds that once per model as a new
functional graph over the caller's layers (see :mod:`agelens.explain._graph`): the
caller's model is never modified, and layers inside nested models are reachable.

Layer keywords (see :func:`ModelView.resolve`):

- no layer given: the layer the model's metadata declares (``explain_layer``, set by the
  model card from measured faithfulness; the shipped model declares
  ``block_13_expand_relu``), else ``last-conv``.
- ``last-conv``: the last layer with a 4-D output whose spatial size is > 1
  (for our MobileNetV2 that is ``out_relu``; at 32 px input, where ``out_relu`` is 1x1,
  ``block_13_expand_relu``, never a padding layer).
- ``early`` / ``mid`` / ``late``: among *activation* layers (ReLU/Activation layers and
  convolutions with a fused non-linearity) with a 4-D output, group the layers by spatial
  resolution, highest first; ``early`` is the last layer of the resolution a quarter of
  the way down that list, ``mid`` halfway, ``late`` three quarters. For MobileNetV2 at
  128 px (resolutions 64, 32, 16, 8, 4) that is the last activation at stride 4
  (``block_3_expand_relu``), 8 (``block_6_expand_relu``) and 16 (``block_13_expand_relu``).
  With a single resolution the quantiles are taken over the layer list instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from os import PathLike
from typing import Any

import keras
import numpy as np
from keras import ops

from agelens.explain._graph import Graph, Step, Substitute, downstream_inputs, flatten, functional_of
from agelens.explain.layer_spec import INPUT, KEYWORDS  # read without TensorFlow by the CLI's early check
from agelens.model.age_model import AgeModel
from agelens.model.wrap import SOFTMAX_ADDED, wrap_keras_model

_QUANTILE = {"early": 0.25, "mid": 0.5, "late": 0.75}
_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_ACTIVATION_TYPES = (
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
)
# Not feature layers: preprocessing, and layers that pad or crop (their maps do not line up with
# the photo: a padded 3x3 map stretched over the image puts the features of a 2x2 grid off-centre).
_SKIP_TYPES = (
    keras.layers.InputLayer,
    keras.layers.Rescaling,
    keras.layers.Normalization,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
)
_PROB_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`list_layers`: ``index`` counts the flattened graph's layers."""

    index: int
    name: str
    kind: str
    shape: tuple[int | None, ...]
    is_feature: bool  # 4-D output with spatial size > 1 downstream of a convolution

    def __str__(self) -> str:
        mark = "*" if self.is_feature else " "
        return f"{self.index:4d} {mark} {self.name:40s} {self.kind:24s} {self.shape}"


class LinearView(keras.layers.Layer):
    """The pre-activation (logits) of a Dense layer that ends in softmax/sigmoid.

    Reads the Dense layer's own kernel and bias (shared, never copied or changed), so a
    user's ``Dense(3, activation="softmax")`` head still yields logits for Grad-CAM.
    """

    def __init__(self, dense: keras.layers.Dense, **kwargs: Any) -> None:
        super().__init__(name=f"{dense.name}_logits", **kwargs)
        self._kernel_of = weakref.ref(dense)

    def call(self, x: Any) -> Any:
        dense = self._kernel_of()
        y = ops.matmul(x, dense.kernel)
        return y + dense.bias if dense.use_bias else y


class ModelView:
    """A flattened, read-only view of a model: layer listing, resolution and sub-models."""

    def __init__(
        self, model: AgeModel | Any, substitute: Substitute | None = None, fold: frozenset[str] | None = None
    ) -> None:
        am = as_age_model(model)
        km = am.keras_model
        # The view keeps the model's metadata but not the Keras model itself, so caches keyed
        # weakly by the Keras model can let it go (sub-models share its layers, not the object).
        self.model = replace(am, keras_model=None)
        self.graph: Graph = flatten(km, substitute, fold)
        self.input = self.graph.inputs[0]
        self.feed = self.model.feed  # raw 0..255 pixels -> the model's input; maps are over the raw pixels
        out = functional_of(km).output
        probs = self.graph.new(_pick(out, self.model.group_output))
        self.logits, self.probs = _logits_and_probs(self.graph, probs)
        age_key = self.model.age_output
        self.age = self.graph.new(_pick(out, age_key)) if age_key is not None else None
        self._infos = self._list()

    # ------------------------------------------------------------------ listing
    def layers(self) -> list[LayerInfo]:
        return list(self._infos)

    def _list(self) -> list[LayerInfo]:
        infos, seen_conv = [], False
        rows = [(INPUT, "InputLayer", self.input)] + [
            (s.path, type(s.op).__name__, s.outputs[0]) for s in self.graph.steps
        ]
        for i, (name, kind, tensor) in enumerate(rows):
            step = self.graph.by_path.get(name)
            seen_conv = seen_conv or (step is not None and isinstance(step.op, _CONV_TYPES))
            shape = tuple(tensor.shape[1:])
            feature = (
                seen_conv
                and len(shape) == 3
                and not isinstance(step.op if step else None, _SKIP_TYPES)
                and (
                    shape[0] is None or shape[1] is None or shape[0] * shape[1] > 1
                )  # None: set by the input
            )
            infos.append(LayerInfo(i, name, kind, shape, bool(feature)))
        return infos

    def activation_layers(self) -> list[LayerInfo]:
        out = []
        for info in self._infos:
            step = self.graph.by_path.get(info.name)
            if info.is_feature and step is not None and _is_activation(step.op):
                out.append(info)
        return out

    # --------------------------------------------------------------- resolution
    def resolve(self, spec: str | int | None | list | tuple = None) -> list[str]:
        """Layer names for ``spec``: a name, an index, a keyword, a keras Layer (or its output
        tensor), or a list/comma list of them."""
        spec = self.named(spec)
        if spec is None:
            spec = default_layer_spec(self.model)
        if isinstance(spec, str) and "," in spec:
            spec = [s.strip() for s in spec.split(",") if s.strip()]
        if isinstance(spec, list | tuple):
            names = [n for s in spec for n in self.resolve(s)]
            return list(dict.fromkeys(names))
        return [self._resolve_one(spec)]

    def named(self, spec: Any) -> Any:
        """``spec`` with each keras Layer, or KerasTensor a layer produced (``layer.output``), as
        the layer's name in this view (its ``outer/inner`` path when found in it); the rest as given.

        Why: pytorch-grad-cam and tf-keras-vis take the layer object (``target_layers=[model.c2]``),
        and users pass ``km.get_layer("c2")``; it was refused as "no layer named <Conv2D ...>".
        """
        if isinstance(spec, list | tuple):
            return [self.named(s) for s in spec]
        if isinstance(spec, keras.KerasTensor):
            op = getattr(getattr(spec, "_keras_history", None), "operation", None)
            if not isinstance(op, keras.layers.Layer):
                raise TypeError(
                    f"layer: the tensor {spec.name!r} has no producing layer; pass the layer's name, "
                    "e.g. layer='conv2d' (`agelens layers` lists them)"
                )
            spec = op
        if isinstance(spec, keras.layers.InputLayer):
            return INPUT
        if isinstance(spec, keras.layers.Layer):
            found = next((s.path for s in self.graph.steps if s.op is spec), None)
            return found or spec.name
        return spec

    def _resolve_one(self, spec: str | int) -> str:
        features = [i for i in self._infos if i.is_feature]
        if isinstance(spec, np.integer):
            spec = int(spec)
        if not isinstance(spec, str | int):
            raise TypeError(
                f"layer must be a name, an index, one of {', '.join(KEYWORDS)}, a keras Layer or a list "
                f"of them, not {type(spec).__name__}"
            )
        if isinstance(spec, int) or (isinstance(spec, str) and spec.lstrip("-").isdigit()):
            idx = int(spec)
            if not -len(self._infos) <= idx < len(self._infos):
                raise ValueError(f"layer index {idx} out of range (the model has {len(self._infos)} layers)")
            info = self._infos[idx]
            _require_feature(info)
            return info.name
        if spec == "last-conv":
            if not features:
                raise ValueError("the model has no convolutional layer with a spatial output > 1x1")
            return features[-1].name
        if spec in _QUANTILE:
            return _quantile_pick(self.activation_layers() or features, _QUANTILE[spec])
        matches = [i for i in self._infos if i.name == spec or i.name.rsplit("/", 1)[-1] == spec]
        if not matches:
            raise ValueError(
                f"no layer named {spec!r}; use a layer name or index from `agelens layers`, "
                f"or one of {', '.join(KEYWORDS)}"
            )
        _require_feature(matches[0])
        return matches[0].name

    # --------------------------------------------------------------- sub-models
    def feature_model(self, names: list[str], with_age: bool = False) -> keras.Model:
        """``x -> [features of each named layer..., logits, probs(, age)]`` (x in model scale)."""
        feats = [self.output_of(n) for n in names]
        heads = [self.logits, self.probs] + ([self.age] if with_age and self.age is not None else [])
        return keras.Model(self.input, feats + heads, name="agelens_explain_view")

    def output_model(self, with_age: bool = False) -> keras.Model:
        """``x -> [logits, probs(, age)]``."""
        heads = [self.logits, self.probs] + ([self.age] if with_age and self.age is not None else [])
        return keras.Model(self.input, heads, name="agelens_explain_outputs")

    def split(self, name: str, with_age: bool = False) -> tuple[keras.Model, keras.Model]:
        """Cut at layer ``name``: ``prefix: x -> [A, *skips]`` and ``head: [A, *skips] -> outputs``.

        ``skips`` are tensors from before the cut that the rest of the network still reads
        (residual connections); re-running only the head is what makes Ablation-CAM cheap.
        """
        feat = self.output_of(name)
        skips = downstream_inputs(self.graph, feat)
        heads = [self.logits, self.probs] + ([self.age] if with_age and self.age is not None else [])
        prefix = keras.Model(self.input, [feat, *skips], name="agelens_explain_prefix")
        head = keras.Model([feat, *skips], heads, name="agelens_explain_head")
        return prefix, head

    def output_of(self, name: str) -> Any:
        if name == INPUT:
            return self.input
        step = self.graph.by_path.get(name)
        if step is None:
            raise ValueError(f"no layer named {name!r}")
        return step.outputs[0]


def _pick(outputs: Any, key: str | int | None) -> Any:
    if isinstance(outputs, dict | list | tuple):
        return outputs[key]
    return outputs


def _is_activation(op: Any) -> bool:
    if isinstance(op, _ACTIVATION_TYPES):
        return True
    act = getattr(op, "activation", None)
    return isinstance(op, _CONV_TYPES) and act is not None and act is not keras.activations.linear


def _require_feature(info: LayerInfo) -> None:
    """A CAM needs a feature grid: a 4-D output, more than one cell, computed by the network.

    A 1x1 layer (``out_relu`` of a 32 px MobileNetV2) gives one number per channel, so its
    map is a flat square that says nothing about where; the input, a Rescaling or a padding
    layer hold the photo itself (a padded one off-centre), so a CAM there is an artefact of
    the pixels. Refusing each names the reason.
    """
    if len(info.shape) != 3:
        raise ValueError(f"layer {info.name!r} has output shape {info.shape}; CAMs need a 4-D feature map")
    h, w = info.shape[:2]
    if h == 1 and w == 1:
        raise ValueError(
            f"layer {info.name!r} has a 1x1 grid (output shape {info.shape}): a CAM there has no "
            "'where'; pick a larger layer (`agelens layers` marks them with *)"
        )
    if not info.is_feature:
        raise ValueError(
            f"layer {info.name!r} ({info.kind}) is not a feature layer: it comes before any "
            "convolution or only scales, pads or crops the photo, so a map there shows the pixels, "
            "not what the network learned; pick a layer `agelens layers` marks with *"
        )


def _quantile_pick(candidates: list[LayerInfo], q: float) -> str:
    if not candidates:
        raise ValueError("the model has no convolutional feature layers")
    open_size = any(c.shape[0] is None or c.shape[1] is None for c in candidates)
    sizes = [] if open_size else sorted({c.shape[0] * c.shape[1] for c in candidates}, reverse=True)
    if len(sizes) <= 1:
        # Grid sizes unknown (an open None x None input) or all alike: pick by depth instead.
        return candidates[round((len(candidates) - 1) * q)].name
    size = sizes[round((len(sizes) - 1) * q)]
    return [c for c in candidates if c.shape[0] * c.shape[1] == size][-1].name


def _logits_and_probs(graph: Graph, probs: Any) -> tuple[Any, Any]:
    """The tensor before the softmax, and the probabilities.

    - ``Activation("softmax")`` / ``Softmax`` layer (ours: after ``age_group_logits``): its input.
    - ``Dense(..., activation="softmax")``: rebuilt from that layer's input, kernel and bias.
    - Anything else is taken as logits already, and probabilities are its softmax.
    """
    step: Step | None = graph.producer.get(id(probs))
    if step is not None:
        op = step.op
        if isinstance(op, keras.layers.Softmax) or (
            isinstance(op, keras.layers.Activation) and activation_name(op.activation) in _PROB_ACTIVATIONS
        ):
            return step.inputs[0], probs
        if isinstance(op, keras.layers.Dense) and activation_name(op.activation) in _PROB_ACTIVATIONS:
            return LinearView(op)(step.inputs[0]), probs
    return probs, keras.layers.Activation("softmax", name="agelens_softmax")(probs)


def activation_name(fn: Any) -> str:
    try:
        return str(keras.activations.serialize(fn))
    except Exception:  # noqa: BLE001 - custom callables have no registered name
        return getattr(fn, "__name__", "")


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_view(
    model: AgeModel | Any,
    variant: str = "plain",
    substitute: Substitute | None = None,
    fold: Iterable[str] | None = None,
) -> ModelView:
    """The cached :class:`ModelView` of a model (flattening MobileNetV2 costs ~0.3 s, so build once).

    ``variant`` names a rebuilt graph (e.g. ``"guided"``) whose layers ``substitute`` swaps.
    ``fold`` (layer names whose own outputs must survive, possibly none) gives the fast
    graph with batch norms folded into their convolutions, for computing; the plain view
    (``fold=None``) is the one to list and resolve layers on. Views are cached per Keras
    model object and dropped with it.
    """
    am = as_age_model(model)
    views = _VIEWS.setdefault(am.keras_model, {})
    keep = None if fold is None else frozenset(fold)
    key = (
        variant,
        keep,
        am.group_output,
        am.age_output,
        tuple(am.class_names),
        am.input_range,
        default_layer_spec(am),
    )
    if key not in views:
        views[key] = ModelView(am, substitute, keep)
    return views[key]


def default_layer_spec(model: AgeModel | Any) -> str:
    """The layer explained when none is asked for: the model's declared ``explain_layer``, else last-conv.

    Why a model may declare one: how coarse a map can be and still beat random maps of its
    own smoothness depends on the model. For the shipped 112 px model the last conv map is
    4x4 and its deletion score is not distinguishable from such random maps, while the 7x7
    ``block_13_expand_relu`` map beats them on deletion and insertion (model card).
    """
    meta = model.metadata if isinstance(model, AgeModel) else {}
    return str(meta.get("explain_layer") or "last-conv")


def as_age_model(model: AgeModel | Any) -> AgeModel:
    """An ``AgeModel`` for a raw keras.Model (metadata inferred by ``wrap_keras_model``)."""
    if isinstance(model, AgeModel):
        if model.keras_model is None:
            raise ValueError("this AgeModel carries no Keras model (pass the model you loaded)")
        return model
    if isinstance(model, str | PathLike):
        from agelens.model.io import load_model

        return load_model(model)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be an AgeModel (agelens.load_model()), a keras.Model or a path to a .keras/.h5 "
            f"file; got {type(model).__name__}"
        )
    # Kept on the model itself (not a weak-key cache, whose value would hold its key alive): each
    # wrap of a logits model built a new softmax graph, 0.4 s a call, with 3 more nodes on the
    # caller's layers every time; the forward-pass and gradient traces are keyed by it too. The
    # layers' identities go with it: a Sequential changed by pop()/add() is wrapped again.
    layers = tuple(id(layer) for layer in model.layers)
    cached = model.__dict__.get("_agelens_age_model")
    if cached is None or cached[0] != layers:
        cached = (layers, _wrap(model))
        object.__setattr__(model, "_agelens_age_model", cached)  # past Keras' attribute tracking
    return cached[1]


def _wrap(model: Any) -> AgeModel:
    functional_of(model)  # a subclassed model: the one-line "no static graph" error, not an AttributeError
    if isinstance(model, keras.Sequential):
        # wrap_keras_model reads ``km.output``, which Keras 3 does not define for a Sequential;
        # wrap its functional twin for the metadata, then keep the caller's object, unless the
        # wrap had to add a softmax (a Sequential ending in logits): the caller's would lack it.
        am = wrap_keras_model(functional_of(model))
        return am if am.keras_model.layers[-1].name == SOFTMAX_ADDED else replace(am, keras_model=model)
    return wrap_keras_model(model)


def layer_names_of(model: AgeModel | Any, spec: Any) -> Any:
    """``spec`` with keras Layers and their output tensors replaced by names (see
    :meth:`ModelView.named`); a spec of names, indices or keywords comes back as it is, at no cost."""
    if not _holds_objects(spec):
        return spec
    return model_view(model).named(spec)


def _holds_objects(spec: Any) -> bool:
    if isinstance(spec, list | tuple):
        return any(_holds_objects(s) for s in spec)
    return isinstance(spec, keras.layers.Layer | keras.KerasTensor)


def list_layers(model: AgeModel | Any) -> list[LayerInfo]:
    """Every layer of the flattened graph with its output shape (``*`` marks CAM-able layers)."""
    return model_view(model).layers()


def resolve_layer(model: AgeModel | Any, spec: str | int | None = None) -> list[str]:
    """Names of the layers ``spec`` picks (name, index, keyword, or a list of them)."""
    return model_view(model).resolve(spec)
