"""train() ends by recomputing the best epoch's BatchNorm statistics over the training photos, and
keeps them only when validation (accuracy + macro-F1, the score that picked the epoch) does not drop."""

from __future__ import annotations

import numpy as np
from tiny_run import N_TRAIN

from agelens.model.age_model import AgeModel
from agelens.model.builder import GROUP_OUTPUT, ModelConfig, build_age_model
from agelens.model.train import TrainConfig, _precise_batchnorm

NAMES = ["young", "middle-aged", "old"]


def _untrained(seed: int = 0) -> AgeModel:
    """Statistics at their initial 0 / 1: the state a run of a few steps ends in."""
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, num_classes=3, age_head=False), seed=seed)
    return AgeModel(km, NAMES, 32, None, {}, GROUP_OUTPUT, None)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 60, (n, 32, 32, 3)) + (y * 90)[:, None, None, None]  # class shows in brightness
    return x.astype(np.uint8), y


def _moving(model: AgeModel) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.keras_model.weights if "moving" in w.path]


def test_new_statistics_are_kept_only_when_validation_does_not_drop() -> None:
    x, y = _data(60, 0)
    xv, yv = _data(30, 1)
    model = _untrained()
    start = _moving(model)
    cfg = TrainConfig(batch_size=16)
    worse = _precise_batchnorm(model, x, xv, yv, NAMES, cfg, before=10.0, verbose=0)  # unbeatable
    assert worse["kept"] is False and worse["val_score_after"] < 10.0
    assert all(np.array_equal(a, b) for a, b in zip(start, _moving(model), strict=True))  # put back
    better = _precise_batchnorm(model, x, xv, yv, NAMES, cfg, before=-1.0, verbose=0)
    assert better["kept"] is True and better["n_images"] == 60 and better["batch_size"] == 32
    assert not all(np.array_equal(a, b) for a, b in zip(start, _moving(model), strict=True))


def test_a_short_run_records_the_step_and_its_decision(trained) -> None:
    """``trained`` (tests/model/conftest.py): one epoch of a tiny model, shared with test_model.py."""
    result, _, faces = trained
    xv, yv = faces.images[N_TRAIN:], faces.labels[N_TRAIN:]  # its validation photos
    done = result.model.metadata["training"]["precise_batchnorm"]
    best = result.model.metadata["training"]["history"][0]
    assert done["val_score_before"] == best["val_accuracy"] + best["val_macro_f1"]
    assert done["kept"] == (done["val_score_after"] >= done["val_score_before"])
    probs = result.model.predict(xv)["probabilities"]
    from agelens.model.evaluate import classification_metrics

    m = classification_metrics(yv, probs.argmax(1), NAMES)
    shown = done["val_score_after"] if done["kept"] else done["val_score_before"]
    assert abs(m["accuracy"] + m["macro_f1"] - shown) < 1e-6  # the model returned is the one judged
