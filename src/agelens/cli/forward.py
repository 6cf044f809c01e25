"""What ``evaluate`` and ``predict`` (and ``score``'s ``--detect`` line) share: how a model is
loaded for forward passes only, which engine runs it, and the words for how ``--detect`` went.

Why a module of its own: each command is a module of its own, and none should import another
command to reach a helper both use.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from agelens.cli.common import load_cli_model, say_how_read


class Engine(StrEnum):
    """How ``evaluate`` and ``predict`` run the model forward."""

    tflite = "tflite"
    keras = "keras"


def faces_found_phrase(found: list[bool | None]) -> str:
    """How ``--detect`` went, in the words the text output and ``evaluated_on`` share."""
    n, k = len(found), sum(bool(f) for f in found)
    rest = "" if k == n else "; the others scored whole"
    return f"the largest face cropped first (found in {k} of {n}{rest})"


def forward_model(model: Path | None, options: dict, light: bool):
    """The model for forward passes only: its TFLite copy without TensorFlow where a run with this
    file and these options recorded one (``light``; see :mod:`agelens.model.light`), else loaded by
    Keras, TensorFlow imported only now (a path typo has failed in a second, not after its start)."""
    from agelens.model.light import light_key, light_model, note_loaded

    key = light_key(model, options)  # before loading: the bytes that will be converted
    if light:
        found = light_model(model, options, key=key)
        if found is not None:
            say_how_read(found, options["input_range"], model)  # as load_cli_model says it
            return found
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    return note_loaded(load_cli_model(model, options), key)
