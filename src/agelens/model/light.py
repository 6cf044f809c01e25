"""Predicting without TensorFlow: a model file's TFLite copy, found again by the file's own bytes.

``agelens predict one.jpg`` spent about 10 of its 11.5 s importing TensorFlow (6 s) and
rebuilding the Keras model (3.7 s) for one forward pass that TFLite's interpreter runs in
milliseconds. The converted copy is already cached (:mod:`agelens.model.fast`), but that
cache is keyed by the loaded weights, so finding it needed the very load it could save.

So after a run that predicted through TFLite, a small record is written beside the
converted copy, keyed by what the command was given: the SHA-256 of the model file's
bytes, ``--input-size`` and ``--class-names``. It holds what :func:`agelens.model.wrap.wrap_keras_model`
worked out (class names, input size, which output is which, whether the model rescales its
input, the model's metadata). The next run with the same file and options rebuilds the
:class:`~agelens.model.age_model.AgeModel` from the record and the flatbuffer, with LiteRT's
interpreter (``ai-edge-litert``), and never imports TensorFlow or Keras. A changed file
has another hash, so a stale copy is never used. Anything missing or unreadable means "no
light model": the caller loads the model the usual way, which is never wrong, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agelens import __version__
from agelens.model.age_model import AgeModel
from agelens.model.fast import FastPredictor, cache_dir
from agelens.model.io import SHIPPED_MODEL
from agelens.provenance import update_with_file

RECORD_FORMAT = 3
"""Part of every key, with the source of the modules that read and convert a model (:func:`light_key`):
a record written by code that read models differently is never found again."""
_READERS = ("io.py", "age_model.py", "wrap.py", "pixel_range.py", "age_head.py", "fast.py", "light.py")


def _litert_interpreter() -> type | None:
    """LiteRT's interpreter, which needs no TensorFlow; ``None`` where it is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Interpreter


def litert_installed() -> bool:
    """Whether predictions can run without TensorFlow once a model is converted."""
    return _litert_interpreter() is not None


def light_key(path: str | Path | None, options: dict[str, Any]) -> str:
    """What a command was given, as a cache key: the file's bytes (not its name) and the load options
    (``load_model``'s keywords: input size, class names, input range, class output)."""
    h = hashlib.sha256()
    update_with_file(h, path or SHIPPED_MODEL)
    h.update(json.dumps([RECORD_FORMAT, __version__, sorted(options.items())], default=str).encode())
    here = Path(__file__).parent
    for name in _READERS:  # how a model is read is part of what the record says about it
        h.update((here / name).read_bytes())
    return h.hexdigest()[:32]


def _record_path(key: str) -> Path:
    return cache_dir() / f"{key}.light.json"


def remember(model: AgeModel, options: dict[str, Any]) -> bool:
    """Record how to rebuild ``model`` without Keras, once its TFLite copy is cached; True if written.

    Call it after a prediction that went through TFLite, with the keywords the model was
    loaded with (``options``, as :func:`agelens.model.io.load_model` takes them). A model not
    loaded from a file, or whose conversion failed, is not recorded; nor is one whose file
    changed after loading (:func:`note_loaded` keeps the key its bytes had then).
    """
    from agelens.model.fast import _cached_path

    if model.path is None or getattr(model, "_fast_predictor", None) is None:
        return False
    try:
        key = getattr(model, "_light_key", None) or light_key(model.path, options)
        if key != light_key(model.path, options):  # the file changed since it was loaded: its
            return False  # bytes are no longer the weights converted, so record nothing
        flatbuffer = _cached_path(model)
        if not flatbuffer.is_file():
            return False
        record = {
            "format": RECORD_FORMAT,
            "model_file": str(model.path),
            "tflite": flatbuffer.name,
            "class_names": list(model.class_names),
            "input_size": int(model.input_size),
            "group_output": model.group_output,
            "age_output": model.age_output,
            "rescales_input": bool(model.rescales_input),
            "input_range": model.input_range,  # -1-1, caffe and torch are not rescales_input's two
            "input_range_guessed": model.input_range_guessed,  # the note a Keras load prints, again
            "metadata": model.metadata,
        }
        target = _record_path(key)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, default=str)
            os.replace(tmp, target)  # atomic: a concurrent run reads the old record or the new one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, TypeError, ValueError):  # an unwritable cache costs the next run its speed only
        return False
    return True


def note_loaded(model: AgeModel, key: str) -> AgeModel:
    """Keep on ``model`` the :func:`light_key` its file had when it was loaded (see :func:`remember`)."""
    object.__setattr__(model, "_light_key", key)
    return model


def light_model(
    path: str | Path | None, options: dict[str, Any] | None = None, key: str | None = None
) -> AgeModel | None:
    """The model at ``path`` (default: the shipped one) for TFLite prediction only, or ``None``.

    ``options``: the keywords it would be loaded with (:func:`agelens.model.io.load_model`'s);
    ``key``: their :func:`light_key` when the caller has it already (the file is hashed once).

    ``None`` when LiteRT is not installed, the file was never predicted with these options,
    or the cached copy is gone or unreadable. The result's ``keras_model`` is ``None``: it
    answers ``predict(..., fast=True)`` and nothing that needs Keras (explanations load the
    model as usual).
    """
    cls = _litert_interpreter()
    if cls is None:
        return None
    try:
        record = json.loads(_record_path(key or light_key(path, options or {})).read_text())
        if record.get("format") != RECORD_FORMAT:
            return None
        content = (cache_dir() / Path(record["tflite"]).name).read_bytes()
        from agelens.data.bins import AgeBins

        meta: dict[str, Any] = record["metadata"] or {}
        names = list(record["class_names"])
        bins = AgeBins(**meta["bins"]) if meta.get("bins") else (AgeBins() if len(names) == 3 else None)
        model = AgeModel(
            keras_model=None,
            class_names=names,
            input_size=int(record["input_size"]),
            bins=bins,
            metadata=meta,
            group_output=record["group_output"],
            age_output=record["age_output"],
            path=Path(path) if path is not None else SHIPPED_MODEL,
            rescales_input=bool(record["rescales_input"]),
            input_range_guessed=str(record.get("input_range_guessed") or ""),
            pixel_range=str(record.get("input_range") or ""),
        )
        object.__setattr__(model, "_fast_predictor", FastPredictor(model, content, cls))
    except Exception:  # noqa: BLE001 - a missing, stale or damaged record only means: load as usual
        return None
    return model
