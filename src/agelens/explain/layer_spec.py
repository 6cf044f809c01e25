"""What ``--layer`` may say, checked without TensorFlow: keywords, indices and the names a model file holds.

Why a module of its own: ``agelens explain --layer blok_13_expand_relu`` used to fail only after
TensorFlow's start and the model's load (~20 s on these cores). The names are in the ``.keras``
file's ``config.json``; reading them takes milliseconds, so a typo is refused at once, with the
nearest names. :func:`could_be_layer` only refuses what ``ModelView.resolve`` would refuse too
(a name that is no layer's); everything else is still judged after loading.
"""

from __future__ import annotations

import difflib
import json
import zipfile
from pathlib import Path
from typing import Any

KEYWORDS = ("last-conv", "early", "mid", "late")
"""Layer keywords ``resolve_layer`` takes besides names and indices."""
INPUT = "input"
"""What ``agelens layers`` calls the model's input, whatever its name in the file."""


def layer_names_in_file(path: str | Path) -> set[str] | None:
    """Every layer name in a ``.keras`` file's architecture (nested models included); None where the
    file is not a readable ``.keras`` zip (a legacy ``.h5``, a damaged file: loading judges those)."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except Exception:  # noqa: BLE001 - any unreadable file is left to the check after loading
        return None
    names: set[str] = set()
    _collect(config, names)
    return names or None


def _collect(node: Any, names: set[str]) -> None:
    if isinstance(node, dict):
        for layer in node.get("layers") or []:
            if not isinstance(layer, dict):
                continue
            cfg = layer.get("config")
            for name in (layer.get("name"), cfg.get("name") if isinstance(cfg, dict) else None):
                if isinstance(name, str):
                    names.add(name)
        for value in node.values():
            _collect(value, names)
    elif isinstance(node, list):
        for value in node:
            _collect(value, names)


def could_be_layer(part: str, names: set[str]) -> bool:
    """Whether one ``--layer`` part may name a layer of a model whose file holds ``names``."""
    part = part.strip()
    if not part or part in KEYWORDS or part == INPUT or part.lstrip("-").isdigit():
        return True
    return part in names or part.rsplit("/", 1)[-1] in names


def unknown_layers(spec: str, names: set[str]) -> list[str]:
    """The parts of a comma-separated ``--layer`` that name no layer in ``names``."""
    return [p.strip() for p in spec.split(",") if not could_be_layer(p, names)]


def nearest(part: str, names: set[str], k: int = 3) -> list[str]:
    """The layer names closest to a mistyped one, for the error message."""
    return difflib.get_close_matches(part.rsplit("/", 1)[-1], sorted(names), n=k, cutoff=0.6)
