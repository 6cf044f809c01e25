"""A run whose final writes failed (a full disk) is finished by the command its error line names: that
resume trains no epoch and writes what the uninterrupted run writes.

Before, the line only said where the epochs were kept, and ``--resume`` of that checkpoint with the
run's own ``--epochs`` was refused ("already trained 1 epoch(s)"); a run that had stopped early
trained one epoch more instead of ending as it had.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

import agelens.atomic
from agelens.cli import main
from agelens.model.checkpoints import epochs_left_problem, run_is_over

runner = CliRunner()

TINY_TRAIN = ["--epochs", "1", "--size", "32", "--alpha", "0.35", "--batch-size", "16", "--patience", "0"]
STATE = ("m.checkpoint.keras", "m.checkpoint.keras.optimizer.npz", "m.best.keras")
FINISH = "to finish it without training again: "


def _disk_full_writing(mp: pytest.MonkeyPatch, name: str) -> None:
    """Every atomic write of a file called ``name`` fails as on a full disk."""
    real = agelens.atomic.atomic_write_bytes

    def write(path: str | Path, data: bytes) -> Path:
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    mp.setattr(agelens.atomic, "atomic_write_bytes", write)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The two trainings of this file: one uninterrupted tiny run (``ref/m.keras``), and the same run
    into ``run/`` whose split file meets a full disk; its run-state files are kept aside in ``kept/``
    (finishing the run removes them)."""
    root = tmp_path_factory.mktemp("finish")
    data = write_utk_folder(root / "faces", 40, seed=4, size=32)
    ref = runner.invoke(main.app, ["train", str(data), "--out", str(root / "ref" / "m.keras"), *TINY_TRAIN])
    assert ref.exit_code == 0, ref.output
    with pytest.MonkeyPatch.context() as mp:
        _disk_full_writing(mp, "m_split.json")
        failed = runner.invoke(
            main.app, ["train", str(data), "--out", str(root / "run" / "m.keras"), *TINY_TRAIN]
        )
    kept = root / "kept"
    kept.mkdir()
    for name in STATE:
        shutil.copy2(root / "run" / name, kept / name)
    return {"data": data, "ref": root / "ref", "run": root / "run", "kept": kept, "failed": failed}


def _no_training(mp: pytest.MonkeyPatch) -> list[int]:
    """Make any epoch loop fail the test; returns the list each attempt is counted in."""
    import agelens.model.train as train_module

    started: list[int] = []

    def fit(*_a: Any, **_k: Any) -> None:
        started.append(1)
        raise AssertionError("an epoch ran")

    mp.setattr(train_module, "_fit", fit)
    return started


def _weights(path: Path) -> list[np.ndarray]:
    from agelens.model.io import load_model

    return load_model(path).keras_model.get_weights()


def _trainable(path: Path) -> list[np.ndarray]:
    from agelens.model.io import load_model

    return [v.numpy() for v in load_model(path).keras_model.trainable_variables]


def _without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _finish_command(runs: dict[str, Any]) -> list[str]:
    """The command the failed run's one error line names, as a shell would split it."""
    failed = runs["failed"]
    assert failed.exit_code == 1, failed.output
    err = failed.stderr.strip()
    assert err.count("\n") == 0 and "No space left on device" in err and FINISH in err, err
    command = shlex.split(err.split(FINISH, 1)[1].removesuffix(")"))
    assert command[:2] == ["agelens", "train"] and "--resume" in command, command
    return command


def test_the_printed_command_finishes_a_run_whose_model_could_not_be_written(runs, monkeypatch) -> None:
    """It was refused ("already trained 1 epoch(s)"); now it trains nothing and writes the model, split,
    history and test scores the uninterrupted run wrote."""
    from agelens.model.io import read_metadata

    command = _finish_command(runs)
    assert command[command.index("--resume") + 1] == str(runs["run"] / "m.checkpoint.keras")
    assert command[command.index("--epochs") + 1] == "1"
    started = _no_training(monkeypatch)
    res = runner.invoke(main.app, command[1:])
    assert res.exit_code == 0, res.output
    assert started == [] and "no epoch to train" in res.output
    run, ref = runs["run"], runs["ref"]
    assert not [n for n in STATE if (run / n).exists()]  # the run is over: its state files go
    for a, b in zip(_weights(run / "m.keras"), _weights(ref / "m.keras"), strict=True):
        np.testing.assert_array_equal(a, b)  # the best epoch, its BatchNorm statistics recomputed alike
    for a, b in zip(_trainable(run / "m.keras"), _trainable(runs["kept"] / "m.best.keras"), strict=True):
        np.testing.assert_array_equal(a, b)  # the run's best epoch
    assert (run / "m_split.json").read_bytes() == (ref / "m_split.json").read_bytes()
    ours, theirs = read_metadata(run / "m.keras"), read_metadata(ref / "m.keras")
    assert ours["test_metrics"] == theirs["test_metrics"]
    assert json.loads((run / "m_eval" / "metrics.json").read_text()) == theirs["test_metrics"]
    history = json.loads((run / "m_history.json").read_text())
    assert len(history) == 1  # the one epoch the failed run trained, none more
    assert _without_seconds(history) == _without_seconds(json.loads((ref / "m_history.json").read_text()))
    trained, reference = ours["training"], theirs["training"]
    for key in ("epochs_done", "best_epoch", "stopped_early"):
        assert trained[key] == reference[key], key
    pbn = {k: v for k, v in trained["precise_batchnorm"].items() if k != "seconds"}
    assert pbn == {k: v for k, v in reference["precise_batchnorm"].items() if k != "seconds"}
    assert (run / "m_eval" / "training_curves.png").is_file()


def _as_stopped_early(checkpoint: Path, epochs: int) -> None:
    """Rewrite a checkpoint's metadata as a run of ``epochs`` planned that stopped early after the
    epochs it has would have left it (what a resume reads of that: the plan and the flag)."""
    from agelens.model.io import META_MEMBER

    with zipfile.ZipFile(checkpoint) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    meta = json.loads(members[META_MEMBER])
    meta["train_config"]["epochs"] = epochs
    meta["training"]["stopped_early"] = True
    members[META_MEMBER] = json.dumps(meta).encode()
    with zipfile.ZipFile(checkpoint, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)


def test_a_run_that_had_stopped_early_is_finished_without_another_epoch(runs, tmp_path, monkeypatch) -> None:
    """It trained one epoch more (its own --epochs left some), then stopped early again."""
    from agelens.model.io import read_metadata

    run = tmp_path / "run"
    run.mkdir()
    for name in STATE:
        shutil.copy2(runs["kept"] / name, run / name)
    _as_stopped_early(run / "m.checkpoint.keras", epochs=3)
    started = _no_training(monkeypatch)
    args = ["train", str(runs["data"]), "--out", str(run / "m.keras"), "--resume", str(run / STATE[0])]
    res = runner.invoke(main.app, args)  # --epochs left out: the checkpoint's own 3
    assert res.exit_code == 0, res.output
    assert started == [] and "it had stopped early: no epoch to train" in res.output
    training = read_metadata(run / "m.keras")["training"]
    assert training["stopped_early"] is True and training["epochs_done"] == 1 == len(training["history"])
    for a, b in zip(_trainable(run / "m.keras"), _trainable(runs["kept"] / "m.best.keras"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_only_a_runs_own_checkpoint_at_its_own_length_is_finished() -> None:
    """A finished model, or another --epochs, is still refused (or trained on) as before."""
    ckpt = {"train_config": {"epochs": 10}, "training": {"kind": "checkpoint", "epochs_done": 4}}
    stopped = {**ckpt, "training": {**ckpt["training"], "stopped_early": True}}
    done = {**ckpt, "training": {**ckpt["training"], "epochs_done": 10}}
    assert run_is_over(done, 10) and run_is_over(stopped, 10)
    assert not run_is_over(ckpt, 10)  # interrupted: epochs left to train
    assert not run_is_over(stopped, 12)  # more epochs asked for: train on
    assert epochs_left_problem("c.keras", done, 10) is None
    line = epochs_left_problem("c.keras", stopped, 3)
    assert (
        line is not None
        and "already trained 4 epoch(s)" in line
        and "finish its run as it ended, --epochs 10" in line
    )
    model = {"train_config": {"epochs": 10}, "training": {"epochs_done": 10, "best_epoch": 7}}
    assert not run_is_over(model, 10)  # a finished model has nothing to finish
    assert "already trained 10 epoch(s)" in (epochs_left_problem("m.keras", model, 10) or "")
