"""Train candidate shipped models on packed UTKFace-64 (any Keras 3 backend).

This is the exact recipe behind ``src/agelens/assets/agelens-utkface.keras``. It is
backend-agnostic so it runs on the TF CPU here (slowly) or on a lent GPU with the
JAX backend. Several recipes can run side by side as separate processes.

    python benchmarks/pack_utkface.py ../shared/data/utkface-64 .devdata/utk64.npz
    KERAS_BACKEND=jax python benchmarks/train_shipped.py .devdata/utk64.npz OUT \
        --name A --alpha 1.0 --size 128 --budget 300

Held-out split: stratified 80/10/10 by age group with seed 0 over the sorted file
names (``agelens.data.split.stratified_split``); the test names are written to
``OUT/NAME.split.json`` so the same photos can be found in utkface-200 too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import keras  # noqa: E402

from agelens.data.bins import AgeBins  # noqa: E402
from agelens.data.split import class_weights, stratified_split  # noqa: E402
from agelens.model.builder import (  # noqa: E402
    AGE_DIST,
    AGE_OUTPUT,
    GROUP_OUTPUT,
    ModelConfig,
    build_age_model,
)
from agelens.model.train import age_distribution, augmenter  # noqa: E402


def decode_pack(path: str, size: int = 64) -> tuple[np.ndarray, np.ndarray, list[str]]:
    z = np.load(path)
    data, offsets, names = z["data"], z["offsets"], list(z["names"])

    def one(i: int) -> np.ndarray | None:
        img = cv2.imdecode(data[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)
        if img is None:
            return None
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return img

    with ThreadPoolExecutor(16) as ex:
        imgs = list(ex.map(one, range(len(names))))
    keep = [i for i, im in enumerate(imgs) if im is not None]
    ages = np.array([int(names[i].split("_")[0]) for i in keep], dtype=np.float32)
    return np.stack([imgs[i] for i in keep]), ages, [names[i] for i in keep]


def compile_trainer(trainer: keras.Model, a: argparse.Namespace) -> None:
    """The recipe's optimiser and losses (group CE with smoothing, DLDL KL, small L1 on the age)."""
    trainer.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=a.lr, weight_decay=a.wd, clipnorm=2.0),
        loss={
            GROUP_OUTPUT: keras.losses.CategoricalCrossentropy(label_smoothing=a.smoothing),
            AGE_DIST: keras.losses.KLDivergence(),
            AGE_OUTPUT: keras.losses.MeanAbsoluteError(),
        },
        loss_weights={GROUP_OUTPUT: 1.0, AGE_DIST: a.age_weight, AGE_OUTPUT: 0.02},
        metrics={GROUP_OUTPUT: ["accuracy"]},
    )


def macro_f1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    f1s = []
    for c in range(k):
        tp = np.sum((p == c) & (y == c))
        prec = tp / max(np.sum(p == c), 1)
        rec = tp / max(np.sum(y == c), 1)
        f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return float(np.mean(f1s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pack")
    ap.add_argument("out")
    ap.add_argument("--name", default="model")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=5e-5)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--age-weight", type=float, default=0.5)
    ap.add_argument("--sigma", type=float, default=2.5)
    ap.add_argument("--class-weight-power", type=float, default=0.5)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of training")
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--mixed", action="store_true", help="mixed_bfloat16 compute")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--bn-momentum",
        type=float,
        default=0.99,
        help="Keras's 0.999 leaves inference-mode predictions constant for thousands of steps",
    )
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke tests)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    x, ages, names = decode_pack(a.pack)
    if a.limit:
        x, ages, names = (
            x[:: len(x) // a.limit][: a.limit],
            ages[:: len(x) // a.limit][: a.limit],
            names[:: len(x) // a.limit][: a.limit],
        )
    bins = AgeBins()
    y = bins.index(ages).astype(np.int32)
    split = stratified_split(y, seed=0)
    print(
        f"[{a.name}] decoded {len(x)} images in {time.time() - t0:.1f}s; split sizes "
        f"{np.bincount(split).tolist()}",
        flush=True,
    )
    tr, va, te = (split == 0), (split == 1), (split == 2)
    (out / f"{a.name}.split.json").write_text(
        json.dumps(
            {
                "seed": 0,
                "fractions": [0.8, 0.1, 0.1],
                "test": [names[i] for i in np.flatnonzero(te)],
                "val": [names[i] for i in np.flatnonzero(va)],
            }
        )
    )

    if a.mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    cfg = ModelConfig(
        input_size=a.size,
        alpha=a.alpha,
        dropout=a.dropout,
        num_classes=3,
        age_head=True,
        bn_momentum=a.bn_momentum,
    )
    core = build_age_model(cfg, seed=a.seed)
    inp = keras.Input((64, 64, 3), name="image64")
    h = keras.layers.Resizing(a.size, a.size, interpolation="bilinear")(inp)
    trainer = keras.Model(inp, core(augmenter(1.0, a.seed)(h)))

    w = class_weights(y[tr], 3, power=a.class_weight_power)[y]
    onehot = keras.utils.to_categorical(y, 3)
    targets = {GROUP_OUTPUT: onehot, AGE_DIST: age_distribution(ages, a.sigma), AGE_OUTPUT: ages[:, None]}

    def sel(m: np.ndarray) -> dict:
        return {k: v[m] for k, v in targets.items()}

    compile_trainer(trainer, a)

    state = {"total": a.max_epochs, "t_epoch": None, "best": -1.0, "best_epoch": -1, "warm": 3}

    class Budget(keras.callbacks.Callback):
        """Cosine schedule whose length is fitted to the time budget after epoch 2."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.time()
            total, warm = state["total"], state["warm"]
            lr = (
                a.lr * (epoch + 1) / warm
                if epoch < warm
                else 0.5 * a.lr * (1 + math.cos(math.pi * (epoch - warm) / max(total - warm, 1)))
            )
            self.model.optimizer.learning_rate = max(lr, a.lr * 0.01)

        def on_epoch_end(self, epoch, logs=None):
            dt = time.time() - self.t
            if epoch == 1:
                state["t_epoch"] = dt
                spent = time.time() - t_train
                state["total"] = int(min(a.max_epochs, max(4, 2 + (a.budget - spent) // dt)))
                print(f"[{a.name}] epoch time {dt:.1f}s -> {state['total']} epochs", flush=True)
            probs = trainer.predict(x[va], batch_size=512, verbose=0)[GROUP_OUTPUT]
            acc = float(np.mean(probs.argmax(1) == y[va]))
            f1 = macro_f1(y[va], probs.argmax(1), 3)
            if acc + f1 > state["best"]:
                state["best"], state["best_epoch"] = acc + f1, epoch
                core.save_weights(str(out / f"{a.name}.best.weights.h5"))
            print(
                f"[{a.name}] ep {epoch + 1}/{state['total']} {dt:.1f}s loss {logs['loss']:.3f} "
                f"train_acc {logs.get('age_group_accuracy', float('nan')):.3f} val_acc {acc:.4f} "
                f"val_f1 {f1:.4f}",
                flush=True,
            )
            if epoch + 1 >= state["total"]:
                self.model.stop_training = True

    t_train = time.time()
    trainer.fit(
        x[tr],
        sel(tr),
        sample_weight=w[tr],
        batch_size=a.batch,
        epochs=a.max_epochs,
        callbacks=[Budget()],
        verbose=0,
        shuffle=True,
    )
    train_wall = time.time() - t_train

    # Keep the best epoch's weights, copy them into a float32 model and evaluate.
    core.load_weights(str(out / f"{a.name}.best.weights.h5"))
    keras.mixed_precision.set_global_policy("float32")
    final = build_age_model(cfg)
    final.set_weights(core.get_weights())
    resized = keras.ops.convert_to_numpy(keras.ops.image.resize(x[te].astype("float32"), (a.size, a.size)))
    pred = final.predict(resized, batch_size=512, verbose=0)
    p_te = pred[GROUP_OUTPUT].argmax(1)
    age_mae = float(np.mean(np.abs(pred[AGE_OUTPUT][:, 0] - ages[te])))
    dist_group = bins.index(pred[AGE_OUTPUT][:, 0])
    result = {
        "name": a.name,
        "args": vars(a),
        "backend": keras.backend.backend(),
        "epochs_run": state["total"],
        "epoch_seconds": state["t_epoch"],
        "train_wall_s": train_wall,
        "best_epoch": state["best_epoch"] + 1,
        "test_accuracy": float(np.mean(p_te == y[te])),
        "test_macro_f1": macro_f1(y[te], p_te, 3),
        "test_accuracy_from_age": float(np.mean(dist_group == y[te])),
        "test_age_mae": age_mae,
        "n_test": int(te.sum()),
    }
    final.save(str(out / f"{a.name}.keras"))
    (out / f"{a.name}.result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    main()
