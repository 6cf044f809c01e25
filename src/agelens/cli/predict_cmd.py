"""``agelens predict``: age-group probabilities (and age in years) per photo, over ``agelens.model``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    FlipOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    check_model_path,
    fail,
    load_options,
    prediction_line,
    report_problems,
    warn_implausible_ages,
)
from agelens.cli.forward import Engine, forward_model

# Converting to TFLite took 6.6 s and then saves 1.55 ms a photo (378 vs 915 photos/s,
# benchmarks/predict_engines.py): it pays within one run from ~4,000 photos, within two
# (the conversion is cached) from ~2,000. With LiteRT installed it pays from the second run
# whatever its size: that run skips TensorFlow altogether (agelens.model.light).
FAST_PREDICT_MIN = 2000


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
    flip: FlipOpt = None,
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
    from agelens.model.predict import collect_inputs, predict_images, prepare

    paths, missing = collect_inputs(images)
    if not paths:  # before the model loads: nothing to wait for; one line, as explain says it
        fail(
            f"nothing to predict: {'; '.join(map(str, missing))}"
            if missing
            else "no images found in " + ", ".join(images)
        )
    check_model_path(model)
    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    m = forward_model(model, options, light=engine != Engine.keras)
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
    _print_rows(rows, prepared.originals, m, as_json)


def _print_rows(rows: list[dict], originals: list, m, as_json: bool) -> None:
    """One line a photo (or a JSON line), with the notes a user needs to read it: groups cut
    from a predicted age are no confidence, and a photo without a face was scored whole."""
    from agelens.model.predict import rounded_row
    from agelens.report.app_logic import no_face_note  # the model sees the centred square: say so

    cut = m.bins if m.groups_from_age else None  # the groups are the age cut here: print it on its side
    for row, photo in zip(rows, originals, strict=True):
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
