"""Train the age classifier on in-memory images.

Face datasets that fit this tool (UTKFace: 21k crops; synthetic demo sets) fit in
memory as uint8 at model resolution (21k x 128 x 128 x 3 is 1 GB), so training
decodes once and then streams batches from RAM through a tf.data pipeline that
augments in graph mode. That keeps the 2-core machine busy with the model, not
with JPEG decoding, every epoch after the first.

Losses: cross-entropy on the group (with label smoothing), and where exact ages
are known a label-distribution loss over years (DLDL) plus a small L1 on the
expected age, which sharpens the decision near the bin edges.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from agelens.data.bins import AgeBins
from agelens.data.split import class_weights
from agelens.model.builder import (
    AGE_DIST,
    AGE_OUTPUT,
    GROUP_OUTPUT,
    MAX_MODEL_AGE,
    ModelConfig,
    build_age_model,
)
from agelens.model.io import AgeModel, save_model


@dataclass
class TrainConfig:
    """Recipe options; every field is recorded in the saved model's metadata."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    schedule: str = "cosine"  # "cosine" (with warm-up) or "onecycle"
    warmup_epochs: int = 2
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    class_weight_power: float = 0.0  # 0: none, 0.5: sqrt-balanced, 1: balanced
    augment: float = 1.0  # strength 0..1
    age_weight: float = 0.5
    age_sigma: float = 2.5
    patience: int = 8  # early stopping on the selection score (see _selection_score)
    seed: int = 0
    shuffle_labels: bool = False  # data-randomisation control: see shuffled_training_labels
    init_seed: int | None = None  # initial weights, batch order, augmentation; None: ``seed``

    @property
    def start_seed(self) -> int:
        """What seeds the run's random start (weights, batches, augmentation)."""
        return self.seed if self.init_seed is None else self.init_seed

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: AgeModel
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def auto_bn_momentum(n_train: int, cfg: TrainConfig) -> float:
    """BatchNorm momentum for a run of ``cfg.epochs`` over ``n_train`` photos.

    The moving statistics inference uses average over about ``1 / (1 - momentum)`` steps. Keras'
    0.999 (a 1000-step window) suits ImageNet-length runs; a run of a few hundred steps ends
    with statistics still near their initial values and predicts one class for everything. A
    window of a tenth of the run, kept within 0.9..0.99, follows the weights on short runs and
    stays smooth on long ones.
    """
    steps = max(1, cfg.epochs * math.ceil(max(1, n_train) / cfg.batch_size))
    return round(float(np.clip(1.0 - 10.0 / steps, 0.9, 0.99)), 4)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """Learning rate for an epoch: linear warm-up then cosine, or a one-cycle triangle."""
    total, peak = max(cfg.epochs, 1), cfg.learning_rate
    if cfg.schedule == "onecycle":
        up = max(1, int(0.3 * total))
        if epoch < up:
            return peak * (0.1 + 0.9 * epoch / up)
        return peak * max(0.01, 1 - (epoch - up) / max(total - up, 1))
    if cfg.schedule != "cosine":
        raise ValueError(f"unknown schedule {cfg.schedule!r} (use cosine or onecycle)")
    # At most half the run warms up: with --epochs 2 or 3 a warm-up capped at total - 1 left
    # the last epoch at the peak rate, so the run never annealed.
    warm = min(cfg.warmup_epochs, (total - 1) // 2)
    if epoch < warm:
        return peak * (epoch + 1) / (warm + 1)
    return max(peak * 0.01, 0.5 * peak * (1 + math.cos(math.pi * (epoch - warm) / max(total - warm, 1))))


def augmenter(strength: float, seed: int) -> keras.Sequential | None:
    """Flip, small rotation/zoom/shift and brightness/contrast, scaled by ``strength``."""
    if strength <= 0:
        return None
    s = float(strength)
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04 * s, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom((-0.12 * s, 0.12 * s), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.06 * s, 0.06 * s, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomBrightness(0.15 * s, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(0.2 * s, value_range=(0, 255), seed=seed + 5),
        ],
        name="augment",
    )


def age_distribution(ages: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian label distribution over whole years 0..MAX_MODEL_AGE (DLDL targets)."""
    grid = np.arange(MAX_MODEL_AGE + 1, dtype=np.float32)
    d = np.exp(-0.5 * ((grid[None, :] - np.clip(ages, 0, MAX_MODEL_AGE)[:, None]) / sigma) ** 2)
    return (d / d.sum(1, keepdims=True)).astype(np.float32)


def _targets(labels: np.ndarray, ages: np.ndarray | None, k: int, sigma: float) -> dict[str, np.ndarray]:
    y = {GROUP_OUTPUT: keras.utils.to_categorical(labels, k).astype(np.float32)}
    if ages is not None:
        y[AGE_DIST] = age_distribution(ages, sigma)
        y[AGE_OUTPUT] = ages.astype(np.float32)[:, None]
    return y


def _dataset(x, y, w, batch, aug, shuffle, seed) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y, w))
    if shuffle:
        ds = ds.shuffle(min(len(x), 20000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch)
    ds = ds.map(lambda a, b, c: (tf.cast(a, tf.float32), b, c), num_parallel_calls=tf.data.AUTOTUNE)
    if aug is not None:
        # One call at a time: the random layers share a seed state, and parallel calls draw
        # from it in a racing order, so two runs with the same --seed trained differently.
        ds = ds.map(lambda a, b, c: (aug(a, training=True), b, c))
    return ds.prefetch(tf.data.AUTOTUNE)


def optimizer_state_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's optimizer state (AdamW step count and moments) is kept: beside it.

    Not inside the ``.keras`` file: that file is also the model users load and ship, and
    the moments would triple its size for nothing but resuming.
    """
    p = Path(checkpoint)
    return p.with_name(p.name + ".optimizer.npz")


def _save_optimizer_state(optimizer: keras.optimizers.Optimizer, path: Path) -> None:
    """Written to a temp file and renamed, like the checkpoint it belongs to."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, *[np.asarray(v.numpy()) for v in optimizer.variables])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _restore_optimizer_state(model: keras.Model, path: Path) -> bool:
    """Put a checkpoint's optimizer state back; False (and the optimizer starts fresh) when
    there is none or it does not fit this run's variables."""
    if not path.is_file():
        return False
    with np.load(path) as z:
        arrays = [z[f"arr_{i}"] for i in range(len(z.files))]
    opt = model.optimizer
    opt.build(model.trainable_variables)
    if len(arrays) != len(opt.variables) or any(
        tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, opt.variables, strict=True)
    ):
        warnings.warn(f"{path}: optimizer state does not fit this run; it starts fresh", stacklevel=3)
        return False
    for a, v in zip(arrays, opt.variables, strict=True):
        v.assign(a)
    return True


def _build_state_before_tracing(model: keras.Model, ds: tf.data.Dataset) -> None:
    """Create the optimizer's, the losses' and the metrics' variables before ``fit`` traces its step.

    Why: without a distribution strategy, Keras 3's TensorFlow trainer creates them inside the
    first trace of the train step, and ``tf.function`` must then trace the whole step again
    (variables may only be created on the first trace). Building them from the dataset's
    element spec first halves the start-up (a tiny model's 2-epoch run 47 s -> 26 s here) and
    changes no number: nothing is drawn from the dataset, so its seeded stream is untouched.
    A Keras without this (private) hook still trains, only slower to start.
    """
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=ds.element_spec)


def _selection_score(row: dict, shuffled: bool = False) -> float:
    """What picks the best epoch (and early-stops): validation accuracy plus macro-F1.

    A model trained on shuffled labels is picked by its fit to them (training accuracy):
    validation is at chance by design, and the control the test needs is the model that
    memorised the random labels, not the epoch that happened to guess best.
    """
    if shuffled:
        return float(row["train_accuracy"])
    return float(row["val_accuracy"]) + float(row["val_macro_f1"])


def shuffled_training_labels(
    labels: np.ndarray, ages: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The training labels (and ages, moved with them) randomly permuted across the photos.

    Why: Adebayo et al.'s data-randomisation test compares a method's maps of a model trained
    on the real labels with its maps of the same network trained on permuted ones. The
    permuted model can only memorise, so a method whose maps stay alike explains the photo
    (edges, contrast), not what the model learned about age. Permuting keeps each class's
    share and each age's frequency, so only the link between face and label is broken.
    """
    order = np.random.default_rng([seed, 7]).permutation(len(labels))
    return np.asarray(labels)[order], (None if ages is None else np.asarray(ages)[order])


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    ages_train: np.ndarray | None = None,
    ages_val: np.ndarray | None = None,
    model_config: ModelConfig | None = None,
    config: TrainConfig | None = None,
    bins: AgeBins | None = None,
    class_names: list[str] | None = None,
    checkpoint: str | Path | None = None,
    resume: str | Path | None = None,
    tensorboard: str | Path | None = None,
    verbose: int = 1,
    on_epoch: Callable[[dict], None] | None = None,
    data_summary: dict | None = None,
) -> TrainResult:
    """Train from uint8 images already at the model's input size; keep the best epoch.

    The best epoch (validation accuracy + macro-F1; with ``shuffle_labels``, the fit to the
    permuted training labels) is restored at the end and,
    when ``checkpoint`` is given, saved there with full metadata after each
    improvement, so an interrupted run still leaves its best model behind.
    """
    cfg = config or TrainConfig()
    bins = bins or AgeBins()
    if class_names is not None and list(class_names) != list(bins.names):
        bins = None  # the classes are not age bins (folders, CSV labels): no edges to record
    names = list(class_names or bins.names)
    k = len(names)
    mcfg = model_config or ModelConfig(input_size=int(x_train.shape[1]), num_classes=k)
    if mcfg.num_classes != k:
        raise ValueError(f"model_config has {mcfg.num_classes} classes, the data {k} ({', '.join(names)})")
    if mcfg.bn_momentum is None:
        mcfg = ModelConfig(**{**mcfg.to_dict(), "bn_momentum": auto_bn_momentum(len(x_train), cfg)})
    use_age = ages_train is not None and ages_val is not None and mcfg.age_head
    if mcfg.age_head and not use_age:
        mcfg = ModelConfig(**{**mcfg.to_dict(), "age_head": False})
    if cfg.shuffle_labels:
        y_train, ages_train = shuffled_training_labels(y_train, ages_train, cfg.seed)
    keras.utils.set_random_seed(cfg.start_seed)
    km = build_age_model(mcfg, seed=cfg.start_seed)
    initial_epoch = 0
    earlier_history: list = []
    state = {"best": -1.0, "best_epoch": 0, "best_weights": None, "wait": 0}
    if resume:
        from agelens.model.io import load_model

        prev = load_model(resume)
        try:
            km.set_weights(prev.keras_model.get_weights())
        except ValueError as e:
            raise ValueError(
                f"{resume}: cannot resume: its architecture differs from this run's "
                f"(input size, width or heads; {str(e).splitlines()[0][:120]})"
            ) from None
        initial_epoch = int(prev.metadata.get("training", {}).get("epochs_done", 0))
        earlier_history = list(prev.metadata.get("training", {}).get("history", []))
        # The file holds the best weights so far (a checkpoint, or a finished run's restored
        # best): a resumed epoch must beat them to replace them, else resuming could end
        # with a worse model than the one it started from.
        best_epoch = int(prev.metadata.get("training", {}).get("best_epoch", 0))
        best_row = next((r for r in earlier_history if r.get("epoch") == best_epoch), None)
        if best_row is not None:
            state.update(
                best=_selection_score(best_row, cfg.shuffle_labels),
                best_epoch=best_epoch,
                best_weights=km.get_weights(),
            )
        if initial_epoch >= cfg.epochs:
            raise ValueError(
                f"{resume}: already trained {initial_epoch} epoch(s); to continue, ask for more "
                f"epochs in all (--epochs {initial_epoch + 1} or more)"
            )
    meta = {
        "model_config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "data": data_summary or {},
        "rescales_input": True,
    }
    wrapped = AgeModel(km, names, mcfg.input_size, bins, meta, GROUP_OUTPUT, AGE_OUTPUT if use_age else None)

    loss = {GROUP_OUTPUT: keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)}
    weights = {GROUP_OUTPUT: 1.0}
    if use_age:
        loss.update({AGE_DIST: keras.losses.KLDivergence(), AGE_OUTPUT: keras.losses.MeanAbsoluteError()})
        weights.update({AGE_DIST: cfg.age_weight, AGE_OUTPUT: 0.02})
    else:  # outputs without a loss are still produced; give them zero-weight dummies
        pass
    train_model = keras.Model(km.inputs, {k_: km.output[k_] for k_ in loss})
    train_model.compile(
        optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay, clipnorm=2.0),
        loss=loss,
        loss_weights=weights,
        metrics={GROUP_OUTPUT: ["accuracy"]},
    )
    # AdamW's moments and step count come back with the weights when the checkpoint left them
    # (a run's own checkpoints do); else the optimizer starts fresh, which a warm-up absorbs.
    optimizer_restored = bool(resume) and _restore_optimizer_state(train_model, optimizer_state_path(resume))
    cw = class_weights(y_train, k, cfg.class_weight_power) if cfg.class_weight_power else np.ones(k)
    w = cw[y_train].astype(np.float32)
    ds = _dataset(
        x_train,
        _targets(y_train, ages_train if use_age else None, k, cfg.age_sigma),
        w,
        cfg.batch_size,
        augmenter(cfg.augment, cfg.start_seed),
        True,
        cfg.start_seed,
    )
    history: list[dict] = []
    t0 = time.time()

    class _Loop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate = lr_at(epoch, cfg)

        def on_epoch_end(self, epoch, logs=None):
            from agelens.model.evaluate import classification_metrics

            probs = wrapped.predict(x_val, batch_size=256)["probabilities"]
            m = classification_metrics(y_val, probs.argmax(1), names)
            row = {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", float("nan"))),
                "train_accuracy": float(
                    logs.get(f"{GROUP_OUTPUT}_accuracy", logs.get("accuracy", float("nan")))
                ),
                "val_accuracy": m["accuracy"],
                "val_macro_f1": m["macro_f1"],
                "lr": float(lr_at(epoch, cfg)),
                "seconds": time.time() - t0,
            }
            history.append(row)
            score = _selection_score(row, cfg.shuffle_labels)
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch + 1, best_weights=km.get_weights(), wait=0)
                if checkpoint:
                    wrapped.metadata["training"] = {
                        "epochs_done": epoch + 1,
                        "best_epoch": epoch + 1,
                        "history": earlier_history + history,  # resuming from it keeps every epoch
                        "val": m,
                    }
                    save_model(wrapped, checkpoint)
                    _save_optimizer_state(self.model.optimizer, optimizer_state_path(checkpoint))
            else:
                state["wait"] += 1
                if cfg.patience and state["wait"] >= cfg.patience:
                    self.model.stop_training = True
            if verbose:
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}  loss {row['loss']:.3f}"
                    f"  train_acc {row['train_accuracy']:.3f}"
                    f"  val_acc {m['accuracy']:.3f}  val_macro_f1 {m['macro_f1']:.3f}"
                    + ("  *best*" if state["best_epoch"] == epoch + 1 else ""),
                    flush=True,
                )
            if on_epoch:
                on_epoch(row)

    _build_state_before_tracing(train_model, ds)
    callbacks: list = [_Loop()]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard)))
    train_model.fit(
        ds,
        epochs=cfg.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles; Keras would warn that it ignores True
        verbose=1 if verbose > 1 else 0,
    )
    if state["best_weights"] is not None:
        km.set_weights(state["best_weights"])
    wrapped.metadata["training"] = {
        "epochs_done": len(history) + initial_epoch,
        "best_epoch": state["best_epoch"],
        "history": earlier_history + history,  # a resumed run keeps the epochs before it
        "seconds": time.time() - t0,
    }
    if resume:
        wrapped.metadata["training"]["optimizer_restored"] = optimizer_restored
    return TrainResult(wrapped, history, state["best_epoch"], time.time() - t0)


def write_history(path: str | Path, result: TrainResult) -> None:
    Path(path).write_text(json.dumps(result.history, indent=1))
