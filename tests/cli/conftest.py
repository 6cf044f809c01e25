"""Fixtures the CLI tests share."""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agelens.cli import main


@pytest.fixture
def console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Iterator[Callable[..., tuple[Any, str]]]:
    """Run ``agelens ARGS`` as the console script does (its signal handlers and all); returns the
    exit status and stderr. The handlers and the warnings hook it installs are put back after.

    Why not typer's CliRunner: a real Ctrl-C goes through ``main.run``'s signal handler (exit 130,
    one line); a KeyboardInterrupt raised under CliRunner gives click's "Aborted!" and exit 1."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)

    def run(*args: str) -> tuple[Any, str]:
        monkeypatch.setattr(sys, "argv", ["agelens", *args])
        try:
            main.run()
        except SystemExit as e:
            return e.code, capsys.readouterr().err
        return 0, capsys.readouterr().err  # a run that succeeds returns

    yield run
    for s, handler in saved.items():
        signal.signal(s, handler)
