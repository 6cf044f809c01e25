"""``explain_model``: ``agelens explain`` for a model already in memory (the demo's, just trained).

Why: the demo explained its model through ``explain_command(model=<the file it had just saved>)``,
which read the file back into a second Keras model; every explain step was traced for that copy
and again for the in-memory model the demo then scores (traced steps are cached per Keras model).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agelens import demo
from agelens.cli.explain_cmd import explain_command, explain_model
from agelens.explain.api import make_method
from agelens.model.builder import ModelConfig, build_age_model
from agelens.model.io import save_model
from agelens.model.wrap import wrap_keras_model

SETTINGS = replace(demo.QUICK, methods=("gradcam", "saliency"), filters=2, extra_layers=(), extra_targets=())


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny untrained age model, saved (so it has a path, as the demo's has)."""
    am = wrap_keras_model(build_age_model(ModelConfig(input_size=32, alpha=0.35), seed=1))
    save_model(am, tmp_path_factory.mktemp("model") / "tiny.keras")
    return am


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"face_{i}.png" for i in range(2)]
    for p in paths:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p)
    return paths


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was read back from its file")

    monkeypatch.setattr("agelens.model.io.load_model", refuse)


def test_the_demo_explains_its_model_without_reading_it_back(model, photos, tmp_path, monkeypatch) -> None:
    _no_loading(monkeypatch)
    demo._explain(model, photos, SETTINGS, tmp_path / "explain")
    manifest = json.loads((tmp_path / "explain" / "manifest.json").read_text())
    assert [r["method"] for r in manifest["runs"]] == ["gradcam", "saliency"]
    assert manifest["model"] == str(model.path) and len(manifest["images"]) == 2


def test_explain_model_writes_what_explain_writes_from_the_file(model, photos, tmp_path) -> None:
    common = dict(method="gradcam,saliency", layer=None, target=None, filters=2, force=False, detect=False)
    explain_model(model, [str(p) for p in photos], out=tmp_path / "a", cmap="jet", alpha=0.45, **common)
    explain_command(photos=[str(p) for p in photos], model=model.path, out=tmp_path / "b", **common)
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab")
    assert a["files"] == b["files"] and a["runs"] == b["runs"] and a["images"] == b["images"]
    assert a["model"] == b["model"] and a["model_read_as"] == b["model_read_as"]
    for name in a["files"]:
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))


def test_scoring_reuses_the_method_explain_model_traced(model, photos, tmp_path) -> None:
    explain_model(
        model, [str(photos[0])], method="gradcam", layer=None, target=None, filters=0,
        out=tmp_path / "run", force=False, detect=False, cmap="jet", alpha=0.45,
    )  # fmt: skip
    traced = make_method(model, "gradcam")
    assert traced._steps, "explain_model traced no step on the in-memory model"
    assert make_method(model, "gradcam") is traced
