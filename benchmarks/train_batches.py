"""Epoch-keyed training batches against the tf.data shuffle + Keras random layers they replaced.

``agelens train`` used to shuffle with ``reshuffle_each_iteration`` and augment with Keras' random
layers (one map call at a time); both draw from a state that a resumed run restarts. It now builds
each epoch from ``(seed, epoch)`` alone (``agelens.model.batches``). This measures, in one
process, both pipelines on the same photos:

- batch production alone (images/s, one epoch each, interleaved rounds), and
- ``agelens.model.train.train`` with each pipeline: seconds per epoch after the first (the first
  traces the step) and the validation scores the runs end with (one seed each: a single run's
  scores move by about one standard error of the validation split between seeds).

Uses ../shared/data/utkface-64 when present (a seeded sample), else synthetic faces.

    python benchmarks/train_batches.py                     # writes benchmarks/results/train_batches.json
    python benchmarks/train_batches.py --n-train 600 --epochs 2 --rounds 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import agelens.model.train as train_module  # noqa: E402
from agelens.data.bins import AgeBins  # noqa: E402
from agelens.model.batches import epoch_keyed_batches  # noqa: E402
from agelens.model.builder import ModelConfig  # noqa: E402
from agelens.model.train import TrainConfig, augmenter  # noqa: E402

DATA = (ROOT / ".." / "shared" / "data" / "utkface-64").resolve()


def load_photos(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``n`` photos at ``size`` px with their group labels and ages, and where they came from."""
    if DATA.is_dir():
        from agelens.data.images import load_batch
        from agelens.data.sources import parse_utkface_age

        files = sorted(DATA.glob("*.jpg"))
        pick = np.random.default_rng(seed).choice(len(files), size=min(n, len(files)), replace=False)
        paths = [files[i] for i in sorted(pick)]
        x, ok, _ = load_batch(paths, size)
        ages = np.array([parse_utkface_age(p.name) for p in ok], np.float32)
        return x, AgeBins().index(ages).astype(np.int64), ages, f"{DATA.name} ({len(ok)} of {len(files)})"
    from agelens.data.synthetic import generate

    faces = generate(n, size=size, seed=seed)
    return faces.images, faces.labels, faces.ages, "synthetic faces"


def old_batches(x, targets, w, batch_size: int, augment: float, seed: int) -> tf.data.Dataset:
    """The pipeline ``agelens train`` had: a 20,000-photo shuffle buffer reshuffled each epoch, Keras'
    random layers one call at a time, repeated (``fit`` now gives ``steps_per_epoch``)."""
    ds = tf.data.Dataset.from_tensor_slices((x, targets, w))
    ds = ds.shuffle(min(len(x), 20000), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda a, b, c: (tf.cast(a, tf.float32), b, c), num_parallel_calls=tf.data.AUTOTUNE)
    aug = augmenter(augment, seed)
    if aug is not None:
        ds = ds.map(lambda a, b, c: (aug(a, training=True), b, c))
    return ds


def production_rate(make, rounds: int) -> list[float]:
    """Images/s of one epoch of batches, ``rounds`` times (a fresh dataset each round)."""
    rates = []
    for _ in range(rounds):
        ds, n = make()
        t0 = time.perf_counter()
        for images, *_ in ds:
            images.numpy()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def train_with(pipeline: str, x, y, ages, xv, yv, agesv, args) -> dict:
    """One ``train`` run with the named pipeline (the old one patched in where asked)."""
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, seed=args.seed)
    mcfg = ModelConfig(input_size=args.size, alpha=args.alpha, num_classes=3, age_head=True)
    real_dataset, real_key = train_module._training_dataset, train_module.key_random_layers_to_epoch
    if pipeline == "old":

        def dataset(x_train, y_train, a, k, c, initial_epoch):
            cw = np.ones(k)
            w = cw[y_train].astype(np.float32)
            targets = train_module._targets(y_train, a, k, c.age_sigma)
            ds = old_batches(x_train, targets, w, c.batch_size, c.augment, c.start_seed)
            return ds.repeat().prefetch(2)

        train_module._training_dataset = dataset
        train_module.key_random_layers_to_epoch = lambda model, epoch: None
    try:
        keras.backend.clear_session()
        res = train_module.train(
            x, y, xv, yv, ages_train=ages, ages_val=agesv, model_config=mcfg, config=cfg, verbose=0
        )
    finally:
        train_module._training_dataset, train_module.key_random_layers_to_epoch = real_dataset, real_key
    ends = [row["seconds"] for row in res.history]  # since the run started
    seconds = [b - a for a, b in zip([0.0, *ends[:-1]], ends, strict=True)]
    last = res.history[-1]
    return {
        "pipeline": pipeline,
        "epoch_seconds": seconds,
        "seconds_per_epoch_after_first": statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0],
        "final_val_accuracy": last["val_accuracy"],
        "final_val_macro_f1": last["val_macro_f1"],
        "final_loss": last["loss"],
    }


def _median_run(runs: list[dict]) -> dict:
    """One pipeline's runs as one row: the median epoch time; the scores, which the same seed
    repeats exactly, from the first."""
    row = dict(runs[0])
    row["seconds_per_epoch_after_first"] = statistics.median(r["seconds_per_epoch_after_first"] for r in runs)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=64, help="input size in pixels (the photos are 64 px)")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-rounds", type=int, default=2, help="training runs per pipeline (1 or 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_batches.json"))
    args = ap.parse_args()

    x_all, y_all, a_all, source = load_photos(args.n_train + args.n_val, args.seed, args.size)
    x, y, ages = x_all[: args.n_train], y_all[: args.n_train], a_all[: args.n_train]
    xv, yv, agesv = x_all[args.n_train :], y_all[args.n_train :], a_all[args.n_train :]
    targets = train_module._targets(y, ages, 3, 2.5)
    w = np.ones(len(x), np.float32)

    def new():
        kw = {"batch_size": args.batch, "augment": 1.0, "seed": args.seed, "first_epoch": 0, "epochs": 1}
        return epoch_keyed_batches(x, targets, w, **kw), len(x)

    def old():
        return old_batches(x, targets, w, args.batch, 1.0, args.seed), len(x)

    rates = {"old": [], "new": []}
    for _ in range(args.rounds):  # interleaved, so both see the same machine load
        rates["old"] += production_rate(old, 1)
        rates["new"] += production_rate(new, 1)
    order = ["old", "new", "new", "old"][: 2 * args.train_rounds] if args.train_rounds > 1 else ["old", "new"]
    every = [train_with(p, x, y, ages, xv, yv, agesv, args) for p in order]  # ABBA: load drifts cancel
    runs = [_median_run([r for r in every if r["pipeline"] == p]) for p in ("old", "new")]

    table = Table(title=f"training batches, {source}, {args.n_train} train / {len(xv)} val, {args.size} px")
    for col in ("pipeline", "batches: images/s", "train: s/epoch (2nd on)", "val acc", "val macro-F1"):
        table.add_column(col)
    for run in runs:
        p = run["pipeline"]
        table.add_row(
            p,
            f"{statistics.median(rates[p]):.0f}",
            f"{run['seconds_per_epoch_after_first']:.1f}",
            f"{run['final_val_accuracy']:.3f}",
            f"{run['final_val_macro_f1']:.3f}",
        )
    ratio_rate = statistics.median(rates["new"]) / statistics.median(rates["old"])
    ratio_epoch = runs[1]["seconds_per_epoch_after_first"] / runs[0]["seconds_per_epoch_after_first"]
    console = Console()
    console.print(table)
    console.print(
        f"new / old: batch production {ratio_rate:.2f}x the images/s, epoch time {ratio_epoch:.2f}x"
    )
    result = {
        "source": source,
        "args": vars(args),
        "batch_rates": rates,
        "runs": runs,
        "every_run": every,
        "ratio_batch_rate_new_over_old": ratio_rate,
        "ratio_epoch_seconds_new_over_old": ratio_epoch,
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "command": "python " + " ".join(sys.argv),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
