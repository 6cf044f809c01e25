"""Review fixes for ``agelens evaluate``: training photos scored without --holdout, a model that
predicts one class for everything, an untrained age head, and files counted as photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.model.evaluate import one_class_predicted, one_class_warning, training_steps

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic folder and an agelens model "trained" on it (its metadata and split file say so)
    that answers young and 50 years for every photo, as a run of a few steps does."""
    from agelens.data.bins import AgeBins
    from agelens.data.sources import load_dataset
    from agelens.model.age_model import AgeModel
    from agelens.model.builder import AGE_OUTPUT, GROUP_OUTPUT, ModelConfig, build_age_model
    from agelens.model.io import save_model

    root = tmp_path_factory.mktemp("evalrev")
    data = write_utk_folder(root / "data", n=40, seed=4, size=48)
    km = build_age_model(ModelConfig(32, 0.35, 0.2, 3, True), seed=0)
    groups, ages = km.get_layer("age_group_logits"), km.get_layer("age_logits")
    groups.set_weights([np.zeros_like(groups.get_weights()[0]), np.array([9.0, 0.0, 0.0], np.float32)])
    spike = np.full(ages.get_weights()[1].shape, -20.0, np.float32)
    spike[50] = 20.0
    ages.set_weights([np.zeros_like(ages.get_weights()[0]), spike])
    cfg = ModelConfig(32, 0.35, 0.2, 3, True)
    meta = {
        "model_config": cfg.to_dict(),
        "train_config": {"batch_size": 64, "epochs": 2},
        "training": {"epochs_done": 2, "best_epoch": 1},
        "data": {"source": str(data), "n_train": 32, "split_seed": 0},
        "rescales_input": True,
    }
    model = root / "m.keras"
    save_model(AgeModel(km, list(AgeBins().names), 32, AgeBins(), meta, GROUP_OUTPUT, AGE_OUTPUT), model)
    paths = sorted(p.name for p in load_dataset(data).paths)
    split = {"seed": 0, "train": paths[:32], "val": paths[32:36], "test": paths[36:]}
    (root / "m_split.json").write_text(json.dumps(split))
    return data, model


def _evaluate(data: Path, model: Path, *extra: str):
    return runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--engine", "keras", *extra])


def test_the_training_source_without_holdout_warns_and_names_the_split(trained: tuple[Path, Path]) -> None:
    data, model = trained
    res = _evaluate(data, model)
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if "was trained on" in line]
    assert len(lines) == 1
    assert f"--holdout {model.with_name('m_split.json')}" in lines[0] and "32 of its 40" in lines[0]
    m = json.loads(_evaluate(data, model, "--json").stdout)
    assert m["includes_training_photos"] is True


def test_a_copy_of_the_training_photos_elsewhere_warns_too(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, model = trained
    copy = shutil.copytree(data, tmp_path / "copy")
    assert "was trained on (32 of its 40" in _evaluate(copy, model).stderr


def test_with_holdout_or_other_photos_no_training_warning(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    held = _evaluate(data, model, "--holdout", str(model.with_name("m_split.json")))
    assert held.exit_code == 0 and "was trained on" not in held.stderr
    other = write_utk_folder(tmp_path / "other", n=12, seed=9, size=48)
    res = _evaluate(other, model, "--json")
    assert "was trained on" not in res.stderr
    assert json.loads(res.stdout)["includes_training_photos"] is False


def test_one_class_for_every_photo_is_said(trained: tuple[Path, Path]) -> None:
    data, model = trained
    res = _evaluate(data, model)
    line = next(x for x in res.stderr.splitlines() if "every photo" in x)
    assert line == (
        "warning: every photo (40) was predicted young: the model has not learned to tell the groups "
        "apart (2 training steps; train longer or on more photos)"
    )
    assert json.loads(_evaluate(data, model, "--json").stdout)["one_class_predicted"] == "young"


def test_an_untrained_age_head_is_not_blamed_on_scaling(trained: tuple[Path, Path]) -> None:
    data, model = trained
    line = next(x for x in _evaluate(data, model).stderr.splitlines() if "ages lie within" in x)
    assert "age head has not learned" in line and "2 training steps" in line
    assert "age / 100" not in line and "--input-range" not in line


def test_holdout_left_out_counts_files_not_photos(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, model = trained
    copy = shutil.copytree(data, tmp_path / "copy")
    (copy / "50_0_0_20170101999999.jpg").write_text("not a photo")
    res = _evaluate(copy, model, "--holdout", str(model.with_name("m_split.json")))
    assert "37 of the 41 labelled files in" in res.stderr and "left out unread" in res.stderr
    assert "labelled photos" not in res.stderr


def test_one_class_warning_wording() -> None:
    names = ["young", "middle-aged", "old"]
    same = np.zeros(12, int)
    assert one_class_predicted(same, names) == "young"
    assert one_class_predicted(same[:5], names) is None  # too few photos to mean anything
    assert one_class_predicted(np.r_[same, 1], names) is None
    assert "cannot show whether" in one_class_warning(same, same, names, 3)
    assert one_class_warning(np.r_[same[:6], np.ones(6, int)], same, names).endswith("groups apart here")
    assert one_class_warning(np.r_[same, 1], np.r_[same, 1], names) == ""


def test_training_steps_from_metadata() -> None:
    meta = {"training": {"epochs_done": 3}, "data": {"n_train": 130}, "train_config": {"batch_size": 64}}
    assert training_steps(meta) == 9
    assert training_steps({"training": {"epochs": 76}}) is None  # the shipped model's recipe
    assert training_steps(None) is None
