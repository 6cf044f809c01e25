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

import io
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from agelens.atomic import atomic_write_bytes
from agelens.data.bins import AgeBins
from agelens.data.split import class_weights
from agelens.model.age_model import AgeModel
from agelens.model.batches import epoch_keyed_batches, key_random_layers_to_epoch, steps_per_epoch
from agelens.model.builder import (
    AGE_DIST,
    AGE_OUTPUT,
    GROUP_OUTPUT,
    MAX_MODEL_AGE,
    ModelConfig,
    build_age_model,
)
from agelens.model.checkpoints import (
    best_checkpoint_path,
    classes_problem,
    epochs_left_problem,
    optimizer_state_path,
    run_is_over,
)
from agelens.model.io import save_model

__all__ = ["TrainConfig", "TrainResult", "optimizer_state_path", "train", "write_history"]


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
    precise_batchnorm: bool = True  # recompute the best epoch's BN statistics (see _precise_batchnorm)

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
    """Flip, small rotation/zoom/shift and brightness/contrast, scaled by ``strength``, as Keras layers.

    The benchmarks that retrace the shipped model's recipe (``benchmarks/train_shipped.py``,
    ``finetune_shipped.py``) augment with it. :func:`train` draws the same ranges through
    :func:`~agelens.data.pipeline.augment_batch` instead: stateless, keyed by epoch and batch, so a
    resumed run repeats the uninterrupted run's draws (these layers' state restarts on resume).
    """
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


def _save_optimizer_state(optimizer: keras.optimizers.Optimizer, path: Path) -> None:
    """Written atomically, like the checkpoint it belongs to, and readable as that is (0644)."""
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(v.numpy()) for v in optimizer.variables])
    atomic_write_bytes(path, buffer.getvalue())


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
    permuted training labels) is restored at the end. With ``checkpoint``, every epoch is
    saved there (weights, optimizer state beside it, history, best score and epoch so far) and
    each improvement to :func:`~agelens.model.checkpoints.best_checkpoint_path`: an interrupted
    run loses no epoch and still leaves its best model behind. ``resume`` continues such a
    checkpoint (or a finished model) from the epoch after the one it holds, and the run ends
    with the best model over all epochs, earlier ones included. A checkpoint of a run that had
    trained all it would (:func:`~agelens.model.checkpoints.run_is_over`: its model was never
    written) trains no epoch: the run only ends, as it would have.
    """
    cfg = config or TrainConfig()
    bins, names = _bins_and_names(bins, class_names)
    mcfg, use_age = _run_model_config(model_config, cfg, names, x_train, ages_train, ages_val)
    if cfg.shuffle_labels:
        y_train, ages_train = shuffled_training_labels(y_train, ages_train, cfg.seed)
    keras.utils.set_random_seed(cfg.start_seed)
    km = build_age_model(mcfg, seed=cfg.start_seed)
    initial_epoch, earlier_history, state, resumes = _start_state(resume, km, names, cfg, verbose)
    meta = _run_metadata(mcfg, cfg, data_summary, resumes)
    wrapped = AgeModel(km, names, mcfg.input_size, bins, meta, GROUP_OUTPUT, AGE_OUTPUT if use_age else None)
    run = _Run(cfg, wrapped, names, x_val, y_val, state, earlier_history, checkpoint, verbose, on_epoch)
    over = state.pop("run_over", False)  # a checkpoint of a run that had trained all it would
    if not over:
        train_model = _compiled_training_model(km, cfg, use_age)
        # AdamW's moments and step count come back with the weights when the checkpoint left them
        # (a run's own checkpoints do); else the optimizer starts fresh, which a warm-up absorbs.
        restored = bool(resume) and _restore_optimizer_state(train_model, optimizer_state_path(resume))
        ages = ages_train if use_age else None
        ds = _training_dataset(x_train, y_train, ages, len(names), cfg, initial_epoch)
        _fit(train_model, ds, steps_per_epoch(len(x_train), cfg.batch_size), run, initial_epoch, tensorboard)
    precise = _finish_best(run, x_train)  # how every run ends; all a run that is over still does
    wrapped.metadata["training"] = _training_record(run, initial_epoch, precise)
    if resume and not over:
        wrapped.metadata["training"]["optimizer_restored"] = restored
    return TrainResult(wrapped, run.history, state["best_epoch"], time.time() - run.t0)


def _bins_and_names(bins: AgeBins | None, class_names: list[str] | None) -> tuple[AgeBins | None, list[str]]:
    """The run's age bins and class names: classes that are not age bins (folders, CSV labels)
    have no edges to record, so their bins are ``None``."""
    bins = bins or AgeBins()
    if class_names is not None and list(class_names) != list(bins.names):
        bins = None
    return bins, list(class_names or bins.names)


def _run_model_config(
    model_config: ModelConfig | None,
    cfg: TrainConfig,
    names: list[str],
    x_train: np.ndarray,
    ages_train: np.ndarray | None,
    ages_val: np.ndarray | None,
) -> tuple[ModelConfig, bool]:
    """The network to build, and whether it learns ages too.

    Filled in from the run: its BatchNorm momentum suits the run's length when not given
    (:func:`auto_bn_momentum`), and the age head goes when the photos have no ages to learn.
    """
    k = len(names)
    mcfg = model_config or ModelConfig(input_size=int(x_train.shape[1]), num_classes=k)
    if mcfg.num_classes != k:
        raise ValueError(f"model_config has {mcfg.num_classes} classes, the data {k} ({', '.join(names)})")
    if mcfg.bn_momentum is None:
        mcfg = ModelConfig(**{**mcfg.to_dict(), "bn_momentum": auto_bn_momentum(len(x_train), cfg)})
    use_age = ages_train is not None and ages_val is not None and mcfg.age_head
    if mcfg.age_head and not use_age:
        mcfg = ModelConfig(**{**mcfg.to_dict(), "age_head": False})
    return mcfg, use_age


def _start_state(
    resume: str | Path | None, km: keras.Model, names: list[str], cfg: TrainConfig, verbose: int
) -> tuple[int, list[dict], dict, list[dict]]:
    """Where the epoch loop starts: the first epoch, the history before it, the loop state and the
    record of resumes; a resumed run takes them from its checkpoint (:func:`_resume_state`) and
    says where that is not a plain continuation (:func:`_resume_lines`)."""
    if not resume:
        return 0, [], _fresh_state(), []
    initial_epoch, earlier_history, state = _resume_state(Path(resume), km, names, cfg)
    resumes = state.pop("resumes")
    if verbose:
        over = [_over_line(initial_epoch, state)] if state.get("run_over") else None
        for line in over or _resume_lines(resumes[-1], cfg):
            print(line, flush=True)
    return initial_epoch, earlier_history, state, resumes


def _over_line(done: int, state: dict) -> str:
    """What a resume of a run that had trained all it would says: why no epoch runs, and what it does."""
    why = "it had stopped early" if state.get("stopped_early") else "all its epochs are done"
    return (
        f"the checkpoint's run had trained {done} epoch(s) and {why}: no epoch to train; finishing it "
        f"from its best epoch ({state['best_epoch']})"
    )


def _run_metadata(
    mcfg: ModelConfig, cfg: TrainConfig, data_summary: dict | None, resumes: list[dict]
) -> dict:
    """What the saved model records of its run before training: the recipe, the data, its resumes."""
    return {
        "model_config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "data": data_summary or {},
        "rescales_input": True,
        **({"resumes": resumes} if resumes else {}),  # where the history's epochs changed hands
    }


def _compiled_training_model(km: keras.Model, cfg: TrainConfig, use_age: bool) -> keras.Model:
    """The model ``fit`` trains: the age model's outputs that have a loss, compiled with AdamW.

    The group is learned by cross-entropy; with ages, also their distribution over years (KL)
    and a small L1 on the expected age (see the module's docstring).
    """
    loss = {GROUP_OUTPUT: keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)}
    weights = {GROUP_OUTPUT: 1.0}
    if use_age:
        loss.update({AGE_DIST: keras.losses.KLDivergence(), AGE_OUTPUT: keras.losses.MeanAbsoluteError()})
        weights.update({AGE_DIST: cfg.age_weight, AGE_OUTPUT: 0.02})
    train_model = keras.Model(km.inputs, {k_: km.output[k_] for k_ in loss})
    train_model.compile(
        optimizer=keras.optimizers.AdamW(cfg.learning_rate, weight_decay=cfg.weight_decay, clipnorm=2.0),
        loss=loss,
        loss_weights=weights,
        metrics={GROUP_OUTPUT: ["accuracy"]},
    )
    return train_model


def _training_dataset(
    x_train: np.ndarray,
    y_train: np.ndarray,
    ages: np.ndarray | None,
    k: int,
    cfg: TrainConfig,
    initial_epoch: int,
) -> tf.data.Dataset:
    """The shuffled, augmented training batches of epochs ``initial_epoch`` on, with their targets
    and class weights (``ages``: ``None`` when the run learns no age). Each epoch's batches depend
    on the seed and the epoch alone (:mod:`agelens.model.batches`), so a resumed run trains on
    the uninterrupted run's."""
    cw = class_weights(y_train, k, cfg.class_weight_power) if cfg.class_weight_power else np.ones(k)
    w = cw[y_train].astype(np.float32)
    targets = _targets(y_train, ages, k, cfg.age_sigma)
    return epoch_keyed_batches(
        x_train,
        targets,
        w,
        batch_size=cfg.batch_size,
        augment=cfg.augment,
        seed=cfg.start_seed,
        first_epoch=initial_epoch,
        epochs=cfg.epochs,
    )


@dataclass
class _Run:
    """What the epoch loop reads and updates, shared by the steps of :func:`train`."""

    cfg: TrainConfig
    wrapped: AgeModel
    names: list[str]
    x_val: np.ndarray
    y_val: np.ndarray
    state: dict  # see _fresh_state
    earlier_history: list[dict]  # a resumed run's epochs before this one
    checkpoint: str | Path | None
    verbose: int
    on_epoch: Callable[[dict], None] | None
    history: list[dict] = field(default_factory=list)
    t0: float = field(default_factory=time.time)

    @property
    def best_file(self) -> Path | None:
        return best_checkpoint_path(self.checkpoint) if self.checkpoint else None


class _EpochLoop(keras.callbacks.Callback):
    """Sets each epoch's learning rate; after the epoch, scores it, keeps the best weights, stops
    early, saves the checkpoints and reports (:func:`_end_epoch`)."""

    def __init__(self, run: _Run) -> None:
        super().__init__()
        self.run = run

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = lr_at(epoch, self.run.cfg)
        key_random_layers_to_epoch(self.model, epoch)  # dropout's masks, as the batches, keyed by epoch

    def on_epoch_end(self, epoch, logs=None):
        _end_epoch(self.run, self.model, epoch, logs or {})


def _end_epoch(run: _Run, train_model: keras.Model, epoch: int, logs: dict) -> None:
    """After each epoch: its history row, the best so far, early stopping, checkpoints, its line.

    The checkpoint is saved before the line is printed and ``on_epoch`` called, so an interrupt
    there (Ctrl-C, a test's stop) still finds this epoch on disk.
    """
    cfg = run.cfg
    row, m = _epoch_row(run.wrapped, run.x_val, run.y_val, run.names, epoch, logs, cfg, run.t0)
    run.history.append(row)
    improved = _track_best(run, train_model, epoch, row)
    if run.checkpoint:
        _save_checkpoint(run, train_model, improved, epoch + 1, m)
    if run.verbose:
        print(_epoch_line(row, cfg.epochs, improved), flush=True)
        if run.state.get("stopped_early"):
            print(_stop_line(epoch + 1, cfg.patience, run.state["best_epoch"]), flush=True)
    if run.on_epoch:
        run.on_epoch(row)


def _track_best(run: _Run, train_model: keras.Model, epoch: int, row: dict) -> bool:
    """Whether the epoch beat the best so far (then its weights are kept); else one more epoch
    without, and ``fit`` is stopped once ``patience`` such epochs follow the best."""
    cfg, state = run.cfg, run.state
    score = _selection_score(row, cfg.shuffle_labels)
    improved = score > state["best"]
    if improved:
        state.update(
            best=score, best_epoch=epoch + 1, best_weights=run.wrapped.keras_model.get_weights(), wait=0
        )
    else:
        state["wait"] += 1
        if cfg.patience and state["wait"] >= cfg.patience and epoch + 1 < cfg.epochs:
            train_model.stop_training = True
            state["stopped_early"] = True
    return improved


def _fit(
    train_model: keras.Model,
    ds: tf.data.Dataset,
    steps: int,
    run: _Run,
    initial_epoch: int,
    tensorboard: str | Path | None,
) -> None:
    """Run the epochs from ``initial_epoch`` through :class:`_EpochLoop` (and TensorBoard, if asked);
    ``ds`` holds those epochs' batches one after the other, ``steps`` batches each."""
    _build_state_before_tracing(train_model, ds)
    callbacks: list = [_EpochLoop(run)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard)))
    train_model.fit(
        ds,
        epochs=run.cfg.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,  # one iterator over all epochs, each epoch's batches keyed by its number
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles; Keras would warn that it ignores True
        verbose=1 if run.verbose > 1 else 0,
    )


def _finish_best(run: _Run, x_train: np.ndarray) -> dict | None:
    """Put the best epoch's weights back and recompute its BatchNorm statistics
    (:func:`_precise_batchnorm`); what that step did, or ``None`` where it did not run.

    A shuffled-labels control skips it: it is picked by its fit to the labels, not by validation.
    """
    cfg, state = run.cfg, run.state
    if state["best_weights"] is None:
        return None
    run.wrapped.keras_model.set_weights(state["best_weights"])
    if not cfg.precise_batchnorm or cfg.shuffle_labels:
        return None
    return _precise_batchnorm(
        run.wrapped, x_train, run.x_val, run.y_val, run.names, cfg, state["best"], run.verbose
    )


def _training_record(run: _Run, initial_epoch: int, precise: dict | None) -> dict:
    """What the finished model's metadata says of its training (``training``)."""
    return {
        "epochs_done": len(run.history) + initial_epoch,
        "best_epoch": run.state["best_epoch"],
        "history": run.earlier_history + run.history,  # a resumed run keeps the epochs before it
        "stopped_early": bool(run.state.get("stopped_early")),
        "seconds": time.time() - run.t0,
        **({"precise_batchnorm": precise} if precise else {}),
    }


def _fresh_state() -> dict:
    """What the epoch loop tracks: the best score, its epoch and weights, epochs since it."""
    return {"best": -1.0, "best_epoch": 0, "best_weights": None, "wait": 0, "stopped_early": False}


def _resume_state(
    resume: Path, km: keras.Model, names: list[str], cfg: TrainConfig
) -> tuple[int, list, dict]:
    """Put a checkpoint's weights into ``km``; return the epochs done, their history and the loop state.

    A run's checkpoint holds its last epoch (``weights_epoch``) and names the file with its best
    (``best_file``): the run goes on from the last and must beat the best to replace it, so it
    ends with the best model over all epochs, and early stopping counts the epochs since the
    best as before the interrupt. A finished model holds its best epoch: that is both where it
    goes on from and the score to beat, and patience starts afresh (asking it for more epochs
    is asking to train on).
    """
    from agelens.model.io import load_model

    prev = load_model(resume)
    if (problem := classes_problem(resume, prev.class_names, names)) is not None:
        raise ValueError(problem)
    try:
        km.set_weights(prev.keras_model.get_weights())
    except ValueError as e:
        raise ValueError(
            f"{resume}: cannot resume: its architecture differs from this run's "
            f"(input size, width or heads; {str(e).splitlines()[0][:120]})"
        ) from None
    training = prev.metadata.get("training", {}) or {}
    done = int(training.get("epochs_done", 0))
    if (problem := epochs_left_problem(resume, prev.metadata, cfg.epochs)) is not None:
        raise ValueError(problem)
    history = list(training.get("history", []))
    best_epoch = int(training.get("best_epoch", 0))
    held = int(training.get("weights_epoch", best_epoch))  # a finished model holds its best epoch
    state = _fresh_state()
    best_weights = km.get_weights() if held == best_epoch else _best_weights(resume, training, km)
    if best_weights is None:  # its best file is gone: the best known weights are the ones it holds
        best_epoch, best_weights = held, km.get_weights()
    row = next((r for r in history if r.get("epoch") == best_epoch), None)
    if row is not None:
        state.update(
            best=_selection_score(row, cfg.shuffle_labels), best_epoch=best_epoch, best_weights=best_weights
        )
        if training.get("kind") == "checkpoint":
            state["wait"] = max(0, done - best_epoch)
    if run_is_over(prev.metadata, cfg.epochs):  # its model was never written: train() only ends it
        state.update(run_over=True, stopped_early=bool(training.get("stopped_early")))
    planned = (prev.metadata.get("train_config") or {}).get("epochs")
    this = {"after_epoch": done, "weights_of_epoch": held, "epochs_planned": planned}
    state["resumes"] = [*(prev.metadata.get("resumes") or []), {**this, "epochs_now": cfg.epochs}]
    return done, history, state


def _resume_lines(resumed: dict, cfg: TrainConfig) -> list[str]:
    """What a resumed run says before its first epoch, where it is not a plain continuation.

    Why: a finished model goes on from its best epoch's weights while the epochs are numbered on
    from its last, and a raised ``--epochs`` stretches the learning-rate schedule, so the rate
    jumps back up (a warm restart); the history alone would not show either.
    """
    done, held, planned = resumed["after_epoch"], resumed["weights_of_epoch"], resumed["epochs_planned"]
    lines = []
    if held != done:
        lines.append(
            f"going on from epoch {held}'s weights (the model's best); the new epochs are numbered "
            f"from {done + 1}"
        )
    if isinstance(planned, int) and planned != cfg.epochs and done:
        ended, now = lr_at(done - 1, replace(cfg, epochs=planned)), lr_at(done, cfg)
        restart = " (a warm restart)" if now > 1.5 * ended else ""
        lines.append(
            f"the learning-rate schedule now spans {cfg.epochs} epochs, not {planned}: epoch {done + 1} runs "
            f"at {now:.3g} after {ended:.3g} at epoch {done}{restart}"
        )
    return lines


def _best_weights(resume: Path, training: dict, km: keras.Model) -> list | None:
    """The weights of a checkpoint's best epoch, from the file it names; None (with a warning) if gone."""
    from agelens.model.age_model import ModelLoadError
    from agelens.model.io import load_model

    path = resume.with_name(str(training.get("best_file") or best_checkpoint_path(resume).name))
    try:
        best = load_model(path).keras_model.get_weights()
    except (ModelLoadError, OSError, ValueError):
        best = None
    if best is None or [w.shape for w in best] != [w.shape for w in km.get_weights()]:
        warnings.warn(
            f"{path}: the best epoch so far ({training.get('best_epoch')}) cannot be read; "
            f"the run keeps the best from epoch {training.get('weights_epoch')} on",
            stacklevel=3,
        )
        return None
    return best


def _precise_batchnorm(
    wrapped, x_train, x_val, y_val, names, cfg: TrainConfig, before: float, verbose: int
) -> dict:
    """Recompute the best epoch's BatchNorm statistics over the training photos; keep them only if
    the validation score (accuracy + macro-F1, as the best epoch was picked by) does not drop.

    Why: inference normalises with moving averages collected while the weights were still moving;
    a short run ends with statistics near their initial values and predicts one class for every
    photo (240 photos, 2 epochs: one class before, three after, validation macro-F1 0.22 -> 0.32).
    On longer runs the effect is noise-sized either way (``benchmarks/bn_recalibration.py``), so
    validation decides, as it decided the epoch.
    """
    from agelens.model.bn_stats import recalibrate_batchnorm

    batch = max(32, cfg.batch_size)  # batch statistics of a handful of photos would be noise
    rec = recalibrate_batchnorm(wrapped.keras_model, x_train, batch_size=batch, seed=cfg.start_seed)
    row, _ = _epoch_row(wrapped, x_val, y_val, names, -1, {}, cfg, time.time())
    after = _selection_score(row)
    kept = after >= before
    if not kept:
        rec.revert()
    if verbose:
        print(
            f"BatchNorm statistics recomputed over {rec.n_images} training photos: validation accuracy + "
            f"macro-F1 {before:.3f} -> {after:.3f}, " + ("kept" if kept else "not kept (the epoch's are)"),
            flush=True,
        )
    return {**rec.to_dict(), "kept": kept, "val_score_before": before, "val_score_after": after}


def _epoch_row(wrapped, x_val, y_val, names, epoch: int, logs: dict, cfg: TrainConfig, t0: float):
    """One epoch's history row (and the validation metrics it came from).

    ``val_loss`` is the plain cross-entropy of the validation predictions the scores already
    need (no label smoothing, no class weights): comparable across recipes, and free.
    """
    from agelens.model.evaluate import classification_metrics

    probs = wrapped.predict(x_val, batch_size=256)["probabilities"]
    m = classification_metrics(y_val, probs.argmax(1), names)
    picked = np.clip(probs[np.arange(len(y_val)), np.asarray(y_val, dtype=int)], 1e-7, 1.0)
    row = {
        "epoch": epoch + 1,
        "loss": float(logs.get("loss", float("nan"))),
        "train_accuracy": float(logs.get(f"{GROUP_OUTPUT}_accuracy", logs.get("accuracy", float("nan")))),
        "val_loss": float(-np.mean(np.log(picked))),
        "val_accuracy": m["accuracy"],
        "val_macro_f1": m["macro_f1"],
        "lr": float(lr_at(epoch, cfg)),
        "seconds": time.time() - t0,
    }
    return row, m


def _save_checkpoint(run: _Run, train_model: keras.Model, improved: bool, epoch: int, m: dict) -> None:
    """After every epoch: the best epoch's model (when this one is it), then the last epoch's state.

    The best goes first: an interrupt between the two leaves a checkpoint whose best file is
    at least as new as it says.
    """
    wrapped, checkpoint, best_file = run.wrapped, Path(run.checkpoint), run.best_file
    history = run.earlier_history + run.history
    base = {
        "epochs_done": epoch,
        "best_epoch": run.state["best_epoch"],
        "history": history,
        "val": m,
        "stopped_early": bool(run.state.get("stopped_early")),  # a resume that only ends the run reads it
    }
    if improved:
        wrapped.metadata["training"] = {**base, "kind": "best", "weights_epoch": epoch}
        save_model(wrapped, best_file)
    wrapped.metadata["training"] = {
        **base,
        "kind": "checkpoint",
        "weights_epoch": epoch,
        "best_file": best_file.name,
    }
    save_model(wrapped, checkpoint)
    _save_optimizer_state(train_model.optimizer, optimizer_state_path(checkpoint))


def _epoch_line(row: dict, epochs: int, best: bool) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['loss']:.3f}  train_acc {row['train_accuracy']:.3f}"
        f"  val_loss {row['val_loss']:.3f}  val_acc {row['val_accuracy']:.3f}"
        f"  val_macro_f1 {row['val_macro_f1']:.3f}" + ("  *best*" if best else "")
    )


def _stop_line(epoch: int, patience: int, best_epoch: int) -> str:
    """Said when early stopping ends a run, so a run that ends before --epochs says why."""
    return (
        f"stopped early after epoch {epoch}: no better validation score for {patience} "
        f"epoch{'s' if patience != 1 else ''}; best epoch {best_epoch}"
    )


def write_history(path: str | Path, result: TrainResult) -> Path:
    """Every epoch's row (a resumed run's earlier epochs too) as JSON, written atomically."""
    import json

    from agelens.atomic import atomic_write_text

    rows = result.model.metadata.get("training", {}).get("history") or result.history
    return atomic_write_text(path, json.dumps(rows, indent=1))


def plot_training_curves(history: list[dict], path: str | Path, best_epoch: int | None = None) -> Path:
    """Loss, train/val accuracy and val macro-F1 per epoch, the best epoch marked: how a run went,
    whether it over-fitted or stopped early, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from agelens.atomic import atomic_savefig

    ep = [r["epoch"] for r in history]

    def col(key: str) -> list[float]:
        return [float(r.get(key, float("nan"))) for r in history]

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(ep, col("loss"), marker=".", label="train loss")
    if any("val_loss" in r for r in history):
        axes[0].plot(ep, col("val_loss"), marker=".", label="val cross-entropy")
    axes[1].plot(ep, col("train_accuracy"), marker=".", label="train")
    axes[1].plot(ep, col("val_accuracy"), marker=".", label="val")
    axes[2].plot(ep, col("val_macro_f1"), marker=".", label="val macro-F1")
    for ax, title in zip(axes, ("loss", "accuracy", "validation macro-F1"), strict=True):
        if best_epoch:
            ax.axvline(
                best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}"
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.2
        ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path)
