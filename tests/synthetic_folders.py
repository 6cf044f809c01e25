"""UTKFace-style folders of synthetic faces for end-to-end CLI tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def write_utk_folder(folder: Path, n: int, seed: int, size: int = 48) -> Path:
    """``n`` synthetic faces saved as ``AGE_0_0_<date>.jpg.chip.jpg`` (UTKFace's naming) in ``folder``."""
    from agelens.data.synthetic import generate

    folder.mkdir(parents=True, exist_ok=True)
    faces = generate(n, size=size, seed=seed)
    for i, (img, age) in enumerate(zip(faces.images, faces.ages, strict=True)):
        Image.fromarray(img).save(folder / f"{int(age)}_0_0_2017{seed:02d}{i:05d}.jpg.chip.jpg", quality=95)
    return folder


def faces_and_tiny_model(root: Path, folder: str, n: int = 6, seed: int = 3) -> tuple[Path, Path]:
    """A UTKFace-style folder of ``n`` synthetic faces under ``root / folder`` and a tiny untrained
    agelens model saved beside it: enough for a CLI run end to end in seconds, not a training run."""
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    data = write_utk_folder(root / folder, n, seed=seed)
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=False), seed=0)
    return data, save_model(wrap_keras_model(km), root / "tiny.keras")
