"""``agelens evaluate``: a model's scores on labelled photos, over ``agelens.model.evaluate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    DetectCropOpt,
    FlipOpt,
    FormatChoice,
    FormatOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    check_model_path,
    check_parent_folder,
    counted,
    data_bins,
    drop_stale_report,
    fail,
    in_holdout,
    in_model_order,
    load_options,
    not_face_crops_warning,
    read_holdout,
    report_problems,
    warn_implausible_ages,
)
from agelens.cli.forward import Engine, faces_found_phrase, forward_model

# What ``write_evaluation`` puts in an --out folder; an existing one is replaced only with --force.
EVALUATION_FILES = ("metrics.json", "metrics.md", "confusion_matrix.png", "manifest.json")


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
    flip: FlipOpt = None,
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
    _check_evaluation_out(out, force)
    names = read_holdout(holdout) if holdout is not None else None
    check_model_path(model)
    ds = _read_labelled(data, format, model, bins, class_names)
    records, problems, outside = _held_out(ds, names, data, holdout)
    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    m_ = forward_model(model, options, light=engine == "tflite")
    trained_on = "" if holdout is not None else _training_data_warning(data, ds, m_)
    if trained_on and not as_json:  # before decoding: a user can stop and rerun with --holdout
        typer.echo(trained_on, err=True)
    ds = in_model_order(ds, m_.class_names)  # before decoding every photo; labels index the outputs by name
    x, ok, found, uncropped = _decode(records, problems, m_, detect, as_json)
    m = _scores(ds, x, ok, m_, data, batch_size, flip, engine, as_json)
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
    m["engine"] = _engine_used(m_, engine, options)
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
        _write_metrics(m, out, settings, options, m_.read_as, force)
    _print_metrics(m, as_json, outside if holdout is not None else None, found if detect else None)


def _read_labelled(
    data: Path, format: FormatChoice, model: Path | None, bins: str | None, class_names: str | None
):
    """DATA read with the bins the model file records, so a bad DATA fails before TensorFlow starts."""
    from agelens.data.sources import DatasetError, load_dataset

    try:
        return load_dataset(
            data, format=format.value, bins=data_bins(model, bins, class_names), check_images=False
        )
    except DatasetError as e:
        fail(str(e))


def _decode(records: list, problems: list, m_, detect: bool, as_json: bool) -> tuple:
    """The photos at the model's input size (cropped to the largest face with ``detect``), the
    paths that decoded, which had a face, and those that look like no face crop; ``problems``
    gains the photos that did not decode, all reported here in one count."""
    from agelens.data.images import load_batch

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
    return x, ok, found, uncropped


def _scores(
    ds, x, ok: list, m_, data: Path, batch_size: int, flip: bool | None, engine: Engine, as_json: bool
) -> dict:
    """The classification metrics (and age error where the model predicts age) of the decoded photos."""
    import numpy as np

    from agelens.model.evaluate import (
        age_error,
        classification_metrics,
        one_class_predicted,
        one_class_warning,
        training_steps,
    )

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
    return m


def _engine_used(m_, engine: Engine, options: dict) -> str:
    """What ran the forward passes, as the metrics record it; a Keras model run through TFLite is
    remembered so the next run skips TensorFlow."""
    if engine != "tflite":
        return "keras"
    from agelens.model.fast import fast_predictor
    from agelens.model.light import remember

    used = "tflite" if fast_predictor(m_) is not None else "keras (TensorFlow Lite unavailable)"
    if m_.keras_model is not None:
        remember(m_, options)  # the next run skips TensorFlow
    return used


def _write_metrics(m: dict, out: Path, settings: dict, options: dict, read_as, force: bool) -> None:
    """The --out folder's files, with the run's settings and the load options given."""
    from agelens.model.evaluate import write_evaluation

    given = {k: v for k, v in options.items() if v is not None}
    try:
        write_evaluation(m, out, settings | given | {"model_read_as": read_as})
    except OSError as e:  # the disk filled, or the folder was locked mid-run: nothing half-written stays
        fail(f"{out}: could not write the metrics: {e.strerror or e}")
    if force:
        drop_stale_report(out)  # a page drawn from the numbers just replaced


def _print_metrics(m: dict, as_json: bool, outside: int | None, found: list[bool | None] | None) -> None:
    """The metrics on stdout: one JSON object, or the table and a summary line (``outside``: the
    files --holdout left out, None without it; ``found``: --detect's faces, None without it)."""
    if as_json:
        sys.stdout.write(json.dumps(m) + "\n")
        return
    from agelens.model.evaluate import markdown_table

    typer.echo(markdown_table(m))
    left_out = f", {outside} not in the holdout list" if outside is not None else ""
    faces = f"; {faces_found_phrase(found)}" if found is not None else ""
    typer.echo(f"{counted(m['n_images'], 'image')} evaluated, {m['n_skipped']:,} skipped{left_out}{faces}")


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
