"""Fixtures for the dataset-layer tests (builders live in data_factory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_factory import encode, face_like


@pytest.fixture
def utk_folder(tmp_path: Path) -> Path:
    """A UTKFace-style folder: 6 good JPEGs (2 per default class) plus a README that is ignored."""
    folder = tmp_path / "utk"
    folder.mkdir()
    for i, age in enumerate((3, 25, 30, 59, 60, 116)):
        (folder / f"{age}_0_0_2017011{i}.jpg.chip.jpg").write_bytes(encode(face_like(seed=i), "JPEG"))
    (folder / "README.txt").write_text("not a dataset file")
    return folder
