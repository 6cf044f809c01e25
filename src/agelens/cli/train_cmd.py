"""``agelens train``: train the age classifier on a data set, keep the best epoch, score the test split.

The command checks every option, the resumed checkpoint and the data before TensorFlow starts
(a typo fails in a second, not ten), then trains through :func:`agelens.model.train.train` and
writes the model, its split, its history and its test evaluation.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agelens.cli.common import (
    DataArg,
    FormatChoice,
    FormatOpt,
    age_bins_option,
    check_model_path,
    check_parent_folder,
    fail,
    report_problems,
    split_name,
)
from agelens.cli.evaluate_cmd import EVALUATION_FILES


class Schedule(StrEnum):
    """Learning-rate schedules ``agelens train`` offers."""

    cosine = "cosine"
    onecycle = "onecycle"


def _positive(value: float) -> float:
    """A malformed option exits 2 with the usage line, as --size 31 does (the check ran later: exit 1)."""
    if value <= 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


def train_command(
    ctx: typer.Context,
    data: DataArg,
    format: FormatOpt = FormatChoice.auto,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the model (.keras).")] = Path(
        "models/agelens.keras"
    ),
    bins: Annotated[str, typer.Option(help="Age bin edges in years, comma-separated.")] = "30,60",
    names: Annotated[
        str | None,
        typer.Option(
            help="Class names, comma-separated, one more than --bins edges (default: young,middle-aged,old "
            "for two edges, else 0-20, 20-40, ... as data inspect names them).",
            show_default=False,
        ),
    ] = None,
    size: Annotated[int, typer.Option(min=32, help="Input size in pixels (MobileNetV2: 32 or more).")] = 64,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            "--width",
            min=0.1,
            help="MobileNetV2 width multiplier (Keras calls it alpha; explain's --alpha is the overlay's "
            "opacity).",
        ),
    ] = 1.0,
    dropout: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.9, help="Dropout before the class head; raise it if a small data set over-fits."
        ),
    ] = 0.2,
    epochs: Annotated[
        int, typer.Option(min=1, help="Epochs in all (a resumed run counts the earlier ones).")
    ] = 30,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Photos per training step; lower it if memory runs out.")
    ] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).", callback=_positive)] = 2e-3,
    schedule: Annotated[Schedule, typer.Option(help="Learning-rate schedule.")] = Schedule.cosine,
    label_smoothing: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Soften the one-hot targets (0: off); neighbouring age groups overlap, so a little "
            "keeps the model from over-confidence.",
        ),
    ] = 0.1,
    class_weights: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="0 none, 0.5 sqrt-balanced, 1 balanced.")
    ] = 0.0,
    augment: Annotated[float, typer.Option(min=0.0, max=1.0, help="Augmentation strength 0..1.")] = 1.0,
    bn_momentum: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.9999,
            help="BatchNorm moving-average momentum (default: fitted to the run's length, 0.9 for a few "
            "hundred steps up to 0.99; Keras' 0.999 leaves a short run predicting one class).",
            show_default=False,
        ),
    ] = None,
    patience: Annotated[int, typer.Option(min=0, help="Early-stopping patience in epochs (0: off).")] = 8,
    age_head: Annotated[bool, typer.Option(help="Also learn age in years where the data has ages.")] = True,
    seed: Annotated[
        int,
        typer.Option(
            help="Seeds the train/val/test split and the training; change it to see how much a score "
            "depends on the split."
        ),
    ] = 0,
    init_seed: Annotated[
        int | None,
        typer.Option(
            help="Seeds only the initial weights, batch order and augmentation (default: --seed), keeping "
            "--seed's split: a --shuffle-labels control should start elsewhere than the model it checks.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue from a checkpoint .keras (and its optimizer state, kept beside it)."),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(help='Write TensorBoard logs here (needs: pip install "agelens[tensorboard]").'),
    ] = None,
    shuffle_labels: Annotated[
        bool,
        typer.Option(
            "--shuffle-labels",
            help="Train on randomly permuted labels: the control model of the data-randomisation sanity "
            "check (agelens score --shuffled-model). It keeps the epoch that fits the permuted labels "
            "best; its test scores sit at chance by design. Use the model's own --seed (its split), "
            "another --init-seed, --augment 0 --label-smoothing 0 and enough epochs to memorise them.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing --out model (and its _split.json, _history.json, _eval/)."
        ),
    ] = False,
) -> None:
    """Train a MobileNetV2 age classifier from scratch, keep the best epoch, evaluate on the test split.

    Example: agelens train ../shared/data/utkface-64 --out models/utk.keras --epochs 40
    """
    from agelens.model.checkpoints import RECIPE

    age_bins = age_bins_option(bins, names)
    typed = {  # the options the user gave: a resumed run takes the others from its checkpoint
        n
        for n in (*RECIPE, "epochs", "bins", "names")
        if getattr(ctx.get_parameter_source(n), "name", None) in {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}
    }
    given = dict(size=size, alpha=alpha, dropout=dropout, bn_momentum=bn_momentum, age_head=age_head,
                 batch_size=batch_size, lr=lr, schedule=schedule.value, label_smoothing=label_smoothing,
                 class_weights=class_weights, augment=augment, patience=patience, seed=seed,
                 init_seed=init_seed, shuffle_labels=shuffle_labels)  # fmt: skip
    plan = _check_train_options(out, force, resume, tensorboard, given, typed, epochs, age_bins)
    recipe = plan["recipe"]  # a resumed run's own, where not typed
    run = _Run(
        data,
        format,
        out,
        bins,
        names,
        typed,
        resume,
        tensorboard,
        recipe,
        Schedule(recipe["schedule"]),
        plan["epochs"],
        plan["bins"],
        plan["meta"],
    )
    photos = _read_photos(run)
    result = _train(run, photos)
    try:
        _write_outputs(run, photos, result, _test_metrics(run, photos, result))
    except KeyboardInterrupt:  # before the model was written its checkpoint stays: say how to finish
        if (ckpt := _checkpoint(run.out)).exists():
            _say_how_to_go_on(run, ckpt)
        raise


@dataclass(frozen=True)
class _Run:
    """One run as the command line and a resumed checkpoint settle it: ``recipe`` holds the options
    of :data:`~agelens.model.checkpoints.RECIPE` (a resumed run's own where not ``typed``), ``meta``
    the checkpoint's metadata (empty when not resuming); ``bins`` and ``names`` are the options as
    given, for the line that says how to go on after an interrupt."""

    data: Path
    format: FormatChoice
    out: Path
    bins: str
    names: str | None
    typed: set[str]
    resume: Path | None
    tensorboard: Path | None
    recipe: dict
    schedule: Schedule
    epochs: int
    age_bins: Any
    meta: dict


@dataclass(frozen=True)
class _Photos:
    """The data set and its train/val/test parts as decoded: ``parts`` holds each part's images,
    labels and ages, ``used`` the paths that decoded (the split file lists these, not files that
    failed to decode), ``fingerprint`` the split's (a resumed run must split the same photos)."""

    ds: Any
    parts: list[tuple[Any, list, list]]
    used: list[list[Path]]
    fingerprint: dict


def _read_photos(run: _Run) -> _Photos:
    """Read, split and decode the data, refusing what cannot train (or resume) before TensorFlow starts."""
    from agelens.cli.data_cmd import check_training_classes
    from agelens.data.images import load_batch
    from agelens.data.sources import DatasetError, load_dataset
    from agelens.model.checkpoints import split_fingerprint

    try:
        ds = load_dataset(run.data, format=run.format.value, bins=run.age_bins, check_images=False)
    except (DatasetError, ValueError) as e:
        fail(str(e))
    parts = ds.split(seed=run.recipe["seed"])
    fingerprint = split_fingerprint([split_name(p, ds.root) for p in part.paths] for part in parts)
    if run.resume is not None:  # the checkpoint's classes and photos, before decoding any (seconds)
        _check_resume_fits(run.resume, run.meta, ds.class_names, fingerprint)
    arrays = []
    used = []  # the paths each part loaded: the split file lists these, not files that failed to decode
    problems = list(ds.problems)
    for part in parts:
        x, ok, bad = load_batch(part.paths, run.recipe["size"])
        problems += bad
        keep = {p for p in ok}
        recs = [r for r in part.records if r.path in keep]
        arrays.append((x, [r.label for r in recs], [r.age for r in recs]))
        used.append([r.path for r in recs])
    report_problems(problems)
    (xtr, ytr, _), (xva, yva, _), (_, yte, _) = arrays
    if len(xtr) == 0 or len(xva) == 0:
        fail(f"{run.data}: not enough usable images to train ({len(xtr)} train, {len(xva)} val)")
    check_training_classes(run.data, ds.class_names, (ytr, yva, yte))  # refuse one class; warn on gaps
    return _Photos(ds, arrays, used, fingerprint)


def _check_resume_fits(resume: Path, meta: dict, class_names: list[str], fingerprint: dict) -> None:
    """Refuse a checkpoint of other classes or other photos (its test photos may be ones it trained on)."""
    from agelens.model.checkpoints import classes_problem, split_change

    problem = classes_problem(resume, meta.get("class_names"), class_names)
    if problem:
        fail(problem)
    changed = split_change((meta.get("data") or {}).get("split"), fingerprint)
    if changed:
        fail(f"{resume}: cannot resume: {changed}")


def _train(run: _Run, photos: _Photos):
    """Start TensorFlow and train; an interrupted run says where it is kept and how to go on."""
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # only now: a typo in a path or an option fails in a second, not ten
    import numpy as np

    from agelens.model.builder import ModelConfig
    from agelens.model.checkpoints import run_state_files
    from agelens.model.train import train

    rc, ds = run.recipe, photos.ds
    (xtr, ytr, atr), (xva, yva, ava), (xte, _, _) = photos.parts
    has_ages, shuffled = ds.has_ages and rc["age_head"], rc["shuffle_labels"]
    typer.echo(
        f"training on {len(xtr)} images, validating on {len(xva)}, testing on {len(xte)} ({ds.format})"
        + ("; training labels shuffled (validation and test keep the true ones)" if shuffled else "")
    )
    ckpt = _checkpoint(run.out)
    if run.resume is None or run.resume.resolve() not in {f.resolve() for f in run_state_files(ckpt)}:
        for stale in run_state_files(ckpt):  # an earlier run's, which --force gave up: not this run's
            stale.unlink(missing_ok=True)
    try:
        return train(
            xtr,
            np.array(ytr),
            xva,
            np.array(yva),
            ages_train=np.array(atr, dtype=np.float32) if has_ages else None,
            ages_val=np.array(ava, dtype=np.float32) if has_ages else None,
            # CSV labels and class folders name their own classes: size the head to them, and
            # record bin edges only where the classes are the age bins.
            model_config=ModelConfig(
                rc["size"], rc["alpha"], rc["dropout"], len(ds.class_names), has_ages, rc["bn_momentum"]
            ),
            config=_train_config(run),
            bins=run.age_bins,  # recorded only when the data's classes are these bins
            class_names=ds.class_names,
            checkpoint=ckpt,
            resume=run.resume,
            tensorboard=run.tensorboard,
            verbose=2 if _progress_bar() else 1,
            data_summary=_data_summary(run, photos),
        )
    except ValueError as e:  # a checkpoint that does not fit, or a bad combination of options
        fail(str(e))
    except BaseException:  # Ctrl-C or a crash mid-run: say where the run is kept and how to go on
        if ckpt.exists():
            _say_how_to_go_on(run, ckpt)
        raise


def _train_config(run: _Run):
    """The run's :class:`~agelens.model.train.TrainConfig`: its recipe, and a resumed run's own
    settings that no option sets (an API caller may have set them)."""
    from agelens.model.train import TrainConfig

    rc = run.recipe
    return TrainConfig(
        epochs=run.epochs,
        batch_size=rc["batch_size"],
        learning_rate=rc["lr"],
        schedule=run.schedule.value,
        label_smoothing=rc["label_smoothing"],
        class_weight_power=rc["class_weights"],
        augment=rc["augment"],
        patience=rc["patience"],
        seed=rc["seed"],
        shuffle_labels=rc["shuffle_labels"],
        init_seed=rc["init_seed"],
        **{  # what no option sets: a resumed run's own (an API caller may have set them)
            k: v
            for k, v in (run.meta.get("train_config") or {}).items()
            if k in ("warmup_epochs", "weight_decay", "age_weight", "age_sigma")
        },
    )


def _data_summary(run: _Run, photos: _Photos) -> dict:
    """What the model's metadata records of its data: the photos that decoded, and the split's
    fingerprint (a resumed run must split the same photos the same way)."""
    from agelens.data.inspect import loaded_counts

    (xtr, ytr, _), (xva, yva, _), (xte, yte, _) = photos.parts
    return {
        "source": str(run.data),
        "format": photos.ds.format,
        "counts": loaded_counts(photos.ds.class_names, (ytr, yva, yte)),  # photos that decoded
        "n_train": len(xtr),
        "n_val": len(xva),
        "n_test": len(xte),
        "split_seed": run.recipe["seed"],
        "split": photos.fingerprint,  # a resumed run must split the same photos the same way
    }


def _say_how_to_go_on(run: _Run, ckpt: Path) -> None:
    """The line an interrupted run leaves on stderr: where its epochs are kept, and the command that
    resumes it (:func:`_resume_command`)."""
    from agelens.model.checkpoints import run_state_files

    best = run_state_files(ckpt)[2]
    typer.echo(
        f"the last finished epoch is saved in {ckpt}"
        + (f" and the best so far in {best}" if best.exists() else "")
        + f"; to go on: {_resume_command(run, ckpt)}",
        err=True,
    )


def _resume_command(run: _Run, ckpt: Path) -> str:
    """The command that resumes this run from ``ckpt``, quoted for the shell: the recipe comes from
    the checkpoint; what picks the data and its split is given. It also finishes a run whose epochs
    are all done but whose model was not written: that resume trains no epoch."""
    import shlex

    rc = run.recipe
    again = ["agelens", "train", str(run.data), "--out", str(run.out), "--resume", str(ckpt)]
    again += ["--seed", str(rc["seed"]), "--epochs", str(run.epochs)]  # the rest comes from the checkpoint
    again += ["--init-seed", str(rc["init_seed"])] if rc["init_seed"] is not None else []
    again += ["--shuffle-labels"] if rc["shuffle_labels"] else []
    again += ["--format", run.format.value] if run.format != FormatChoice.auto else []
    again += ["--bins", run.bins] if "bins" in run.typed else []
    again += ["--names", str(run.names)] if "names" in run.typed else []
    return shlex.join(again)


def _test_metrics(run: _Run, photos: _Photos, result) -> dict:
    """The numbers evaluate --holdout gives for the test photos, age error included ({} without any)."""
    import numpy as np

    from agelens.model.evaluate import age_error, classification_metrics, one_class_warning, training_steps

    m: dict = {}
    _, _, (xte, yte, ate) = photos.parts
    seed = run.recipe["seed"]
    if len(xte):
        predicted = result.model.predict(xte)
        names_ = result.model.class_names
        m = classification_metrics(np.array(yte), predicted["probabilities"].argmax(1), names_)
        if "age" in predicted:
            true_ages = np.array([np.nan if a is None else a for a in ate], dtype=float)
            m.update(age_error(predicted["age"], true_ages))
        m["evaluated_on"] = f"held-out test split of {run.data} ({len(xte)} photos, seed {seed})"
        steps = training_steps(result.model.metadata)
        if note := one_class_warning(yte, predicted["probabilities"].argmax(1), names_, steps):
            typer.echo(note, err=True)  # its accuracy is that class's share, not a result
    return m


def _write_outputs(run: _Run, photos: _Photos, result, m: dict) -> None:
    """Save the model, its split, history, curves and test evaluation; drop the run's state files;
    say where each went and how to score the test photos again."""
    import shlex

    from agelens.model.checkpoints import run_state_files
    from agelens.model.evaluate import write_evaluation

    out, seed = run.out, run.recipe["seed"]
    ckpt = _checkpoint(out)
    try:
        _write_model_files(run, photos, result, m)
    except OSError as e:  # a full disk or a locked folder: an earlier run and this one's epochs stay
        fail(f"{out}: could not write the model: {e.strerror or e}; the run's epochs are kept in {ckpt} "
             f"(to finish it without training again: {_resume_command(run, ckpt)})")  # fmt: skip
    for done in run_state_files(ckpt):  # only now: the run's state is in the files just written
        done.unlink(missing_ok=True)
    split_file = out.with_name(out.stem + "_split.json")
    history_file = out.with_name(out.stem + "_history.json")
    eval_dir = out.with_name(out.stem + "_eval")
    if m:
        settings = {"data": str(run.data), "model": str(out), "split": str(split_file), "split_seed": seed}
        try:
            files = write_evaluation(m, eval_dir, settings, command="train (test split)")
        except OSError as e:  # the model is saved: its test photos can be scored again
            again = shlex.join(["--model", str(out), "--holdout", str(split_file), "--out", str(eval_dir)])
            fail(f"{eval_dir}: could not write the test evaluation: {e.strerror or e}; the model is saved "
                 f"(score it again: agelens evaluate {shlex.quote(str(run.data))} {again})")  # fmt: skip
        typer.echo(f"test accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  -> {files['markdown']}")
    typer.echo(f"history: {history_file} (curves: {eval_dir / 'training_curves.png'})")
    typer.echo(f"saved {out} (best epoch {result.best_epoch}, {result.seconds:.0f} s)")
    if run.recipe["shuffle_labels"]:
        history = result.model.metadata["training"]["history"]  # a resumed run's earlier epochs too
        kept = next((r for r in history if r.get("epoch") == result.best_epoch), {})
        fit = float(kept.get("train_accuracy", float("nan")))
        typer.echo(
            f"trained on shuffled labels (fit to them: {fit:.3f} training accuracy); compare a model's maps "
            f"with this one's: agelens score DATA --model REAL.keras --shuffled-model {shlex.quote(str(out))}"
        )
    again = shlex.join(["--model", str(out), "--holdout", str(split_file)])
    typer.echo(f"split: {split_file} (agelens evaluate DATA {again})")


def _write_model_files(run: _Run, photos: _Photos, result, m: dict) -> None:
    """The model, its split, its history and its training curves (in ``NAME_eval/``, which replaces
    an earlier run's whole), all moved in together, the model last (:func:`agelens.atomic.staged_folder`).

    Why: written one by one, a full disk or a Ctrl-C left a model without its split, or with
    ``--force`` the new model beside the earlier run's split, history and test scores (another
    split's). The test evaluation is written after (its manifest fingerprints the saved model).
    """
    import os
    import tempfile

    from agelens.atomic import staged_folder
    from agelens.model.io import save_model
    from agelens.model.train import plot_training_curves, write_history

    out = run.out
    eval_dir = out.with_name(out.stem + "_eval")
    result.model.metadata["test_metrics"] = m
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{eval_dir.name}.", suffix=".earlier") as aside,
        staged_folder(out.parent, last=out.name) as tmp,
    ):
        save_model(result.model, tmp / out.name)
        _write_split(tmp / out.name, photos.used, photos.ds.root, run.recipe["seed"])
        write_history(tmp / (out.stem + "_history.json"), result)
        history = result.model.metadata["training"]["history"]
        plot_training_curves(history, tmp / eval_dir.name / "training_curves.png", result.best_epoch)
        if eval_dir.is_dir():  # the earlier run's evaluation, set aside whole (removed with ``aside``)
            os.replace(eval_dir, Path(aside) / eval_dir.name)
    result.model.path = out


def _check_train_options(
    out: Path,
    force: bool,
    resume: Path | None,
    tensorboard: Path | None,
    given: dict,
    typed: set[str],
    epochs: int,
    age_bins,
) -> dict:
    """Refuse options that would fail later, before any work: finding out after TensorFlow's start
    (seconds), let alone an hour of training, is too late.

    Returns the run's plan: ``recipe`` (``given``, the recipe options of
    :data:`~agelens.model.checkpoints.RECIPE`, with a resumed run's own in place of those not
    ``typed``), ``epochs``, ``bins`` and the checkpoint's metadata ``meta`` (empty when not
    resuming). A resumed run continued with another recipe would be neither run, and its saved
    config would claim the first for both: options typed with other values are refused.
    """
    if out.suffix != ".keras":
        fail(f"{out}: the model file must end in .keras")
    check_parent_folder(out, "--out")
    if not force:
        _check_earlier_run(out, resume)
    plan = {"recipe": dict(given), "epochs": epochs, "bins": age_bins, "meta": {}}
    if resume is not None:
        plan = _resumed_plan(resume, plan, typed)
    if tensorboard is not None:
        _check_tensorboard()
    return plan


def _check_earlier_run(out: Path, resume: Path | None) -> None:
    """Without --force, refuse to write over an interrupted run's checkpoints (never lost silently)
    or an earlier run's outputs; resuming from this run's own checkpoint is going on with it."""
    from agelens.model.checkpoints import run_state_files as state_files

    state = state_files(_checkpoint(out))
    picked = None if resume is None else resume.resolve()
    if picked in {f.resolve() for f in state}:
        return
    left = [f for f in (state[0], state[2]) if f.exists()]  # an interrupted run: never lose it silently
    if left:  # also when resuming the finished --out model: going on from it would delete them
        go_on = f"continue it with --resume {state[0]}" if state[0].exists() else "move it elsewhere"
        fail(f"{left[0]} exists (an interrupted run's last or best epoch); {go_on}, or use --force")
    taken = [p for p in _train_outputs(out) if p.exists()]
    if taken and picked != out.resolve():
        fail(f"{taken[0]} exists; use --force to overwrite it (or choose another --out)")


def _resumed_plan(resume: Path, plan: dict, typed: set[str]) -> dict:
    """``plan`` with the checkpoint's recipe, age groups and length in place of what was not typed;
    options typed with other values than the checkpoint's, or no epochs left to run, are refused."""
    from agelens.model.checkpoints import differences_line, epochs_left_problem, resumed_recipe

    check_model_path(resume, "resume")
    from agelens.model.io import read_metadata

    meta = plan["meta"] = read_metadata(resume)
    plan["recipe"], differences = resumed_recipe(meta, plan["recipe"], typed)
    plan["bins"], bins_differ = _resumed_bins(meta, plan["bins"], typed)
    differences += bins_differ
    if differences:
        fail(differences_line(resume, differences))
    if "epochs" not in typed:  # the run's own length, as it was asked for
        plan["epochs"] = int((meta.get("train_config") or {}).get("epochs", plan["epochs"]))
    problem = epochs_left_problem(resume, meta, plan["epochs"])
    if problem:
        fail(problem)
    return plan


def _resumed_bins(meta: dict, age_bins: Any, typed: set[str]) -> tuple[Any, list[str]]:
    """The checkpoint's age groups where it records them (a resumed run keeps its classes), and the
    difference to refuse when --bins or --names were typed with other ones."""
    saved_bins = meta.get("bins")
    if not isinstance(saved_bins, dict) or age_bins is None:
        return age_bins, []
    from agelens.data.bins import AgeBins

    theirs = AgeBins(**saved_bins)
    if not ({"bins", "names"} & set(typed) and theirs != age_bins):
        return theirs, []
    flags = [f"--bins {','.join(f'{e:g}' for e in b.edges)} --names {','.join(b.names)}"
             for b in (age_bins, theirs)]  # fmt: skip
    return theirs, [f"{flags[0]} (the checkpoint has {flags[1]})"]


def _check_tensorboard() -> None:
    """--tensorboard's package is checked before training: Keras' callback needs it at the first epoch."""
    try:
        import tensorboard as _tb  # noqa: F401 - Keras' callback needs it; check before training
    except ImportError:
        fail('--tensorboard needs the tensorboard package: pip install "agelens[tensorboard]"')


def _progress_bar() -> bool:
    """Keras' per-batch progress bar (loss, accuracy) in a terminal; logs get one line an epoch."""
    return sys.stdout.isatty()


def _checkpoint(out: Path) -> Path:
    """Where ``train`` keeps the last finished epoch while it runs (``NAME.checkpoint.keras``; its
    optimizer state and the best epoch so far lie beside it, see
    :func:`agelens.model.checkpoints.run_state_files`; all removed when the run ends)."""
    from agelens.model.checkpoints import CHECKPOINT_SUFFIX

    return out.with_name(out.stem + CHECKPOINT_SUFFIX)


def _train_outputs(out: Path) -> list[Path]:
    """Every file ``train`` leaves for ``--out`` (the model, its split, its history, its test
    evaluation and training curves); the run's state while it runs is :func:`_checkpoint`'s."""
    return [
        out,
        out.with_name(out.stem + "_split.json"),
        out.with_name(out.stem + "_history.json"),
        *(out.with_name(out.stem + "_eval") / name for name in (*EVALUATION_FILES, "training_curves.png")),
    ]


def _write_split(out: Path, parts: list[list[Path]], root: Path, seed: int) -> Path:
    """The photos of each split, so ``evaluate --holdout`` can score the test photos again.

    Paths are relative to the data root (``young/IMG_0001.png``): class folders often reuse file
    names, and a bare name would match a training photo of another class too.
    """
    from agelens.atomic import atomic_write_text

    names = {
        k: sorted(split_name(p, root) for p in paths)
        for k, paths in zip(("train", "val", "test"), parts, strict=True)
    }
    return atomic_write_text(
        out.with_name(out.stem + "_split.json"), json.dumps({"seed": seed, **names}, indent=1)
    )
