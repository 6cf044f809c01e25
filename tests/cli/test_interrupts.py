"""Ctrl-C in the middle of a command's work or of its writing, through the console script: exit 130,
one line, no traceback, and no half-written output a later run would take for a finished one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from synthetic_folders import faces_and_tiny_model


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of 6 labelled synthetic faces and a tiny agelens model."""
    return faces_and_tiny_model(tmp_path_factory.mktemp("interrupts"), "faces", seed=3)


def _ctrl_c_on(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, call: int) -> None:
    """``owner.name`` presses Ctrl-C (a real SIGINT) on its ``call``-th call."""
    real, calls = getattr(owner, name), []

    def pressed(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises in here
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, pressed)


def _stopped(code: Any, err: str) -> None:
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err


def _everything_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_ctrl_c_while_evaluate_writes_leaves_no_metrics_without_their_manifest(
    data_and_model, tmp_path, monkeypatch, console
):
    """metrics.json was left alone in --out, which report showed as an evaluation and a rerun
    refused to overwrite without --force."""
    import agelens.atomic

    data, model = data_and_model
    _ctrl_c_on(monkeypatch, agelens.atomic, "atomic_write_bytes", call=2)  # metrics.json is in
    _stopped(
        *console("evaluate", str(data), "-m", str(model), "--engine", "keras", "--out", str(tmp_path / "ev"))
    )
    assert _everything_in(tmp_path) == []


def test_ctrl_c_while_score_writes_leaves_no_plots_without_their_scores(
    data_and_model, tmp_path, monkeypatch, console
):
    import agelens.metrics.plots

    data, model = data_and_model
    _ctrl_c_on(monkeypatch, agelens.metrics.plots, "atomic_savefig", call=1)  # scores.md is in
    args = ["--methods", "gradcam", "--metrics", "deletion", "--n", "3", "--out", str(tmp_path / "sc")]
    _stopped(*console("score", str(data), "-m", str(model), *args))
    assert _everything_in(tmp_path) == []


def test_ctrl_c_mid_explain_keeps_an_earlier_run_it_was_replacing(
    data_and_model, tmp_path, monkeypatch, console
):
    """A clean bill, kept: explain's output folder is staged and swapped in whole."""
    import agelens.explain.explanation

    data, model = data_and_model
    photos = [str(p) for p in sorted(data.iterdir())[:2]]
    out = tmp_path / "ex"
    args = ["explain", *photos, "-m", str(model), "--method", "gradcam", "--no-detect", "--out", str(out)]
    code, err = console(*args)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _ctrl_c_on(monkeypatch, agelens.explain.explanation, "write_image_files", call=2)
    _stopped(*console(*args, "--force"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _everything_in(tmp_path) == ["ex", *sorted(f"ex/{name}" for name in before)]  # no .partial


def test_ctrl_c_mid_synth_leaves_no_folder(tmp_path, monkeypatch, console):
    """A clean bill, kept: the dataset is written in a hidden folder renamed into place."""
    import agelens.data.synthetic

    _ctrl_c_on(monkeypatch, agelens.data.synthetic, "_one", call=2)
    _stopped(*console("data", "synth", str(tmp_path / "sy"), "--n", "4", "--size", "32"))
    assert _everything_in(tmp_path) == []
