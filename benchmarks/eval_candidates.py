"""Compare candidate shipped models on the held-out split, with decision variants.

For each model: validation and test accuracy / macro-F1 on utkface-64 (photos
resized to the model's input), and on the held-out test photos that also exist in
utkface-200 (from their 200 px copies). Variants: the class head alone, the class
head averaged over a horizontal flip (TTA), and either of these mixed with the
group probabilities implied by the age-distribution head. Any choice (variant,
mixing weight) is made on the validation split only; test figures are reported,
never tuned on.

    python benchmarks/eval_candidates.py /tmp/ft/R96.swa.keras src/agelens/assets/agelens-utkface.keras \
        --pack .devdata/utk64.npz \
        --hires ../shared/data/utkface-200 --split benchmarks/results/shipped_split.json
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
from finetune_shipped import load_hires  # noqa: E402
from train_shipped import decode_pack, macro_f1  # noqa: E402

from agelens.data.bins import AgeBins  # noqa: E402
from agelens.model.builder import AGE_DIST, GROUP_OUTPUT  # noqa: E402


def group_probs(model: keras.Model, x: np.ndarray, bins: AgeBins) -> tuple[np.ndarray, np.ndarray]:
    """Class-head probabilities and the group probabilities implied by the age head."""
    out = model.predict(x, batch_size=256, verbose=0)
    dist = out[AGE_DIST]
    grid = bins.index(np.arange(dist.shape[1]))
    from_age = np.stack([dist[:, grid == c].sum(1) for c in range(3)], 1)
    return out[GROUP_OUTPUT], from_age


def held_out_sets(pack: str, split_path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """The decoded 64 px pack, its ages, names and groups, and masks of the split's val and test photos."""
    x64, ages, names = decode_pack(pack)
    split = json.loads(Path(split_path).read_text())
    y = AgeBins().index(ages).astype(int)
    return x64, ages, names, y, {k: np.isin(names, split[k]) for k in ("val", "test")}


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    pred = p.argmax(1)
    return {"acc": float(np.mean(pred == y)), "f1": macro_f1(y, pred, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--pack", required=True)
    ap.add_argument("--hires", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    x64, ages, names, y, sets = held_out_sets(a.pack, a.split)
    bins = AgeBins()
    results = {}
    for path in a.models:
        model = keras.models.load_model(path, compile=False)
        size = model.input_shape[1]
        hi = load_hires(Path(a.hires), [n for n, t in zip(names, sets["test"], strict=True) if t], size)
        hi_names = sorted(hi)
        idx = {n: i for i, n in enumerate(names)}
        y_hi = y[[idx[n] for n in hi_names]]
        data = {}
        for k, m in sets.items():
            xs = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in x64[m]])
            data[k] = (xs, y[m])
        data["test200"] = (np.stack([hi[n] for n in hi_names]), y_hi)
        probs = {}
        for k, (xs, _) in data.items():
            c, g = group_probs(model, xs, bins)
            cf, gf = group_probs(model, xs[:, :, ::-1], bins)
            probs[k] = {"head": c, "tta": (c + cf) / 2, "age": g, "age_tta": (g + gf) / 2}
        # Choose the mixing weight between class head and age head on validation only.
        best = max(
            ((w, tta) for w in np.linspace(0, 1, 11) for tta in (False, True)),
            key=lambda wt: sum(
                scores(
                    data["val"][1],
                    (1 - wt[0]) * probs["val"]["tta" if wt[1] else "head"]
                    + wt[0] * probs["val"]["age_tta" if wt[1] else "age"],
                ).values()
            ),
        )
        row = {"size": size}
        for k, (_, yy) in data.items():
            pk = probs[k]
            row[k] = {
                "head": scores(yy, pk["head"]),
                "tta": scores(yy, pk["tta"]),
                "age": scores(yy, pk["age"]),
                f"mix(w={best[0]:.1f},tta={best[1]})": scores(
                    yy,
                    (1 - best[0]) * pk["tta" if best[1] else "head"]
                    + best[0] * pk["age_tta" if best[1] else "age"],
                ),
                "n": int(len(yy)),
            }
        row["chosen_on_val"] = {"age_weight": float(best[0]), "tta": bool(best[1])}
        results[path] = row
        print(f"\n{path} ({size} px)")
        print(f"{'variant':<24}" + "".join(f"{k + ' acc':>14}{k + ' F1':>12}" for k in data))
        for v in row["val"]:
            if v == "n":
                continue
            print(f"{v:<24}" + "".join(f"{row[k][v]['acc']:>14.4f}{row[k][v]['f1']:>12.4f}" for k in data))
        print("n: " + ", ".join(f"{k} {row[k]['n']}" for k in data), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
