"""Warnings that point at the user's line, however deep inside agelens they are raised.

``warnings.warn(stacklevel=N)`` counts frames from the warning; the same check is reached
through different depths (``agelens.explain(...)`` through the callable package,
``agelens.explain.attribute``, a method object's ``attribute``), so a fixed N points at an
agelens file on some paths. Python 3.12's ``skip_file_prefixes`` does this; 3.11 needs the walk.
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the function calling this point at
    the first frame outside agelens (1 is that function itself, as for :func:`warnings.warn`)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level
