"""Load and save age models together with the metadata that makes them usable.

A ``.keras`` file is a zip; we add one extra member, ``agelens.json``, holding the
class names, bin edges, input size and training summary. Keras ignores unknown
members, so our files still open in plain Keras, and a user's plain Keras model
(``.keras`` or legacy ``.h5``) loads here with metadata inferred from its shapes.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agelens import __version__
from agelens.data.bins import AgeBins

META_MEMBER = "agelens.json"
SOFTMAX_ADDED = "agelens_softmax"
"""Name of the layer :func:`wrap_keras_model` puts on top of a class output to make its probabilities: a
softmax on logits or on the age groups' margins of an age regressor, the sigmoid of ``[-z, z]`` for a
one-unit sigmoid ``p = sigmoid(z)`` (:mod:`agelens.model.age_head`). The explain engine explains its input."""
ONE_UNIT_READINGS = ("age", "probability")
"""How a one-unit output may be read: ``one_unit=`` of :func:`load_model` and :func:`wrap_keras_model`."""
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "agelens-utkface.keras"


class ModelLoadError(ValueError):
    """One-line error naming the model file and the reason it could not be used."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class AgeModel:
    """A Keras model plus what agelens needs to feed and read it.

    ``keras_model`` takes ``(N, S, S, 3)`` float RGB in 0..255 (our models rescale
    internally). ``group_output`` names the dict key or index of the class
    probabilities; ``age_output`` the expected-age output where one exists.
    """

    keras_model: Any
    class_names: list[str]
    input_size: int
    bins: AgeBins | None = None
    metadata: dict = field(default_factory=dict)
    group_output: str | int = 0
    age_output: str | int | None = None
    path: Path | None = None
    rescales_input: bool = True
    input_range_guessed: str = ""
    """Why :attr:`input_range` is what it is, where it was guessed from the model's layers (a plain
    Keras model read without ``input_range=``): "no Rescaling or Normalization layer acts on its
    input"...; "" where it was given or an agelens file records it. Commands say it once."""

    @property
    def input_range(self) -> str:
        """The pixels it is fed, as ``--input-range`` names them: "0-255", or "0-1" (divided by 255)."""
        return "0-255" if self.rescales_input else "0-1"

    @property
    def read_as(self) -> dict[str, Any]:
        """How the model is read, given or guessed (--input-size, --class-names, --class-output,
        --age-output, --input-range, --one-unit, --bins): a plain model's numbers and maps depend
        on each, and a guess is only checkable if a manifest writes it down."""
        read = {
            "input_size": int(self.input_size),
            "class_names": [str(n) for n in self.class_names],
            "class_output": self.group_output,
            "age_output": self.age_output,
            "input_range": self.input_range,
        }
        if self.metadata.get("one_unit") in ONE_UNIT_READINGS:  # a one-unit model: how it was read
            read["one_unit"] = self.metadata["one_unit"]
            read["groups_from_age"] = self.groups_from_age
            if self.groups_from_age and self.bins is not None:
                read["age_bins"] = list(self.bins.edges)
        return read

    @property
    def groups_from_age(self) -> bool:
        """Whether the classes are the model's age in years cut by its bins (a one-unit age regressor).

        Its probabilities are then a softmax over each group's margin in years (how far inside
        its bin the age lies), not a trained classifier's confidence; see :mod:`agelens.model.age_head`.
        """
        return bool(self.metadata.get("groups_from_age", False))

    @property
    def has_age(self) -> bool:
        return self.age_output is not None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @staticmethod
    def _pick(outputs: Any, key: str | int) -> Any:
        """One output of a multi-output model (dict or list), or the only one."""
        return outputs[key] if isinstance(outputs, dict | list | tuple) else outputs

    @property
    def test_time_flip(self) -> bool:
        """Whether predictions average the image and its mirror image (set in the model's metadata).

        Faces are left-right symmetric, so the mirror is a free second look; on the
        shipped model it adds about 0.7 points of held-out accuracy (see its card).
        """
        return bool(self.metadata.get("test_time_flip", False))

    def predict(
        self, images: np.ndarray, batch_size: int = 128, flip: bool | None = None, fast: bool = False
    ) -> dict[str, np.ndarray]:
        """Class probabilities (and ages in years where the model has them) for model-sized images.

        ``flip`` averages each image with its mirror image; ``None`` follows the model's
        metadata (:attr:`test_time_flip`). ``fast`` runs the same weights through
        TensorFlow Lite (:mod:`agelens.model.fast`, about 2x faster on CPU) where it is
        available, and through Keras otherwise; bulk scoring uses it, explanations do not.
        The converted copy is made on the first fast call: weights changed after it are
        not seen by later fast calls on this object (load the model again).
        """
        x = np.asarray(images, dtype=np.float32)
        if not self.rescales_input:
            x = x / 255.0
        views = [x, x[:, :, ::-1]] if (self.test_time_flip if flip is None else flip) else [x]
        runner = None
        if fast and len(x):
            from agelens.model.fast import AGE, PROBS, fast_predictor

            runner = fast_predictor(self)
        probs, ages = [], []
        for v in views:
            if runner is not None:
                out = runner(v, batch_size=min(batch_size, 64))
                probs.append(out[PROBS])
                if AGE in out:
                    ages.append(out[AGE])
                continue
            out = self.keras_model.predict(v, batch_size=batch_size, verbose=0)
            probs.append(np.asarray(self._pick(out, self.group_output), dtype=np.float32))
            if self.age_output is not None:
                ages.append(np.asarray(self._pick(out, self.age_output), dtype=np.float32).reshape(-1))
        result = {"probabilities": np.mean(probs, axis=0)}
        if ages:
            result["age"] = np.mean(ages, axis=0)
        return result


def write_metadata(path: str | Path, metadata: dict) -> None:
    """Add (or replace) ``agelens.json`` inside a saved ``.keras`` zip, atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".keras.tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                if item.filename != META_MEMBER:
                    dst.writestr(item, src.read(item.filename))
            dst.writestr(META_MEMBER, json.dumps(metadata, indent=1, default=_json_default))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_metadata(path: str | Path) -> dict:
    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read(META_MEMBER)) if META_MEMBER in z.namelist() else {}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        return {}


def bins_in_file(path: str | Path | None) -> AgeBins | None:
    """The age bins saved in a model file's metadata (default: the shipped model's), read without Keras.

    A data set can then be read (and refused) before TensorFlow's start-up; ``None`` where the
    file records none, as for a plain Keras model, which is read with the default bins.
    """
    saved = read_metadata(path if path is not None else SHIPPED_MODEL).get("bins")
    try:
        return AgeBins(**saved) if saved else None
    except (TypeError, ValueError):  # damaged metadata: loading the model reports it
        return None


def save_model(model: AgeModel, path: str | Path, extra: dict | None = None) -> Path:
    """Save as ``.keras`` with metadata; written to a temp file and renamed (atomic)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: models are saved in the .keras format (use a .keras suffix)")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(model.metadata)
    meta.update(extra or {})
    meta.update(
        class_names=list(model.class_names),
        input_size=int(model.input_size),
        bins=model.bins.to_dict() if model.bins else None,
        group_output=model.group_output,
        age_output=model.age_output,
        rescales_input=bool(model.rescales_input),  # a plain 0..1 model would come back read as 0..255
        agelens_version=__version__,
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".keras")
    os.close(fd)
    try:
        model.keras_model.save(tmp)
        write_metadata(tmp, meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    model.metadata, model.path = meta, path
    return path


def load_model(
    path: str | Path | None = None,
    *,
    input_size: int | None = None,
    class_names: list[str] | None = None,
    input_range: str | None = None,
    class_output: str | int | None = None,
    age_output: str | int | None = None,
    bins: AgeBins | Sequence[float] | None = None,
    one_unit: str | None = None,
) -> AgeModel:
    """Load ours (default: the shipped model) or a user's plain Keras model.

    Unknown metadata is inferred: input size from the input shape, class names from
    the output width (the default age groups when it has three units), the pixel range the
    model expects from a scaling layer on its input (``input_range="0-255"`` or ``"0-1"`` says it),
    the class output of a multi-output model (``class_output``: its dict key, list index or Keras
    output name), and its age in years (a one-unit output named ``age`` or ``age_output`` beside
    others; ``age_output`` names another, one value per image, for ``target="age"`` and a callable
    target's ``age``). A model whose outputs all have one unit has the groups of its age as classes,
    and, when no output is named the age, is refused until ``class_output`` or ``age_output`` says.

    A class output with one unit is read as an age in years (a regressor), or, when it ends in
    a sigmoid, as the probability of class 1; ``one_unit="age"`` or ``"probability"`` overrules
    that guess. An age becomes the age output and its groups are the age cut by ``bins`` (an
    :class:`AgeBins`, or its edges in years such as ``[20, 40, 60]``; default young < 30 <=
    middle-aged < 60 <= old); a probability ``p`` becomes two classes ``[1 - p, p]``. ``bins`` is
    for a plain Keras model: a file that records its own bins refuses other edges. See
    :func:`wrap_keras_model`. A file that does not load raises :class:`ModelLoadError` with a
    one-line reason.
    """
    path = check_model_file(path)
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # only after the cheap checks: a typo in a path fails in a second
    import keras

    import agelens.model.age_head  # noqa: F401 - registers the layers a saved one-unit head uses

    try:
        km = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; the user needs one line
        reason = _first_sentences(str(exc)) or type(exc).__name__
        hint = _custom_code_hint(str(exc))
        raise ModelLoadError(
            path, f"not a loadable Keras model ({type(exc).__name__}: {reason}){hint}"
        ) from None
    meta = read_metadata(path) if path.suffix == ".keras" else {}
    return wrap_keras_model(
        km,
        metadata=meta,
        input_size=input_size,
        class_names=class_names,
        path=path,
        input_range=input_range,
        class_output=class_output,
        age_output=age_output,
        bins=bins,
        one_unit=one_unit,
    )


def check_model_file(path: str | Path | None) -> Path:
    """The model file to load (default: the shipped one), refused now if it cannot be a Keras model.

    These checks read a few bytes, so a command can run them before TensorFlow's start-up
    (seconds). They also replace Keras' own text for a file that is not a model, which is
    misleading: a text file named ``.keras`` was reported as "File not found".
    """
    path = Path(path) if path is not None else SHIPPED_MODEL
    if not path.exists():
        hint = " (the shipped model is missing from this install)" if path == SHIPPED_MODEL else ""
        raise ModelLoadError(path, f"file not found{hint}")
    if path.is_dir():
        raise ModelLoadError(path, "is a folder; give the model file (.keras or legacy .h5)")
    if path.suffix not in {".keras", ".h5", ".hdf5"}:
        raise ModelLoadError(path, f"unsupported model format {path.suffix!r} (use .keras or legacy .h5)")
    try:
        reason = _not_a_model_file(path)
    except OSError as e:
        raise ModelLoadError(path, f"cannot read it ({e.strerror or e})") from None
    if reason:
        raise ModelLoadError(path, f"not a Keras model file ({reason})")
    return path


# An HDF5 file starts with this signature, at byte 0 or after a user block of 512, 1024, 2048, ... bytes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _not_a_model_file(path: Path) -> str | None:
    """Why ``path`` cannot hold a Keras model, judged by its container format; ``None`` if it may."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with path.open("rb") as f:
        if path.suffix != ".keras":
            return None if _has_hdf5_signature(f, size) else f"a {path.suffix} file is HDF5; this one is not"
        if zipfile.is_zipfile(f):
            return None
        f.seek(0)
        if f.read(4) == b"PK\x03\x04":  # a zip's start without its end: cut off
            return "a .keras file is a zip archive; this one is damaged or incomplete"
        return "a .keras file is a zip archive; this one is not"


def _has_hdf5_signature(f: Any, size: int) -> bool:
    """Whether the open binary file ``f`` carries the HDF5 signature where the format allows it."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        f.seek(offset)
        if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


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

    ``input_range`` ("0-255" or "0-1"), ``class_output`` and ``age_output`` overrule the guesses
    (see :func:`load_model`); our own files record them in their metadata.

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
    # agelens feeds one batch of square RGB images; any other input would fail later
    # inside Keras with a traceback (or, for a non-square size, run on the wrong shape).
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
    group_key: str | int = meta.get("group_output", 0)
    age_key = meta.get("age_output")
    try:
        out = km.output
    except (AttributeError, ValueError):  # Keras 3 Sequential models only define .outputs
        out = km.outputs[0]
    names = _output_names(out)
    age_by_name = False  # no output holds class scores: the classes are the groups of the named age
    unsure = False  # several one-unit outputs and none named: which holds the classes is not guessed
    if not meta and isinstance(out, dict | list | tuple):  # e.g. {"age": ..., "group": ...}, [age, group]
        items = list(out.items()) if isinstance(out, dict) else list(enumerate(out))
        age_key = _named_age(out, names)
        wide = _first_wide(items)
        if isinstance(out, dict) and "age_group" in out:
            group_key = "age_group"
        elif wide is not None:
            group_key = wide
        elif age_key is not None:
            group_key, age_by_name = age_key, True
        else:
            group_key, unsure = items[0][0], len(items) > 1
    if class_output is not None:
        group_key = _named_output(out, class_output, where, names)
        age_by_name = unsure = False
    if age_output is not None:
        asked = _named_output(out, age_output, where, names, "the age")
        if age_by_name or unsure:  # no class output named or found: the classes are the age's groups
            group_key, age_by_name, unsure = asked, False, False
    group_tensor = out[group_key] if isinstance(out, dict | list | tuple) else out
    one = _one_unit(group_tensor)
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
    if age_output is not None:
        if one and asked == group_key:  # the one-unit output is the age
            if one_unit == "probability":
                raise ModelLoadError(
                    where,
                    f"output {age_output!r} is named both the age (age_output) and a probability (one_unit)",
                )
            one_unit, age_key = "age", None  # the class head makes it the age output
        else:
            age_key = _age_output(out, asked, age_output, group_key, where)
    reading = None
    if one:
        km, group_key, age_key, group_tensor, reading, bins = _one_unit_head(
            km, out, group_key, age_key, one_unit, bins, class_names, meta, where
        )
    elif one_unit is not None:
        raise ModelLoadError(
            where,
            f"one_unit={one_unit!r} is for a class output of one unit; output {group_key!r} "
            f"has shape {tuple(group_tensor.shape)}",
        )
    elif (not meta or class_output is not None) and _ends_in_logits(group_tensor):
        # A model trained with from_logits=True: every reader of "probabilities" (predict,
        # evaluate, the metrics, TFLite) would get raw scores. A softmax on top fixes all of
        # them at once; the explain engine still explains the logits (the softmax's input).
        import keras

        probs = keras.layers.Softmax(name=SOFTMAX_ADDED)(group_tensor)
        km = keras.Model(km.inputs, _replaced(out, group_key, probs), name=km.name)
        group_tensor = probs
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
    given_bins = bins
    if bins is None:
        bins = AgeBins(**meta["bins"]) if meta.get("bins") else (AgeBins() if n_classes == 3 else None)
    elif list(bins.names) != list(names):
        bins = AgeBins(bins.edges, tuple(names))
    rescales, guessed = (meta.get("rescales_input", True), "") if meta else _range_guess(km)
    if input_range is not None:
        rescales, guessed = input_range == "0-255", ""
    if reading is not None or given_bins is not None:  # recorded after the guesses that read ``meta``
        meta = dict(meta, bins=bins.to_dict()) if bins is not None else dict(meta)
        if reading is not None:
            meta.update(one_unit=reading, groups_from_age=reading == "age")
    return AgeModel(km, list(names), int(size), bins, meta, group_key, age_key, path, rescales, guessed)


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
    group_key: str | int,
    age_key: str | int | None,
    one_unit: str | None,
    bins: AgeBins | None,
    class_names: list[str] | None,
    meta: dict,
    where: Any,
) -> tuple[Any, str | int, str | int | None, Any, str, AgeBins | None]:
    """The model with a class head on its one-unit output ``group_key`` (see :mod:`agelens.model.age_head`).

    Returns the new Keras model, its class and age outputs, the class probabilities' tensor,
    the reading (``age`` or ``probability``) and the age bins (those of the groups, for an age).
    """
    import keras

    from agelens.model import age_head

    tensor = out[group_key] if isinstance(out, dict | list | tuple) else out
    shape = tuple(tensor.shape)
    ends = age_head.ends_in(tensor)
    if ends == "softmax":
        raise ModelLoadError(
            where,
            f"class output shaped {shape} ends in a softmax over one unit, which is always 1: agelens needs "
            "one probability per class, shaped (N, classes) with 2 or more classes",
        )
    reading = one_unit or age_head.guess_reading(tensor)
    if reading == "probability":
        if bins is not None and bins.num_classes != 2:
            raise ModelLoadError(
                where,
                f"bins {_edges(bins)} make {bins.num_classes} age groups; output {group_key!r} is read as "
                "the probability of class 1 of 2 (one_unit='age' reads it as an age in years)",
            )
        probs = age_head.probability_head(tensor)
        new = keras.Model(km.inputs, _replaced(out, group_key, probs), name=km.name)
        return new, group_key, age_key, probs, reading, bins
    if age_key is not None and age_key != group_key:
        raise ModelLoadError(
            where,
            f"output {group_key!r} has one unit, read as an age, but output {age_key!r} is the age: "
            "name the class output (class_output=) or read this one as a probability "
            "(one_unit='probability')",
        )
    if bins is None:
        bins = _recorded_bins(meta) or AgeBins()
    if bins.num_classes < 2:
        raise ModelLoadError(where, "bins without an edge make one age group; agelens needs 2 or more")
    if class_names is not None:
        if len(class_names) != bins.num_classes:
            raise ModelLoadError(
                where,
                f"{len(class_names)} class names given for {bins.num_classes} age groups ({_edges(bins)})",
            )
        bins = AgeBins(bins.edges, tuple(class_names))
    probs = age_head.age_group_head(tensor, bins)
    if isinstance(out, dict):
        new_key: str | int = "age_group" if "age_group" not in out else SOFTMAX_ADDED
        new_out = {**out, new_key: probs}
        age_key = group_key
    elif isinstance(out, list | tuple):
        new_key, new_out, age_key = len(out), [*out, probs], group_key
    else:
        new_key, new_out, age_key = "age_group", {"age": tensor, "age_group": probs}, "age"
    return keras.Model(km.inputs, new_out, name=km.name), new_key, age_key, probs, reading, bins


INPUT_RANGES = ("0-255", "0-1")
"""Pixel ranges a model may expect: raw 0..255 (it rescales inside), or 0..1 (agelens divides by 255)."""


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


AGE_NAMES = ("age", "age_output")
"""Output names read as the age in years when the model has another output (tutorials name it so)."""


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


def _custom_code_hint(message: str) -> str:
    """The way out when Keras cannot rebuild a model without its code (custom or Lambda layers).

    Such a file needs the Python that defined it; agelens takes the model object as well as a path.
    """
    words = ("deserializ", "custom", "lambda", "safe_mode", "unknown layer", "could not locate")
    if not any(w in message.lower() for w in words):
        return ""
    return (
        "; a model with custom or Lambda layers needs its own code: load it in Python "
        "(keras.saving.load_model with custom_objects, or safe_mode=False for a file you trust) "
        "and pass the keras.Model to agelens.explain (or agelens.wrap_keras_model, for its options)"
    )


def _first_sentences(text: str, limit: int = 240) -> str:
    """The first line of ``text``, cut after a whole sentence (or word) when longer than ``limit``.

    Keras' messages run long; a cut in mid-word ("If you trust the") reads as a broken message.
    """
    line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if len(line) <= limit:
        return line
    head = line[:limit]
    end = head.rfind(". ")
    return head[: end + 1] if end > limit // 3 else head.rsplit(" ", 1)[0] + "..."


def _has_rescaling(km: Any) -> bool:
    """Whether a plain user model takes raw 0..255 pixels (it scales them itself), judged by its layers.

    Only layers that act on the input count: those reached from the model's input through layers
    that leave each pixel's place and meaning alone (other preprocessing layers such as
    ``Resizing``, ``CenterCrop`` or random flips, and the inputs of nested models, as in a
    ``keras.applications`` base), before any convolution or dense layer. A ``Rescaling`` on the
    way out (``Rescaling(100)`` turning age / 100 back into years) says nothing of the pixels.

    A Rescaling on the input means 0..255 (EfficientNet's Rescaling is followed by a Normalization
    that only centres). Without one, a Normalization's own mean tells which range it was
    adapted on: pixel means are about 100 on 0..255 data and about 0.5 on 0..1 data (a model
    normalising 0..1 input was fed 255x too bright before); an un-adapted one (mean 0) says
    nothing and counts as 0..255, as before. Neither layer: 0..1, the usual convention for a
    model trained on scaled images. ``input_range`` overrules all this.
    """
    return _range_guess(km)[0]


def _range_guess(km: Any) -> tuple[bool, str]:
    """:func:`_has_rescaling`, and what it went by, in words a note can end with."""
    import keras

    layers = _input_side(km)[0]
    if any(isinstance(layer, keras.layers.Rescaling) for layer in layers):
        return True, "a Rescaling layer acts on its input"
    norms = [layer for layer in layers if isinstance(layer, keras.layers.Normalization)]
    if not norms:
        return False, "no Rescaling or Normalization layer acts on its input"
    means = [getattr(layer, "mean", None) for layer in norms]
    if not any(_mean_says_0_255(mean) for mean in means):
        return False, "the Normalization on its input was adapted on 0..1 data"
    return True, "the Normalization on its input was adapted on 0..255 data (or not adapted)"


def _keeps_pixels(layer: Any) -> bool:
    """Whether ``layer`` passes pixels on without mixing them into features: a preprocessing layer."""
    import keras

    if isinstance(layer, keras.layers.InputLayer | keras.layers.Identity | keras.layers.Rescaling):
        return True
    if isinstance(layer, keras.layers.Normalization):
        return True
    # Resizing, CenterCrop, RandomFlip, RandomRotation...: Keras' image preprocessing layers
    return any(c.__name__ == "BaseImagePreprocessingLayer" for c in type(layer).__mro__)


def _input_side(model: Any, depth: int = 0) -> tuple[list[Any], bool]:
    """The preprocessing layers (:func:`_keeps_pixels`) that act on ``model``'s input, nested models'
    included, and whether every output of ``model`` is still pixels (a preprocessing model).

    Follows tensors from the model's inputs: a layer call whose inputs are all pixels is on the
    input side; if the layer keeps pixels, its outputs are pixels too. Tensors are compared by
    identity, so a layer shared with another model counts only through its calls in this graph.
    """
    import keras

    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):  # an unbuilt or subclassed model: no graph to follow
        return [], False
    pixels = {id(t) for t in inputs}
    found: list[Any] = []
    calls = [(layer, node) for layer in model.layers for node in getattr(layer, "_inbound_nodes", [])]
    done: set[int] = set()
    grew = True
    while grew:  # until no call is added: layers listed out of order still join
        grew = False
        for i, (layer, node) in enumerate(calls):
            ins = list(getattr(node, "input_tensors", []) or [])
            if i in done or not ins or not all(id(t) in pixels for t in ins):
                continue
            done.add(i)
            if isinstance(layer, keras.Model) and depth < 32:
                inner, passes = _input_side(layer, depth + 1)
                found.extend(inner)
            else:
                passes = _keeps_pixels(layer)
                if passes:
                    found.append(layer)
            if passes:
                pixels.update(id(t) for t in getattr(node, "output_tensors", []) or [])
                grew = True
    return found, bool(outputs) and all(id(t) in pixels for t in outputs)


def _mean_says_0_255(mean: Any) -> bool:
    """A Normalization mean above 2 (or none, or all zero: not adapted) reads as 0..255 input."""
    try:
        top = float(np.max(np.abs(np.asarray(mean)))) if mean is not None else 0.0
    except (TypeError, ValueError):
        return True
    return top == 0.0 or top > 2.0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
