"""How a plain ``keras.Model`` is read as an age model: its image size, class output, age and pixels.

An agelens ``.keras`` file records how to feed and read its model (:mod:`agelens.model.io`);
a user's model says none of it. So it is worked out here from the model's input shape, its
outputs' widths, names and last layers, and the layers that act on its input (the pixel range:
:mod:`agelens.model.pixel_range`), unless an option overrules the guess (``input_size``,
``class_names``, ``input_range``, ``class_output``, ``age_output``, ``one_unit``, ``bins``).
A one-unit output gets a class head (:mod:`agelens.model.age_head`), logits a softmax, so every
reader gets one probability per class. Anything agelens cannot feed or read is refused here with
a one-line :class:`~agelens.model.age_model.ModelLoadError`, not later inside Keras with a traceback.
Keras itself is imported only when a model is wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agelens.data.bins import AgeBins
from agelens.model.age_model import INPUT_RANGES, ONE_UNIT_READINGS, AgeModel, ModelLoadError
from agelens.model.pixel_range import range_guess, recorded_range

SOFTMAX_ADDED = "agelens_softmax"
"""Name of the layer :func:`wrap_keras_model` puts on top of a class output to make its probabilities: a
softmax on logits or on the age groups' margins of an age regressor, the sigmoid of ``[-z, z]`` for a
one-unit sigmoid ``p = sigmoid(z)`` (:mod:`agelens.model.age_head`). The explain engine explains its input."""
AGE_NAMES = ("age", "age_output")
"""Output names read as the age in years when the model has another output (tutorials name it so)."""

Key = str | int
"""An output's key: a dict model's output name, or a position among a list model's outputs."""


def wrap_keras_model(
    km: Any,
    *,
    metadata: dict | None = None,
    input_size: int | None = None,
    class_names: list[str] | None = None,
    path: Path | None = None,
    input_range: str | None = None,
    class_output: str | int | None = None,
    age_output: str | int | None = None,
    bins: AgeBins | Sequence[float] | None = None,
    one_unit: str | None = None,
) -> AgeModel:
    """Wrap an in-memory Keras model, inferring what the metadata does not say.

    ``input_range`` (one of ``INPUT_RANGES``: "0-255", "0-1", "-1-1", "caffe", "torch"),
    ``class_output`` and ``age_output`` overrule the guesses (see
    :func:`~agelens.model.io.load_model`); our own files record them in their metadata.

    A class output with one unit gets a class head (:mod:`agelens.model.age_head`), read as
    ``one_unit`` says, else guessed: ``"probability"`` when it ends in a sigmoid, else ``"age"``.

    - ``"age"``: the output is the age in years (the age output: ``target="age"``, the age
      column); the classes are the groups of ``bins`` (default :class:`AgeBins`), each scored by
      its margin in years, ``min(age - lower edge, upper edge - age)``, so the predicted group is
      exactly the bin the age falls in, and the probabilities are a softmax over those margins.
      The metadata says so (``groups_from_age``); class targets explain the margins, so "old"
      follows the age's gradient and "young" its negative.
    - ``"probability"``: ``p`` becomes the classes ``[1 - p, p]`` (``class 0``, ``class 1`` unless
      named); class targets explain the pre-sigmoid logit ``z`` for class 1 and ``-z`` for class 0.
      A linear unit (no sigmoid: trained ``from_logits=True``) is that logit: ``p = sigmoid(output)``.

    ``bins`` also names the age bins of a model with one unit per age group (as many groups as
    classes; class names default to the bins' names). Metadata that records bins (an agelens
    model) refuses other edges: the model was trained or built for its own.
    """
    meta = dict(metadata or {})
    where = path or km.name
    bins = _checked_options(meta, where, input_range, one_unit, bins, class_names)
    size = _image_size(km, input_size, meta, where)
    out = _model_outputs(km)
    group_key, age_key, one_unit = _output_keys(out, meta, class_output, age_output, one_unit, where)
    reading: str | None = None  # how a one-unit class output is read: "age" or "probability"
    if _one_unit(_output(out, group_key)):  # it gets a class head
        km, group_key, age_key, group_tensor, reading, bins = _one_unit_head(
            km, out, group_key, age_key, one_unit, bins, class_names, meta, where
        )
    else:
        km, group_tensor = _wide_head(km, out, group_key, one_unit, meta, class_output, where)
    given_bins = bins
    names, bins = _classes(group_tensor, bins, class_names, meta, where)
    pixels, guessed = _pixel_range(km, meta, input_range)
    if reading is not None or given_bins is not None:  # recorded after the guesses that read ``meta``
        meta = dict(meta, bins=bins.to_dict()) if bins is not None else dict(meta)
        if reading is not None:
            meta.update(one_unit=reading, groups_from_age=reading == "age")
    at = (km, list(names), int(size), bins, meta, group_key, age_key, path)
    return AgeModel(*at, input_range_guessed=guessed, pixel_range=pixels)  # it sets rescales_input


def _checked_options(
    meta: dict,
    where: Any,
    input_range: str | None,
    one_unit: str | None,
    bins: AgeBins | Sequence[float] | None,
    class_names: list[str] | None,
) -> AgeBins | None:
    """The options that need no model, checked before any is used; ``bins`` as :class:`AgeBins`."""
    if input_range not in (None, *INPUT_RANGES):
        raise ModelLoadError(where, f"input range {input_range!r}: use one of {', '.join(INPUT_RANGES)}")
    if one_unit not in (None, *ONE_UNIT_READINGS):
        raise ModelLoadError(where, f"one_unit {one_unit!r}: use one of {', '.join(ONE_UNIT_READINGS)}")
    bins = _given_bins(bins, where)
    recorded = _recorded_bins(meta)
    if bins is not None and recorded is not None and bins.edges != recorded.edges:
        # Its classes (or, for a saved age regressor, the margins of its age groups) were made
        # for the recorded edges: other edges would only relabel them.
        raise ModelLoadError(
            where,
            f"bins {_edges(bins)} given, but the model records its own age bins ({_edges(recorded)}) and "
            "was trained or built for them; bins (--bins) are for plain Keras models",
        )
    if class_names is not None and (len(set(class_names)) != len(class_names) or not all(class_names)):
        raise ModelLoadError(where, f"class names {class_names}: each must be given, and once")
    return bins


def _image_size(km: Any, input_size: int | None, meta: dict, where: Any) -> int:
    """The side of the square images the model is fed, given, recorded or fixed by its input shape.

    agelens feeds one batch of square RGB images; any other input would fail later inside Keras
    with a traceback (or, for a non-square size, run on the wrong shape).
    """
    if len(km.inputs) != 1:
        raise ModelLoadError(where, f"the model has {len(km.inputs)} inputs; agelens needs one image input")
    shape = tuple(km.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ModelLoadError(where, f"input shape {shape}: agelens needs RGB images, shaped (N, S, S, 3)")
    if shape[1] and shape[2] and shape[1] != shape[2]:
        raise ModelLoadError(where, f"input shape {shape}: agelens feeds square images (S x S), not H x W")
    fixed = shape[1] or shape[2]
    if input_size and fixed and int(input_size) != int(fixed):
        raise ModelLoadError(where, f"input_size {input_size} given; the model takes {fixed} x {fixed} px")
    size = input_size or meta.get("input_size") or fixed
    if not size:
        raise ModelLoadError(
            where,
            f"input shape {shape} does not fix the image size; pass --input-size N "
            "(in Python: agelens.load_model(path, input_size=N), or agelens.wrap_keras_model(model, "
            "input_size=N) for a model in memory)",
        )
    return size


def _model_outputs(km: Any) -> Any:
    """The model's output: one tensor, or a dict or list of them."""
    try:
        return km.output
    except (AttributeError, ValueError):  # Keras 3 Sequential models only define .outputs
        return km.outputs[0]


def _output(out: Any, key: Key) -> Any:
    """Output ``key`` of a model's outputs (a dict or a list), or the only one."""
    return out[key] if isinstance(out, dict | list | tuple) else out


def _output_keys(
    out: Any,
    meta: dict,
    class_output: Key | None,
    age_output: Key | None,
    one_unit: str | None,
    where: Any,
) -> tuple[Key, Key | None, str | None]:
    """The class output's key, the age output's (``None``: none), and how a one-unit class output
    is read (``one_unit``, now ``"age"`` where the model's only age is its class output).

    Recorded in an agelens file's metadata, named by ``class_output`` and ``age_output``, else
    guessed (:func:`_guessed_keys`).
    """
    names = _output_names(out)
    group_key, age_key, age_by_name, unsure = _guessed_keys(out, names, meta)
    if class_output is not None:
        group_key = _named_output(out, class_output, where, names)
        age_by_name = unsure = False
    if age_output is not None:
        asked = _named_output(out, age_output, where, names, "the age")
        if age_by_name or unsure:  # no class output named or found: the classes are the age's groups
            group_key, age_by_name, unsure = asked, False, False
    if unsure:
        raise ModelLoadError(
            where,
            f"outputs {_listed(out, names)} each have one unit: name the one holding the classes "
            "(class_output=, --class-output) or the age in years (age_output=, --age-output)",
        )
    if age_by_name:  # read as the age its name says, whatever its last layer
        if one_unit == "probability":
            raise ModelLoadError(
                where,
                f"output {group_key!r} is read as the age (its name) and no other output holds class "
                "scores: name the output to read as a probability (class_output=, --class-output)",
            )
        one_unit = "age"
    if age_output is None:
        return group_key, age_key, one_unit
    if _one_unit(_output(out, group_key)) and asked == group_key:  # the one-unit output is the age
        if one_unit == "probability":
            raise ModelLoadError(
                where,
                f"output {age_output!r} is named both the age (age_output) and a probability (one_unit)",
            )
        return group_key, None, "age"  # the class head makes it the age output
    return group_key, _age_output(out, asked, age_output, group_key, where), one_unit


def _guessed_keys(out: Any, names: Sequence[str], meta: dict) -> tuple[Key, Key | None, bool, bool]:
    """The class and age outputs' keys as recorded (``meta``) or, for a plain model with several
    outputs (``{"age": ..., "group": ...}``, ``[age, group]``), guessed; and two flags.

    ``age_by_name``: no output holds class scores, so the classes are the groups of the output
    named as the age. ``unsure``: several one-unit outputs and none named, so which one holds the
    classes is not guessed.
    """
    group_key: Key = meta.get("group_output", 0)
    age_key = meta.get("age_output")
    if meta or not isinstance(out, dict | list | tuple):
        return group_key, age_key, False, False
    items = list(out.items()) if isinstance(out, dict) else list(enumerate(out))
    age_key = _named_age(out, names)
    wide = _first_wide(items)
    if isinstance(out, dict) and "age_group" in out:
        return "age_group", age_key, False, False
    if wide is not None:
        return wide, age_key, False, False
    if age_key is not None:
        return age_key, age_key, True, False
    return items[0][0], age_key, False, len(items) > 1


def _wide_head(
    km: Any, out: Any, group_key: Key, one_unit: str | None, meta: dict, class_output: Key | None, where: Any
) -> tuple[Any, Any]:
    """The model and its class probabilities' tensor, for a class output of more than one unit.

    Logits (a plain model trained with ``from_logits=True``) get a softmax: every reader of
    "probabilities" (predict, evaluate, the metrics, TFLite) would get raw scores otherwise, and
    the explain engine still explains the logits (the softmax's input).
    """
    group_tensor = _output(out, group_key)
    if one_unit is not None:
        raise ModelLoadError(
            where,
            f"one_unit={one_unit!r} is for a class output of one unit; output {group_key!r} "
            f"has shape {tuple(group_tensor.shape)}",
        )
    if (not meta or class_output is not None) and _ends_in_logits(group_tensor):
        import keras

        probs = keras.layers.Softmax(name=SOFTMAX_ADDED)(group_tensor)
        km = keras.Model(km.inputs, _replaced(out, group_key, probs), name=km.name)
        group_tensor = probs
    return km, group_tensor


def _classes(
    group_tensor: Any, bins: AgeBins | None, class_names: list[str] | None, meta: dict, where: Any
) -> tuple[list[str], AgeBins | None]:
    """The class names and the age bins named by them, checked against the class output's width.

    Names are given, recorded, the bins' own, or the default age groups for three classes
    (``class 0``, ``class 1``, ... otherwise).
    """
    n_classes = int(group_tensor.shape[-1] or 0)
    if len(group_tensor.shape) != 2 or n_classes < 2:
        raise ModelLoadError(
            where,
            f"class output shaped {tuple(group_tensor.shape)}: agelens needs one probability per class, "
            "shaped (N, classes) with 2 or more classes",
        )
    if bins is not None and bins.num_classes != n_classes:
        raise ModelLoadError(
            where,
            f"bins {_edges(bins)} make {bins.num_classes} age groups; the model has {n_classes} classes",
        )
    names = class_names or meta.get("class_names") or (list(bins.names) if bins is not None else None)
    if names is None:
        names = list(AgeBins().names) if n_classes == 3 else [f"class {i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise ModelLoadError(where, f"{len(names)} class names given for {n_classes} outputs")
    if bins is None:
        bins = AgeBins(**meta["bins"]) if meta.get("bins") else (AgeBins() if n_classes == 3 else None)
    elif list(bins.names) != list(names):
        bins = AgeBins(bins.edges, tuple(names))
    return names, bins


def _pixel_range(km: Any, meta: dict, input_range: str | None) -> tuple[str, str]:
    """The range the model is fed (an ``INPUT_RANGES`` name), and why where guessed: as given, as its
    file records (``input_range``, else ``rescales_input`` as files before the other ranges say),
    else as its layers say (:func:`~agelens.model.pixel_range.range_guess`)."""
    if input_range is not None:
        return input_range, ""
    if meta:  # an agelens file (or a record without a range: as the shipped model, 0-255)
        return recorded_range(meta) or "0-255", ""
    rescales, why = range_guess(km)
    return ("0-255" if rescales else "0-1"), why


def _replaced(out: Any, key: str | int, tensor: Any) -> Any:
    """The model's outputs (a dict, a list or one tensor) with output ``key`` replaced by ``tensor``."""
    if isinstance(out, dict):
        return {k: tensor if k == key else t for k, t in out.items()}
    if isinstance(out, list | tuple):
        return [tensor if i == key else t for i, t in enumerate(out)]
    return tensor


def _edges(bins: AgeBins) -> str:
    return ",".join(f"{e:g}" for e in bins.edges)


def _one_unit(tensor: Any) -> bool:
    """Whether a class output holds one value per image, ``(N, 1)`` or ``(N,)``: an age or a probability."""
    shape = tuple(tensor.shape)
    return len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)


def _one_unit_head(
    km: Any,
    out: Any,
    group_key: Key,
    age_key: Key | None,
    one_unit: str | None,
    bins: AgeBins | None,
    class_names: list[str] | None,
    meta: dict,
    where: Any,
) -> tuple[Any, Key, Key | None, Any, str, AgeBins | None]:
    """The model with a class head on its one-unit output ``group_key`` (see :mod:`agelens.model.age_head`).

    Returns the new Keras model, its class and age outputs, the class probabilities' tensor,
    the reading (``age`` or ``probability``) and the age bins (those of the groups, for an age).
    """
    import keras

    from agelens.model import age_head

    tensor = _output(out, group_key)
    shape = tuple(tensor.shape)
    ends = age_head.ends_in(tensor)
    if ends == "softmax":
        raise ModelLoadError(
            where,
            f"class output shaped {shape} ends in a softmax over one unit, which is always 1: agelens needs "
            "one probability per class, shaped (N, classes) with 2 or more classes",
        )
    reading = one_unit or age_head.guess_reading(tensor)
    if reading == "age":
        return _age_group_head(km, out, group_key, age_key, bins, class_names, meta, where)
    if bins is not None and bins.num_classes != 2:
        raise ModelLoadError(
            where,
            f"bins {_edges(bins)} make {bins.num_classes} age groups; output {group_key!r} is read as "
            "the probability of class 1 of 2 (one_unit='age' reads it as an age in years)",
        )
    probs = age_head.probability_head(tensor)
    new = keras.Model(km.inputs, _replaced(out, group_key, probs), name=km.name)
    return new, group_key, age_key, probs, reading, bins


def _age_group_head(
    km: Any,
    out: Any,
    group_key: Key,
    age_key: Key | None,
    bins: AgeBins | None,
    class_names: list[str] | None,
    meta: dict,
    where: Any,
) -> tuple[Any, Key, Key, Any, str, AgeBins]:
    """:func:`_one_unit_head` for an output read as the age in years: its groups, cut by the bins,
    become a new class output beside it, and it becomes the age output."""
    import keras

    from agelens.model import age_head

    if age_key is not None and age_key != group_key:
        raise ModelLoadError(
            where,
            f"output {group_key!r} has one unit, read as an age, but output {age_key!r} is the age: "
            "name the class output (class_output=) or read this one as a probability "
            "(one_unit='probability')",
        )
    bins = _age_bins(bins, class_names, meta, where)
    tensor = _output(out, group_key)
    probs = age_head.age_group_head(tensor, bins)
    if isinstance(out, dict):
        new_key: Key = "age_group" if "age_group" not in out else SOFTMAX_ADDED
        new_out = {**out, new_key: probs}
        age_key = group_key
    elif isinstance(out, list | tuple):
        new_key, new_out, age_key = len(out), [*out, probs], group_key
    else:
        new_key, new_out, age_key = "age_group", {"age": tensor, "age_group": probs}, "age"
    return keras.Model(km.inputs, new_out, name=km.name), new_key, age_key, probs, "age", bins


def _age_bins(bins: AgeBins | None, class_names: list[str] | None, meta: dict, where: Any) -> AgeBins:
    """The age groups an age in years is cut into: given, recorded, else the default, named by
    ``class_names`` where given."""
    if bins is None:
        bins = _recorded_bins(meta) or AgeBins()
    if bins.num_classes < 2:
        raise ModelLoadError(where, "bins without an edge make one age group; agelens needs 2 or more")
    if class_names is None:
        return bins
    if len(class_names) != bins.num_classes:
        raise ModelLoadError(
            where,
            f"{len(class_names)} class names given for {bins.num_classes} age groups ({_edges(bins)})",
        )
    return AgeBins(bins.edges, tuple(class_names))


def _named_output(
    out: Any, key: str | int, where: Any, names: Sequence[str] = (), what: str = "classes"
) -> str | int:
    """``key`` as an index into the model's outputs (a dict key, or a list position), checked.

    A list's (or a single output's) position may also be given by its Keras name (the name of the
    layer that makes it, :func:`_output_names`). ``what`` is what was asked of it, for the message.
    """
    if isinstance(out, dict):
        if str(key) in out:
            return str(key)
        listed = ", ".join(map(str, out))
    elif isinstance(out, list | tuple):
        if str(key).isdigit() and int(key) < len(out):
            return int(key)
        if str(key) in names:
            return list(names).index(str(key))
        listed = _listed(out, names)
    else:
        if str(key) == "0" or (names and str(key) == names[0]):
            return 0
        listed = f"{_listed(out, names)}, the model's only output"
    raise ModelLoadError(where, f"no output {key!r} to read {what} from; outputs: {listed}")


def _output_names(out: Any) -> list[str]:
    """The name of each output: a dict's keys, else the name of the layer that makes each tensor
    (Keras' output name; a tutorial's ``Dense(1, name="age_output")``)."""
    if isinstance(out, dict):
        return [str(k) for k in out]
    tensors = list(out) if isinstance(out, list | tuple) else [out]
    ops = (getattr(getattr(t, "_keras_history", None), "operation", None) for t in tensors)
    return [str(getattr(op, "name", "") or "") for op in ops]


def _listed(out: Any, names: Sequence[str]) -> str:
    """The outputs as a message names them: dict keys, else positions with their Keras names."""
    if isinstance(out, dict):
        return ", ".join(map(str, out))
    return ", ".join(f"{i} ({n})" if n else str(i) for i, n in enumerate(names))


def _named_age(out: dict | list | tuple, names: Sequence[str]) -> str | int | None:
    """The key of the one-unit output named as the age (:data:`AGE_NAMES`) beside other outputs."""
    keys = list(out) if isinstance(out, dict) else list(range(len(out)))
    if len(keys) < 2:
        return None
    for wanted in AGE_NAMES:
        for key, name in zip(keys, names, strict=False):
            if name == wanted and _one_unit(out[key]):
                return key
    return None


def _age_output(out: Any, age_key: str | int, key: str | int, group_key: str | int, where: Any) -> str | int:
    """``age_key`` (the output ``key`` names) checked as an age in years: one value per image, not
    the class output."""
    if age_key == group_key or not isinstance(out, dict | list | tuple):
        raise ModelLoadError(where, f"output {key!r} holds the classes; the age must be another output")
    shape = tuple(out[age_key].shape)
    if not _one_unit(out[age_key]):
        raise ModelLoadError(
            where, f"output {key!r} shaped {shape}: an age is one value per image, (N,) or (N, 1)"
        )
    return age_key


def _first_wide(outputs: list[tuple[Any, Any]]) -> Any:
    """The key of the first output with more than one unit: class scores, not an age in years
    (``None`` when every output has one unit).

    A model with several such outputs names its class output (``class_output=``, ``--class-output``).
    """
    return next((k for k, t in outputs if len(t.shape) == 2 and int(t.shape[-1] or 0) > 1), None)


def _given_bins(bins: Any, where: Any) -> AgeBins | None:
    """``bins=`` as :class:`AgeBins`: one already, or its edges in years (``[20, 40, 60]``), named as
    :meth:`AgeBins.parse` names them (as ``--bins`` does)."""
    if bins is None or isinstance(bins, AgeBins):
        return bins
    edges = list(bins) if isinstance(bins, list | tuple | np.ndarray) else None
    numbers = edges is not None and all(
        isinstance(e, int | float | np.number) and not isinstance(e, bool) for e in edges
    )
    if not numbers:
        raise ModelLoadError(
            where,
            "bins must be an AgeBins (agelens.data.bins) or its edges in years, e.g. [30, 60], "
            f"not {type(bins).__name__}",
        )
    if not edges:
        raise ModelLoadError(where, "bins [] has no edge: give at least one age in years, e.g. [30, 60]")
    try:
        return AgeBins.parse([float(e) for e in edges])
    except ValueError as e:
        raise ModelLoadError(where, f"bins {[float(x) for x in edges]}: {e}") from None


def _recorded_bins(meta: dict) -> AgeBins | None:
    """The age bins an agelens model file's metadata records (``None``: none, or unreadable)."""
    try:
        return AgeBins(**meta["bins"]) if meta.get("bins") else None
    except (TypeError, ValueError):
        return None


def _ends_in_logits(tensor: Any) -> bool:
    """Whether a plain model's class output comes straight from a linear Dense or conv layer (logits).

    Conservative: anything else (a softmax, a sigmoid, a nested model, a custom layer) is
    taken as probabilities, as before.
    """
    import keras

    op = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    linear = getattr(getattr(op, "activation", None), "__name__", None) == "linear"
    return linear and isinstance(op, keras.layers.Dense | keras.layers.Conv1D | keras.layers.Conv2D)
