"""Is the shipped model short of capacity or of data? Its scores on the photos it trained on
against the photos it never saw.

Issue #3's 64 px target needs a lower age error (see accuracy_ceiling.py). Which regime could
get there depends on this gap: a model that fits its own training photos no better than the
held-out ones needs more capacity or training; one that fits them far better needs more data
or regularisation, and longer training would only widen the gap. Class head, one unflipped
pass, 64 px photos resized to the model's input as `agelens evaluate` does.

    python benchmarks/fit_gap.py src/agelens/assets/agelens-utkface.keras [OTHER.keras...] \
        --pack .devdata/utk64.npz --split benchmarks/results/shipped_split.json \
        --out benchmarks/results/fit_gap.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from train_shipped import decode_pack, macro_f1  # noqa: E402

from agelens.data.bins import AgeBins  # noqa: E402
from agelens.data.images import resize_for_model  # noqa: E402
from agelens.model.builder import AGE_OUTPUT, GROUP_OUTPUT  # noqa: E402


def part_scores(model: keras.Model, x64: np.ndarray, ages: np.ndarray, size: int) -> dict:
    """Accuracy, macro-F1, age MAE and the share of photos within 5 years of a group boundary."""
    bins = AgeBins()
    y = bins.index(ages).astype(int)
    pred, age = [], []
    for i in range(0, len(x64), 512):  # resize per chunk: all 17k photos at 112 px would be 640 MB
        chunk = x64[i : i + 512]
        xs = np.stack([resize_for_model(im, size) for im in chunk])
        out = model.predict(xs, batch_size=256, verbose=0)
        pred.append(out[GROUP_OUTPUT].argmax(1))
        age.append(out[AGE_OUTPUT].reshape(-1))
    p, a = np.concatenate(pred), np.concatenate(age)
    near = np.min(np.abs(ages[:, None] - np.asarray(bins.edges, np.float32)[None]), 1) < 5
    return {
        "n": int(len(y)),
        "accuracy": float(np.mean(p == y)),
        "macro_f1": float(macro_f1(y, p, 3)),
        "age_mae": float(np.mean(np.abs(a - ages))),
        "accuracy_near_boundary": float(np.mean(p[near] == y[near])),
        "accuracy_far_from_boundary": float(np.mean(p[~near] == y[~near])),
        "share_near_boundary": float(np.mean(near)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="the shipped model first, then others to compare")
    ap.add_argument("--pack", required=True, help="utkface-64 packed by pack_utkface.py")
    ap.add_argument("--split", required=True, help="val and test names; the rest trained the models")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    t0 = time.time()
    x64, ages, names = decode_pack(a.pack)
    split = json.loads(Path(a.split).read_text())
    held = {part: np.isin(names, split[part]) for part in ("val", "test")}
    parts = {"train": ~(held["val"] | held["test"]), **held}  # train: every photo the split does not name
    results = {}
    for path in a.models:
        model = keras.models.load_model(path, compile=False)
        size = int(model.input_shape[1])
        rows = {part: part_scores(model, x64[m], ages[m], size) for part, m in parts.items()}
        results[path] = {"input_size": size, "parts": rows}
        cols = list(rows["train"])
        print(f"\n{path} ({size} px), utkface-64 parts of {a.split}")
        # near: within 5 years of 30 or 60
        short = ["n", "acc", "macro-F1", "age MAE", "acc near", "acc far", "near share"]
        print(f"{'part':<7}" + "".join(f"{c:>11}" for c in short))
        for part, r in rows.items():
            cells = (f"{r[c]:>11.4f}" if isinstance(r[c], float) else f"{r[c]:>11}" for c in cols)
            print(f"{part:<7}" + "".join(cells))
        gap = rows["train"]["accuracy"] - rows["test"]["accuracy"]
        print(f"train - test accuracy: {gap:+.4f}; {time.time() - t0:.0f} s", flush=True)
    if a.out:
        out = {"split": a.split, "models": results, "seconds": time.time() - t0}
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
