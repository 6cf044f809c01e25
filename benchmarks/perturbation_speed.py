"""Seconds per photo of the two black-box methods (RISE, occlusion) beside Grad-CAM, shipped model.

Why: RISE and occlusion cost a forward pass per mask or patch (1,000 and 169 at 112 px), Grad-CAM one
backward pass; a user picking a method for the app or ``score --methods all`` should know the price.
None of the peers has RISE, so the comparison is within agelens. Each method is traced on two photos
first, then timed on all of them in one call.

    python benchmarks/perturbation_speed.py --n 12 --out benchmarks/results/perturbation_speed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import agelens
from agelens.data.images import load_batch
from agelens.data.synthetic import generate

METHODS = ("gradcam", "occlusion", "rise")
HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "utkface-200"


def photos(n: int, size: int) -> tuple[np.ndarray, str]:
    """Held-out utkface-200 photos where the data is present, else synthetic faces."""
    split = json.loads((HERE / "results" / "shipped_split.json").read_text())
    files = [DATA / name for name in split["test"] if (DATA / name).is_file()][:n]
    if files:
        x, _, _ = load_batch(files, size)
        return x, f"{len(x)} held-out utkface-200 photos"
    return generate(n, size=size, seed=0).images.astype(np.float32), f"{n} synthetic faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "perturbation_speed.json")
    args = parser.parse_args()
    model = agelens.load_model()
    x, source = photos(args.n, model.input_size)
    rows = []
    for method in METHODS:
        agelens.explain(model, x[:2], method=method)  # trace once
        t0 = time.perf_counter()
        agelens.explain(model, x, method=method)
        rows.append({"method": method, "seconds_per_photo": (time.perf_counter() - t0) / len(x)})
    base = rows[0]["seconds_per_photo"]
    print(f"{source}, shipped model ({model.input_size} px)")
    print(f"{'method':10s} {'s/photo':>8s} {'vs gradcam':>11s}")
    for r in rows:
        r["vs_gradcam"] = r["seconds_per_photo"] / base
        print(f"{r['method']:10s} {r['seconds_per_photo']:8.2f} {r['vs_gradcam']:11.0f}")
    args.out.write_text(json.dumps({"photos": source, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
