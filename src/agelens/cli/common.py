"""Shared CLI conventions: one-line errors on stderr, problems listed once, exit codes."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from agelens.wording import counted  # noqa: F401 - the commands import it from here


class FormatChoice(StrEnum):
    """Dataset layouts :func:`agelens.data.sources.load_dataset` reads."""

    auto = "auto"
    utkface = "utkface"
    folders = "folders"
    csv = "csv"


FormatOpt = Annotated[FormatChoice, typer.Option("--format", "-f", help="Dataset layout; auto detects it.")]

ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        help="A .keras or legacy .h5 model (default: the shipped agelens model).",
        show_default=False,
    ),
]
InputSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--input-size",
        min=8,
        help="For a plain Keras model whose input shape leaves the size open: the side photos get.",
        show_default=False,
    ),
]
ClassNamesOpt = Annotated[
    str | None,
    typer.Option(
        "--class-names",
        help="For a plain Keras model: its classes in output order, comma-separated (default: the age groups "
        "for 3 outputs, else 'class 0', 'class 1', ...).",
        show_default=False,
    ),
]


def _one_of(values: str) -> Any:
    """A callback making a typo in an option a usage error (exit 2), found before any model loads:
    ``values`` names the tuple of accepted words in :mod:`agelens.model.age_model` (read only when used)."""

    def check(value: str | None) -> str | None:
        from agelens.model import age_model

        allowed = getattr(age_model, values)
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r}: use one of {', '.join(allowed)}")
        return value

    return check


InputRangeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-range",
        callback=_one_of("INPUT_RANGES"),
        help="For a plain Keras model: the pixels it was trained on, 0-255, 0-1, or a keras.applications "
        "preprocess_input mode applied outside the model: -1-1 (mobilenet_v2, xception, inception_v3...), "
        "caffe (resnet50, vgg16...) or torch (densenet) (default: 0-255 when a Rescaling layer, or a "
        "Normalization adapted on 0-255 data, acts on its input; else 0-1).",
        show_default=False,
    ),
]
ClassOutputOpt = Annotated[
    str | None,
    typer.Option(
        "--class-output",
        help="For a plain Keras model with several outputs: the one holding the class scores, by its "
        "name (a dict key, or its layer's name) or position from 0 (default: 'age_group', else the first "
        "with 2+ units; outputs of one unit each, none named the age, must be named).",
        show_default=False,
    ),
]
DetectCropOpt = Annotated[
    bool,
    typer.Option(
        "--detect/--no-detect",
        help="Crop the largest face first, as predict does (for labelled photos in the wild; "
        "default: photos are scored as given, as face crops).",
    ),
]
"""evaluate's and score's --detect: off by default, since labelled datasets are face crops."""

FlipOpt = Annotated[
    bool | None,
    typer.Option("--flip/--no-flip", help="Average each photo with its mirror image (default: model's)."),
]
"""predict's and evaluate's --flip; None leaves it to what the model file records."""

DataArg = Annotated[Path, typer.Argument(help="UTKFace-style folder, class sub-folders, or a CSV.")]
"""train's and score's labelled data set (evaluate words its own)."""

AgeOutputOpt = Annotated[
    str | None,
    typer.Option(
        "--age-output",
        help="For a plain Keras model: the output read as the age in years (one value per image; --target "
        "age explains it), by its name or position from 0; it may be a one-unit model's only output "
        "(default: an output named 'age' or 'age_output').",
        show_default=False,
    ),
]


OneUnitOpt = Annotated[
    str | None,
    typer.Option(
        "--one-unit",
        callback=_one_of("ONE_UNIT_READINGS"),
        help="For a plain Keras model whose class output has one unit: 'age' (an age regressor, in years; "
        "its groups are that age cut by --bins) or 'probability' (p of class 1; the classes are 1-p, p). "
        "Default: probability when it ends in a sigmoid, else age.",
        show_default=False,
    ),
]


def _model_bins(value: str | None) -> str | None:
    """A bad --bins is a usage error (exit 2), worded as train's, before any model loads."""
    if value is not None:
        age_bins_option(value)
    return value


ModelBinsOpt = Annotated[
    str | None,
    typer.Option(
        "--bins",
        callback=_model_bins,
        help="For a plain Keras model: the age-group edges in years its classes stand for, comma-separated "
        "(an age regressor's groups are its age cut there; labelled data are grouped the same way). "
        "Default: 30,60, or what an agelens model file records.",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: <one line>`` to stderr and exit non-zero."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def check_paths_exist(**paths: Path | None) -> None:
    """Fail on the first given path that does not exist: ``<path>: file not found (--option)``, or
    ``<path>: no such file or folder`` for the ``data`` argument (as evaluate says it).

    Called before TensorFlow loads: a typo in a path must cost a second, not ten.
    """
    for option, path in paths.items():
        if path is not None and not Path(path).exists():
            if option == "data":
                fail(f"{path}: no such file or folder")
            fail(f"{path}: file not found (--{option.replace('_', '-')})")


def check_model_path(path: Path | None, option: str = "model") -> None:
    """A missing or non-model ``--model`` (or ``--resume``) file fails here, before TensorFlow starts."""
    from agelens.model.age_model import ModelLoadError
    from agelens.model.io import check_model_file

    check_paths_exist(**{option: path})
    try:
        check_model_file(path)
    except ModelLoadError as e:
        fail(str(e))


def check_parent_folder(path: Path, option: str) -> None:
    """Fail now, in one line, where ``path`` could not be created because a file stands where a
    folder of its path must be: finding out after the work (a whole training run) is too late."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                fail(f"{path}: cannot write {option} there: {parent} is a file, not a folder")
            break
    check_writable(path, option)


def check_writable(path: Path, option: str) -> None:
    """Fail now, in one line, where ``path`` (a folder to fill, or a file) cannot be written: a
    read-only disk or a locked folder found after the model's work ended in a traceback.

    Probes with a real file, as permission bits do not tell (root, read-only mounts, immutable
    folders): in ``path`` when it is a folder, which the run fills, and in the folder that will
    hold it, where the atomic writes stage their files.
    """
    import tempfile

    full = Path(path).absolute()
    nearest = next((p for p in full.parents if p.exists()), None)
    for where in ([full] if full.is_dir() else []) + ([nearest] if nearest and nearest.is_dir() else []):
        try:
            with tempfile.TemporaryFile(dir=where):
                pass
        except OSError as e:
            place = "" if where == full else f"{where}: "
            fail(f"{path}: cannot write {option} there: {place}{e.strerror or e}")


def age_bins_option(bins: str, names: str | None = None) -> Any:
    """The ``--bins``/``--names`` of a command as :class:`AgeBins`; a bad pair is a usage error
    (exit 2) worded the same in every command that takes them."""
    from agelens.data.bins import bins_from_options

    try:
        return bins_from_options(bins, names)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def class_name_list(class_names: str | None) -> list[str] | None:
    """``--class-names a,b,c`` as a list (names stripped); ``None`` when not given."""
    return [n.strip() for n in class_names.split(",")] if class_names is not None else None


def load_options(
    input_size: int | None = None,
    class_names: str | None = None,
    input_range: str | None = None,
    class_output: str | None = None,
    age_output: str | None = None,
    one_unit: str | None = None,
    bins: str | None = None,
) -> dict[str, Any]:
    """The model options as :func:`load_cli_model` takes them, and a record of how a model was read
    (the TFLite copy's cache key): the keywords of :func:`agelens.model.io.load_model`, as typed."""
    return {
        "input_size": input_size,
        "class_names": class_names,
        "input_range": input_range,
        "class_output": class_output,
        "age_output": age_output,
        "one_unit": one_unit,
        "bins": bins,
    }


def data_bins(model: Path | None, bins: str | None, class_names: str | None = None) -> Any:
    """The age bins labelled data are grouped by: ``--bins`` where given, else the ones the model
    file records (read without Keras), else ``None`` (the default bins).

    ``--class-names`` renames the groups by position when their count matches: the model's
    classes are then named so, and data labelled by age must carry the same names.
    """
    from agelens.data.bins import AgeBins
    from agelens.model.io import bins_in_file

    found = age_bins_option(bins) if bins is not None else bins_in_file(model)
    names = class_name_list(class_names)
    base = found or AgeBins()
    if names and all(names) and len(set(names)) == len(names) == base.num_classes:
        return AgeBins(base.edges, tuple(names))
    return found


def in_model_order(ds: Any, class_names: list[str]) -> Any:
    """``ds`` with labels indexing the model's classes (:meth:`Dataset.in_class_order`), or a one-line
    failure; for data labelled by age, the line says how to name a model's age groups."""
    from agelens.data.sources import DatasetError

    try:
        return ds.in_class_order(class_names)
    except DatasetError as e:
        hint = ""
        if ds.has_ages:
            k = len(class_names)
            edges = {2: "60", 3: "30,60"}.get(k, ",".join(str(20 * (i + 1)) for i in range(k - 1)))
            hint = (
                f"; the photos are grouped by age: if the model's {k} classes are age groups, give their "
                f"edges (e.g. --bins {edges}) and, to name them, --class-names"
            )
        fail(f"{e}{hint}")


def load_cli_model(model: Path | None, options: dict[str, Any] | None = None):
    """The model for a command, read with its ``options`` (:func:`load_options`: ``--input-size``,
    ``--class-names``, ``--input-range``, ``--class-output``, ``--age-output``, ``--one-unit``,
    ``--bins``); a bad file or option is one line.

    One loader for every command, so a user's plain Keras model is read the same way by
    predict, evaluate, explain, layers, score and the app.
    """
    from agelens.model.age_model import ModelLoadError
    from agelens.model.io import load_model

    given = load_options() | dict(options or {})
    names = class_name_list(given["class_names"])
    if names is not None and not all(names):
        fail(
            f"--class-names {given['class_names']!r}: an empty name (give them comma-separated, "
            "e.g. young,middle,old)"
        )
    bins = given["bins"]
    try:
        loaded = load_model(
            model,
            **given | {"class_names": names, "bins": age_bins_option(bins) if bins is not None else None},
        )
    except ModelLoadError as e:
        fail(str(e))
    say_how_read(loaded, given["input_range"], model)
    return loaded


def say_how_read(loaded: Any, input_range: str | None, model: Path | None = None) -> None:
    """The lines a command prints about how its model is read, loaded by Keras or from its TFLite
    copy alike: an overruled pixel range, a guessed one, and groups that are the model's age cut
    by the bins."""
    warn_overruled_range(loaded, input_range, model)
    note_guessed_range(loaded, input_range, model)
    note_groups_from_age(loaded, model)


APPLICATIONS_ADVICE = (
    "give --input-range 0-255 if it was trained on raw 0..255 pixels, or -1-1, caffe or torch for "
    "keras.applications' preprocess_input (-1-1: mobilenet_v2, xception, inception_v3...; "
    "caffe: resnet50, vgg16; torch: densenet)"
)
"""What the note on a guessed 0..1 says: the other ranges, with the keras.applications families of each."""


def note_guessed_range(loaded: Any, input_range: str | None, model: Path | None = None) -> None:
    """One line on stderr when the pixel range a plain Keras model is fed was guessed from its
    layers (:attr:`agelens.model.age_model.AgeModel.input_range_guessed`): a wrong guess changes every
    answer without an error (255x too bright, or too dark), and only the user knows how the model
    was trained. Not when ``--input-range`` was given, nor for an agelens file (it records its own)."""
    why = getattr(loaded, "input_range_guessed", "")
    if input_range is not None or not why:
        return
    fed, advice = "0..255", "give --input-range 0-1 if it was trained on pixels divided by 255"
    if not loaded.rescales_input:  # no layer scales its input: preprocess_input outside it is as likely
        fed, advice = "0..1", APPLICATIONS_ADVICE
    where = getattr(loaded, "path", None) or model
    typer.echo(f"{where}: pixels fed as {fed}, a guess ({why}); {advice}", err=True)


def warn_implausible_ages(ages: Any, loaded: Any) -> None:
    """One warning line when a model's ages are no years (:func:`agelens.model.evaluate.implausible_ages`).

    For a model agelens trained (it records its recipe, its own pixel range, and predicts years),
    the age head has not learned yet; the advice for plain Keras models (an age / 100 scale, or
    --input-range) does not fit it.
    """
    from agelens.model.evaluate import implausible_ages, training_steps

    if ages is None or not (why := implausible_ages(ages)):
        return
    meta = getattr(loaded, "metadata", None) or {}
    if isinstance(meta.get("train_config"), dict):
        steps = training_steps(meta)
        after = f" after {steps} training steps" if steps is not None else ""
        advice = f"its age head has not learned to tell ages apart{after}; train longer or on more photos"
    else:
        advice = (
            "is its output in years (a model trained on age / 100 needs the scale put back inside it) and "
            "its pixel range right (--input-range)?"
        )
    typer.echo(f"{getattr(loaded, 'path', None) or 'the model'}: warning: {why}: {advice}", err=True)


def note_groups_from_age(loaded: Any, model: Path | None = None) -> None:
    """One line on stderr when a model's classes are its predicted age cut by the bins (a one-unit
    age regressor): its "probabilities" are then a softmax of margins in years, and a reader who
    takes them for a classifier's confidence would be misled."""
    if not loaded.groups_from_age:
        return
    bins = getattr(loaded, "bins", None)
    cuts = ", ".join(f"{e:g}" for e in bins.edges) if bins is not None else "its bins"
    typer.echo(
        f"{getattr(loaded, 'path', None) or model}: note: one output read as the age in years; its groups "
        f"are that age cut at {cuts} y, and their probabilities a softmax of how many years the age lies "
        "inside each group (not a classifier's confidence)",
        err=True,
    )


def warn_overruled_range(loaded: Any, input_range: str | None, model: Path | None = None) -> None:
    """One warning line when ``--input-range`` contradicts what an agelens model file records.

    Why: the option is for plain Keras models; an agelens file says its own range, and overruling
    it changes every answer (the shipped model: young 91% -> 49% on one photo) without an error.
    """
    from agelens.model.pixel_range import recorded_range

    recorded = recorded_range(getattr(loaded, "metadata", None) or {})
    if input_range is None or recorded is None or recorded == input_range:
        return
    typer.echo(
        f"{getattr(loaded, 'path', None) or model}: warning: --input-range {input_range} overrules the "
        f"model's own record ({recorded}); its answers will be wrong unless that record is wrong",
        err=True,
    )


def report_problems(problems: Sequence[object], quiet: bool = False) -> None:
    """Each skipped input once, as ``skipped <file>: <reason>`` on stderr (always, even with --json)."""
    for p in problems:
        typer.echo(f"skipped {p}", err=True)
    if problems and not quiet:
        typer.echo(f"{counted(len(problems), 'input')} skipped", err=True)


def split_name(path: Path, root: Path) -> str:
    """A photo's name in a split file: its path relative to the data root, with '/' separators.

    Class folders often reuse file names (``young/IMG_0001.png``, ``old/IMG_0001.png``): a bare
    name would select a training photo of another class too.
    """
    path, root = Path(path), Path(root)
    try:  # a scanned photo's path starts with its root: no file-system call for the common case
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:  # the same place spelled another way (a link, "..")
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a CSV may list photos outside its folder
        return path.resolve().as_posix()


def in_holdout(path: Path, root: Path, names: set[str]) -> bool:
    """Whether ``--holdout``'s list names this photo: by its path under ``root`` or, as split files
    written before paths were, by its bare file name."""
    return Path(path).name in names or split_name(path, root) in names


def read_holdout(path: Path) -> set[str]:
    """Photos in the ``test`` list of a split JSON (``--holdout``); a bad file is a one-line error
    that says which of the three things is wrong: the file, its JSON, or its ``test`` list."""
    import json

    split = "a split file as 'agelens train' writes (_split.json)"
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        fail(f"{path}: file not found (--holdout takes {split})")
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror or e})")
    except ValueError as e:
        fail(f"{path}: not valid JSON ({e}); --holdout takes {split}")
    names = doc.get("test") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        what = "no 'test' list" if names is None else "its 'test' entry is not a list of file names"
        fail(f"{path}: {what}; --holdout takes {split}")
    return set(names)


def reflow(doc: str) -> str:
    """A command's docstring as help text: each prose paragraph on one line, for the terminal to wrap.

    Typer's rich help keeps a docstring's line breaks *and* wraps at the terminal's width, so
    lines broken for the source file came out ragged (a word or two on every other line).
    Paragraphs holding an indented line (examples, command lines) keep their breaks.
    """
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if any(line[:1].isspace() for line in p.splitlines()) else " ".join(p.split()) for p in paragraphs
    )


def reflow_help(app: typer.Typer) -> None:
    """Give every command of ``app`` (and of its sub-apps) its reflowed docstring as help."""
    for info in app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = reflow(info.callback.__doc__)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def fresh_out(out: Path | None, default: Path, force: bool, marker: str | None = None) -> Path:
    """``--out`` as given; without one, ``default``, or ``default-2``, ``-3``... while those hold a run.

    Why: running ``agelens explain a.jpg`` and then ``agelens explain b.jpg`` must not stop on
    the first run's folder; an explicit ``--out`` keeps the strict rule (new or empty, or
    ``--force``), and ``--force`` without ``--out`` reuses ``default``. A folder holds a run when
    it has any file, or the ``marker`` file when one is named (score writes beside other files).
    Silent: the caller says where it writes (:func:`say_fresh_out`) once the inputs proved
    usable, so a run that fails on its photos never announces a folder it will not write.
    """
    if out is not None:
        return out

    def holds_run(p: Path) -> bool:
        if marker is not None:
            return (p / marker).exists() or (p.exists() and not p.is_dir())
        return p.exists() and (not p.is_dir() or any(p.iterdir()))

    if force or not holds_run(default):
        return default
    k = 2
    while holds_run(chosen := default.with_name(f"{default.name}-{k}")):
        k += 1
    return chosen


def say_fresh_out(given: Path | None, out: Path, default: Path) -> None:
    """Tell the user when :func:`fresh_out` chose ``default-2``... because no ``--out`` was ``given``."""
    if given is None and out != default:
        typer.echo(
            f"{default} holds an earlier run: writing to {out} (--out to choose, --force to reuse it)",
            err=True,
        )


REPORT_PAGE = "report.html"
"""``agelens report``'s page in a run folder (``agelens.report.html.REPORT_NAME``; not imported
here: that module loads the page's renderer, and every command would pay for it)."""


def drop_stale_report(out: Path) -> None:
    """Remove ``out/report.html`` once ``--force`` has replaced the run it showed, saying so on stderr.

    Why: the page is written by ``agelens report``, not by the command, so replacing the run
    left a page beside the new files that contradicts them; a reader trusts the page first.
    """
    page = Path(out) / REPORT_PAGE
    if not page.is_file():
        return
    try:
        page.unlink()
    except OSError as e:
        typer.echo(f"{page}: shows the earlier run, but could not be removed ({e.strerror})", err=True)
        return
    typer.echo(f"removed {page}: it showed the earlier run", err=True)


def prediction_line(
    predicted: str, probabilities: dict[str, float], age: float | None = None, bins: Any = None
) -> str:
    """``old  ~68 y  [young 3%  middle-aged 20%  old 77%]``: one photo's prediction, as predict and
    explain print it (the same words in both, so the two commands can be compared at a glance).

    ``bins``: those of a model whose groups are its age cut there (``groups_from_age``). Its age
    is then printed on its group's side of an edge: "young ~29.9 y" for 29.96 y, not "~30 y"
    (:func:`agelens.model.predict.shown_age`).
    """
    from agelens.model.predict import shown_age

    probs = "  ".join(f"{k} {v:.0%}" for k, v in probabilities.items())
    years = f"  ~{shown_age(age, bins, predicted)} y" if age is not None else ""
    return f"{predicted}{years}  [{probs}]"


def check_layer_early(model: Path | None, layer: str | None) -> None:
    """Refuse a ``--layer`` naming no layer of the model file, before TensorFlow and the model load.

    The names come from the ``.keras`` file's architecture (``agelens.explain.layer_spec``);
    keywords and indices pass, and a file that cannot be read that way (``.h5``) is left to
    the check after loading. The error lists the nearest names.
    """
    from agelens.explain.layer_spec import KEYWORDS, layer_names_in_file, nearest, unknown_layers
    from agelens.model.io import SHIPPED_MODEL

    if not layer:
        return
    names = layer_names_in_file(model if model is not None else SHIPPED_MODEL)
    bad = unknown_layers(layer, names) if names else []
    if not bad:
        return
    close = nearest(bad[0], names or set())
    raise typer.BadParameter(
        f"no layer named {bad[0]!r}"
        + (f"; did you mean {' or '.join(close)}?" if close else "")
        + f" (see `agelens layers`, or use one of {', '.join(KEYWORDS)})",
        param_hint="--layer",
    )


def not_face_crops_warning(
    found: list[tuple[Path, tuple[int, int]]], n: int, input_size: int, also: str = ""
) -> str:
    """One line naming up to three photos :func:`agelens.model.faces.not_face_crops` found, what
    happens to them (``also``: what else that changes) and what --detect does; evaluate and score
    say it alike."""
    from agelens.data.inspect import named

    return (
        f"warning: not face crops, by their size and shape: {len(found)} of the {n} photos "
        f"({named(found, lambda p: p.name)}); each is scored whole, centre-cropped to a square and "
        f"shrunk to {input_size} px"
        f"{also}; --detect crops the largest face first"
    )
