"""How many steps Integrated Gradients needs: the completeness gap on real photos.

Integrated Gradients promises that the (signed) attributions of an image sum to
``score(x) - score(baseline)``; a Riemann sum with too few steps misses that. For each
``--steps`` value this sums agelens's own IG attributions (black baseline, the predicted
class's logit, the method's midpoint rule) over ``--n`` held-out UTKFace photos and
reports the relative gap ``|sum - (score(x) - score(black))| / |score(x) - score(black)|``.
This is the measurement behind ``IntegratedGradients``'s default of 64 steps. Prints a
table, writes JSON (default ``benchmarks/results/ig_completeness.json``).

    python benchmarks/ig_completeness.py --n 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from agelens.metrics._io import atomic_write_text, dumps  # noqa: E402
from agelens.metrics.acceptance import sample_photos  # noqa: E402
from agelens.model.io import load_model  # noqa: E402

SHARED = (ROOT / ".." / "shared" / "data").resolve()


def completeness_gaps(model, x: np.ndarray, steps: int) -> np.ndarray:
    """Relative completeness gap per image for IG with ``steps`` steps (predicted class, black baseline)."""
    from agelens.explain.api import make_method

    ig = make_method(model, "integrated-gradients", steps=steps)
    attr, delta = ig.signed(x, return_convergence_delta=True)  # delta: sum(attr) - (score(x) - score(black))
    want = attr.sum(axis=(1, 2, 3)) - delta
    return np.abs(delta) / np.maximum(np.abs(want), 1e-6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--data", type=Path, default=SHARED / "utkface-200")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", default="32,64,128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ig_completeness.json")
    args = ap.parse_args()
    model = load_model(args.model)
    x, _, used = sample_photos(args.data, model.input_size, args.n, args.seed)
    x = x.astype(np.float32)
    rows = []
    print(f"{len(x)} photos ({used}); relative completeness gap of Integrated Gradients")
    print(f"{'steps':>6} {'mean':>8} {'max':>8}")
    for steps in (int(s) for s in args.steps.split(",")):
        gaps = completeness_gaps(model, x, steps)
        rows.append({"steps": steps, "mean_gap": float(gaps.mean()), "max_gap": float(gaps.max())})
        print(f"{steps:>6} {gaps.mean():>8.1%} {gaps.max():>8.1%}")
    result = {"model": str(model.path), "data": str(args.data), "photos": used, "n": len(x), "rows": rows}
    atomic_write_text(args.out, dumps(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
