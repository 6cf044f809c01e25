"""A full disk or a Ctrl-C while the demo's shortcut check or ``agelens train`` writes its files: the
earlier files stay as they were (or none appear), never one run's file beside another's; and a run
whose final writes failed is finished by the command its error line names: that resume trains no epoch
and writes what the uninterrupted run writes (before, ``--resume`` of that checkpoint with the run's own
``--epochs`` was refused, "already trained 1 epoch(s)", and a run that had stopped early trained one
epoch more instead of ending as it had)."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import time
import zipfile
from collections.abc import Callable
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


@pytest.mark.slow  # one more tiny training; run with -m slow
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
    # as after an interrupt during the epochs: the command that finishes the run (it trains no epoch)
    said = next(line for line in err.splitlines() if line.startswith("the last finished epoch"))
    assert said.startswith(f"the last finished epoch is saved in {tmp_path / 'm.checkpoint.keras'} "), err
    assert f"to go on: agelens train {data} --out {tmp_path / 'm.keras'} --resume" in said, err


FINISH = "to finish it without training again: "


@pytest.fixture(scope="module")
def runs(earlier_run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run whose final writes failed and what it is compared with: the module's earlier run (the
    same data, options and seed, uninterrupted: ``ref``) and the same run into ``run/`` whose split
    file meets a full disk; its run-state files are kept aside in ``kept/`` (finishing removes them).

    Why here, beside the other final-write tests: the uninterrupted run is theirs too (one training less)."""
    data, ref = earlier_run
    root = tmp_path_factory.mktemp("finish")
    with pytest.MonkeyPatch.context() as mp:
        _fails_writing(mp, "m_split.json", _disk_full)
        failed = runner.invoke(
            main.app, ["train", str(data), "--out", str(root / "run" / "m.keras"), *TINY_TRAIN]
        )
    kept = root / "kept"
    kept.mkdir()
    for name in STATE:
        shutil.copy2(root / "run" / name, kept / name)
    return {"data": data, "ref": ref, "run": root / "run", "kept": kept, "failed": failed}


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
