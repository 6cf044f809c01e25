"""How much Grad-CAM++'s alpha normalisation matters: agelens (= tf-keras-vis) vs the authors' code vs
pytorch-grad-cam, on held-out photos and the shipped model.

The three implementations weight a channel by ``sum(relu(g) * alpha)`` with the same second-order
``alpha = g^2 / (2 g^2 + sum(A) g^3)`` but normalise it differently: over the whole channel
(tf-keras-vis, agelens), over the cells with a positive gradient only (the authors' reference
code), or not at all (pytorch-grad-cam). Where a gradient is negative its alpha can be negative
or large, and only the first normaliser counts it. This prints, per variant, how far its [0, 1]
maps are from agelens's (max absolute difference, Spearman rank correlation per photo) and,
with ``--score``, which variant's maps are more faithful: deletion and insertion AUC (the
predicted class, black deletion baseline, 5% steps), each variant minus agelens, paired over
photos with a 95% bootstrap CI. Writes JSON.

    python benchmarks/gradcampp_normalisation.py --n 200 --score
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
from agelens.metrics.base import Score, paired_difference  # noqa: E402
from agelens.model.io import load_model  # noqa: E402

SHARED = (ROOT / ".." / "shared" / "data").resolve()
RESULTS = ROOT / "benchmarks" / "results"


def _variants():
    """The authors' and pytorch-grad-cam's weightings as :class:`GradCAMPlusPlus` subclasses (one
    ``channel_weights`` each), so everything else (layer, target, ReLU, upsampling) is shared."""
    from keras import ops

    from agelens.explain.cam import GradCAMPlusPlus

    def alphas(acts, grads):
        g2, g3 = grads**2, grads**3
        denom = 2.0 * g2 + ops.sum(acts, axis=(1, 2), keepdims=True) * g3
        return ops.where(denom == 0.0, 0.0, g2 / ops.where(denom == 0.0, ops.ones_like(denom), denom))

    class Authors(GradCAMPlusPlus):
        def channel_weights(self, acts, grads):
            a = alphas(acts, grads)
            norm = ops.sum(ops.where(grads > 0.0, a, 0.0), axis=(1, 2), keepdims=True)
            a = a / ops.where(norm == 0.0, ops.ones_like(norm), norm)
            return ops.sum(ops.relu(grads) * a, axis=(1, 2))

    class Unnormalised(GradCAMPlusPlus):
        def channel_weights(self, acts, grads):
            return ops.sum(ops.relu(grads) * alphas(acts, grads), axis=(1, 2))

    return {"authors": Authors, "pytorch-grad-cam": Unnormalised}


def _scorer(model, images: np.ndarray):
    """``score(maps, reference)``: deletion and insertion AUC of ``maps`` on ``images`` (the
    predicted class), and their paired difference from ``reference``'s per-image scores."""
    from agelens.metrics import Deletion, Insertion
    from agelens.metrics.adapters import predict_fn_of

    predict = predict_fn_of(model, 64)
    targets = predict(images).argmax(1)
    ctx = {"predict_fn": predict, "seed": 0, "batch_size": 64}

    def score(maps: np.ndarray, reference: dict | None) -> dict:
        out = {}
        for metric in (Deletion(step=0.05), Insertion(step=0.05)):
            per = metric.evaluate(images, maps, targets, **ctx).scores
            row = {"score": Score.from_values(per, metric.higher_is_better).to_dict(), "per_image": per}
            if reference is not None:
                row["minus_agelens"] = paired_difference(per, reference[metric.name]["per_image"]).to_dict()
            out[metric.name] = row
        return out

    return score


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.ravel(), b.ravel())[0]) if a.std() > 0 and b.std() > 0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--data", type=Path, default=SHARED / "utkface-200")
    ap.add_argument("--layer", default=None, help="default: the model's own explain layer")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", action="store_true", help="also deletion / insertion AUC of each variant")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "gradcampp_normalisation.json"
    )
    a = ap.parse_args()

    from agelens.explain import make_method

    model = load_model(a.model)
    images, _, used = sample_photos(a.data, model.input_size, a.n, a.seed, "test")
    ours = make_method(model, "gradcam++", layer=a.layer)
    base = ours.attribute(images)
    rows: dict = {}
    faithful: dict = {}
    score = _scorer(model, images) if a.score else None
    if score is not None:
        faithful["agelens"] = score(base, None)
    for name, cls in _variants().items():
        other = cls(model, layer=ours.layers).attribute(images)
        if score is not None:
            faithful[name] = score(other, faithful["agelens"])
        diff = np.abs(other - base).reshape(len(base), -1).max(axis=1)
        rho = np.array([_spearman(x, y) for x, y in zip(base, other, strict=True)])
        rows[name] = {
            "max_abs_difference": {"median": float(np.median(diff)), "max": float(diff.max())},
            "spearman": {"median": float(np.nanmedian(rho)), "min": float(np.nanmin(rho))},
        }
        print(
            f"{name:17s} vs agelens: max |diff| median {np.median(diff):.4f}, max {diff.max():.4f}; "
            f"Spearman median {np.nanmedian(rho):.4f}, min {np.nanmin(rho):.4f}  ({len(base)} photos)"
        )
    for name, row in faithful.items():
        print(f"{name:17s} " + "  ".join(f"{m} {v['score']['mean']:.4f}" for m, v in row.items()))
        for m, v in row.items():
            if "minus_agelens" in v:
                d = v["minus_agelens"]
                print(
                    f"{'':17s}   {m} minus agelens {d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
                )
    result = {
        "model": str(model.path),
        "layer": ours.layers,
        "photos": used,
        "n": len(base),
        "seed": a.seed,
        "vs_agelens": rows,
        "faithfulness": faithful,
    }
    for row in faithful.values():
        for v in row.values():
            v.pop("per_image")
    atomic_write_text(a.out, dumps(result))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
