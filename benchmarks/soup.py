"""Average the weights of fine-tuned models that share an ancestor ("model soup"), then
recompute BatchNorm statistics on clean training photos.

Used to combine the stage-2 runs of the shipped recipe (same architecture and input
size, started from stage-1 weights). Training photos only: the held-out names of
``--split`` are excluded from the BatchNorm pass.

    python benchmarks/soup.py /tmp/ft/R96.swa.keras /tmp/ft/T96.swa.keras /tmp/ft/soup96.keras \
        --pack .devdata/utk64.npz --hires ../shared/data/utkface-200 \
        --split benchmarks/results/shipped_split.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from finetune_shipped import load_hires, refresh_batchnorm  # noqa: E402
from train_shipped import decode_pack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="two or more .keras files, then the output path")
    ap.add_argument("--pack", required=True)
    ap.add_argument("--hires", default="")
    ap.add_argument("--split", required=True)
    a = ap.parse_args()
    *inputs, out = a.models
    models = [keras.models.load_model(p, compile=False) for p in inputs]
    size = models[0].input_shape[1]
    weights = [m.get_weights() for m in models]
    soup = models[0]
    soup.set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*weights, strict=True)])

    x64, _, names = decode_pack(a.pack)
    split = json.loads(Path(a.split).read_text())
    held = set(split["test"]) | set(split["val"])
    train = [i for i, n in enumerate(names) if n not in held]
    x = np.stack([cv2.resize(x64[i], (size, size), interpolation=cv2.INTER_LINEAR) for i in train])
    if a.hires:
        hi = load_hires(Path(a.hires), [names[i] for i in train], size)
        for j, i in enumerate(train):
            if names[i] in hi:
                x[j] = hi[names[i]]
    refresh_batchnorm(soup, x)
    soup.save(out)
    print(f"averaged {len(inputs)} models -> {out}")


if __name__ == "__main__":
    main()
