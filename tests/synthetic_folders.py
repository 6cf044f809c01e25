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
