"""One tiny trained run that several model test files share (tests/model/conftest.py's ``trained``).

Each training costs ~25 s, most of it tracing the training step, so the files that only need
some run (its history, its saved file, its checkpoint, its final BatchNorm step) share this one.
"""

from __future__ import annotations

from pathlib import Path

from agelens.data.synthetic import SynthFaces, generate
from agelens.model.builder import ModelConfig
from agelens.model.io import save_model
from agelens.model.train import TrainConfig, TrainResult, train

TINY = ModelConfig(input_size=48, alpha=0.35, dropout=0.1, num_classes=3, age_head=True)
N_TRAIN = 72  # of the 96 faces; the rest validate


def checkpoint_of(path: Path) -> Path:
    """The run's checkpoint (with its optimizer state beside it), next to the saved model ``path``."""
    return path.with_name("tiny.checkpoint.keras")


def train_tiny_run(folder: Path) -> tuple[TrainResult, Path, SynthFaces]:
    """One epoch on 72 faces (24 validate), saved to ``folder/tiny.keras``, its checkpoint kept."""
    faces = generate(96, size=48, seed=3)
    config = TrainConfig(epochs=1, batch_size=24, augment=0.5)
    res = train_on(faces, N_TRAIN, TINY, config, checkpoint=checkpoint_of(folder / "tiny.keras"))
    return res, save_model(res.model, folder / "tiny.keras"), faces


def train_on(
    faces: SynthFaces, n: int, model_config: ModelConfig, config: TrainConfig, **kwargs
) -> TrainResult:
    """``train`` on the first ``n`` faces with their ages, validating on the rest, quietly."""
    return train(
        faces.images[:n],
        faces.labels[:n],
        faces.images[n:],
        faces.labels[n:],
        ages_train=faces.ages[:n],
        ages_val=faces.ages[n:],
        model_config=model_config,
        config=config,
        verbose=0,
        **kwargs,
    )
