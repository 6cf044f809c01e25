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
_CLI = str(Path(_PACKAGE, "cli"))


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning raised by the function calling this point at
    the first frame outside agelens (1 is that function itself, as for :func:`warnings.warn`).

    agelens's own commands count as the caller: their warning then points into ``agelens/cli``,
    which the CLI recognises as its own and prints as one ``warning:`` line
    (:func:`agelens.cli.main.one_line_warnings`), not at Typer's frame in Python's format.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        path = str(Path(frame.f_code.co_filename).resolve())
        if not path.startswith(_PACKAGE) or (level > 1 and path.startswith(_CLI)):
            break
        frame = frame.f_back
        level += 1
    return level
