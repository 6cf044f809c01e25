"""``agelens train --resume`` and :func:`agelens.model.train.train` refuse a checkpoint of other
classes with one check and one message (:func:`agelens.model.checkpoints.classes_problem`).

Why it matters: the command asks before a photo is decoded or TensorFlow starts, the API asks of
the loaded checkpoint; two copies of the check drifted apart in their words ("the data's" and
"this run's") and could drift apart in what they refuse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()


def _labels_csv(root: Path) -> Path:
    """Synthetic face crops labelled adult or child in a CSV: classes that are no age bins."""
    photos = sorted(write_utk_folder(root / "utk", 12, seed=4).glob("*.jpg"))
    csv = root / "labels.csv"
    csv.write_text(
        "path,label\n" + "".join(f"{p},{('adult', 'child')[i % 2]}\n" for i, p in enumerate(photos))
    )
    return csv


@pytest.fixture(scope="module")
def cat_dog_checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained two-class model: a checkpoint ``--resume`` may name."""
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, num_classes=2, age_head=False), seed=0)
    root = tmp_path_factory.mktemp("ckpt")
    return save_model(wrap_keras_model(km, class_names=["cat", "dog"]), root / "cat_dog.keras")


def test_the_command_and_the_api_refuse_other_classes_in_the_same_words(
    tmp_path, cat_dog_checkpoint, monkeypatch
) -> None:
    import agelens.data.images as images
    import agelens.quiet as quiet
    from agelens.model.builder import ModelConfig
    from agelens.model.train import TrainConfig, train

    data = _labels_csv(tmp_path)
    with monkeypatch.context() as mp:  # the command refuses before any photo decodes or TF starts
        mp.setattr(images, "load_batch", lambda *a, **k: pytest.fail("a photo was decoded"))
        mp.setattr(quiet, "import_tensorflow_quietly", lambda: pytest.fail("TensorFlow was started"))
        args = ["train", str(data), "--out", str(tmp_path / "m.keras"), "--resume", str(cat_dog_checkpoint)]
        res = runner.invoke(app, [*args, "--epochs", "2"])
    assert res.exit_code == 1, res.output
    said = res.output.strip()
    assert said.startswith("error: ") and len(said.splitlines()) == 1

    x = np.zeros((4, 32, 32, 3), np.uint8)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError) as refused:
        train(
            x,
            y,
            x,
            y,
            model_config=ModelConfig(input_size=32, alpha=0.35, num_classes=2, age_head=False),
            config=TrainConfig(epochs=2, batch_size=4),
            class_names=["adult", "child"],
            resume=cat_dog_checkpoint,
            verbose=0,
        )
    expected = f"{cat_dog_checkpoint}: cannot resume: its classes are cat, dog, the data's adult, child"
    assert str(refused.value) == said.removeprefix("error: ") == expected


def test_a_checkpoint_of_the_same_classes_or_none_recorded_is_no_problem() -> None:
    from agelens.model.checkpoints import classes_problem

    assert classes_problem("c.keras", ["a", "b"], ("a", "b")) is None
    assert classes_problem("c.keras", None, ["a", "b"]) is None  # an older file: the weights decide
    assert classes_problem("c.keras", ["b", "a"], ["a", "b"]) is not None  # the order is the outputs'
