"""Atomic file writes: an interrupted run never leaves a half-written file behind.

Every writer in agelens (metrics, evaluation tables, plots) goes through these, so the
temp-file-then-rename rule lives in one place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # e.g. a read-only folder: name the file asked for, not the temp one
        raise _named_for(exc, path) from None
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; reports and tables are meant to be shared
    return tmp


def _named_for(exc: OSError, path: Path) -> OSError:
    """The same error, naming ``path``: the temp file is ours, and its name means nothing to a user.

    ``os.replace`` onto a folder raises "Is a directory" for the temp file's name, so an
    error printed as ``<filename>: <reason>`` would send the user looking for a file they never asked for.
    """
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` to ``path`` via a temp file beside it, mode 0644 like every other output."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        Path(tmp).write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise _named_for(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextlib.contextmanager
def staged_folder(out: str | Path, last: str) -> Iterator[Path]:
    """Yield a hidden folder (beside ``out``, or in it) to write a run's files into; they move into ``out``
    (made if missing) only once the block has ended, ``last`` (the file that marks a finished
    run: its manifest) last. A block that fails or is interrupted leaves ``out`` as it was.

    Why: files written one by one into ``out`` left a half run behind a full disk or a Ctrl-C
    (metrics.json without its manifest, which the report showed as an evaluation), or with
    ``--force`` a mix of the new run's files and the earlier one's.
    """
    out = Path(out)
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
    # Inside an existing ``out``: its files are then renamed on their own file system, even where
    # ``out`` is a mount point or a link to another disk (a rename across disks fails).
    where = out if out.is_dir() else out.parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=where))
    except OSError as exc:  # a read-only folder: name the folder asked for, not the temp one
        raise _named_for(exc, out) from None
    try:
        yield tmp
        out.mkdir(exist_ok=True)
        move_in(tmp, out, last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_in(staged: Path, out: Path, last: str) -> list[Path]:
    """Move everything in ``staged`` into ``out`` (same file system), ``last`` (the file that marks a
    finished run) last, so a folder that has it has all of its run; returns what was moved, as
    now named in ``out``. Shared by :func:`staged_folder` and the explanation's output folder."""
    moved = []
    for item in sorted(staged.iterdir(), key=lambda p: p.name == last):
        os.replace(item, out / item.name)
        moved.append(out / item.name)
    return moved


def atomic_savefig(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure via a temp file, then close it (figures leak memory otherwise)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _temp_beside(path)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except OSError as exc:
        raise _named_for(exc, path) from None
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
