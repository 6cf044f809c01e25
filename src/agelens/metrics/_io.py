"""Atomic file writes: a crashed or interrupted run never leaves a half-written scores file or plot."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        Path(tmp).write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_savefig(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure via a temp file, then close it (figures leak memory otherwise)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _temp_beside(path)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
