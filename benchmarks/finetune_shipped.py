"""Second stage of the shipped recipe: fine-tune a trained model, optionally at a
larger input size, and average the weights of its last epochs (SWA).

Why: the first stage (``train_shipped.py``) peaks at ~75% validation accuracy and
then swings by +-3 points from epoch to epoch; averaging late-epoch weights removes
that noise, and MobileNetV2 is fully convolutional, so 64 px weights continue at
96 px, where the 200 px crops of ``utkface-200`` keep detail that 64 px loses.
The held-out split is the first stage's (``--split``): its test and validation
names never enter training, here or at any other resolution.

    python benchmarks/finetune_shipped.py src/agelens/assets/agelens-utkface.keras /tmp/ft96 \
        --pack .devdata/utk64.npz --hires ../shared/data/utkface-200 \
        --split benchmarks/results/shipped_split.json --size 96 --epochs 6 --lr 6e-4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from train_shipped import compile_trainer, decode_pack, macro_f1  # noqa: E402

from agelens.data.bins import AgeBins  # noqa: E402
from agelens.data.split import class_weights  # noqa: E402
from agelens.model.builder import AGE_DIST, AGE_OUTPUT, GROUP_OUTPUT, ModelConfig, build_age_model  # noqa: E402
from agelens.model.train import age_distribution, augmenter  # noqa: E402


def load_hires(folder: Path, names: list[str], size: int) -> dict[str, np.ndarray]:
    """Read the 200 px copies of ``names`` that exist, resized to ``size`` (area filter)."""

    def one(name: str) -> tuple[str, np.ndarray | None]:
        img = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if img is None:
            return name, None
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return name, cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)

    present = [n for n in names if (folder / n).exists()]
    with ThreadPoolExecutor(8) as ex:
        return {n: im for n, im in ex.map(one, present) if im is not None}


def refresh_batchnorm(model: keras.Model, x: np.ndarray, batch: int = 128, steps: int = 40) -> None:
    """Recompute BatchNorm statistics for averaged weights (their running stats are stale).

    A cumulative average (momentum 1 - 1/k at step k) over ``steps`` clean batches.
    """
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    for k in range(steps):
        for bn in bns:
            bn.momentum = 1.0 - 1.0 / (k + 1)
        idx = order[(k * batch) % len(x) :][:batch]
        model(x[idx], training=True)
    for bn, m in zip(bns, saved, strict=True):
        bn.momentum = m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("init", help="a trained agelens .keras model")
    ap.add_argument("out")
    ap.add_argument("--pack", required=True, help="utkface-64 pack from pack_utkface.py")
    ap.add_argument("--hires", default="", help="utkface-200 folder: use its photos where present")
    ap.add_argument("--split", required=True, help="held-out names (test/val) of the first stage")
    ap.add_argument("--name", default="FT")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--swa-start", type=int, default=2, help="average weights from this epoch (1-based)")
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--wd", type=float, default=5e-5)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--age-weight", type=float, default=0.5)
    ap.add_argument("--sigma", type=float, default=2.5)
    ap.add_argument("--class-weight-power", type=float, default=0.5)
    ap.add_argument("--bn-momentum", type=float, default=0.99)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="train and validate on N photos (smoke test)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    x64, ages, names = decode_pack(a.pack)
    split = json.loads(Path(a.split).read_text())
    test, val = set(split["test"]), set(split["val"])
    part = np.array([2 if n in test else 1 if n in val else 0 for n in names])
    if (part == 2).sum() != len(test) or (part == 1).sum() != len(val):
        raise SystemExit("split names do not match the pack")
    x = (
        np.stack([cv2.resize(im, (a.size, a.size), interpolation=cv2.INTER_LINEAR) for im in x64])
        if a.size != 64
        else x64
    )
    n_hires = 0
    if a.hires:
        hi = load_hires(Path(a.hires), [n for n, p in zip(names, part, strict=True) if p == 0], a.size)
        idx = {n: i for i, n in enumerate(names)}
        for n, im in hi.items():
            x[idx[n]] = im
        n_hires = len(hi)
    bins = AgeBins()
    y = bins.index(ages).astype(np.int32)
    tr, va = part == 0, part == 1
    if a.limit:
        keep = np.zeros(len(x), bool)
        keep[np.random.default_rng(0).permutation(len(x))[: a.limit]] = True
        tr, va = tr & keep, va & keep
    print(
        f"[{a.name}] {len(x)} images ({n_hires} train photos from hires) in {time.time() - t0:.0f}s",
        flush=True,
    )

    base = keras.models.load_model(a.init, compile=False)
    cfg = ModelConfig(a.size, 1.0, 0.2, 3, True, a.bn_momentum)
    core = build_age_model(cfg, seed=a.seed)
    core.set_weights(base.get_weights())
    inp = keras.Input((a.size, a.size, 3), name="image")
    trainer = keras.Model(inp, core(augmenter(1.0, a.seed)(inp)))
    w = class_weights(y[tr], 3, power=a.class_weight_power)[y]
    targets = {
        GROUP_OUTPUT: keras.utils.to_categorical(y, 3),
        AGE_DIST: age_distribution(ages, a.sigma),
        AGE_OUTPUT: ages[:, None],
    }
    compile_trainer(trainer, a)

    def val_scores(model: keras.Model) -> tuple[float, float]:
        p = model.predict(x[va], batch_size=256, verbose=0)[GROUP_OUTPUT].argmax(1)
        return float(np.mean(p == y[va])), macro_f1(y[va], p, 3)

    history: list[dict] = []
    swa: list[np.ndarray] | None = None
    n_avg = 0
    acc0, f10 = val_scores(core)
    print(f"[{a.name}] start val_acc {acc0:.4f} val_f1 {f10:.4f}", flush=True)
    t_train = time.time()
    for ep in range(a.epochs):
        # Cosine from lr to lr/20 over the run: late epochs are close but not identical,
        # which is what weight averaging needs.
        lr = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * ep / max(a.epochs - 1, 1))))
        trainer.optimizer.learning_rate = lr
        t = time.time()
        sel = {k: v[tr] for k, v in targets.items()}
        logs = trainer.fit(
            x[tr], sel, sample_weight=w[tr], batch_size=a.batch, epochs=1, verbose=0, shuffle=True
        )
        acc, f1 = val_scores(core)
        if ep + 1 >= a.swa_start:
            cur = core.get_weights()
            swa = (
                [c.astype(np.float64) for c in cur]
                if swa is None
                else [s + c for s, c in zip(swa, cur, strict=True)]
            )
            n_avg += 1
        rec = {
            "epoch": ep + 1,
            "lr": lr,
            "seconds": time.time() - t,
            "loss": logs.history["loss"][-1],
            "val_acc": acc,
            "val_f1": f1,
        }
        history.append(rec)
        print(f"[{a.name}] " + json.dumps(rec), flush=True)
        core.save(str(out / f"{a.name}.ep{ep + 1}.keras"))

    assert swa is not None
    core.set_weights([(s / n_avg).astype(np.float32) for s in swa])
    refresh_batchnorm(core, x[tr])
    acc, f1 = val_scores(core)
    print(f"[{a.name}] SWA over {n_avg} epochs: val_acc {acc:.4f} val_f1 {f1:.4f}", flush=True)
    core.save(str(out / f"{a.name}.swa.keras"))
    (out / f"{a.name}.result.json").write_text(
        json.dumps(
            {
                "args": vars(a),
                "n_hires_train": n_hires,
                "start_val": [acc0, f10],
                "history": history,
                "swa_val": [acc, f1],
                "swa_epochs": n_avg,
                "train_wall_s": time.time() - t_train,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
