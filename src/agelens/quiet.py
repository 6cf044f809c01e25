"""Keep TensorFlow's chatter off the user's terminal where we know it is noise.

TensorFlow and its TFLite converter print from C++ (oneDNN notices, CPU features,
MLIR pass logs) straight to file descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` or
Python's ``warnings`` can filter them, and Keras' export prints a page of captured
tensors to stdout, which would break ``--json`` output. Redirecting the descriptors
(and Python's ``sys.stdout``) for the duration of one known-noisy call is the only
way to hide them; Python exceptions still propagate, printed later with the
streams restored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def _silenced_fd(fd: int) -> Iterator[None]:
    try:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real descriptor (embedded interpreters, notebooks)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null inside the block."""
    with _silenced_fd(2):
        yield


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    """Silence stdout and stderr inside the block: descriptors 1 and 2 and ``sys.stdout``."""
    with (
        _silenced_fd(1),
        _silenced_fd(2),
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        yield


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CPU features, absl) kept off stderr.

    Quiet unless the user asked for TensorFlow's logs (``TF_CPP_MIN_LOG_LEVEL=0``); the
    variable is set to 2 when unset, so TensorFlow's later C++ logging stays quiet too,
    in this process and in the processes it spawns (which call this again). A broken
    install is not hidden: the command's own import reports it, with stderr back.
    """
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") == "0":
        return
    with quiet_stderr(), contextlib.suppress(Exception):
        import tensorflow  # noqa: F401
