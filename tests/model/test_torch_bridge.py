"""The GPU training path: weights exported from PyTorch load into the Keras model exactly.

``benchmarks/torch_to_keras.py`` must fill every Keras layer and use every exported array,
failing with a message that names the layer otherwise. The end-to-end PyTorch check runs
only where PyTorch is installed (it is a dev tool for a lent GPU, not a dependency).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agelens.model.builder import ModelConfig, build_age_model

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def bridge():
    sys.path.insert(0, str(BENCH))
    try:
        import torch_to_keras

        yield torch_to_keras
    finally:
        sys.path.remove(str(BENCH))


def _export(model) -> dict[str, np.ndarray]:
    """The file layout torch_train.py writes (``layer/index`` -> array in Keras layout), as
    ``benchmarks/keras_to_npz.py`` writes it from a Keras model."""
    sys.path.insert(0, str(BENCH))
    try:
        import keras_to_npz
    finally:
        sys.path.remove(str(BENCH))
    return keras_to_npz.export(model)


@pytest.fixture(scope="module")
def source():
    model = build_age_model(ModelConfig(32, 1.0, 0.2, 3, True, 0.99), seed=3)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial BatchNorm statistics, so a mix-up would show
        if layer.name.endswith(("_BN", "_bn", "bn_Conv1")):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.3, b + 0.1, m + rng.normal(0, 0.1, m.shape), v * 1.5])
    return model


def test_exported_weights_round_trip_exactly(bridge, source, tmp_path):
    """Keras -> npz (keras_to_npz.py, what continues the shipped model on a GPU) -> Keras."""
    path = tmp_path / "w.npz"
    np.savez(path, **_export(source))
    model = bridge.convert(path, 32)
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    want, got = source.predict(x, verbose=0), model.predict(x, verbose=0)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)


def test_several_exports_average_into_one_model(bridge, source, tmp_path):
    a = _export(source)
    b = {k: v * 3.0 for k, v in a.items()}
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    model = bridge.convert([tmp_path / "a.npz", tmp_path / "b.npz"], 32)
    conv = model.get_layer("Conv1").get_weights()[0]
    np.testing.assert_allclose(conv, 2.0 * a["Conv1/0"], rtol=1e-6)
    np.savez(tmp_path / "c.npz", **{k: v for k, v in a.items() if k != "Conv1/0"})
    with pytest.raises(SystemExit, match="c.npz: its arrays differ"):
        bridge.convert([tmp_path / "a.npz", tmp_path / "c.npz"], 32)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda w: w.pop("block_3_depthwise/0"), "no weights for Keras layer block_3_depthwise"),
        (lambda w: w.__setitem__("block_99_project/0", np.zeros(1)), "match no Keras layer"),
        (lambda w: w.__setitem__("Conv1/0", np.zeros((3, 3, 3, 16))), "Conv1/0 has shape"),
    ],
    ids=["missing", "extra", "shape"],
)
def test_mismatched_files_fail_naming_the_layer(bridge, source, tmp_path, edit, message):
    weights = _export(source)
    edit(weights)
    path = tmp_path / "bad.npz"
    np.savez(path, **weights)
    with pytest.raises(SystemExit, match=message):
        bridge.convert(path, 32)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed (GPU dev tool)")
def test_pytorch_mirror_computes_what_keras_computes(tmp_path):
    """Random PyTorch weights, converted, give the same features and logits in Keras, at the
    shipped width and at a wider one (Keras rounds the channels and widens the last conv)."""
    for size, alpha in ((96, "1.0"), (97, "1.0"), (64, "1.4")):
        out = tmp_path / f"{size}-{alpha}"
        run = [
            sys.executable,
            str(BENCH / "torch_train.py"),
            "x",
            str(out),
            "--self-check",
            "--size",
            str(size),
            "--alpha",
            alpha,
        ]
        subprocess.run(run, check=True)
        check = [
            sys.executable,
            str(BENCH / "torch_to_keras.py"),
            str(out / "check.npz"),
            str(out / "check.keras"),
            "--size",
            str(size),
            "--alpha",
            alpha,
            "--reference",
            str(out / "check_ref.npz"),
        ]
        subprocess.run(check, check=True)
