"""Does precise BatchNorm (recomputing the moving statistics after training) help agelens models?

Short runs (a few dozen steps) leave BatchNorm's moving averages near their initial values, and
the model then predicts the same probabilities for every photo in inference mode. This trains
such runs with agelens' own ``train()`` on UTKFace subsets and scores each model before and after
``agelens.model.bn_stats.recalibrate_batchnorm`` on its own training photos (validation and
test accuracy / macro-F1, distinct predicted classes, spread of the probabilities across photos);
then does the same for the shipped model on a sample of its training photos at 112 px, scored on
its own validation and test split. The shipped model file is never written: it is loaded and
recalibrated in memory.

    python benchmarks/bn_recalibration.py                  # writes benchmarks/results/bn_recalibration.json
    python benchmarks/bn_recalibration.py --skip-shipped --out /tmp/short.json   # short runs only
    python benchmarks/bn_recalibration.py --skip-short --out /tmp/shipped.json   # shipped model only

The full run took 4 min 17 s on this shared 2-core machine (2026-11-29). Each model's
validation decides ("kept_by_val_rule"): the new statistics stay only if accuracy + macro-F1 on
validation, what ``train()`` picks its best epoch by, does not drop.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from agelens.data.bins import AgeBins  # noqa: E402
from agelens.data.images import load_batch  # noqa: E402
from agelens.data.sources import parse_utkface_age  # noqa: E402
from agelens.model.bn_stats import recalibrate_batchnorm  # noqa: E402
from agelens.model.evaluate import classification_metrics  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bn_recalibration.json"
DATA = (ROOT / ".." / "shared" / "data" / "utkface-64").resolve()
SPLIT = ROOT / "benchmarks" / "results" / "shipped_split.json"

# The reviewer's run (240 photos, batch 32, 2 epochs = 16 steps at 32 px) and a longer short
# run, each with two seeds so that no conclusion rests on one draw.
SHORT_RUNS = [
    {"name": "240ph-32px-2ep", "n_train": 240, "size": 32, "epochs": 2, "batch": 32},
    {"name": "1000ph-48px-3ep", "n_train": 1000, "size": 48, "epochs": 3, "batch": 32},
]
SEEDS = (0, 1)
N_VAL, N_TEST = 400, 1000


def labelled(names: list[str], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images at ``size`` px, ages and age-group labels of UTKFace files (all must load)."""
    x, ok, problems = load_batch([DATA / n for n in names], size)
    if problems:
        raise SystemExit(f"{problems[0].path}: {problems[0].reason}")
    ages = np.array([parse_utkface_age(p.name) for p in ok], np.float32)
    return x, ages, AgeBins().index(ages).astype(np.int64)


def scores(model, x: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    """Accuracy, macro-F1, distinct predicted classes and how much the probabilities vary."""
    probs = model.predict(x, batch_size=256)["probabilities"]
    m = classification_metrics(y, probs.argmax(1), names)
    return {
        "accuracy": round(m["accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4),
        "classes_predicted": int(len(np.unique(probs.argmax(1)))),
        # Mean over classes of the standard deviation across photos: 0 when every photo gets
        # the same probabilities (the collapsed model).
        "prob_std": round(float(probs.std(0).mean()), 5),
        "distinct_prob_rows": int(len(np.unique(np.round(probs, 4), axis=0))),
    }


def before_after(model, recal_x: np.ndarray, batch: int, max_images: int | None, evals: dict) -> dict:
    """Score on each held-out set, recalibrate, score again; keep the new stats only if
    validation (accuracy + macro-F1, what train() selects epochs by) does not drop."""
    out: dict = {"before": {}, "after": {}}
    t = time.perf_counter()
    for k, (x, y) in evals.items():
        out["before"][k] = scores(model, x, y, model.class_names)
    out["eval_before_s"] = round(time.perf_counter() - t, 1)
    rec = recalibrate_batchnorm(model.keras_model, recal_x, batch_size=batch, max_images=max_images)
    out["recalibration"] = rec.to_dict()
    t = time.perf_counter()
    for k, (x, y) in evals.items():
        out["after"][k] = scores(model, x, y, model.class_names)
    out["eval_after_s"] = round(time.perf_counter() - t, 1)
    b, a = out["before"]["val"], out["after"]["val"]
    out["kept_by_val_rule"] = a["accuracy"] + a["macro_f1"] >= b["accuracy"] + b["macro_f1"]
    return out


def short_runs() -> list[dict]:
    from agelens.model.builder import ModelConfig
    from agelens.model.train import TrainConfig, auto_bn_momentum, train

    files = sorted(p.name for p in DATA.iterdir() if p.name.endswith(".jpg"))
    rows = []
    for run in SHORT_RUNS:
        for seed in SEEDS:
            order = np.random.default_rng([seed, 11]).permutation(len(files))
            pick = [files[i] for i in order[: N_VAL + N_TEST + run["n_train"]]]
            t = time.perf_counter()
            x, ages, y = labelled(pick, run["size"])
            load_s = time.perf_counter() - t
            va, te, tr = slice(0, N_VAL), slice(N_VAL, N_VAL + N_TEST), slice(N_VAL + N_TEST, None)
            cfg = TrainConfig(  # train()'s own precise BatchNorm step off: "before" is the run as trained
                epochs=run["epochs"], batch_size=run["batch"], seed=seed, patience=0, precise_batchnorm=False
            )
            mcfg = ModelConfig(input_size=run["size"], alpha=0.35)
            t = time.perf_counter()
            res = train(x[tr], y[tr], x[va], y[va], ages_train=ages[tr], ages_val=ages[va],
                        model_config=mcfg, config=cfg, verbose=0)  # fmt: skip
            train_s = time.perf_counter() - t
            evals = {"val": (x[va], y[va]), "test": (x[te], y[te])}
            row = {**run, "seed": seed, "steps": run["epochs"] * -(-run["n_train"] // run["batch"]),
                   "bn_momentum": auto_bn_momentum(run["n_train"], cfg), "best_epoch": res.best_epoch,
                   "load_s": round(load_s, 1), "train_s": round(train_s, 1)}  # fmt: skip
            row.update(before_after(res.model, x[tr], run["batch"], None, evals))
            rows.append(row)
            print_row(f"{run['name']} seed {seed}", row)
    return rows


def shipped(n_images: int, batch: int) -> dict:
    """The shipped model, recalibrated on ``n_images`` of its own training photos at its input size."""
    import agelens

    split = json.loads(SPLIT.read_text())
    held = set(split["val"]) | set(split["test"])
    train_names = sorted(p.name for p in DATA.iterdir() if p.name.endswith(".jpg") and p.name not in held)
    sample = [train_names[i] for i in np.random.default_rng(0).permutation(len(train_names))[:n_images]]
    t = time.perf_counter()
    model = agelens.load_model()
    size = model.input_size
    x_tr, _, _ = labelled(sample, size)
    evals = {}
    for k in ("val", "test"):
        x, _, y = labelled(sorted(split[k]), size)
        evals[k] = (x, y)
    load_s = time.perf_counter() - t
    out = {"n_recal_images": len(x_tr), "n_train_photos": len(train_names), "input_size": size,
           "recal_batch": batch, "load_s": round(load_s, 1)}  # fmt: skip
    out.update(before_after(model, x_tr, batch, None, evals))
    print_row("shipped", out)
    return out


def print_row(label: str, r: dict) -> None:
    def cell(s: dict) -> str:
        return f"{s['accuracy']:.3f}/{s['macro_f1']:.3f} cls {s['classes_predicted']} std {s['prob_std']:.4f}"

    for when in ("before", "after"):
        print(f"{label:24s} {when:6s} val {cell(r[when]['val'])} | test {cell(r[when]['test'])}", flush=True)
    print(f"{'':24s} recalibration {r['recalibration']['seconds']:.1f}s on {r['recalibration']['n_images']} "
          f"photos; kept by the val rule: {r['kept_by_val_rule']}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-short", action="store_true")
    ap.add_argument("--skip-shipped", action="store_true")
    ap.add_argument("--shipped-images", type=int, default=4000)
    ap.add_argument("--shipped-batch", type=int, default=128, help="the shipped model trained with 128")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: not found (this benchmark needs the UTKFace 64 px folder)")
    import tensorflow as tf

    t0 = time.perf_counter()
    result: dict = {
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/bn_recalibration.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), TensorFlow {tf.__version__}",
        "metrics": "accuracy/macro-F1; classes_predicted: distinct argmax; prob_std: mean over classes "
        "of the std of the probabilities across photos (0: every photo gets the same answer)",
    }
    if not args.skip_short:
        result["short_runs"] = short_runs()
    if not args.skip_shipped:
        result["shipped"] = shipped(args.shipped_images, args.shipped_batch)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
