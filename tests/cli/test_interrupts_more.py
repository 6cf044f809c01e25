"""A full disk or a Ctrl-C while the demo's shortcut check or ``agelens train`` writes its files: the
earlier files stay as they were (or none appear), never one run's file beside another's."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

import agelens.atomic
from agelens.cli import main

runner = CliRunner()


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too: a leftover staging folder shows) and its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _score(mean: float) -> dict[str, float]:
    return {"mean": mean, "ci_low": mean - 0.1, "ci_high": mean + 0.1, "n": 60}


def _shortcut_result(drop: float) -> dict:
    """A shortcut result as :func:`~agelens.metrics.shortcut.run_shortcut_demo` returns it."""
    method = {"stamp_energy": _score(0.3), "stamp_area": 0.01}
    accuracy = {"stamped": _score(0.9), "clean": _score(0.9 - drop), "drop": _score(drop)}
    return {"config": {"n_test": 60}, "accuracy": accuracy, "methods": {"gradcam": method, "random": method}}


def _plot_fails(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import agelens.metrics.plots

    def fails(fig: Any, path: Path, dpi: int = 120) -> Path:
        import matplotlib.pyplot as plt

        plt.close(fig)
        raise error

    monkeypatch.setattr(agelens.metrics.plots, "atomic_savefig", fails)


@pytest.mark.parametrize(
    "error", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), KeyboardInterrupt()], ids=["full", "ctrl-c"]
)
def test_a_failed_shortcut_plot_keeps_the_earlier_shortcut_files(tmp_path, monkeypatch, error) -> None:
    """shortcut.json was written first, alone: the new numbers beside the earlier run's plot."""
    from agelens.metrics.shortcut import write_shortcut

    scores = tmp_path / "scores"
    scores.mkdir()
    (scores / "scores.json").write_text("{}")  # the folder's other files, never touched
    write_shortcut(_shortcut_result(0.5), scores)
    before = _contents(scores)
    assert set(before) == {"scores.json", "shortcut.json", "shortcut_stamp_energy.png"}
    _plot_fails(monkeypatch, error)
    with pytest.raises(type(error)):
        write_shortcut(_shortcut_result(0.1), scores)
    assert _contents(scores) == before
    assert [p.name for p in scores.iterdir() if p.name.startswith(".")] == []


def test_a_failed_shortcut_plot_leaves_no_shortcut_json_in_a_fresh_folder(tmp_path, monkeypatch) -> None:
    from agelens.metrics.shortcut import write_shortcut

    _plot_fails(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(OSError):
        write_shortcut(_shortcut_result(0.5), tmp_path / "scores")
    assert _contents(tmp_path) == {}


def test_write_shortcut_returns_the_paths_it_wrote(tmp_path) -> None:
    from agelens.metrics.shortcut import write_shortcut

    paths = write_shortcut(_shortcut_result(0.5), tmp_path)
    assert paths == {"json": tmp_path / "shortcut.json", "plot": tmp_path / "shortcut_stamp_energy.png"}
    assert json.loads(paths["json"].read_text())["accuracy"]["drop"]["mean"] == 0.5
    assert _contents(tmp_path).keys() == {"shortcut.json", "shortcut_stamp_energy.png"}


TINY_TRAIN = ["--epochs", "1", "--size", "32", "--alpha", "0.35", "--batch-size", "16", "--patience", "0"]
STATE = ("m.checkpoint.keras", "m.checkpoint.keras.optimizer.npz", "m.best.keras")


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """40 labelled synthetic faces and a finished tiny ``agelens train`` run of them (``run/m.keras``)."""
    root = tmp_path_factory.mktemp("train_writes")
    data = write_utk_folder(root / "faces", 40, seed=4, size=32)
    res = runner.invoke(main.app, ["train", str(data), "--out", str(root / "run" / "m.keras"), *TINY_TRAIN])
    assert res.exit_code == 0, res.output
    return data, root / "run"


def _fails_writing(monkeypatch: pytest.MonkeyPatch, name: str, fail: Callable[[Path], None]) -> None:
    """Every atomic write of a file called ``name`` calls ``fail`` first (which raises)."""
    real = agelens.atomic.atomic_write_bytes

    def write(path: str | Path, data: bytes) -> Path:
        if Path(path).name == name:
            fail(Path(path))
        return real(path, data)

    monkeypatch.setattr(agelens.atomic, "atomic_write_bytes", write)


def _disk_full(path: Path) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _ctrl_c(_path: Path) -> None:
    """A real SIGINT, as a Ctrl-C sends: the console script's handler raises in here."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)


def _train_force(data: Path, out: Path) -> Any:
    """``agelens train --force`` over an earlier run at ``out``, with another seed (another split)."""
    return runner.invoke(
        main.app, ["train", str(data), "--out", str(out), *TINY_TRAIN, "--seed", "1", "--force"]
    )


def _one_error_line(res: Any, start: str, reason: str) -> str:
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    err = res.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith(f"error: {start}") and reason in err, err
    return err


def test_train_on_a_full_disk_writing_its_model_keeps_the_earlier_run_whole(
    earlier_run, tmp_path, monkeypatch
):
    """With --force, the new model replaced the earlier one beside the earlier run's split, history and
    test scores (another split's), and the OSError was a traceback."""
    data, earlier = earlier_run
    run = shutil.copytree(earlier, tmp_path / "run")
    before = _contents(run)
    _fails_writing(monkeypatch, "m_split.json", _disk_full)
    res = _train_force(data, run / "m.keras")
    err = _one_error_line(res, f"{run / 'm.keras'}: could not write the model", "No space left on device")
    assert str(run / "m.checkpoint.keras") in err
    after = _contents(run)
    assert {k: v for k, v in after.items() if k not in STATE} == before  # the earlier run, whole
    assert set(STATE) <= set(after)  # the new run's epochs are kept, never lost with its outputs


def test_train_on_a_full_disk_writing_its_evaluation_leaves_no_earlier_scores_beside_the_model(
    earlier_run, tmp_path, monkeypatch
):
    """With --force, the earlier run's metrics stayed beside the new model and split (another split's
    test scores, read as this model's), after a traceback."""
    data, earlier = earlier_run
    run = shutil.copytree(earlier, tmp_path / "run")
    _fails_writing(monkeypatch, "metrics.json", _disk_full)
    res = _train_force(data, run / "m.keras")
    err = _one_error_line(res, f"{run / 'm_eval'}: could not write the test evaluation", "No space left")
    assert "the model is saved" in err and f"--holdout {run / 'm_split.json'}" in err
    after = _contents(run)
    assert sorted(after) == ["m.keras", "m_eval/training_curves.png", "m_history.json", "m_split.json"]
    assert json.loads(after["m_split.json"])["seed"] == 1  # the new run's, whole
    assert after["m_split.json"] != _contents(earlier)["m_split.json"]


def test_ctrl_c_while_train_writes_leaves_no_model_without_its_split(
    earlier_run, tmp_path, monkeypatch, console
):
    """m.keras was in place without m_split.json: evaluate --holdout had no test photos to score,
    and a rerun refused to write over it without --force."""
    data, _ = earlier_run
    _fails_writing(monkeypatch, "m_history.json", _ctrl_c)
    code, err = console("train", str(data), "--out", str(tmp_path / "m.keras"), *TINY_TRAIN)
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err, err
    assert sorted(_contents(tmp_path)) == sorted(STATE)  # the run's epochs, and nothing half-written
