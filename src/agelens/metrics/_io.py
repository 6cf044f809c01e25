"""JSON helpers for metric results; the atomic writers live in :mod:`agelens.atomic`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agelens.atomic import atomic_savefig, atomic_write_text

__all__ = ["atomic_savefig", "atomic_write_text", "dumps", "to_jsonable"]


def to_jsonable(o: Any) -> Any:
    """Recursively turn numpy values into JSON types; NaN/inf become None (JSON has no NaN)."""
    if isinstance(o, dict):
        return {str(k): to_jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [to_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return to_jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=1, allow_nan=False) + "\n"
