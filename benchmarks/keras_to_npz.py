"""Write a Keras age model's weights as the ``layer/index`` npz that ``torch_train.py --init`` reads.

Why: continuing the shipped model on a lent GPU means handing PyTorch the shipped weights;
this is the inverse of ``torch_to_keras.py`` (same keys, Keras layout), so a round trip
``keras -> npz -> torch -> npz -> keras`` is checked by that script's layer-by-layer fill.
Float16 halves the file (the carry to the GPU machine is capped at 64 MiB); the weights are
float32 again once loaded, and half precision changes the model's outputs by far less than
the training steps that follow.

    python benchmarks/keras_to_npz.py src/agelens/assets/agelens-utkface.keras .devdata/gpu/shipped.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agelens.model.builder import AGE_OUTPUT  # noqa: E402


def export(model, dtype=np.float32) -> dict[str, np.ndarray]:
    """``layer/index`` -> weight in Keras layout, every layer but the frozen expected-age one."""
    return {
        f"{layer.name}/{i}": w.astype(dtype)
        for layer in model.layers
        if layer.name != AGE_OUTPUT  # rebuilt from the bins, not trained
        for i, w in enumerate(layer.get_weights())
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--half", action="store_true", help="store float16 (smaller carry)")
    a = ap.parse_args()
    import keras

    model = keras.saving.load_model(a.model, compile=False, safe_mode=True)
    arrays = export(model, np.float16 if a.half else np.float32)
    np.savez(a.out, **arrays)
    print(f"{len(arrays)} arrays from {a.model} -> {a.out}")


if __name__ == "__main__":
    main()
