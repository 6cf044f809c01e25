"""Entry points: :func:`explain` for photos, :func:`attribute` for model-sized arrays.

``explain`` takes photos as given (paths, PIL images, uint8 arrays of any size, or a list),
feeds the model a centred square crop resized to its input (exactly what
:func:`agelens.data.images.resize_for_model` gives training), and maps the result back onto
each photo at its own size (zero outside the crop, which the model never saw).

``attribute`` is the fast path for code that already holds a batch ``(N, S, S, 3)`` of
model-sized float RGB in 0..255 (metrics, benchmarks): no decoding, no resizing, maps
``(N, S, S)`` in [0, 1].

Method objects are cached per Keras model, method, layer and options, so calling either
function in a loop compiles each step once.
"""

from __future__ import annotations

import inspect
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agelens.explain.base import Method
from agelens.explain.cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from agelens.explain.explanation import Explanation
from agelens.explain.gradients import (
    GradientXInput,
    GuidedBackprop,
    GuidedGradCAM,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
)
from agelens.explain.occlusion import Occlusion
from agelens.explain.perturb import AblationCAM, ScoreCAM
from agelens.explain.rise import RISE
from agelens.report.app_logic import no_face_note
from agelens.user_warnings import caller_stacklevel

METHODS: dict[str, type[Method]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
    "eigencam": EigenCAM,
    "saliency": Saliency,
    "smoothgrad": Saliency,  # wrapped in SmoothGrad by make_method
    "gradient-x-input": GradientXInput,
    "integrated-gradients": IntegratedGradients,
    "guided-backprop": GuidedBackprop,
    "guided-gradcam": GuidedGradCAM,
    "occlusion": Occlusion,
    "rise": RISE,
}
"""Every method by name; ``smooth-<name>`` wraps any in SmoothGrad (``smoothgrad`` = ``smooth-saliency``)."""

ALIASES = {
    "gradcampp": "gradcam++",
    "gradcamplusplus": "gradcam++",
    "grad-cam": "gradcam",
    "score-cam": "scorecam",
    "ablation-cam": "ablationcam",
    "eigen-cam": "eigencam",
    "layer-cam": "layercam",
    "hires-cam": "hirescam",
    "ig": "integrated-gradients",
    "inputxgradient": "gradient-x-input",
    "input-x-gradient": "gradient-x-input",
    "gradient_x_input": "gradient-x-input",
    "gradientxinput": "gradient-x-input",
    "integrated_gradients": "integrated-gradients",
    "guided": "guided-backprop",
    "guided-backpropagation": "guided-backprop",
    "guided-grad-cam": "guided-gradcam",
    "occlusion-sensitivity": "occlusion",
}
SMOOTH_OPTIONS = ("n", "sigma", "seed", "nt_type")
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def list_methods() -> list[str]:
    """Method names accepted by :func:`explain` (plus ``smooth-<name>`` for any of them)."""
    return list(METHODS)


def signed_methods() -> list[str]:
    """Methods with a signed form (``signed=True``: evidence against the target as negative values)."""
    return [name for name, cls in METHODS.items() if cls.signed_form]


def has_signed_form(method: str) -> bool:
    """Whether ``method`` (``smooth-`` variants included) takes ``signed=True``."""
    return METHODS[canonical(method).removeprefix("smooth-")].signed_form


def canonical(name: str) -> str:
    """Canonical method name (case-insensitive, aliases resolved); raises ValueError if unknown,
    TypeError for anything but one name (a list, None: the API takes one method per call)."""
    if not isinstance(name, str):
        raise TypeError(
            f"method must be one name (str), e.g. 'gradcam', not {type(name).__name__}; "
            "call explain once per method"
        )
    key = name.strip().lower()
    if key.startswith("smooth-"):
        inner = canonical(key[len("smooth-") :])
        if inner.startswith("smooth-") or inner == "smoothgrad":
            raise ValueError(f"method {name!r}: smooth- wraps a method once (smoothgrad is smooth-saliency)")
        return "smooth-" + inner
    key = ALIASES.get(key, key)
    if key not in METHODS:
        several = "; the API takes one method per call; loop over them" if "," in name else ""
        raise ValueError(
            f"unknown method {name!r}; choose from {', '.join(METHODS)} (or smooth-<method>){several}"
        )
    return key


def takes_layer(name: str) -> bool:
    """Whether a method explains a layer (CAMs) rather than input pixels."""
    key = canonical(name).removeprefix("smooth-")
    return "layer" in inspect.signature(METHODS[key].__init__).parameters


def make_method(model: Any, method: str = "gradcam", layer: Any = None, **options: Any) -> Method:
    """A (cached) method instance for ``model``; unknown options raise TypeError listing the valid ones.

    Every method also takes ``normalize`` (default True): False returns maps as computed (a
    CAM's ReLU'd weighted sum, saliency's absolute gradients, occlusion's score drop, in the
    target's units), not scaled to [0, 1] per image, so magnitudes compare across images and
    classes, as captum's attributions and tf-keras-vis's ``normalize_cam=False`` do (Grad-CAM++
    leaves out its ``exp(score)`` factor, as pytorch-grad-cam does, so its raw magnitudes differ
    from tf-keras-vis's by that factor per image). Several fused layers are still each scaled
    before they are combined.
    """
    from agelens.explain.layers import as_age_model, default_layer_spec, layer_names_of

    am = as_age_model(model)
    name = canonical(method)
    layer = layer_names_of(am, layer)  # keras Layer objects (as pytorch-grad-cam takes) -> their names
    # The default layer belongs in the key: one Keras model may be wrapped with different metadata.
    default = default_layer_spec(am) if layer is None else None
    if options.get("normalize") is True:  # the default, said: the same method, traced once
        options = {k: v for k, v in options.items() if k != "normalize"}
    key = (
        name,
        _freeze(layer),
        default,
        _freeze(options),
        tuple(am.class_names),
        am.group_output,
        am.age_output,
        am.input_range,  # wrap_keras_model(km, input_range=...) twice must not share a method
        am.input_size,
    )
    per_model = _CACHE.setdefault(am.keras_model, {})
    if key not in per_model:
        per_model[key] = _build(am, name, layer, dict(options))
    return per_model[key]


def _build(am: Any, name: str, layer: Any, options: dict[str, Any]) -> Method:
    smooth = name.startswith("smooth-") or name == "smoothgrad"
    inner_name = name.removeprefix("smooth-")
    smooth_opts = {k: options.pop(k) for k in SMOOTH_OPTIONS if k in options} if smooth else {}
    normalize = bool(options.pop("normalize", True))
    cls = METHODS[inner_name]
    accepted = _accepted(cls)
    if layer is not None:
        if "layer" not in accepted:
            raise ValueError(f"method {inner_name!r} explains input pixels and takes no layer")
        options["layer"] = layer
    unknown = sorted(set(options) - accepted)
    if unknown:
        extra = {"normalize", *(SMOOTH_OPTIONS if smooth else ())}
        valid = sorted((accepted - {"self", "model"}) | extra)
        hint = _model_reading_hint(unknown)
        raise TypeError(f"method {name!r} got unknown options {unknown}; valid: {', '.join(valid)}{hint}")
    method = cls(am, **options)
    outer = SmoothGrad(method, **smooth_opts) if smooth else method
    outer.normalize = normalize  # the outer run() scales; a wrapped method's raw maps are averaged
    return outer


MODEL_READING = ("class_names", "input_range", "input_size", "class_output", "age_output", "one_unit", "bins")
"""``wrap_keras_model``/``load_model`` keywords: how a model is read, not how a method runs."""


def _model_reading_hint(unknown: list[str]) -> str:
    """Where options that say how the model is read belong (a user passed ``class_names=`` to explain)."""
    misplaced = [k for k in unknown if k in MODEL_READING]
    if not misplaced:
        return ""
    said = ", ".join(misplaced)
    verb = "is" if len(misplaced) == 1 else "are"
    kw = ", ".join(f"{k}=..." for k in misplaced)
    return (
        f". {said} {verb} how the model is read: pass {'it' if len(misplaced) == 1 else 'them'} to "
        f"agelens.wrap_keras_model(model, {kw}) (or load_model(path, {kw})) and explain that"
    )


def effective_options(method: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every option ``method`` runs with: its defaults, overridden by ``options`` (layer aside).

    Why: a saved explanation must say what ran. ``{}`` for "the defaults" would not survive a
    change of default (Integrated Gradients' steps, Score-CAM's channel cap), and a reader
    comparing with another library needs the numbers (e.g. ``max_channels=64``).
    """
    name = canonical(method)
    smooth = name.startswith("smooth-") or name == "smoothgrad"
    out = _defaults(METHODS[name.removeprefix("smooth-")])
    if smooth:
        from agelens.explain.gradients import SmoothGrad

        out |= _defaults(SmoothGrad)
    out.pop("layer", None)
    return out | {k: v for k, v in (options or {}).items() if k != "layer"}


def resolved_options(model: Any, method: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`effective_options`, with a default left open (occlusion's ``window=None``) as the
    method resolves it for ``model`` (a seventh of its input side): the numbers that ran.

    The method instance comes from :func:`make_method`'s cache, so after a run this costs nothing.
    """
    ran = effective_options(method, options)
    if any(v is None for v in ran.values()):
        built = {k: v for k, v in (options or {}).items() if k != "target"}  # a call's, not the method's
        ran = _fill_open(ran, make_method(model, method, **built))
    return ran


def _fill_open(ran: dict[str, Any], m: Method) -> dict[str, Any]:
    """``ran`` with each ``None`` replaced by the value method ``m`` (or the method it wraps) chose."""
    return {
        k: getattr(m, k, getattr(getattr(m, "inner", None), k, None)) if v is None else v
        for k, v in ran.items()
    }


def _defaults(cls: type) -> dict[str, Any]:
    """Keyword defaults of ``cls.__init__`` up its MRO while each passes ``**kwargs`` on."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for p, v in params.items():
            if v.default is not v.empty and p not in ("self", "model", "method"):
                out.setdefault(p, v.default)
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
    return out


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
        if not any(v.kind == v.VAR_KEYWORD for v in params.values()):
            break
    return names - {"self", "model"}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.shape, value.tobytes())
    return value


def attribute(
    model: Any, x: Any, method: str = "gradcam", layer: Any = None, target: Any = None, **options: Any
) -> np.ndarray:
    """Maps ``(N, S, S)`` float32 in [0, 1] for ``x``: model-sized ``(N, S, S, 3)`` float RGB 0..255.

    Fast path for metrics: no decoding or resizing, the method is cached per model and
    options, and the compiled step is traced once for any batch size. ``target`` is as in
    :func:`agelens.explain.targets.resolve_target` (default: each image's predicted class).
    Floats all in 0..1 (arrays or tensors) are scaled to 0..255 with a warning, as :func:`explain`
    does: read as 0..255 they are a black image and its map is wrong, not just scaled. Every
    method's own ``attribute`` applies the same rule (and refuses NaN or infinite pixels).
    """
    return make_method(model, method, layer, **options).attribute(x, target)


def explain(
    model: Any,
    images: Any,
    method: str = "gradcam",
    layer: Any = None,
    target: Any = None,
    detect: bool = False,
    **options: Any,
) -> Explanation:
    """Explain photos as given (or their largest face, with ``detect``); maps come back at each photo's size.

    ``model``: an ``AgeModel`` or a keras.Model (wrapped with ``wrap_keras_model``).
    ``images``: a path, PIL image, uint8 array (HxWx3 or NxHxWx3), bytes, or a list of those.
    ``method``: one name (see :func:`list_methods`); call once per method for several.
    ``layer``: name, index, ``last-conv``, ``early``/``mid``/``late``, a keras Layer of the model
    (``km.get_layer("c2")``, or its ``.output``), or a list of those; by default the
    layer the model declares (the shipped model: ``block_13_expand_relu``), else ``last-conv``.
    ``target``: class name/index, ``predicted`` (default), ``old-young``, ``age``, a list, a callable.
    ``detect``: crop each photo to its largest face, framed like the training chips, first; the
    explanation's images are then the crops (a face crop or a faceless photo stays as it is).
    ``options``: method options (``batch_size``, ``fuse``, ``max_batch``, ``max_channels``,
    ``steps``, ``n``/``sigma`` for ``smooth-*``...).
    """
    from agelens.data.images import resize_for_model

    if not options.get("normalize", True):
        raise ValueError(
            "explain() lays maps scaled to [0, 1] over photos; for maps as computed use "
            "attribute(model, x, ..., normalize=False) or make_method(..., normalize=False)"
        )
    m = make_method(model, method, layer, **options)
    photos, sources = load_photos(images)
    faces = None
    if detect:
        photos, faces = _crop_faces(photos, sources)
    size = m.size
    x = np.stack([resize_for_model(p, size) for p in photos])  # uint8: never taken for 0..1 floats
    res = m.run(x, target)
    warn_blank_maps(m, res.maps)
    maps = [to_photo(res.maps[i], p.shape[:2], m.signed_maps) for i, p in enumerate(photos)]
    same = len({mp.shape for mp in maps}) == 1
    return Explanation(
        maps=np.stack(maps) if same else maps,
        probabilities=res.probabilities,
        class_names=list(m.model.class_names),
        layer=",".join(m.layers),
        method=m.name,
        target=f"none ({m.name} is class-agnostic)"
        if m.class_agnostic
        else _describe(res.target, m.model.class_names),
        images=photos,
        ages=res.ages,
        sources=sources,
        model_path=_model_label(model, m),
        settings=_settings(m, options, detect),
        faces=faces,
        model_read_as=getattr(m.model, "read_as", None),
    )


def count_blank(maps: Any) -> int:
    """How many of ``maps`` (an array of them, or a list of photo-size ones) are all zero."""
    return sum(not np.any(m) for m in maps)


class BlankMapsWarning(UserWarning):
    """Some maps are all zero: no positive evidence for the target at that layer (a ReLU of a
    negative weighted sum), not "nothing matters". The CLI words it its own way, once per method."""


def warn_blank_maps(method: Method, maps: np.ndarray) -> int:
    """Warn (:class:`BlankMapsWarning`) when maps are all zero, as the docs promise; returns how many."""
    blank = count_blank(maps)
    if blank:
        at_layer = method.layers != ["input"]
        advice = " at this layer; try another layer or method" if at_layer else "; try another method"
        said = f"{blank} of {len(maps)} maps are all zero (no positive evidence for the target{advice})"
        warnings.warn(BlankMapsWarning(f"{method.name}: {said}"), stacklevel=caller_stacklevel())
    return blank


def _crop_faces(
    photos: list[np.ndarray], sources: list[str]
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Each photo's largest face, framed like the training chips, and what was found; a photo
    with no face is explained whole, with a warning (as the CLI prints it), never silently."""
    from agelens.model.faces import crop_largest_face

    crops, faces = [], []
    for photo, source in zip(photos, sources, strict=True):
        crop, box = crop_largest_face(photo)
        face: dict[str, Any] = {
            "photo_size": [int(photo.shape[1]), int(photo.shape[0])],
            "face_found": box is not None,
            "crop_box_xywh": crop_box_xywh(photo, crop, box),
        }
        if box is None:
            warnings.warn(f"{source}: {no_face_note(photo)}", stacklevel=caller_stacklevel())
        else:
            face["face_box_xywh"] = [int(v) for v in box]
        crops.append(crop)
        faces.append(face)
    return crops, faces


def crop_box_xywh(photo: np.ndarray, crop: np.ndarray, box: Any) -> list[int]:
    """``[x, y, width, height]`` in ``photo``'s pixels of what :func:`crop_largest_face` returned
    for it: a map lies on the crop, and without this a reader cannot lay it back on the photo.

    The chip square around ``box`` (it may run past the photo's edge, where the edge was
    repeated), or the whole photo when it was kept whole (no face, or a face filling the frame).
    """
    if box is None or crop is photo:
        return [0, 0, int(photo.shape[1]), int(photo.shape[0])]
    from agelens.model.faces import chip_box

    x0, y0, side = chip_box(box)
    return [int(x0), int(y0), int(side), int(side)]


def _model_label(model: Any, m: Method) -> str:
    """The model's file, or for an in-memory model its name: two saved runs' models stay apart."""
    if m.model.path:
        return str(m.model.path)
    km = getattr(model, "keras_model", model)
    return f"<in-memory keras.Model {getattr(km, 'name', '?')!r}>"


def _settings(m: Method, options: dict[str, Any], detect: bool) -> dict[str, Any]:
    """What ran, for the manifest: every option, with a default left open (``window=None``) as resolved."""
    ran = _fill_open(effective_options(m.name, options), m)
    if not ran.get("signed") and not has_signed_form(m.name):
        ran.pop("signed", None)  # every CAM takes the keyword; only some have a signed form to record
    # The pixel range the model was fed is a guess for a plain model (model.pixel_range.range_guess):
    # recorded, so a map made on 255x too bright input can be told from the others.
    input_range = getattr(m.model, "input_range", "0-255")
    said = {k: _jsonable(v) for k, v in ran.items()} | _recorded(m)
    return said | {"detect": detect, "input_range": input_range}


def _recorded(m: Method) -> dict[str, Any]:
    """What building ``m`` (or the method it wraps) found that says what its maps are, beyond its
    options: guided backprop's count of guided and unguided activations (all-gelu: saliency's map)."""
    for method in (m, getattr(m, "inner", None)):
        if isinstance(recorded := getattr(method, "recorded", None), dict):
            return dict(recorded)
    return {}


def _describe(target: Any, names: list[str]) -> str:
    describe: Callable[..., str] | None = getattr(target, "describe", None)
    return describe(names) if describe else str(target)


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, int | float | str | bool | type(None)) else repr(v)


def load_photos(images: Any) -> tuple[list[np.ndarray], list[str]]:
    """Decode ``images`` into RGB uint8 photos and a source label per photo."""
    from agelens.data.images import load_image

    if isinstance(images, np.ndarray) and images.ndim == 4:
        items: list[Any] = list(images)
    elif isinstance(images, list | tuple):
        items = list(images)
    else:
        items = [images]
    photos, sources = [], []
    for i, item in enumerate(items):
        source = str(item) if isinstance(item, str | Path) else f"<image {i}>"
        photos.append(load_image(item, name=None if isinstance(item, str | Path) else source))
        sources.append(source)
    if not photos:
        raise ValueError("no images given")
    return photos, sources


def to_photo(m: np.ndarray, shape: tuple[int, int], signed: bool = False) -> np.ndarray:
    """Place a model-input map back on a photo of ``shape`` (inverse of the centred square crop).

    Values are kept in [0, 1], or [-1, 1] for ``signed`` maps, and the resized map's largest
    magnitude is the model-size map's (1 unless the map is blank): bilinear resizing lands
    between samples, so a one-pixel peak of 1 came out as 0.9 and a signed map never reached
    the ends of its colour scale, though the docs say maps are scaled by their largest magnitude.
    """
    h, w = int(shape[0]), int(shape[1])
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    out = np.zeros((h, w), np.float32)
    # Shrinking by area averages every pixel in; bilinear would sample some and skip the rest.
    how = cv2.INTER_AREA if side < m.shape[0] else cv2.INTER_LINEAR
    square = m if m.shape[0] == side else cv2.resize(m, (side, side), interpolation=how)
    peak, reached = float(np.max(np.abs(m), initial=0.0)), float(np.max(np.abs(square), initial=0.0))
    if reached > 0:
        square = square * np.float32(peak / reached)
    out[top : top + side, left : left + side] = np.clip(square, -1.0 if signed else 0.0, 1.0)
    return out
