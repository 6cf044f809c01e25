"""A resumed run is the uninterrupted run, bit for bit: same batches, augmentation, dropout and
optimizer state.

Before, the batch order (``tf.data``'s reshuffle), the augmentation (Keras' random layers) and
dropout drew from states that a resumed run restarted, so its epochs trained on other batches.
"""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest
from tiny_run import train_on

from agelens.data.synthetic import generate
from agelens.model.builder import ModelConfig
from agelens.model.checkpoints import run_state_files
from agelens.model.io import load_model, read_metadata
from agelens.model.train import TrainConfig, _restore_optimizer_state, optimizer_state_path

CONFIG = ModelConfig(input_size=32, alpha=0.35, dropout=0.3, num_classes=3, age_head=True)
RECIPE = TrainConfig(epochs=2, batch_size=16, augment=1.0, seed=4, precise_batchnorm=False)
N_TRAIN = 40  # 3 steps an epoch in batches of 16


def _run(faces, **kwargs):
    return train_on(faces, N_TRAIN, CONFIG, RECIPE, **kwargs)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A 2-epoch run whose state after epoch 1 is copied aside (as an interrupt there would leave
    it), and that state resumed to epoch 2, counting the traces of the training step and the
    optimizer's step count as ``fit`` first sees it."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    root = tmp_path_factory.mktemp("exact")
    faces = generate(56, size=32, seed=6)
    ckpt, aside = root / "run.checkpoint.keras", root / "aside"
    aside.mkdir()

    def keep_epoch_one(row: dict) -> None:
        if row["epoch"] == 1:
            for path in run_state_files(ckpt):
                if path.exists():
                    shutil.copy2(path, aside / path.name)

    whole = _run(faces, checkpoint=ckpt, on_epoch=keep_epoch_one)
    with np.load(optimizer_state_path(aside / ckpt.name)) as z:
        saved = [z[f"arr_{i}"] for i in range(len(z.files))]
    traces, seen = [], {}
    real_step, real_fit = TensorFlowTrainer.train_step, keras.Model.fit

    def fit_spy(self, *a, **kw):
        seen["iterations"] = int(self.optimizer.iterations.numpy())
        return real_fit(self, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TensorFlowTrainer, "train_step", lambda self, d: traces.append(1) or real_step(self, d))
        mp.setattr(keras.Model, "fit", fit_spy)
        resumed = _run(faces, checkpoint=aside / ckpt.name, resume=aside / ckpt.name)
    return {
        "whole": whole,
        "resumed": resumed,
        "checkpoints": (ckpt, aside / ckpt.name),
        "saved_optimizer": saved,
        "traces": len(traces),
        "iterations_at_fit": seen["iterations"],
    }


def test_the_resumed_epoch_trains_on_what_the_uninterrupted_one_did(runs) -> None:
    whole, resumed = runs["whole"], runs["resumed"]
    assert [r["epoch"] for r in resumed.history] == [2]
    assert resumed.history[0]["loss"] == whole.history[1]["loss"]  # the same batches, draws and masks
    assert resumed.history[0]["val_accuracy"] == whole.history[1]["val_accuracy"]


def test_the_resumed_run_ends_with_the_uninterrupted_runs_weights(runs) -> None:
    """Epoch 2's weights (each run's last checkpoint), whichever epoch ends up best."""
    whole, resumed = runs["whole"], runs["resumed"]
    assert resumed.best_epoch == whole.best_epoch
    last = [load_model(path) for path in runs["checkpoints"]]
    assert [m.metadata["training"]["weights_epoch"] for m in last] == [2, 2]
    for a, b in zip(*(m.keras_model.get_weights() for m in last), strict=True):
        np.testing.assert_array_equal(a, b)
    ends = (whole.model.keras_model.get_weights(), resumed.model.keras_model.get_weights())
    for a, b in zip(*ends, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_checkpoint_keeps_the_optimizer_and_every_epoch(runs) -> None:
    """AdamW's step count and moments are saved beside the checkpoint and are what ``fit`` starts
    from; the resumed run's checkpoint lists the epochs before the resume too."""
    saved = runs["saved_optimizer"]
    assert int(saved[0]) == 3  # one epoch: 40 photos in batches of 16
    assert any(a.ndim and np.abs(a).sum() > 0 for a in saved[1:])  # moments, not zeros
    assert runs["iterations_at_fit"] == 3
    assert runs["resumed"].model.metadata["training"]["optimizer_restored"] is True
    history = read_metadata(runs["checkpoints"][1])["training"]["history"]
    assert [r["epoch"] for r in history] == [1, 2]


def test_the_training_step_is_traced_once_on_resume(runs) -> None:
    """The optimizer's, losses' and metrics' variables are made before ``fit`` traces its step (else
    ``tf.function`` traces the whole step twice)."""
    assert runs["traces"] == 1


def test_a_state_file_of_another_run_or_none_starts_the_optimizer_fresh(runs, tmp_path) -> None:
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")
    assert not _restore_optimizer_state(other, tmp_path / "missing.npz")
    with pytest.warns(UserWarning, match="does not fit this run"):
        assert not _restore_optimizer_state(other, optimizer_state_path(runs["checkpoints"][1]))
    assert int(other.optimizer.iterations.numpy()) == 0
