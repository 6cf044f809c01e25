"""Load and save age models together with the metadata that makes them usable.

A ``.keras`` file is a zip; we add one extra member, ``agelens.json``, holding the
class names, bin edges, input size and training summary. Keras ignores unknown
members, so our files still open in plain Keras, and a user's plain Keras model
(``.keras`` or legacy ``.h5``) loads here with metadata inferred from its shapes
(:mod:`agelens.model.wrap`). A file is checked by its first bytes before TensorFlow starts.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agelens import __version__
from agelens.data.bins import AgeBins
from agelens.model.age_model import AgeModel, ModelLoadError
from agelens.model.wrap import wrap_keras_model

META_MEMBER = "agelens.json"
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "agelens-utkface.keras"


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
        input_range=model.input_range,  # and a -1-1, caffe or torch one as 0..1 (rescales_input False)
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
    model expects from a scaling layer on its input (``input_range="0-255"`` or ``"0-1"`` says it;
    ``"-1-1"``, ``"caffe"`` or ``"torch"``, never guessed, for a model trained on a
    ``keras.applications`` ``preprocess_input`` mode applied outside it),
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
    :func:`~agelens.model.wrap.wrap_keras_model`. A file that does not load raises
    :class:`ModelLoadError` with a one-line reason.
    """
    path = check_model_file(path)
    km = _read_keras_file(path)
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


def _read_keras_file(path: Path) -> Any:
    """The Keras model in a checked file (:func:`check_model_file`), any Keras failure as one line.

    TensorFlow starts only here, after the cheap checks: a typo in a path fails in a second.
    """
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    import agelens.model.age_head  # noqa: F401 - registers the layers a saved one-unit head uses

    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; the user needs one line
        reason = _first_sentences(str(exc)) or type(exc).__name__
        hint = _custom_code_hint(str(exc))
        raise ModelLoadError(
            path, f"not a loadable Keras model ({type(exc).__name__}: {reason}){hint}"
        ) from None


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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
