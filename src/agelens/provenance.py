"""What every saved result records about how it was made: one place, so no writer forgets a part.

A manifest is only enough to reproduce a run when it says which code ran (agelens, TensorFlow,
Keras, NumPy, Python), when, with which command, on which model file (a path alone does not
say: the file may have been retrained in place) and on which data (a path as typed is relative
to a folder the manifest does not name). :func:`provenance` gives the first four,
:func:`model_fingerprint` the model, :func:`resolved_paths` the data.

Versions are read from the installed packages' metadata, never by importing TensorFlow: an
evaluation through TensorFlow Lite, or a report, must not start it to say which one is installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shlex
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agelens import __version__

SHIPPED_MODEL_NAME = "agelens-utkface.keras"
SHIPPED_MODEL_PATH = Path(__file__).resolve().parent / "assets" / SHIPPED_MODEL_NAME
"""``agelens.model.io.SHIPPED_MODEL``, spelled out: importing the model code would load Keras."""
PATH_KEYS = ("data", "holdout", "masks", "split")
"""Settings whose values are paths the user typed (the report shows them by name only)."""
_CLI_NAMES = ("agelens", "agelens.exe", "agelens-script.py")
"""``sys.argv[0]``'s name when the ``agelens`` console script runs."""


def versions() -> dict[str, str | None]:
    """agelens, TensorFlow, Keras, NumPy and Python versions (None for one not installed).

    NumPy is there because it seeds the random baseline maps and the bootstrap: the same seed
    may give other numbers under another NumPy.
    """
    return {
        "agelens": __version__,  # the code that ran, even from a source tree never installed
        "tensorflow": _installed("tensorflow-cpu", "tensorflow"),
        "keras": _installed("keras"),
        "numpy": _installed("numpy"),
        "python": platform.python_version(),
    }


def _installed(*names: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def command_line(argv: Sequence[str] | None = None) -> str | None:
    """The ``agelens`` command as typed (shell-quoted, ``agelens explain 'my photo.jpg'``), or None
    when agelens was not run as that command (a notebook, a test, a script importing it).

    Why from ``sys.argv``: it is the only record of the options as the user gave them; the
    settings a manifest lists are the ones they resolved to.
    """
    args = list(sys.argv if argv is None else argv)
    if not args or Path(args[0]).name not in _CLI_NAMES:
        return None
    return shlex.join(["agelens", *args[1:]])


def now() -> str:
    """The current time in UTC, to the second, ISO 8601 (``2026-11-29T16:42:52+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def provenance(model: str | Path | None = None, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``created``, ``versions``, ``command_line`` (only when run as the ``agelens`` command) and,
    for a model file that can be read, ``model_file`` (:func:`model_fingerprint`)."""
    out: dict[str, Any] = {"created": now(), "versions": versions()}
    if (typed := command_line(argv)) is not None:
        out["command_line"] = typed
    if (fingerprint := model_fingerprint(model)) is not None:
        out["model_file"] = fingerprint
    return out


_FINGERPRINTS: dict[tuple[str, int, int], dict[str, Any]] = {}


def model_fingerprint(path: str | Path | None) -> dict[str, Any] | None:
    """``{"name", "sha256", "bytes", "shipped"}`` of a model file's bytes (of every file, by
    relative name, for a SavedModel folder), and ``weights_sha256`` (:func:`weights_fingerprint`)
    for a ``.keras`` or legacy ``.h5`` file whose weights can be read; None for no path, an
    in-memory model (``<in-memory ...>``) or a file that cannot be read.

    Which model made a result is its bytes, not its path: a model retrained in place, or the
    shipped one of another agelens version, has the same path. ``shipped`` says it is the model
    that ships with agelens. The name, never the path: manifests are shared, and the path is
    recorded beside it where a command records one. ``sha256`` tells two files apart;
    ``weights_sha256`` tells whether two files hold the same model, as two saves of the same
    weights differ in their bytes (save time, object ids, epoch seconds). Hashing a few-MB file
    takes milliseconds; it is done once per file, size and modification time in a process (a
    folder each time).
    """
    if path is None or str(path).startswith("<"):
        return None
    p = Path(path)
    try:
        if p.is_dir():  # a folder's time does not change with a file deep inside it: hashed each time
            return _fingerprint(p)
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _FINGERPRINTS:
            _FINGERPRINTS[key] = _fingerprint(p)
    except OSError:
        return None
    return dict(_FINGERPRINTS[key])


def _fingerprint(p: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    size = 0
    for f in files:
        if f is not p:  # a folder's layout is part of the model: hash each file's name too
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        size += update_with_file(h, f)
    shipped = p.name == SHIPPED_MODEL_NAME and p.resolve() == SHIPPED_MODEL_PATH
    out = {"name": p.name, "sha256": h.hexdigest(), "bytes": size, "shipped": shipped}
    if p.is_file() and (weights := weights_fingerprint(p)) is not None:
        out["weights_sha256"] = weights
    return out


KERAS_WEIGHTS_MEMBER = "model.weights.h5"
"""Where a ``.keras`` zip holds its weights (Keras 3; a sharded save has none, and gets no fingerprint)."""
_NOT_MODEL_WEIGHTS = ("optimizer", "optimizer_weights")
"""Top-level HDF5 groups of the optimizer's state (``.keras``, legacy ``.h5``): not the model's weights."""


def weights_fingerprint(path: str | Path) -> str | None:
    """SHA-256 of the weight arrays in a ``.keras`` or legacy ``.h5`` model file: each array's
    name (its HDF5 path), dtype, shape and values, in the order of their names; None for another
    file, or one whose weights cannot be read.

    Why: two saves of the same weights are different files (Keras writes the save time and object
    ids into a ``.keras`` file, agelens the seconds of each epoch), so ``sha256`` cannot tell that
    two same-seed runs trained the same model; this can. The optimizer's state is left out: it is
    not the model, and a model loaded without it and saved again still holds the same weights.
    Read with h5py from the file itself (the weights member of a ``.keras`` zip, read whole into
    memory: a zip member seeks slowly), never by building the model, so a manifest costs no
    TensorFlow start-up. A legacy ``.h5`` file names its arrays by layer name, a ``.keras`` file
    by layer type and position: compare fingerprints of files of one format.
    """
    p = Path(path)
    try:
        import h5py  # lazily: `agelens predict`'s fast path imports this module

        if p.suffix == ".keras":
            with zipfile.ZipFile(p) as z:
                source: Any = io.BytesIO(z.read(KERAS_WEIGHTS_MEMBER))
        elif p.suffix in {".h5", ".hdf5"}:
            source = p
        else:
            return None
        with h5py.File(source, "r") as f:
            return _hash_arrays(f.get("model_weights", f))
    except (ImportError, OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None  # not a model's weights: the file's sha256 is still recorded


def _hash_arrays(root: Any) -> str:
    """SHA-256 of each dataset under the HDF5 group ``root`` (but the optimizer's), sorted by name:
    a header (name, little-endian dtype, shape) and the values, so equal bytes in another shape
    or dtype, or under another name, differ."""
    import h5py
    import numpy as np

    names: list[str] = []
    root.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    h = hashlib.sha256()
    for name in sorted(names):
        if name.split("/", 1)[0] in _NOT_MODEL_WEIGHTS:
            continue
        values = np.asarray(root[name][()])
        if values.dtype.hasobject:
            raise ValueError(f"{name} holds objects, not numbers")
        values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        h.update(json.dumps([name, values.dtype.str, list(values.shape)]).encode() + b"\0")
        h.update(values.tobytes())
    return h.hexdigest()


def update_with_file(digest: Any, path: str | Path) -> int:
    """Feed the bytes of the file at ``path`` into ``digest`` (a :mod:`hashlib` object); the bytes read.

    The one place model files are hashed (a manifest's fingerprint, the light model's cache key,
    :func:`agelens.model.light.light_key`): read in 1 MiB blocks, so a large file is never held
    whole; the digest is the caller's, as both hash more than one file's bytes into it.
    """
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size


def resolved_paths(settings: Mapping[str, Any], keys: Iterable[str] = PATH_KEYS) -> dict[str, Any]:
    """``settings`` with each path under ``keys`` made absolute, the one typed kept as
    ``<key>_as_typed`` where it differs (``data: /home/me/runs/score20``, ``data_as_typed: score20``).

    Why: ``score20`` is relative to the folder the command ran in, which no manifest names. Only
    relative values naming an existing file or folder are resolved (the demo's ``data`` is a
    description); one typed absolute is kept as typed, with no ``_as_typed`` copy (the report
    shows ``data`` by its name, but would show a copy under another key in full). A value already
    resolved (its ``_as_typed`` is there) is left as it is.
    """
    out: dict[str, Any] = {}
    for key, value in settings.items():
        out[key] = value
        if key not in keys or not isinstance(value, str) or not value or f"{key}_as_typed" in settings:
            continue
        p = Path(value).expanduser()
        if p.is_absolute() or not p.exists():  # typed absolute: nothing was relative to the cwd
            continue
        out[key], out[f"{key}_as_typed"] = str(p.resolve()), value  # the typed one right after it
    return out
