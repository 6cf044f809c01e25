"""The quick start in docs/explain.md runs as written (a user pasted it and met a NameError)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agelens.data.synthetic import generate
from agelens.model.io import SHIPPED_MODEL

DOC = Path(__file__).resolve().parents[2] / "docs" / "explain.md"


@pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason=f"shipped model not found at {SHIPPED_MODEL}")
def test_the_quick_start_runs_as_written(tmp_path, monkeypatch) -> None:
    block = re.search(r"## Quick start\s+```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/explain.md lost its quick start"
    faces = generate(2, size=120, seed=3).images
    Image.fromarray(faces[0]).save(tmp_path / "face.jpg")
    Image.fromarray(faces[1]).save(tmp_path / "other.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), scope)
    e, maps = scope["e"], scope["maps"]
    assert len(e.maps) == 2 and e.probabilities.shape == (2, 3)
    assert np.all((maps >= 0) & (maps <= 1)) and maps.shape[0] == 3
    assert (tmp_path / "outputs" / "run1" / "manifest.json").is_file()


def test_the_own_model_example_runs_as_written(tmp_path, monkeypatch) -> None:
    block = re.search(r"## Your own model.*?```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/explain.md lost its own-model example"
    Image.fromarray(generate(1, size=120, seed=3).images[0]).save(tmp_path / "face.jpg")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), scope)
    e = scope["e"]
    assert e.settings["input_range"] == "0-1" and e.class_names == ["cat", "dog"]
    assert e.target == "dog" and e.maps.shape == (1, 120, 120)
    np.testing.assert_allclose(e.probabilities.sum(), 1, atol=1e-5)  # the logits head got its softmax
