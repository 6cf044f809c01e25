"""The console script's own duties: interrupts end cleanly, leaving no half-written output."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from agelens.cli import main
from agelens.explain.explanation import output_dir


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])  # fmt: skip
def test_a_signal_mid_run_removes_the_partial_folder_and_exits_128_plus_signal(
    tmp_path, monkeypatch, capsys, restore_signals, sig, code, word
):
    def half_done() -> None:
        with output_dir(tmp_path / "out") as tmp:
            (tmp / "half.png").write_bytes(b"x")
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises in here

    monkeypatch.setattr(main, "app", half_done)
    monkeypatch.setattr(sys, "argv", ["agelens", "report", "x"])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == code
    assert list(tmp_path.iterdir()) == []  # neither the output nor its .partial folder
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err


def test_a_run_that_finishes_keeps_its_exit_status(monkeypatch, restore_signals):
    def done() -> None:
        raise SystemExit(0)

    monkeypatch.setattr(main, "app", done)
    monkeypatch.setattr(sys, "argv", ["agelens", "report", "x"])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == 0
