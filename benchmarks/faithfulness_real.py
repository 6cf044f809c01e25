"""Acceptance check on real photos: Grad-CAM on the shipped model beats random maps (deletion and insertion).

Samples ``--n`` photos of utkface-200 (stratified by age group, seeded) from the shipped
model's held-out test split (recomputed from utkface-64, see
``agelens.metrics.acceptance.heldout_names``; all photos when utkface-64 is absent),
then compares the method's deletion / insertion AUC with random maps on the same
photos: paired difference, 95% bootstrap CI over images. Prints a summary and writes
JSON (default ``benchmarks/results/faithfulness_real.json``).

    python benchmarks/faithfulness_real.py --n 500
    python benchmarks/faithfulness_real.py --model models/candidate.keras --method gradcam++ --n 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from agelens.metrics._io import atomic_write_text, dumps  # noqa: E402
from agelens.metrics.acceptance import faithfulness_check, sample_photos  # noqa: E402
from agelens.model.io import load_model  # noqa: E402

SHARED = (ROOT / ".." / "shared" / "data").resolve()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    ap.add_argument("--data", type=Path, default=SHARED / "utkface-200")
    ap.add_argument("--method", default="gradcam")
    ap.add_argument("--layer", default=None, help="CAM layer (default: the model's own)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step", type=float, default=0.05, help="fraction of pixels per deletion/insertion step")
    ap.add_argument(
        "--deletion-baseline",
        choices=("black", "blur", "mean"),
        default="black",
        help="what deleted pixels become (black is the paper's; blur avoids its off-manifold artefact)",
    )
    ap.add_argument("--split", choices=("test", "all"), default="test")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faithfulness_real.json")
    a = ap.parse_args()

    model = load_model(a.model)
    images, labels, used = sample_photos(a.data, model.input_size, a.n, a.seed, a.split)
    res = faithfulness_check(
        model,
        images,
        a.method,
        step=a.step,
        seed=a.seed,
        layer=a.layer,
        deletion_baseline=a.deletion_baseline,
    )
    res.update(
        model=str(model.path),
        data=str(a.data),
        photos=used,
        class_counts=np.bincount(labels, minlength=model.num_classes).tolist(),
        seed=a.seed,
    )
    for metric in ("deletion", "insertion"):
        r = res[metric]
        print(f"{a.method} {metric}: {r['score']['mean']:.4f}")
        for base in ("uniform_noise", "matched_smoothness"):
            d = r[base]["difference"]
            verdict = "beats random" if r[base]["beats_random"] else "DOES NOT beat random"
            print(
                f"  vs {base:18s} {r[base]['score']['mean']:.4f}  diff {d['mean']:+.4f} "
                f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]  {verdict}"
            )
    print(
        f"passed: {res['passed']} (by baseline: {res['passed_by_baseline']})  "
        f"({res['n_images']} photos, {used}, {res['seconds']} s)"
    )
    atomic_write_text(a.out, dumps(res))
    print(f"wrote {a.out}")
    sys.exit(0 if res["passed"] else 1)


if __name__ == "__main__":
    main()
