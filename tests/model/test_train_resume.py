"""``agelens train --resume``: the run goes on with its own recipe, data and last epoch.

An interrupted run is simulated by an ``on_epoch`` callback that raises KeyboardInterrupt, as
Ctrl-C would between two epochs.
"""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.model.checkpoints import (
    best_checkpoint_path,
    optimizer_state_path,
    resumed_recipe,
    run_state_files,
    split_change,
    split_fingerprint,
)
from agelens.model.io import load_model, read_metadata

runner = CliRunner()

RECIPE_ARGS = [
    "--size", "32", "--alpha", "0.35", "--epochs", "4", "--batch-size", "16", "--schedule", "onecycle",
    "--label-smoothing", "0.05", "--class-weights", "1", "--augment", "0.5", "--lr", "0.003",
    "--patience", "2", "--seed", "3",
]  # fmt: skip


def _interrupt_after(epoch: int):
    """A stand-in for ``agelens.model.train.train`` that is interrupted after ``epoch``."""
    import agelens.model.train as train_module

    real = train_module.train

    def interrupted(*args, **kwargs):
        def stop(row: dict) -> None:
            if row["epoch"] == epoch:
                raise KeyboardInterrupt

        return real(*args, **kwargs, on_epoch=stop)

    return interrupted


def _epoch_one_scores_best(row: dict, shuffled: bool = False) -> float:
    """A stand-in for ``_selection_score``: epoch 1 scores best and each later epoch worse, so the
    interrupted run's checkpoint (epoch 2) is not its best (epoch 1). The final BatchNorm step's
    check (a row of epoch 0) scores lowest: it is undone, and the run ends with its best epoch's
    weights as they were saved."""
    return 1.0 - 0.1 * row["epoch"] if row["epoch"] else -1.0


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> dict:
    """A CLI run with a recipe far from the defaults, into a folder whose name has a space,
    interrupted after its second of four epochs; epoch 1 scores best (:func:`_epoch_one_scores_best`)."""
    import agelens.model.train as train_module

    root = tmp_path_factory.mktemp("resume")
    data = write_utk_folder(root / "utk", 60, seed=1, size=40)
    out = root / "my models" / "int.keras"
    out.parent.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "train", _interrupt_after(2))
        mp.setattr(train_module, "_selection_score", _epoch_one_scores_best)
        res = runner.invoke(app, ["train", str(data), "--out", str(out), *RECIPE_ARGS])
    assert res.exit_code != 0 and "to go on: " in res.output, res.output
    hint = next(line for line in res.output.splitlines() if "to go on: " in line).split("to go on: ", 1)[1]
    return {"data": data, "out": out, "ckpt": out.with_name("int.checkpoint.keras"), "hint": hint}


@pytest.fixture(scope="module")
def resumed(interrupted, tmp_path_factory) -> dict:
    """The interrupted run resumed by its printed command, pasted as printed, epoch 1 still scoring
    best: one resumed run serves the command's tests and the resume's (each training costs ~25 s).

    Keeps the checkpoint and best file as they were before (``last``, ``best``), the weights' sum
    ``fit`` started from, and the run-state files the run left; then puts those files back, so the
    tests that resume or refuse the checkpoint find it whatever their order.
    """
    import keras

    import agelens.model.train as train_module

    ckpt = interrupted["ckpt"]
    last, best = load_model(ckpt), load_model(best_checkpoint_path(ckpt))
    kept = tmp_path_factory.mktemp("run-state")
    state = [p for p in run_state_files(ckpt) if p.exists()]
    for p in state:
        shutil.copy2(p, kept / p.name)
    started: dict = {}
    real_fit = keras.Model.fit

    def fit_spy(self, *a, **k):
        started["sum"] = float(sum(np.abs(w).sum() for w in self.get_weights()))
        return real_fit(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "_selection_score", _epoch_one_scores_best)
        mp.setattr(keras.Model, "fit", fit_spy)
        res = runner.invoke(app, shlex.split(interrupted["hint"])[1:])
    left = [p for p in run_state_files(ckpt) if p.exists()]
    for p in state:
        shutil.copy2(kept / p.name, p)
    return {"res": res, "last": last, "best": best, "started": started, "left": left}


def _no_data_loading(monkeypatch) -> None:
    """Fail the test if the command gets as far as reading the data set."""
    import agelens.data.sources as sources

    def loaded(*_a, **_k):
        raise AssertionError("the data was loaded before the refusal")

    monkeypatch.setattr(sources, "load_dataset", loaded)


def test_an_interrupted_run_keeps_its_last_epoch_its_best_and_its_optimizer(interrupted) -> None:
    ckpt = interrupted["ckpt"]
    training = read_metadata(ckpt)["training"]
    assert training["epochs_done"] == 2 and training["weights_epoch"] == 2  # the last epoch, not the best
    assert [r["epoch"] for r in training["history"]] == [1, 2]
    assert best_checkpoint_path(ckpt).is_file()
    assert read_metadata(best_checkpoint_path(ckpt))["training"]["weights_epoch"] == training["best_epoch"]
    mode = optimizer_state_path(ckpt).stat().st_mode & 0o777
    assert mode == ckpt.stat().st_mode & 0o777 == 0o644  # as the model beside it; not mkstemp's 0600


def test_options_that_differ_from_the_checkpoint_are_refused_in_one_line_before_the_data(
    tmp_path, interrupted, monkeypatch
) -> None:
    _no_data_loading(monkeypatch)
    args = ["train", str(interrupted["data"]), "--out", str(tmp_path / "r.keras"), "--resume"]
    res = runner.invoke(
        app, [*args, str(interrupted["ckpt"]), "--size", "48", "--lr", "0.002", "--seed", "3"]
    )
    assert res.exit_code == 1, res.output
    line = res.output.strip()
    assert len(line.splitlines()) == 1 and "cannot resume" in line
    assert (
        "--size 48 (the checkpoint has --size 32)" in line
        and "--lr 0.002 (the checkpoint has --lr 0.003)" in line
    )
    assert "--seed" not in line.split("differ")[1].split("Leave")[0]  # the same seed is no difference
    res = runner.invoke(app, [*args, str(interrupted["ckpt"]), "--epochs", "2"])  # as many as it has
    assert res.exit_code == 1 and "already trained 2 epoch(s)" in res.output, res.output
    res = runner.invoke(
        app, [*args, str(interrupted["ckpt"]), "--bins", "40,70", "--names", "child,adult,senior"]
    )
    assert res.exit_code == 1, res.output
    assert "--bins 40,70 --names child,adult,senior (the checkpoint has --bins 30,60" in res.output


def test_resuming_on_changed_data_is_refused(tmp_path, interrupted) -> None:
    data = tmp_path / "utk"
    shutil.copytree(interrupted["data"], data)
    write_utk_folder(data, 10, seed=7, size=40)  # ten more photos: the split moves
    args = ["train", str(data), "--out", str(tmp_path / "r.keras"), "--resume", str(interrupted["ckpt"])]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "the data changed since the checkpoint: 10 photo(s) added" in res.output
    assert "resume needs the same photos" in res.output and len(res.output.strip().splitlines()) == 1


def test_a_new_run_over_an_interrupted_one_is_refused_naming_its_files(tmp_path, interrupted) -> None:
    out = tmp_path / "m.keras"
    best = out.with_name("m.best.keras")
    best.write_bytes(b"an interrupted run's best epoch")
    res = runner.invoke(app, ["train", str(interrupted["data"]), "--out", str(out), "--size", "32"])
    assert res.exit_code == 1 and f"{best} exists" in res.output, res.output
    best.unlink()
    history = out.with_name("m_history.json")
    history.write_text("[]")
    res = runner.invoke(app, ["train", str(interrupted["data"]), "--out", str(out), "--size", "32"])
    assert res.exit_code == 1 and f"{history} exists; use --force" in res.output, res.output
    assert run_state_files(tmp_path / "m.checkpoint.keras")[2] == best


def test_the_printed_command_resumes_the_same_run_to_its_end(interrupted, resumed) -> None:
    """Pasted as printed: it quotes the folder with a space, and every setting comes from the run."""
    cmd = shlex.split(interrupted["hint"])
    assert cmd[:2] == ["agelens", "train"] and "--size" not in cmd  # nothing but what it needs
    res = resumed["res"]  # the fixture ran runner.invoke(app, cmd[1:])
    assert res.exit_code == 0, res.output
    out = interrupted["out"]
    meta = read_metadata(out)
    recipe = meta["train_config"]
    assert (recipe["batch_size"], recipe["schedule"], recipe["learning_rate"]) == (16, "onecycle", 0.003)
    assert (recipe["label_smoothing"], recipe["class_weight_power"], recipe["augment"]) == (0.05, 1.0, 0.5)
    assert (recipe["patience"], recipe["seed"]) == (2, 3)
    assert (meta["model_config"]["input_size"], meta["model_config"]["alpha"]) == (32, 0.35)
    assert [r["epoch"] for r in meta["training"]["history"]] == [1, 2, 3]  # from the last epoch on
    assert meta["training"]["optimizer_restored"] is True
    rows = json.loads(out.with_name("int_history.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["val_loss"]) for r in rows)
    assert out.with_name("int_eval").joinpath("training_curves.png").stat().st_size > 0
    metrics = json.loads(out.with_name("int_eval").joinpath("metrics.json").read_text())
    assert metrics["age_mae"] >= 0 and metrics["n_aged"] == metrics["n_images"]  # as evaluate reports
    made_by = json.loads(out.with_name("int_eval").joinpath("manifest.json").read_text())
    assert made_by["command"] == "train (test split)"  # not "evaluate" beside "agelens train ..."
    assert resumed["left"] == []  # cleaned up


def test_recipe_options_left_out_come_from_the_checkpoint_and_typed_ones_must_match() -> None:
    meta = {
        "model_config": {"input_size": 32, "alpha": 0.35, "bn_momentum": 0.9},
        "train_config": {"seed": 3, "learning_rate": 0.003, "init_seed": None, "shuffle_labels": True},
    }
    given = {"size": 64, "alpha": 1.0, "bn_momentum": None, "seed": 0, "lr": 0.002, "init_seed": None}
    settings, diffs = resumed_recipe(meta, {**given, "shuffle_labels": False}, explicit=set())
    assert (settings["size"], settings["alpha"], settings["seed"], settings["lr"]) == (32, 0.35, 3, 0.003)
    assert settings["shuffle_labels"] is True and diffs == []
    _, diffs = resumed_recipe(meta, {**given, "size": 32, "seed": 4}, explicit={"size", "seed"})
    assert len(diffs) == 1 and diffs[0].startswith("--seed 4 (the checkpoint's run has --seed 3")
    _, diffs = resumed_recipe(meta, {**given, "init_seed": 3}, explicit={"init_seed"})  # = its --seed
    assert diffs == []
    _, diffs = resumed_recipe(meta, {**given, "init_seed": 5}, explicit={"init_seed"})
    assert len(diffs) == 1 and diffs[0].startswith("--init-seed 5")


def test_a_split_fingerprint_tells_added_removed_and_moved_photos_apart() -> None:
    then = split_fingerprint([["a", "b"], ["c"], ["d"]])
    assert split_change(then, split_fingerprint([["b", "a"], ["c"], ["d"]])) is None  # order does not count
    assert "1 photo(s) removed" in split_change(then, split_fingerprint([["a"], ["c"], ["d"]]))
    assert "not the same ones" in split_change(then, split_fingerprint([["a", "c"], ["b"], ["d"]]))
    assert split_change(None, then) is None  # a checkpoint from before fingerprints


def test_resuming_goes_on_from_the_last_epoch_and_ends_with_the_best_of_all(interrupted, resumed) -> None:
    """Epoch 1 scores best (forced): the checkpoint holds epoch 2, the best file epoch 1; the resumed
    run starts from epoch 2's weights, counts patience from epoch 1, stops early and says so, and
    ends with epoch 1's weights."""
    last, best, res = resumed["last"], resumed["best"], resumed["res"]
    assert res.exit_code == 0, res.output
    assert last.metadata["training"]["best_epoch"] == 1 and best.metadata["training"]["weights_epoch"] == 1
    assert resumed["started"]["sum"] == pytest.approx(
        sum(float(np.abs(w).sum()) for w in last.keras_model.get_weights())
    )
    meta = read_metadata(interrupted["out"])
    training = meta["training"]
    assert [r["epoch"] for r in training["history"]] == [1, 2, 3]  # epoch 2's wait carried over: stop at 3
    assert training["stopped_early"] is True and training["best_epoch"] == 1
    assert "(best epoch 1, " in res.output  # the run's result, as the command reports it
    assert meta["resumes"] == [
        {"after_epoch": 2, "weights_of_epoch": 2, "epochs_planned": 4, "epochs_now": 4}
    ]
    assert "stopped early after epoch 3: no better validation score for 2 epochs; best epoch 1" in res.output
    assert training["precise_batchnorm"]["kept"] is False  # scored lowest: undone, not rewriting them
    final = load_model(interrupted["out"]).keras_model.get_weights()
    for a, b in zip(final, best.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_resume_says_when_it_is_not_a_plain_continuation() -> None:
    """helper-86: a raised --epochs stretches the schedule (the rate jumps back up), and a finished
    model goes on from its best epoch's weights while the epochs are numbered from its last."""
    from agelens.model.train import TrainConfig, _resume_lines

    plain = {"after_epoch": 2, "weights_of_epoch": 2, "epochs_planned": 6}
    assert _resume_lines(plain, TrainConfig(epochs=6)) == []
    longer = {"after_epoch": 29, "weights_of_epoch": 29, "epochs_planned": 30}
    (line,) = _resume_lines(longer, TrainConfig(epochs=60))
    assert line.startswith("the learning-rate schedule now spans 60 epochs, not 30: epoch 30 runs at 0.00111")
    assert line.endswith("(a warm restart)")
    finished = {"after_epoch": 4, "weights_of_epoch": 1, "epochs_planned": 4}
    lines = _resume_lines(finished, TrainConfig(epochs=5))
    assert lines[0] == (
        "going on from epoch 1's weights (the model's best); the new epochs are numbered from 5"
    )


def test_train_takes_width_for_the_width_multiplier() -> None:
    """--alpha is the overlay's opacity in explain; train also takes --width for MobileNetV2's alpha."""
    from typer.testing import CliRunner

    from agelens.cli.main import app

    res = CliRunner().invoke(app, ["train", "--help"])
    assert "--width" in res.output
    res = CliRunner().invoke(app, ["train", "nowhere", "--width", "0.05"])
    assert res.exit_code == 2 and "--width" in res.output  # the same option, same range
