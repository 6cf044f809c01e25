"""Turn an :class:`AgeModel` and a method name into the plain callables the metrics take.

Kept apart from the metrics so they never import TensorFlow or the explain engine
themselves: tests feed numpy toys, the CLI feeds the real model through here.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import numpy as np

from agelens.metrics.base import HOW_TO_GET, Explainer, ModelExplainer, PredictFn, n_classes_of, random_maps

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
        return _compiled_predict(am, batch_size), n_classes_of(am)
    if callable(model):
        return model, None
    raise TypeError(f"cannot predict with {type(model).__name__}; {HOW_TO_GET['predict_fn']}")


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


def class_names_of(*sources: Any) -> list[str] | None:
    """The class names of the first of ``sources`` that names its classes, else None.

    A keras.Model (or its bound ``predict``) is read through :func:`as_age_model`, the wrap
    ``agelens.explain`` applies to it, so ``targets="old"`` or ``"old-young"`` mean for a metric
    what they meant to ``explain`` on the same model. Anything else is asked for its own
    ``class_names`` (an AgeModel, a callable carrying them); a plain callable names none.
    """
    for source in sources:
        if source is None:
            continue
        model = as_age_model(source)
        names = getattr(source if model is None else model, "class_names", None)
        if names is not None:
            return [str(n) for n in names]
    return None


_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""keras.Model -> {(input size, class output, input range): its traced forward pass}."""


def age_predict_fn(model: Any, batch_size: int = 64) -> PredictFn:
    """``x -> (N,)`` expected ages in years from ``model``'s age output, traced once like the class output.

    Only a model can give it (an AgeModel, a keras.Model or its bound ``predict``): a bare
    callable says nothing about which of its numbers is an age, so it is refused by name.
    """
    am = as_age_model(model)
    if am is None:
        raise TypeError(
            f"target 'age' reads the model's age output; pass predict_fn=the model (an AgeModel or "
            f"keras.Model with an age output), not a {type(model).__name__}"
        )
    if getattr(am, "age_output", None) is None:
        raise ValueError("target 'age': this model has no age output; use a class or a contrast target")
    return _compiled_predict(am, batch_size, output="age")


def _compiled_predict(model: Any, batch_size: int, output: str = "class") -> PredictFn:
    """The model's one traced forward pass to its class (or age) output, fed ``batch_size`` images at a time.

    Why the cache is keyed by the Keras model and not by ``model``: ``predict_fn=keras_model``
    wraps it in a new AgeModel on every metric call, and a cache kept on the wrapper traced
    the network again each time (an Average Drop call on 8 images of a 32 px MobileNetV2 took
    1.2-1.6 s here, 0.015 s with the trace kept). The batch size is the chunking's business
    only, so one trace serves every batch size. Entries die with the Keras model (the forward
    pass holds it weakly).
    """
    import keras

    key_name = "age" if output == "age" else "probabilities"
    if keras.backend.backend() != "tensorflow":  # nothing traced, nothing worth caching
        return lambda x: np.asarray(model.predict(x, batch_size=batch_size, flip=False)[key_name])
    km = model.keras_model
    head = model.age_output if output == "age" else model.group_output
    key = (int(model.input_size), head, str(getattr(model, "input_range", "0-255")))
    per_model = _FORWARDS.setdefault(km, {})
    if key not in per_model:
        per_model[key] = _trace_forward(km, *key)
    width = 1 if output == "age" else n_classes_of(model) or 0
    return _chunked(per_model[key], batch_size, width)


def _trace_forward(km: Any, size: int, head: str | int, input_range: str) -> Any:
    """``x (n, size, size, 3)`` float 0..255 -> class probabilities (or the age), traced once for any n.

    It never averages in the mirror image (``flip=False``): the maps explain the un-flipped
    forward pass. It holds ``km`` weakly, so the cache keyed by ``km`` can let it go.
    """
    import tensorflow as tf

    from agelens.model.age_model import AgeModel
    from agelens.model.pixel_range import PIXEL_FEEDS

    model_ref, feed = weakref.ref(km), PIXEL_FEEDS[input_range]

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def forward(x: Any) -> Any:
        return AgeModel._pick(model_ref()(feed(x), training=False), head)

    return forward


def _chunked(forward: Any, batch_size: int, n_classes: int) -> PredictFn:
    """``x -> outputs`` through ``forward``, ``batch_size`` images per call."""
    import tensorflow as tf

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [forward(tf.constant(x[s : s + batch_size])).numpy() for s in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, n_classes), np.float32)

    predict.forward = forward  # type: ignore[attr-defined]  # the shared trace, for tests
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

    # A target given with the method (``target="age"``, a contrast) is what the maps explain;
    # the metric's per-image classes then only choose which score the metric itself reads.
    # A metric reading the age or a contrast hands over that spec itself (``"age"``).
    opts = dict(opts)
    target = opts.pop("target", None)
    if target is None:
        target = targets if isinstance(targets, str) else [int(t) for t in np.asarray(targets).reshape(-1)]
    return np.asarray(attribute(model, np.asarray(x, np.float32), method=method, target=target, **opts))


def method_explainer(model: Any, method: str, **opts: Any) -> Explainer:
    """An :data:`Explainer` bound to ``model`` for one method name of ``agelens.explain.METHODS``.

    It carries ``method`` and ``options``, so ``score_methods`` records what ran, not defaults.
    """

    def explainer(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return attribute_by_target(model, x, targets, method, **opts)

    return _labelled(explainer, method, opts)


def method_model_explainer(method: str, **opts: Any) -> ModelExplainer:
    """A :data:`ModelExplainer` (model passed per call) for the sanity checks; ``target="age"``
    (or any target ``explain`` takes) fixes what every call explains."""

    def explainer(model: Any, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return attribute_by_target(model, x, targets, method, **opts)

    return _labelled(explainer, method, opts)


def _labelled(fn: Any, method: str, opts: dict[str, Any]) -> Any:
    fn.method, fn.options = method, dict(opts)
    return fn


def input_size_of(*models: Any) -> int | None:
    """Input side in pixels of the first of ``models`` that says it (an AgeModel, a keras.Model), else None.

    Metrics check ``x`` against it before predicting: a photo-size array otherwise fails deep
    inside the traced forward pass with thousands of characters of TensorFlow signature.
    """
    for model in models:
        am = as_age_model(model)
        size = getattr(am, "input_size", None)
        if isinstance(size, int | np.integer) and size > 0:
            return int(size)
    return None


def explanation_inputs(explanation: Any, size: Any) -> tuple[np.ndarray, np.ndarray]:
    """Model-size ``x`` (float RGB 0..255) and ``maps (N, S, S)`` from an :class:`Explanation`, for metrics.

    ``agelens.explain`` feeds the model the centred square crop of each photo resized by
    :func:`agelens.data.images.resize_for_model` and upsamples the map back onto the whole
    photo; metrics must perturb what the model saw. So ``x`` is that same crop and each
    map is cut to the same square and resized back to ``size``, keeping map and image
    pixels aligned. ``size`` is an int, an AgeModel, a keras.Model (the model explained) or
    anything with ``input_size``. (With model-size arrays already in hand,
    ``agelens.explain.attribute`` gives such maps directly.)

    Maps stay in [0, 1], or in [-1, 1] for a signed explanation (``signed=True``): as in
    captum and Quantus the sign is kept, so the ranking metrics order evidence against the
    target below neutral pixels instead of tying it with them (each metric's docstring says
    how it reads negative values).

    An explanation loaded with grey stand-ins for photos it could not get back
    (``explanation.stand_ins``) gives them as they are, with a warning naming them: their
    scores would measure grey squares, not the photos.

    Given a model, it is checked against the one the explanation was made with, as far as
    ``explanation.model_read_as`` (or, lacking it, ``explanation.class_names``) records it:

    * another input size, input range or other class names (as many) only **warn**, in one
      line naming what differs: scoring one model's maps on another is a legitimate
      experiment (do a 64 px model's maps still point at what a 112 px model uses?), and
      ``x`` is then cut at this model's size, which is what its metrics need;
    * another **number** of classes raises a ValueError: the explanation's targets and
      predicted classes are indices into its model's classes, so on this model they would
      name other classes or none, and every class score would answer another question.
      Pass ``size=model.input_size`` (a pixel count is not checked) to score them anyway,
      with targets chosen for this model.
    """
    from agelens.data.images import fit_square, resize_for_model

    stand_ins = list(getattr(explanation, "stand_ins", None) or [])
    if stand_ins:
        import warnings

        sources = getattr(explanation, "sources", None) or []
        named = ", ".join(
            f"image {i} ({sources[i]})" if i < len(sources) else f"image {i}" for i in stand_ins
        )
        warnings.warn(
            f"{named}: a grey stand-in for a photo the loaded explanation could not get back; its "
            "scores measure grey pixels, not the photo: leave it out, or restore the photo and load again",
            stacklevel=2,
        )
    model = as_age_model(size)
    if not isinstance(size, int | np.integer):
        check_explained_by(explanation, size if model is None else model)
    size = model.input_size if model is not None else getattr(size, "input_size", size)
    if not isinstance(size, int | np.integer) or size < 1:
        raise TypeError(f"size must be a pixel count or the model explained, got {type(size).__name__}")
    size = int(size)
    x = np.stack([resize_for_model(img, size) for img in explanation.images]).astype(np.float32)
    low = -1.0 if getattr(explanation, "signed", False) else 0.0
    maps = [np.clip(fit_square(np.asarray(m, np.float32), size), low, 1.0) for m in explanation.maps]
    return x, np.stack(maps)


READ_AS_CHECKED = ("input_size", "input_range", "class_names")
"""What :func:`explanation_inputs` compares between a model and ``Explanation.model_read_as``."""


def check_explained_by(explanation: Any, model: Any) -> None:
    """Warn in one line where ``model`` differs from the model ``explanation`` was made with (input
    size, input range, class names), or raise where its number of classes differs; see
    :func:`explanation_inputs` for why. Only what both sides say is compared: an explanation
    without ``model_read_as`` (an older save) is checked on its ``class_names`` alone."""
    recorded = getattr(explanation, "model_read_as", None)
    recorded = dict(recorded) if isinstance(recorded, dict) else {}
    if "class_names" not in recorded and getattr(explanation, "class_names", None):
        recorded["class_names"] = list(explanation.class_names)
    now = {k: getattr(model, k, None) for k in READ_AS_CHECKED}
    shown = {"input_size": "input size {} px", "input_range": "input range {}", "class_names": "classes {}"}
    diffs = []
    for key in READ_AS_CHECKED:
        was, is_ = recorded.get(key), now[key]
        if was is None or is_ is None:
            continue
        if key == "class_names":
            was, is_ = [str(n) for n in was], [str(n) for n in is_]
            if len(was) != len(is_):
                raise ValueError(
                    f"explanation_inputs: the model has {len(is_)} classes ({', '.join(is_)}) but the "
                    f"explanation was made with a model of {len(was)} ({', '.join(was)}): its targets and "
                    "predicted classes would name other classes here; pass the model explained, or "
                    "size=model.input_size to score the maps on this model with targets chosen for it"
                )
            was, is_ = ", ".join(was), ", ".join(is_)
        elif key == "input_size":
            was, is_ = int(was), int(is_)
        if was != is_:
            diffs.append(f"{shown[key].format(is_)} (explained with {was})")
    if diffs:
        import warnings

        warnings.warn(
            f"explanation_inputs: this model is not the one the explanation was made with: "
            f"{'; '.join(diffs)}; x is cut for this model, so its scores judge these maps on another "
            "model (pass the model explained to score it on its own)",
            stacklevel=3,
        )


def available_methods() -> list[str]:
    """Method names of the explain engine (empty when it is not installed yet)."""
    try:
        from agelens.explain import METHODS
    except ImportError:
        return []
    return list(METHODS)
