"""``agelens train`` on class folders: its split file, its checkpoint and the options it refuses early."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()
CLASSES = ("young", "middle-aged", "old")


def write_class_folders(root: Path, per_class: int, seed: int) -> Path:
    """Class folders that reuse file names (``IMG_0001.png`` in each), as phone exports do."""
    from agelens.data.synthetic import generate

    faces = generate(per_class * len(CLASSES), size=40, seed=seed)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(faces.images[k * per_class + i]).save(root / name / f"IMG_{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def trained_folders(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("folders")
    data = write_class_folders(root / "faces", 12, seed=5)
    (data / "old" / "IMG_0099.png").write_bytes(b"\x89PNG broken")  # listed, split, then unusable
    out = root / "m.keras"
    args = ["train", str(data), "--out", str(out), "--epochs", "1", "--size", "32", "--alpha", "0.35"]
    res = runner.invoke(app, [*args, "--batch-size", "16", "--patience", "0"])
    assert res.exit_code == 0, res.output
    return data, out, json.loads(out.with_name("m_split.json").read_text())


def test_the_split_names_photos_by_their_path_so_reused_file_names_stay_apart(trained_folders) -> None:
    data, out, split = trained_folders
    test = split["test"]
    assert all("/" in n and (data / n).is_file() for n in test)  # young/IMG_0003.png, not IMG_0003.png
    assert not set(test) & set(split["train"])
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(data),
            "--model",
            str(out),
            "--json",
            "--holdout",
            str(out.with_name("m_split.json")),
        ],
    )
    assert res.exit_code == 0, res.output
    # Before, each bare name also matched the same-named photos of the other classes.
    assert json.loads(res.stdout)["n_images"] == len(test)


def test_the_split_lists_the_photos_used_and_data_inspect_shows_the_same_split(trained_folders) -> None:
    data, _, split = trained_folders
    assert "old/IMG_0099.png" not in [n for part in ("train", "val", "test") for n in split[part]]
    res = runner.invoke(app, ["data", "inspect", str(data), "--json"])
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout)["split_counts"]
    assert {k: sum(v.values()) for k, v in counts.items()} == {k: len(split[k]) for k in counts}


def test_an_old_split_of_bare_file_names_still_selects_its_photos(tmp_path, trained_folders) -> None:
    data, out, _ = trained_folders
    old = tmp_path / "old_split.json"
    old.write_text(json.dumps({"test": ["IMG_0000.png"]}))  # a flat-folder era file: one name, 3 photos
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(out), "--json", "--holdout", str(old)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_images"] == 3


def test_resuming_with_another_seed_is_refused_before_any_work(tmp_path, trained_folders) -> None:
    data, out, _ = trained_folders
    args = ["train", str(data), "--out", str(tmp_path / "r.keras"), "--resume", str(out), "--epochs", "2"]
    res = runner.invoke(app, [*args, "--seed", "3"])
    assert res.exit_code == 1 and "--seed 0" in res.output and "test split" in res.output, res.output
    assert not (tmp_path / "r.keras").exists()


def test_resuming_a_real_run_as_a_shuffled_control_is_refused_and_a_control_stays_one(
    tmp_path, trained_folders, monkeypatch
) -> None:
    """Typing --shuffle-labels on a real run's checkpoint is refused; a control resumed without it
    goes on as the control it is (options left out come from the checkpoint)."""
    import agelens.model.train as train_module
    from agelens.model.io import read_metadata, write_metadata

    data, out, _ = trained_folders
    args = ["train", str(data), "--out", str(tmp_path / "r.keras"), "--resume", str(out), "--epochs", "2"]
    res = runner.invoke(app, [*args, "--shuffle-labels"])
    assert res.exit_code == 1 and "trained on the real labels; resume without --shuffle-labels" in res.output
    control = tmp_path / "control.keras"
    control.write_bytes(out.read_bytes())
    meta = read_metadata(control)
    write_metadata(control, {**meta, "train_config": {**meta["train_config"], "shuffle_labels": True}})
    seen = {}

    def stop(*_args, config, **_kwargs):
        seen["shuffled"] = config.shuffle_labels
        raise ValueError("stopped by the test")

    monkeypatch.setattr(train_module, "train", stop)
    res = runner.invoke(app, [*args[:5], str(control), *args[6:]])
    assert seen == {"shuffled": True}, res.output
    assert "training labels shuffled" in res.output
    assert not (tmp_path / "r.keras").exists()


def test_an_interrupted_runs_checkpoint_is_never_overwritten_silently(tmp_path, trained_folders) -> None:
    data, _, _ = trained_folders
    out = tmp_path / "m.keras"
    ckpt = tmp_path / "m.checkpoint.keras"
    ckpt.write_bytes(b"the best epoch so far")
    args = ["train", str(data), "--out", str(out), "--epochs", "2", "--size", "32"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and f"--resume {ckpt}" in res.output, res.output
    assert ckpt.read_bytes() == b"the best epoch so far"
    res = runner.invoke(app, [*args, "--resume", str(ckpt)])  # resuming it passes that check...
    assert res.exit_code == 1 and "exists" not in res.output and "not a Keras model file" in res.output


def test_resuming_the_finished_model_never_deletes_an_interrupted_continuations_state(
    tmp_path, trained_folders
) -> None:
    """helper-86: `--resume m.keras` was let through while m.checkpoint.keras (an interrupted
    continuation of m.keras) existed, and the run then deleted it before training."""
    import shutil

    data, trained, _ = trained_folders
    out = tmp_path / "m.keras"
    shutil.copy(trained, out)
    ckpt = tmp_path / "m.checkpoint.keras"
    ckpt.write_bytes(b"the last epoch of the continuation")
    res = runner.invoke(app, ["train", str(data), "--out", str(out), "--resume", str(out), "--epochs", "3"])
    assert res.exit_code == 1 and f"{ckpt} exists" in res.output and f"--resume {ckpt}" in res.output
    assert ckpt.read_bytes() == b"the last epoch of the continuation"


def test_an_interrupt_says_where_the_best_epoch_is_and_how_to_go_on(tmp_path, trained_folders, monkeypatch):
    import agelens.model.train as train_module

    data, _, _ = trained_folders
    out = tmp_path / "m.keras"

    def interrupted(*_args, checkpoint, **_kwargs):
        Path(checkpoint).write_bytes(b"best epoch")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    res = runner.invoke(app, ["train", str(data), "--out", str(out), "--size", "32", "--seed", "2"])
    assert res.exit_code != 0  # click turns the interrupt into its own exit
    assert f"--resume {tmp_path / 'm.checkpoint.keras'} --seed 2" in res.output, res.output
    assert "--shuffle-labels" not in res.output and "--init-seed" not in res.output
    args = ["train", str(data), "--out", str(out), "--size", "32", "--init-seed", "4", "--shuffle-labels"]
    res = runner.invoke(app, [*args, "--force"])
    assert "--seed 0 --epochs 30 --init-seed 4 --shuffle-labels" in res.output, res.output  # the same run


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_an_out_path_under_a_file_is_one_line_before_any_work(tmp_path, trained_folders, command) -> None:
    data, model, _ = trained_folders
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    if command == "train":
        args = ["train", str(data), "--out", str(blocker / "m.keras")]
    else:
        args = ["evaluate", str(data), "--model", str(model), "--out", str(blocker / "sub")]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "is a file, not a folder" in res.output, res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_batchnorm_momentum_follows_the_runs_length_and_is_recorded(trained_folders) -> None:
    from agelens.model.io import read_metadata
    from agelens.model.train import TrainConfig, auto_bn_momentum

    # A few hundred steps would leave Keras' 0.999 statistics near their initial values.
    assert auto_bn_momentum(300, TrainConfig(epochs=10, batch_size=32)) == 0.9
    assert auto_bn_momentum(17_000, TrainConfig(epochs=30, batch_size=64)) == 0.99
    mid = [auto_bn_momentum(n, TrainConfig(epochs=10, batch_size=32)) for n in (500, 1000, 2000)]
    assert mid == sorted(mid) and 0.9 < mid[0] < mid[-1] < 0.99
    _, out, _ = trained_folders
    recorded = read_metadata(out)["model_config"]["bn_momentum"]
    assert recorded == pytest.approx(0.9) and np.isfinite(recorded)
