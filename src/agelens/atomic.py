"""Atomic file writes: an interrupted run never leaves a half-written file behind.

Every writer in agelens (metrics, evaluation tables, plots) goes through these, so the
temp-file-then-rename rule lives in one place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; reports and tables are meant to be shared
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
