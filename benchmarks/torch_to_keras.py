"""Load weights exported by ``torch_train.py`` into agelens's Keras model and save it.

Every Keras layer that carries weights must be filled from the file (the frozen
expected-age layer aside) and every array in the file must be used, so a mismatch in
the architecture fails loudly instead of leaving a layer at its random initial values.
With ``--reference REF.npz`` (written by ``torch_train.py``'s ``--self-check``) the
Keras model's outputs are compared with PyTorch's on the same images.

    python benchmarks/torch_to_keras.py /tmp/gpu/A.best.npz /tmp/gpu/A.keras --size 96
    python benchmarks/torch_to_keras.py E112s2?.best.npz gc3/soupE112.best.keras --size 112  # average
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agelens.model.builder import AGE_DIST, AGE_OUTPUT, GROUP_LOGITS, ModelConfig, build_age_model  # noqa: E402


def average(paths: list[str | Path]) -> dict[str, np.ndarray]:
    """The arrays of one export, or the uniform average of several ("weight soup", BatchNorm
    statistics included), as float32.

    Averaging is only meaningful for runs that share an ancestor (seeds continuing the same
    weights); the card's stage-3 soup is the average of the three seeds' best checkpoints.
    """
    zs = [np.load(p) for p in paths]
    keys = set(zs[0].files)
    for p, z in zip(paths, zs, strict=True):
        if set(z.files) != keys:
            raise SystemExit(f"{p}: its arrays differ from {paths[0]}'s; only one architecture averages")
    return {k: np.mean([z[k].astype(np.float64) for z in zs], 0).astype(np.float32) for k in sorted(keys)}


def convert(
    npz: str | Path | list, size: int, dropout: float = 0.2, bn_momentum: float = 0.99, alpha: float = 1.0
):
    """Return the Keras model holding the weights of ``npz`` (a list of several files: their average)."""
    paths = list(npz) if isinstance(npz, list | tuple) else [npz]
    z = average(paths)
    name = str(paths[0]) if len(paths) == 1 else f"the average of {len(paths)} files"
    model = build_age_model(ModelConfig(size, alpha, dropout, 3, True, bn_momentum))
    used: set[str] = set()
    for layer in model.layers:
        current = layer.get_weights()
        if not current or layer.name == AGE_OUTPUT:
            continue
        keys = [f"{layer.name}/{i}" for i in range(len(current))]
        missing = [k for k in keys if k not in z]
        if missing:
            raise SystemExit(f"{name}: no weights for Keras layer {layer.name} ({missing[0]})")
        new = [z[k] for k in keys]
        for k, old, arr in zip(keys, current, new, strict=True):
            if old.shape != arr.shape:
                raise SystemExit(f"{name}: {k} has shape {arr.shape}, Keras expects {old.shape}")
        layer.set_weights(new)
        used.update(keys)
    unused = sorted(set(z) - used)
    if unused:
        raise SystemExit(f"{name}: {len(unused)} arrays match no Keras layer, e.g. {unused[0]}")
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("npz", nargs="+", help="one export, or several to average (runs from the same weights)")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--alpha", type=float, default=1.0, help="the width torch_train.py trained (--alpha)")
    ap.add_argument("--reference", default="", help="npz with 'images', 'logits', 'age_logits' from PyTorch")
    a = ap.parse_args()
    model = convert(a.npz, a.size, alpha=a.alpha)
    if a.reference:
        import keras

        ref = np.load(a.reference)
        logits_model = keras.Model(
            model.input, [model.get_layer(GROUP_LOGITS).output, model.get_layer(AGE_DIST).output]
        )
        logits, dist = logits_model.predict(ref["images"].astype("float32"), verbose=0)
        torch_dist = np.exp(ref["age_logits"] - ref["age_logits"].max(1, keepdims=True))
        torch_dist /= torch_dist.sum(1, keepdims=True)
        for key in [k for k in ref.files if k.startswith("feat:")]:
            name = key.split(":", 1)[1]
            got = keras.Model(model.input, model.get_layer(name).output).predict(ref["images"], verbose=0)
            want = ref[key]
            rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))
            spread = float(want.std(0).mean())  # differs between images, so the check can fail
            print(
                f"{name}: shape {got.shape}, max relative diff {rel:.2e}, spread across images {spread:.3f}"
            )
            if got.shape != want.shape or rel > 1e-4:
                raise SystemExit(f"Keras and PyTorch differ at {name}")
        d1 = float(np.abs(logits - ref["logits"]).max())
        d2 = float(np.abs(dist - torch_dist).max())
        print(f"max |logit diff| {d1:.2e}, max |age-distribution diff| {d2:.2e}")
        if d1 > 1e-3 * max(1.0, float(np.abs(ref["logits"]).max())) or d2 > 1e-4:
            raise SystemExit("Keras and PyTorch outputs differ")
    model.save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
