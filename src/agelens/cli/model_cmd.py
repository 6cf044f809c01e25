"""``agelens train``, ``evaluate`` and ``predict``: thin wrappers over ``agelens.model``."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    DetectCropOpt,
    FormatChoice,
    FormatOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    age_bins_option,
    check_model_path,
    check_parent_folder,
    counted,
    data_bins,
    drop_stale_report,
    fail,
    in_holdout,
    in_model_order,
    load_cli_model,
    load_options,
    not_face_crops_warning,
    prediction_line,
    read_holdout,
    report_problems,
    say_how_read,
    split_name,
    warn_implausible_ages,
)

# What ``write_evaluation`` puts in an --out folder; an existing one is replaced only with --force.
EVALUATION_FILES = ("metrics.json", "metrics.md", "confusion_matrix.png", "manifest.json")

# Converting to TFLite took 6.6 s and then saves 1.55 ms a photo (378 vs 915 photos/s,
# benchmarks/predict_engines.py): it pays within one run from ~4,000 photos, within two
# (the conversion is cached) from ~2,000. With LiteRT installed it pays from the second run
# whatever its size: that run skips TensorFlow altogether (agelens.model.light).
FAST_PREDICT_MIN = 2000


class Schedule(StrEnum):
    """Learning-rate schedules ``agelens train`` offers."""

    cosine = "cosine"
    onecycle = "onecycle"


class Engine(StrEnum):
    """How ``evaluate`` and ``predict`` run the model forward."""

    tflite = "tflite"
    keras = "keras"


def _positive(value: float) -> float:
    """A malformed option exits 2 with the usage line, as --size 31 does (the check ran later: exit 1)."""
    if value <= 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


def train_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="UTKFace-style folder, class sub-folders, or a CSV.")],
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
    import shlex

    from agelens.data.images import load_batch
    from agelens.data.sources import DatasetError, load_dataset
    from agelens.model.checkpoints import RECIPE, run_state_files, split_change, split_fingerprint

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
    rc, epochs, age_bins, resumed = plan["recipe"], plan["epochs"], plan["bins"], plan["meta"]
    size, alpha, dropout, bn_momentum = rc["size"], rc["alpha"], rc["dropout"], rc["bn_momentum"]
    age_head, batch_size, lr = rc["age_head"], rc["batch_size"], rc["lr"]
    label_smoothing = rc["label_smoothing"]
    class_weights, augment, patience, seed = rc["class_weights"], rc["augment"], rc["patience"], rc["seed"]
    init_seed, shuffle_labels, schedule = rc["init_seed"], rc["shuffle_labels"], Schedule(rc["schedule"])
    try:
        ds = load_dataset(data, format=format.value, bins=age_bins, check_images=False)
    except (DatasetError, ValueError) as e:
        fail(str(e))
    parts = ds.split(seed=seed)
    fingerprint = split_fingerprint([split_name(p, ds.root) for p in part.paths] for part in parts)
    if resume is not None:  # the checkpoint's classes and photos, before decoding any (seconds)
        if resumed.get("class_names") and list(resumed["class_names"]) != list(ds.class_names):
            fail(
                f"{resume}: cannot resume: its classes are {', '.join(resumed['class_names'])}, "
                f"the data's {', '.join(ds.class_names)}"
            )
        changed = split_change((resumed.get("data") or {}).get("split"), fingerprint)
        if changed:
            fail(f"{resume}: cannot resume: {changed}")
    arrays = []
    used = []  # the paths each part loaded: the split file lists these, not files that failed to decode
    problems = list(ds.problems)
    for part in parts:
        x, ok, bad = load_batch(part.paths, size)
        problems += bad
        keep = {p for p in ok}
        recs = [r for r in part.records if r.path in keep]
        arrays.append((x, [r.label for r in recs], [r.age for r in recs]))
        used.append([r.path for r in recs])
    report_problems(problems)
    (xtr, ytr, atr), (xva, yva, ava), (xte, yte, ate) = arrays
    if len(xtr) == 0 or len(xva) == 0:
        fail(f"{data}: not enough usable images to train ({len(xtr)} train, {len(xva)} val)")
    from agelens.cli.data_cmd import check_training_classes
    from agelens.data.inspect import loaded_counts

    check_training_classes(data, ds.class_names, (ytr, yva, yte))  # refuse one class; warn on gaps
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # only now: a typo in a path or an option fails in a second, not ten
    import numpy as np

    from agelens.model.builder import ModelConfig
    from agelens.model.evaluate import (
        age_error,
        classification_metrics,
        one_class_warning,
        training_steps,
        write_evaluation,
    )
    from agelens.model.io import save_model
    from agelens.model.train import TrainConfig, plot_training_curves, train, write_history

    has_ages = ds.has_ages and age_head
    typer.echo(
        f"training on {len(xtr)} images, validating on {len(xva)}, testing on {len(xte)} ({ds.format})"
        + ("; training labels shuffled (validation and test keep the true ones)" if shuffle_labels else "")
    )
    ckpt = _checkpoint(out)
    if resume is None or resume.resolve() not in {f.resolve() for f in run_state_files(ckpt)}:
        for stale in run_state_files(ckpt):  # an earlier run's, which --force gave up: not this run's
            stale.unlink(missing_ok=True)
    try:
        result = train(
            xtr,
            np.array(ytr),
            xva,
            np.array(yva),
            ages_train=np.array(atr, dtype=np.float32) if has_ages else None,
            ages_val=np.array(ava, dtype=np.float32) if has_ages else None,
            # CSV labels and class folders name their own classes: size the head to them, and
            # record bin edges only where the classes are the age bins.
            model_config=ModelConfig(size, alpha, dropout, len(ds.class_names), has_ages, bn_momentum),
            config=TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=lr,
                schedule=schedule.value,
                label_smoothing=label_smoothing,
                class_weight_power=class_weights,
                augment=augment,
                patience=patience,
                seed=seed,
                shuffle_labels=shuffle_labels,
                init_seed=init_seed,
                **{  # what no option sets: a resumed run's own (an API caller may have set them)
                    k: v
                    for k, v in (resumed.get("train_config") or {}).items()
                    if k in ("warmup_epochs", "weight_decay", "age_weight", "age_sigma")
                },
            ),
            bins=age_bins,  # recorded only when the data's classes are these bins
            class_names=ds.class_names,
            checkpoint=ckpt,
            resume=resume,
            tensorboard=tensorboard,
            verbose=2 if _progress_bar() else 1,
            data_summary={
                "source": str(data),
                "format": ds.format,
                "counts": loaded_counts(ds.class_names, (ytr, yva, yte)),  # photos that decoded
                "n_train": len(xtr),
                "n_val": len(xva),
                "n_test": len(xte),
                "split_seed": seed,
                "split": fingerprint,  # a resumed run must split the same photos the same way
            },
        )
    except ValueError as e:  # a checkpoint that does not fit, or a bad combination of options
        fail(str(e))
    except BaseException:  # Ctrl-C or a crash mid-run: say where the run is kept and how to go on
        if ckpt.exists():
            again = ["agelens", "train", str(data), "--out", str(out), "--resume", str(ckpt)]
            again += ["--seed", str(seed), "--epochs", str(epochs)]  # the rest comes from the checkpoint
            again += ["--init-seed", str(init_seed)] if init_seed is not None else []
            again += ["--shuffle-labels"] if shuffle_labels else []
            again += ["--format", format.value] if format != FormatChoice.auto else []
            again += ["--bins", bins] if "bins" in typed else []
            again += ["--names", str(names)] if "names" in typed else []
            best = run_state_files(ckpt)[2]
            typer.echo(
                f"the last finished epoch is saved in {ckpt}"
                + (f" and the best so far in {best}" if best.exists() else "")
                + f"; to go on: {shlex.join(again)}",
                err=True,
            )
        raise
    m: dict = {}
    if len(xte):  # the numbers evaluate --holdout gives for these photos, age error included
        predicted = result.model.predict(xte)
        names_ = result.model.class_names
        m = classification_metrics(np.array(yte), predicted["probabilities"].argmax(1), names_)
        if "age" in predicted:
            true_ages = np.array([np.nan if a is None else a for a in ate], dtype=float)
            m.update(age_error(predicted["age"], true_ages))
        m["evaluated_on"] = f"held-out test split of {data} ({len(xte)} photos, seed {seed})"
        steps = training_steps(result.model.metadata)
        if note := one_class_warning(yte, predicted["probabilities"].argmax(1), names_, steps):
            typer.echo(note, err=True)  # its accuracy is that class's share, not a result
    result.model.metadata["test_metrics"] = m
    save_model(result.model, out)
    split_file = _write_split(out, used, ds.root, seed)
    history_file = write_history(out.with_name(out.stem + "_history.json"), result)
    eval_dir = out.with_name(out.stem + "_eval")
    curves = plot_training_curves(
        result.model.metadata["training"]["history"], eval_dir / "training_curves.png", result.best_epoch
    )
    for done in run_state_files(ckpt):  # the run finished: its state is in the files above
        done.unlink(missing_ok=True)
    if m:
        settings = {"data": str(data), "model": str(out), "split": str(split_file), "split_seed": seed}
        files = write_evaluation(m, eval_dir, settings, command="train (test split)")
        typer.echo(f"test accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  -> {files['markdown']}")
    typer.echo(f"history: {history_file} (curves: {curves})")
    typer.echo(f"saved {out} (best epoch {result.best_epoch}, {result.seconds:.0f} s)")
    if shuffle_labels:
        history = result.model.metadata["training"]["history"]  # a resumed run's earlier epochs too
        kept = next((r for r in history if r.get("epoch") == result.best_epoch), {})
        fit = float(kept.get("train_accuracy", float("nan")))
        typer.echo(
            f"trained on shuffled labels (fit to them: {fit:.3f} training accuracy); compare a model's maps "
            f"with this one's: agelens score DATA --model REAL.keras --shuffled-model {shlex.quote(str(out))}"
        )
    again = shlex.join(["--model", str(out), "--holdout", str(split_file)])
    typer.echo(f"split: {split_file} (agelens evaluate DATA {again})")


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
    from agelens.model.checkpoints import differences_line, epochs_left_problem, resumed_recipe
    from agelens.model.checkpoints import run_state_files as state_files

    if out.suffix != ".keras":
        fail(f"{out}: the model file must end in .keras")
    check_parent_folder(out, "--out")
    state = state_files(_checkpoint(out))
    picked = None if resume is None else resume.resolve()
    if not force and picked not in {f.resolve() for f in state}:
        left = [f for f in (state[0], state[2]) if f.exists()]  # an interrupted run: never lose it silently
        if left:  # also when resuming the finished --out model: going on from it would delete them
            go_on = f"continue it with --resume {state[0]}" if state[0].exists() else "move it elsewhere"
            fail(f"{left[0]} exists (an interrupted run's last or best epoch); {go_on}, or use --force")
        taken = [p for p in _train_outputs(out) if p.exists()]
        if taken and picked != out.resolve():
            fail(f"{taken[0]} exists; use --force to overwrite it (or choose another --out)")
    plan = {"recipe": dict(given), "epochs": epochs, "bins": age_bins, "meta": {}}
    if resume is not None:
        check_model_path(resume, "resume")
        from agelens.data.bins import AgeBins
        from agelens.model.io import read_metadata

        meta = plan["meta"] = read_metadata(resume)
        plan["recipe"], differences = resumed_recipe(meta, plan["recipe"], typed)
        saved_bins = meta.get("bins")
        if isinstance(saved_bins, dict) and age_bins is not None:
            theirs = AgeBins(**saved_bins)
            if {"bins", "names"} & set(typed) and theirs != age_bins:
                flags = [f"--bins {','.join(f'{e:g}' for e in b.edges)} --names {','.join(b.names)}"
                         for b in (age_bins, theirs)]  # fmt: skip
                differences.append(f"{flags[0]} (the checkpoint has {flags[1]})")
            plan["bins"] = theirs
        if differences:
            fail(differences_line(resume, differences))
        if "epochs" not in typed:  # the run's own length, as it was asked for
            plan["epochs"] = int((meta.get("train_config") or {}).get("epochs", epochs))
        problem = epochs_left_problem(resume, meta, plan["epochs"])
        if problem:
            fail(problem)
    if tensorboard is not None:
        try:
            import tensorboard as _tb  # noqa: F401 - Keras' callback needs it; check before training
        except ImportError:
            fail('--tensorboard needs the tensorboard package: pip install "agelens[tensorboard]"')
    return plan


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


def evaluate_command(
    data: Annotated[Path, typer.Argument(help="Labelled data: UTKFace-style folder, class folders, or CSV.")],
    format: FormatOpt = FormatChoice.auto,
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write metrics.json/.md and a plot here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    holdout: Annotated[
        Path | None,
        typer.Option(
            help="JSON with a 'test' list (train's _split.json: paths relative to DATA): evaluate only those."
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1, help="Photos per forward pass; lower it if memory runs out (scores do not change)."
        ),
    ] = 256,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help="Average each photo with its mirror image (default: model's)."),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="tflite: the same weights through TensorFlow Lite, ~2x faster (Keras if unavailable)."
        ),
    ] = Engine.tflite,
    detect: DetectCropOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace metrics files already in --out.")] = False,
) -> None:
    """Accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    Photos are scored as given, as face crops (the form labelled data sets come in and models
    are trained on). predict and explain crop the largest face first; --detect does the same
    here, for labelled photos that are not face crops (the JSON counts the faces found).

    Example: agelens evaluate ../shared/data/utkface-200 --json
    """
    from agelens.data.images import load_batch
    from agelens.data.sources import DatasetError, load_dataset

    _check_evaluation_out(out, force)
    names = read_holdout(holdout) if holdout is not None else None
    check_model_path(model)
    try:  # read with the bins the model file records, so a bad DATA fails before TensorFlow starts
        ds = load_dataset(
            data, format=format.value, bins=data_bins(model, bins, class_names), check_images=False
        )
    except DatasetError as e:
        fail(str(e))
    records, problems, outside = _held_out(ds, names, data, holdout)
    import numpy as np

    from agelens.model.evaluate import (
        age_error,
        classification_metrics,
        markdown_table,
        one_class_predicted,
        one_class_warning,
        training_steps,
        write_evaluation,
    )

    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    m_ = _forward_model(model, options, light=engine == "tflite")
    trained_on = "" if holdout is not None else _training_data_warning(data, ds, m_)
    if trained_on and not as_json:  # before decoding: a user can stop and rerun with --holdout
        typer.echo(trained_on, err=True)
    ds = in_model_order(ds, m_.class_names)  # before decoding every photo; labels index the outputs by name
    found: list[bool | None] = []
    if detect:  # the crop predict makes, without keeping thousands of decoded photos
        from agelens.model.predict import prepare

        prepared = prepare([r.path for r in records], m_.input_size, detect=True, keep_photos=False)
        x, ok, bad, found = prepared.batch, prepared.paths, prepared.problems, prepared.face_found
    else:
        decoded: dict[Path, tuple[int, int]] = {}  # each photo's size, for not_face_crops below
        x, ok, bad = load_batch([r.path for r in records], m_.input_size, sizes=decoded)
    problems += bad
    report_problems(problems, quiet=True)  # the count is in the summary line (or n_skipped with --json)
    from agelens.model.faces import not_face_crops

    uncropped = [] if detect else not_face_crops(ok, m_.input_size, decoded)
    if uncropped and not as_json:  # photos in the wild scored as face crops: their accuracy means little
        typer.echo(not_face_crops_warning(uncropped, len(ok), m_.input_size), err=True)
    label_of = {r.path: r.label for r in ds.records}  # in the model's class order
    y = np.array([label_of[p] for p in ok])
    if not len(y):
        fail(f"{data}: no usable images")
    predicted = m_.predict(x, batch_size=batch_size, flip=flip, fast=engine == "tflite")
    probs = predicted["probabilities"]
    m = classification_metrics(y, probs.argmax(1), m_.class_names)
    m["one_class_predicted"] = one_class_predicted(probs.argmax(1), m_.class_names)
    one_class = one_class_warning(y, probs.argmax(1), m_.class_names, training_steps(m_.metadata))
    if one_class and not as_json:  # its accuracy is that class's share, not something learned
        typer.echo(one_class, err=True)
    if "age" in predicted:
        age_of = {r.path: r.age for r in ds.records}
        true_ages = np.array([np.nan if age_of[p] is None else age_of[p] for p in ok], dtype=float)
        m.update(age_error(predicted["age"], true_ages))
        warn_implausible_ages(predicted["age"], m_)
    m["n_skipped"] = len(problems)
    m["includes_training_photos"] = bool(trained_on)
    m["skipped"] = [str(p) for p in problems]  # "file: reason", as printed on stderr
    if holdout is not None:
        m["n_outside_holdout"] = outside
    m["evaluated_on"] = (
        f"photos of {data} listed in {holdout}"
        if holdout is not None
        else f"every labelled photo in {data} (training photos included, if the model saw any)"
    ) + (f"; {faces_found_phrase(found)}" if detect else "")
    m["detect"] = detect
    if detect:
        m["n_faces_found"] = sum(bool(f) for f in found)
        m["no_face"] = [str(p) for p, f in zip(ok, found, strict=True) if not f]
    else:  # the photos the warning names (all of them)
        m["not_face_crops"] = [str(p) for p, _ in uncropped]
    m["model"] = str(m_.path)
    m["test_time_flip"] = m_.test_time_flip if flip is None else flip
    if engine == "tflite":
        from agelens.model.fast import fast_predictor
        from agelens.model.light import remember

        m["engine"] = "tflite" if fast_predictor(m_) is not None else "keras (TensorFlow Lite unavailable)"
        if m_.keras_model is not None:
            remember(m_, options)  # the next run skips TensorFlow
    else:
        m["engine"] = "keras"
    if out is not None:
        settings = {
            "data": str(data),
            "format": format.value,
            "holdout": str(holdout) if holdout is not None else None,
            "batch_size": batch_size,
            "flip": m["test_time_flip"],
            "engine": m["engine"],
            "detect": detect,
        }
        given = {k: v for k, v in options.items() if v is not None}
        write_evaluation(m, out, settings | given | {"model_read_as": m_.read_as})
        if force:
            drop_stale_report(out)  # a page drawn from the numbers just replaced
    if as_json:
        sys.stdout.write(json.dumps(m) + "\n")
    else:
        typer.echo(markdown_table(m))
        left_out = f", {outside} not in the holdout list" if holdout is not None else ""
        faces = f"; {faces_found_phrase(found)}" if detect else ""
        typer.echo(
            f"{counted(m['n_images'], 'image')} evaluated, {m['n_skipped']:,} skipped{left_out}{faces}"
        )


CONVERTED_GRAPH = ("input_size", "class_output", "age_output", "one_unit", "bins")
"""The load options that change the model converted to TFLite (its outputs, the head agelens adds):
each combination of them is a converted copy of its own. --class-names and --input-range change
only how its numbers are named and fed, not the copy."""


def conversion_note(options: dict) -> str:
    """The line ``predict`` prints before converting a model to TFLite, saying why it converts.

    The copy is cached per converted graph, so a one-unit model read with other --bins (or
    --one-unit, --age-output...) is converted again, once for those options: a note that said
    "once" each time read as a broken cache. The options that made this copy are named.
    """
    given = [f"--{k.replace('_', '-')} {options[k]}" for k in CONVERTED_GRAPH if options.get(k) is not None]
    if not given:
        return "converting the model to TFLite (once: later runs start in about a second)"
    return (
        f"converting the model to TFLite for these options ({' '.join(given)}): once for them; later runs "
        "with the same options start in about a second (other options make a copy of their own)"
    )


def faces_found_phrase(found: list[bool | None]) -> str:
    """How ``--detect`` went, in the words the text output and ``evaluated_on`` share."""
    n, k = len(found), sum(bool(f) for f in found)
    rest = "" if k == n else "; the others scored whole"
    return f"the largest face cropped first (found in {k} of {n}{rest})"


def _forward_model(model: Path | None, options: dict, light: bool):
    """The model for forward passes only: its TFLite copy without TensorFlow where a run with this
    file and these options recorded one (``light``; see :mod:`agelens.model.light`), else loaded by
    Keras, TensorFlow imported only now (a path typo has failed in a second, not after its start)."""
    from agelens.model.light import light_key, light_model, note_loaded

    key = light_key(model, options)  # before loading: the bytes that will be converted
    if light:
        found = light_model(model, options, key=key)
        if found is not None:
            say_how_read(found, options["input_range"], model)  # as load_cli_model says it
            return found
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    return note_loaded(load_cli_model(model, options), key)


def _check_evaluation_out(out: Path | None, force: bool) -> None:
    """Refuse an ``--out`` that cannot take the metrics files before any work is done."""
    if out is not None and out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a directory")
    if out is not None:
        check_parent_folder(out, "--out")
    if out is not None and not force:
        taken = [out / name for name in EVALUATION_FILES if (out / name).exists()]
        if taken:
            fail(f"{taken[0]} exists; use --force to overwrite it (or choose another --out)")


def _training_data_warning(data: Path, ds, loaded) -> str:
    """One line when DATA is what the model was trained on (evaluated without --holdout), naming
    the fix; "" otherwise.

    Known two ways: the model's metadata records its data source, as the path given to train
    (relative to where train ran, so compared resolved from here), and the split file train
    wrote beside the model lists its training photos, which DATA may hold wherever it is.
    """
    meta = getattr(loaded, "metadata", None) or {}
    source = meta.get("data", {}).get("source") if isinstance(meta.get("data"), dict) else None
    same = isinstance(source, str) and Path(source).resolve() == Path(data).resolve()
    path = getattr(loaded, "path", None)
    split = Path(path).with_name(Path(path).stem + "_split.json") if path is not None else None
    trained = _training_photos(split, ds) if split is not None and split.is_file() else None
    if not same and not trained:
        return ""
    photos = f" ({trained} of its {len(ds.records)} labelled files)" if trained else ""
    fix = (
        f"--holdout {split} to score only the photos train held out"
        if split is not None and split.is_file()
        else "photos it was not trained on (no _split.json beside the model to pass to --holdout)"
    )
    return (
        f"warning: {data} holds the photos {Path(path or 'the model').name} was trained on{photos} and no "
        f"--holdout was given: these scores count them; use {fix}"
    )


def _training_photos(split: Path, ds) -> int:
    """How many of DATA's listed photos the split file names as training photos (0 if it cannot be read)."""
    try:
        doc = json.loads(split.read_text())
    except (OSError, ValueError):
        return 0
    names = doc.get("train") if isinstance(doc, dict) else None
    if not isinstance(names, list):
        return 0
    listed = {n for n in names if isinstance(n, str)}
    return sum(in_holdout(r.path, ds.root, listed) for r in ds.records)


def _held_out(ds, names: set[str] | None, data: Path, holdout: Path | None) -> tuple[list, list, int]:
    """The records and problems ``--holdout`` keeps, and how many labelled files it leaves out.

    A split from another data set (or another copy of it) matches few of DATA's photos, or
    none: the user must hear how many were left out, not that the photos are unusable.
    """
    if names is None:
        return ds.records, list(ds.problems), 0

    records = [r for r in ds.records if in_holdout(r.path, ds.root, names)]
    outside = len(ds.records) - len(records)
    if ds.records and not records:
        photos = counted(len(ds.records), "labelled photo")
        fail(f"{data}: none of its {photos} is in the test list of {holdout}")
    if outside:
        verb = "is" if outside == 1 else "are"
        typer.echo(  # files as listed, not decoded: one that would not load counts here too
            f"{outside} of the {len(ds.records)} labelled files in {data} {verb} not in the test list of "
            f"{holdout}: left out unread",
            err=True,
        )
    # Only the held-out photos are evaluated, so only their problems count as skipped.
    return records, [p for p in ds.problems if in_holdout(Path(p.path), ds.root, names)], outside


def predict_command(
    images: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of one line per photo.")
    ] = False,
    detect: Annotated[bool, typer.Option(help="Crop the largest face first (off for face crops).")] = True,
    flip: Annotated[
        bool | None,
        typer.Option("--flip/--no-flip", help="Average each photo with its mirror image (default: model's)."),
    ] = None,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="tflite: ~2x faster, same weights; its first use converts the model (a few "
            "seconds, then cached), and later runs with the same model file need no TensorFlow. "
            "Default: tflite (keras where LiteRT is missing, unless converted or "
            f"{FAST_PREDICT_MIN}+ photos)."
        ),
    ] = None,
) -> None:
    """Age-group probabilities (and age in years where the model has it) per image.

    Example: agelens predict photos/ --json
    """
    from agelens.model.fast import is_converted
    from agelens.model.light import litert_installed, remember
    from agelens.model.predict import collect_inputs, predict_images, prepare, rounded_row

    paths, missing = collect_inputs(images)
    if not paths:  # before the model loads: nothing to wait for; one line, as explain says it
        fail(
            f"nothing to predict: {'; '.join(map(str, missing))}"
            if missing
            else "no images found in " + ", ".join(images)
        )
    check_model_path(model)
    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    m = _forward_model(model, options, light=engine != Engine.keras)
    prepared = prepare(paths, m.input_size, detect=detect)
    lost = missing + prepared.problems
    if len(prepared.batch) == 0:  # nothing to predict: one error line that names what went wrong
        if len(lost) == 1:
            fail(str(lost[0]))
        report_problems(lost, quiet=True)
        fail(f"none of the {len(lost)} inputs could be read (see the lines above)")
    report_problems(lost, quiet=False)
    # hashing the weights (0.16 s for the shipped model) once, not once per question
    converted = m.keras_model is None or is_converted(m)
    if m.keras_model is None:  # the light model: its TFLite copy is all it has
        fast = True
    elif engine is None:  # the conversion pays for itself from the next run, or on a big batch
        fast = litert_installed() or len(prepared.batch) >= FAST_PREDICT_MIN or converted
    else:
        fast = engine == Engine.tflite
    if fast and not converted:
        typer.echo(conversion_note(options), err=True)
    rows = predict_images(m, prepared, flip=flip, fast=fast)
    if fast and m.keras_model is not None:
        remember(m, options)  # the next run with this file skips TensorFlow
    if not rows:
        fail("no image could be predicted")
    warn_implausible_ages([r["age"] for r in rows if r.get("age") is not None] or None, m)
    from agelens.report.app_logic import no_face_note  # the model sees the centred square: say so

    cut = m.bins if m.groups_from_age else None  # the groups are the age cut here: print it on its side
    for row, photo in zip(rows, prepared.originals, strict=True):
        if m.groups_from_age:  # its "probabilities" are no confidence: the JSON says so too
            row["groups_from_age"] = True
        if row.get("face_found") is False:  # in the JSON too, as explain's manifest has it
            row["notes"] = [no_face_note(photo), *row.get("notes", [])]
        if as_json:
            sys.stdout.write(json.dumps(rounded_row(row, cut)) + "\n")
        else:
            face = "".join(f"  ({note})" for note in row.get("notes", []))
            line = prediction_line(row["predicted"], row["probabilities"], row.get("age"), cut)
            typer.echo(f"{row['file']}: {line}{face}")
