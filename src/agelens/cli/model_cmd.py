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


def train_command(
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
    alpha: Annotated[float, typer.Option(min=0.1, help="MobileNetV2 width multiplier.")] = 1.0,
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
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-3,
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
    tensorboard: Annotated[Path | None, typer.Option(help="Write TensorBoard logs here.")] = None,
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
        bool, typer.Option("--force", help="Replace an existing --out model (and its _split.json, _eval/).")
    ] = False,
) -> None:
    """Train a MobileNetV2 age classifier from scratch, keep the best epoch, evaluate on the test split.

    Example: agelens train ../shared/data/utkface-64 --out models/utk.keras --epochs 40
    """
    from agelens.data.images import load_batch
    from agelens.data.sources import DatasetError, load_dataset

    age_bins = age_bins_option(bins, names)
    _check_train_options(out, force, resume, lr, tensorboard, seed, shuffle_labels)
    try:
        ds = load_dataset(data, format=format.value, bins=age_bins, check_images=False)
    except (DatasetError, ValueError) as e:
        fail(str(e))
    parts = ds.split(seed=seed)
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
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # only now: a typo in a path or an option fails in a second, not ten
    import numpy as np

    from agelens.model.builder import ModelConfig
    from agelens.model.evaluate import classification_metrics, write_evaluation
    from agelens.model.io import save_model
    from agelens.model.train import TrainConfig, optimizer_state_path, train

    has_ages = ds.has_ages and age_head
    typer.echo(
        f"training on {len(xtr)} images, validating on {len(xva)}, testing on {len(xte)} ({ds.format})"
        + ("; training labels shuffled (validation and test keep the true ones)" if shuffle_labels else "")
    )
    ckpt = _checkpoint(out)
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
                "counts": ds.counts(),
                "n_train": len(xtr),
                "n_val": len(xva),
                "n_test": len(xte),
                "split_seed": seed,
            },
        )
    except ValueError as e:  # a checkpoint that does not fit, or a bad combination of options
        fail(str(e))
    except BaseException:  # Ctrl-C or a crash mid-run: say where the best epoch so far is kept
        if ckpt.exists():
            typer.echo(
                f"the best epoch so far is saved in {ckpt}; to go on: agelens train {data} --out {out} "
                f"--resume {ckpt} --seed {seed} --epochs {epochs}"
                + (f" --init-seed {init_seed}" if init_seed is not None else "")
                + (" --shuffle-labels" if shuffle_labels else ""),
                err=True,
            )
        raise
    m = (
        classification_metrics(
            np.array(yte), result.model.predict(xte)["probabilities"].argmax(1), result.model.class_names
        )
        if len(xte)
        else {}
    )
    if m:
        m["evaluated_on"] = f"held-out test split of {data} ({len(xte)} photos, seed {seed})"
    result.model.metadata["test_metrics"] = m
    save_model(result.model, out)
    split_file = _write_split(out, used, ds.root, seed)
    ckpt.unlink(missing_ok=True)
    optimizer_state_path(ckpt).unlink(missing_ok=True)
    if m:
        settings = {"data": str(data), "model": str(out), "split": str(split_file), "split_seed": seed}
        files = write_evaluation(m, out.with_name(out.stem + "_eval"), settings)
        typer.echo(f"test accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  -> {files['markdown']}")
    typer.echo(f"saved {out} (best epoch {result.best_epoch}, {result.seconds:.0f} s)")
    if shuffle_labels:
        history = result.model.metadata["training"]["history"]  # a resumed run's earlier epochs too
        kept = next((r for r in history if r.get("epoch") == result.best_epoch), {})
        fit = float(kept.get("train_accuracy", float("nan")))
        typer.echo(
            f"trained on shuffled labels (fit to them: {fit:.3f} training accuracy); compare a model's maps "
            f"with this one's: agelens score DATA --model REAL.keras --shuffled-model {out}"
        )
    typer.echo(f"split: {split_file} (agelens evaluate DATA --model {out} --holdout {split_file})")


def _check_train_options(
    out: Path,
    force: bool,
    resume: Path | None,
    lr: float,
    tensorboard: Path | None,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> None:
    """Refuse options that would fail later, before any work: finding out after TensorFlow's start
    (seconds), let alone an hour of training, is too late."""
    if out.suffix != ".keras":
        fail(f"{out}: the model file must end in .keras")
    check_parent_folder(out, "--out")
    resuming = resume is not None and resume.resolve() in {out.resolve(), _checkpoint(out).resolve()}
    if not force and not resuming:
        if _checkpoint(out).exists():  # an interrupted run's best epoch: never lose it silently
            fail(
                f"{_checkpoint(out)} exists (an interrupted run's best epoch); continue it with "
                f"--resume {_checkpoint(out)}, or use --force to start again"
            )
        taken = [p for p in _train_outputs(out) if p.exists()]
        if taken:
            fail(f"{taken[0]} exists; use --force to overwrite it (or choose another --out)")
    if lr <= 0:
        fail(f"--lr must be positive, got {lr}")
    if resume is not None:
        check_model_path(resume, "resume")
        from agelens.model.io import read_metadata

        meta = read_metadata(resume)
        earlier = meta.get("data", {}).get("split_seed")
        if isinstance(earlier, int) and earlier != seed:
            fail(
                f"{resume}: trained on the split of --seed {earlier}; resume with --seed {earlier} "
                f"(seed {seed} would put photos it trained on into the test split)"
            )
        recipe = meta.get("train_config")
        shuffled = bool(recipe.get("shuffle_labels")) if isinstance(recipe, dict) else None
        if shuffled is not None and shuffled != shuffle_labels:
            fail(
                f"{resume}: trained on {'shuffled' if shuffled else 'the real'} labels; resume "
                + ("with --shuffle-labels" if shuffled else "without --shuffle-labels")
                + " (mixing them would leave neither the model nor its control)"
            )
    if tensorboard is not None:
        try:
            import tensorboard as _tb  # noqa: F401 - Keras' callback needs it; check before training
        except ImportError:
            fail("--tensorboard needs the tensorboard package: pip install tensorboard")


def _progress_bar() -> bool:
    """Keras' per-batch progress bar (loss, accuracy) in a terminal; logs get one line an epoch."""
    return sys.stdout.isatty()


def _checkpoint(out: Path) -> Path:
    """Where ``train`` keeps the best epoch so far while it runs (removed when the run ends)."""
    return out.with_name(out.stem + ".checkpoint.keras")


def _train_outputs(out: Path) -> list[Path]:
    """Every file ``train`` writes for ``--out`` (the model, its split, its test evaluation)."""
    return [
        out,
        out.with_name(out.stem + "_split.json"),
        *(out.with_name(out.stem + "_eval") / name for name in EVALUATION_FILES),
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

    from agelens.model.evaluate import age_error, classification_metrics, markdown_table, write_evaluation

    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    m_ = _forward_model(model, options, light=engine == "tflite")
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
    if "age" in predicted:
        age_of = {r.path: r.age for r in ds.records}
        true_ages = np.array([np.nan if age_of[p] is None else age_of[p] for p in ok], dtype=float)
        m.update(age_error(predicted["age"], true_ages))
        warn_implausible_ages(predicted["age"], m_)
    m["n_skipped"] = len(problems)
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


def _held_out(ds, names: set[str] | None, data: Path, holdout: Path | None) -> tuple[list, list, int]:
    """The records and problems ``--holdout`` keeps, and how many labelled photos it leaves out.

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
        typer.echo(
            f"{outside} of {len(ds.records)} labelled photos in {data} {verb} not in the test list of "
            f"{holdout}: left out",
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
