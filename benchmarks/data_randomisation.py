"""Data-randomisation sanity check (Adebayo et al. 2018, sec. 4) on real faces, with its control.

Three models of one recipe, trained with ``agelens train`` on the same folder of UTKFace photos
(4,000 photos of utkface-64 outside the shipped model's validation and test splits):

- ``--model``: the real labels (``--seed 0``);
- ``--shuffled``: shuffled labels (``--shuffle-labels --seed 1``);
- ``--reference``: the real labels again, ``--seed 1`` (the shuffled model's initial weights and split).

(``agelens train --init-seed`` came after these runs: it changes the start without the split.)
For each method, on ``--holdout`` photos that none of them trained on (the shipped split's test
photos, which the training folder left out), it explains the model's predicted
class with each model and reports the mean Spearman [95% CI] of the model's maps with the
shuffled model's (what ``agelens score --shuffled-model`` scores) and with the reference's,
and the paired difference. Why the reference: retraining alone changes maps (another start,
another split); a method whose maps follow what the model learned agrees more with a model
that learned the same thing (reference) than with one that could only memorise (shuffled).
Positive "gap" (reference minus shuffled) with a CI above 0 is that evidence; the check's
flag (shuffled similarity > 0.5) is the score's own rule.

    python benchmarks/data_randomisation.py --model /tmp/dr/real.keras --shuffled /tmp/dr/shuffled_s1.keras \
        --reference /tmp/dr/real_s1.keras --data ../shared/data/utkface-64 \
        --holdout benchmarks/results/shipped_split.json --n 200

Prints a table and writes ``benchmarks/results/data_randomisation.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from agelens.metrics._io import atomic_write_text, dumps  # noqa: E402

DEFAULT_METHODS = (
    "gradcam,gradcam++,hirescam,layercam,scorecam,saliency,gradient-x-input,"
    "integrated-gradients,smoothgrad,guided-backprop,occlusion"
)


def _photos(data: Path, holdout: Path | None, n: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    from agelens.cli.common import in_holdout, read_holdout
    from agelens.data.images import load_batch
    from agelens.data.sources import load_dataset
    from agelens.metrics.sampling import stratified_sample

    ds = load_dataset(data, check_images=False)
    pool = list(range(len(ds)))
    if holdout is not None:
        names = read_holdout(holdout)
        pool = [i for i in pool if in_holdout(ds.records[i].path, ds.root, names)]
    labels = np.asarray(ds.labels)[pool]
    chosen = [pool[i] for i in stratified_sample(labels, n, seed)]
    x, ok, _ = load_batch([ds.records[i].path for i in chosen], size)
    return np.asarray(x, np.float32), [p.name for p in ok]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--shuffled", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--holdout", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_randomisation.json")
    args = ap.parse_args()

    from agelens.metrics import Score, data_randomisation_test, method_model_explainer, paired_difference
    from agelens.model.io import load_model

    real, shuffled, reference = (load_model(p) for p in (args.model, args.shuffled, args.reference))
    x, names = _photos(args.data, args.holdout, args.n, real.input_size, args.seed)
    probs = real.predict(x, flip=False)["probabilities"]
    targets = probs.argmax(1)
    fits = {
        name: {
            "train_accuracy_last": m.metadata["training"]["history"][-1]["train_accuracy"],
            "test_metrics": {k: m.metadata.get("test_metrics", {}).get(k) for k in ("accuracy", "macro_f1")},
            "seed": m.metadata["train_config"]["seed"],
            "shuffle_labels": bool(m.metadata["train_config"].get("shuffle_labels")),
        }
        for name, m in (("model", real), ("shuffled", shuffled), ("reference", reference))
    }
    rows = {}
    for method in args.methods.split(","):
        t0 = time.time()
        fn = method_model_explainer(method)
        maps = np.asarray(fn(real, x, targets), np.float32)
        vs_shuffled = data_randomisation_test(real, shuffled, fn, x, targets, original_maps=maps)
        vs_reference = data_randomisation_test(real, reference, fn, x, targets, original_maps=maps)
        a, b = vs_shuffled.spearman, vs_reference.spearman
        rows[method] = {
            "shuffled": Score.from_values(a, False).to_dict(),
            "reference": Score.from_values(b, None).to_dict(),
            "gap": paired_difference(b, a).to_dict(),  # reference minus shuffled: > 0 follows the labels
            "ssim_shuffled": float(np.mean(vs_shuffled.ssim)),
            "ssim_reference": float(np.mean(vs_reference.ssim)),
            "flagged": vs_shuffled.flagged,
            "seconds": round(time.time() - t0, 1),
        }
        r = rows[method]
        print(
            f"{method:22s} shuffled {_fmt(r['shuffled'])}  reference {_fmt(r['reference'])}  "
            f"gap {_fmt(r['gap'])}  {'FLAGGED' if r['flagged'] else ''}  ({r['seconds']} s)",
            flush=True,
        )
    doc = {
        "command": " ".join(sys.argv),
        "n_images": len(x),
        "images": names,
        "models": {
            k: str(p)
            for k, p in (("model", args.model), ("shuffled", args.shuffled), ("reference", args.reference))
        },
        "fits": fits,
        "explained": "the model's predicted class, the same for all three models",
        "methods": rows,
    }
    atomic_write_text(args.out, dumps(doc))
    atomic_write_text(args.out.with_suffix(".md"), _markdown(doc))
    print(_markdown(doc))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def _fmt(s: dict) -> str:
    return f"{s['mean']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]"


def _markdown(doc: dict) -> str:
    lines = [
        f"Data randomisation on {doc['n_images']} held-out photos: mean Spearman [95% CI] of the model's "
        "maps with the shuffled-label model's and with a model retrained on the real labels from the "
        "shuffled model's seed; gap = reference - shuffled (paired).",
        "",
        "| method | vs shuffled labels (lower is better) | vs real labels, other seed | gap | flagged |",
        "|---|---|---|---|---|",
    ]
    for m, r in doc["methods"].items():
        lines.append(
            f"| {m} | {_fmt(r['shuffled'])} | {_fmt(r['reference'])} | {_fmt(r['gap'])} | "
            f"{'yes' if r['flagged'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
