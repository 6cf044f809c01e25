"""``agelens data ...``: look inside a dataset before training on it, or make a synthetic one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agelens.cli.common import FormatChoice, FormatOpt, age_bins_option, counted
from agelens.data.sources import DatasetError

if TYPE_CHECKING:
    from agelens.data.inspect import InspectReport

data_app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Check and prepare labelled face datasets.\n\n"
        "Supported layouts: UTKFace-style names (AGE_GENDER_RACE_DATE.jpg), one sub-folder per "
        "class, or a CSV with a path column and an age or label column.\n\n"
        "Examples:\n\n"
        "  agelens data inspect ../shared/data/utkface-200\n\n"
        "  agelens data inspect my_faces/ --format folders --json\n\n"
        "  agelens data synth /tmp/synth --n 300 --size 96"
    ),
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(1)


@data_app.command("inspect")
def inspect_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset folder or CSV file.", show_default=False)],
    format: FormatOpt = FormatChoice.auto,
    bins: Annotated[str, typer.Option(help="Age-group edges in years, comma separated.")] = "30,60",
    names: Annotated[
        str | None,
        typer.Option(help="Class names, comma separated (default: young,middle-aged,old for two edges)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(help="Seeds the train/val/test split as train's --seed does: the split train will use."),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Report format, class counts, split sizes (--seed), image sizes and every unusable file.

    Every image is fully decoded, so a file reported usable here will load during training.

    One warning line each for classes with no photos (or none in a part of the split), images
    too small to judge and photos that are no face crops.

    Exit code 0 if at least one image is usable, else 1.

    Examples:

      agelens data inspect ../shared/data/utkface-64 --seed 3

      agelens data inspect labels.csv --bins 20,40,60 --names kid,adult,middle,senior
    """
    from agelens.data.inspect import inspect_dataset  # lazy: keeps `agelens --help` fast

    age_bins = age_bins_option(bins, names)
    console = Console(highlight=False)
    try:  # the spinner goes to stderr so `--json > report.json` stays clean
        with Console(stderr=True).status(f"Checking images in {escape(str(data))}...", spinner="dots"):
            report = inspect_dataset(data, format=format.value, bins=age_bins, seed=seed)
    except DatasetError as e:
        raise _fail(str(e)) from None

    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(console, report)
    if report.n_usable == 0:
        raise _fail(f"{data}: no usable images ({counted(len(report.problems), 'problem')})")


def _print_report(console: Console, report: InspectReport) -> None:
    console.print(
        f"[bold]{escape(str(report.path))}[/]: format [bold]{report.format}[/], "
        f"{counted(report.n_usable, 'usable image')}, {counted(len(report.problems), 'problem')} "
        f"(checked in {report.seconds:.1f}s)",
        soft_wrap=True,
    )
    table = Table(title=f"Images per class and split (stratified, seed {report.seed})", title_justify="left")
    for col in ("class", "images", "share", "train", "val", "test"):
        table.add_column(col, justify="left" if col == "class" else "right")
    total = max(report.n_usable, 1)
    for name in report.class_names:
        n = report.counts[name]
        splits = (report.split_counts[s][name] for s in ("train", "val", "test"))
        table.add_row(escape(name), f"{n:,}", f"{n / total:.1%}", *(f"{k:,}" for k in splits))
    split_totals = (sum(report.split_counts[s].values()) for s in ("train", "val", "test"))
    table.add_row("[bold]total[/]", f"{report.n_usable:,}", "", *(f"{k:,}" for k in split_totals))
    console.print(table)
    if report.size_stats:
        sizes = Table(title="Image size (px)", title_justify="left")
        for col in ("", "min", "median", "max"):
            sizes.add_column(col, justify="right")
        for axis, s in report.size_stats.items():
            sizes.add_row(axis, f"{s['min']}", f"{s['median']:g}", f"{s['max']}")
        console.print(sizes)
    if report.problems:
        console.print(f"[bold]Problems[/] ({counted(len(report.problems), 'file')} not used):")
        for p in report.problems:  # plain echo: one greppable line each, never wrapped
            typer.echo(f"  {report.display_path(p.path)}: {p.reason}")
    console.print(counted(len(report.problems), "problem"))
    if report.ignored:
        typer.echo(ignored_line(report))
    for line in warning_lines(report):  # plain echo: one line each, never wrapped
        typer.echo(line)


def warning_lines(report: InspectReport) -> list[str]:
    """One line each for what would spoil training that no file error shows: a class without
    photos (or without any in a part of the split), images too small to judge, photos that are
    no face crops. Each of these used to pass as a 0 in a table or a size range, without a word."""
    from agelens.data.inspect import (
        TRAIN_SIZE,
        class_gaps,
        named,
        too_few_classes,
        too_small,
        wild_photos,
    )
    from agelens.model.predict import MIN_FACE_PX

    lines = []
    gaps, few = class_gaps(report.split_counts), too_few_classes(report.split_counts)
    if few:
        lines.append(f"warning: {gaps + '; ' if gaps else ''}train refuses this data: {few}")
    elif gaps:
        lines.append(f"warning: {gaps}")
    n = report.n_usable
    if small := too_small(report.sizes):  # counted, not named: valid files, and there can be many
        w, h = min((s for _, s in small), key=min)
        lines.append(
            f"warning: {len(small)} of the {n} images {'is' if len(small) == 1 else 'are'} smaller than "
            f"{MIN_FACE_PX} px (the smallest {w}x{h}), unreliable to train or predict on; --json lists them"
        )
    if wild := wild_photos(report.sizes):
        lines.append(
            f"warning: not face crops, by their size and shape: {len(wild)} of the {n} images "
            f"({named(wild, report.display_path)}); train uses each whole, centre-cropped to a square and "
            f"shrunk to --size ({TRAIN_SIZE} px by default): crop the faces first"
        )
    return lines


def check_training_classes(data: Path, class_names: list[str], labels: Sequence[Sequence[int]]) -> None:
    """For ``train``, before TensorFlow starts: refuse (one line, exit 1) when fewer than two classes
    have training photos, and warn in one line about classes missing from the data or a part.

    ``labels``: the class indices of the photos the train, val and test parts loaded.
    """
    from agelens.data.inspect import class_gaps, split_counts_of, too_few_classes

    counts = split_counts_of(class_names, labels)
    if why := too_few_classes(counts):
        raise _fail(f"{data}: cannot train: {why}")
    if gaps := class_gaps(counts):
        typer.echo(f"warning: {gaps}", err=True)


IGNORED_SHOWN = 5
"""How many ignored files the summary line names; the rest are counted."""


def ignored_line(report: InspectReport) -> str:
    """One line for the files no layout reads: ``1 non-image file ignored: notes.txt``."""
    names = [report.display_path(p) for p in report.ignored]
    shown = ", ".join(names[:IGNORED_SHOWN])
    more = f", ... ({len(names) - IGNORED_SHOWN} more)" if len(names) > IGNORED_SHOWN else ""
    return f"{counted(len(names), 'non-image file')} ignored: {shown}{more}"


@data_app.command("synth")
def synth_cmd(
    out: Annotated[Path, typer.Argument(help="New (or empty) folder to write.", show_default=False)],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of images.", show_default=False)],
    size: Annotated[int, typer.Option(min=32, max=256, help="Image side in pixels.")] = 96,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same images).")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an earlier synth output in OUT (its files; others are left alone)."
        ),
    ] = False,
) -> None:
    """Write a synthetic UTKFace-style dataset of cartoon faces whose age cues are known.

    Example:

      agelens data synth /tmp/synth --n 300 --size 96 --seed 1
    """
    from agelens.data.synthetic import write_dataset  # lazy: only this command needs it

    earlier = _earlier_synth(out) if force and out.is_dir() and any(out.iterdir()) else None
    try:
        if earlier is None:
            info = write_dataset(out, n=n, size=size, seed=seed)
        else:
            info = _replace_synth(out, earlier, lambda tmp: write_dataset(tmp, n=n, size=size, seed=seed))
    except (FileExistsError, ValueError, OSError) as e:
        raise _fail(_synth_failure(out, e, force)) from None
    seconds = info.get("seconds")
    took = f" in {seconds:.1f}s" if isinstance(seconds, int | float) else ""
    typer.echo(f"wrote {info.get('n', n)} images ({size}x{size}) to {out}{took}")
    if isinstance(info.get("counts"), dict):
        typer.echo("  " + ", ".join(f"{k}: {v}" for k, v in info["counts"].items()))


def _synth_failure(out: Path, e: Exception, force: bool = False) -> str:
    """One line naming ``out`` once, with the reason.

    An OSError's own text names the hidden temp folder next to ``out`` (``/x/.out.abc.tmp``),
    not what the user typed, so its ``strerror`` is used instead.
    """
    blocker = next((p for p in out.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():  # mkdir's own "File exists" misleads here
        return f"{out}: cannot write there ({blocker} is a file, not a folder)"
    if isinstance(e, OSError) and e.strerror:
        return f"{out}: cannot write there ({e.strerror})"
    if out.is_file():
        return f"{out}: is a file; give a new or empty folder"
    if isinstance(e, FileExistsError) and force:
        return f"{out}: {e}"
    if isinstance(e, FileExistsError):
        return f"{out}: non-empty folder; give a new or empty one (--force replaces an earlier synth output)"
    return f"{out}: {e}"


SYNTH_FILES = ("masks.npz", "synth.json")
"""What ``write_dataset`` writes beside its images (which ``masks.npz`` lists)."""


def _earlier_synth(out: Path) -> set[str]:
    """The files an earlier ``data synth`` wrote into ``out``, as its masks.npz lists them.

    ``--force`` replaces those only: a folder synth did not write (no synth.json from the
    generator, or no readable masks.npz) is refused, so a typo cannot wipe someone's photos.
    """
    import numpy as np

    try:
        made_by = json.loads((out / "synth.json").read_text()).get("generator")
        with np.load(out / "masks.npz") as z:
            images = {str(f) for f in z["files"]}
    except (OSError, ValueError, KeyError, AttributeError):
        made_by, images = None, set()
    if made_by != "agelens.data.synthetic":
        why = "no synth.json and masks.npz from the generator"
        raise _fail(f"{out}: not an earlier 'agelens data synth' output ({why}); give a new or empty folder")
    return {f for f in images if f == Path(f).name} | set(SYNTH_FILES)


def _replace_synth(out: Path, earlier: set[str], write: Callable[[Path], dict]) -> dict:
    """Write the new dataset beside ``out``, then swap it in: new files first (masks.npz and
    synth.json last), then the earlier run's leftovers go, as explain's ``--force`` does.

    Why: a failed or interrupted run must leave the earlier dataset whole, never a mix of two.
    """
    import shutil
    import tempfile

    holder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=out.parent))
    try:
        info = write(holder)
        new = sorted(holder.iterdir(), key=lambda p: p.name in SYNTH_FILES)
        for item in new:
            os.replace(item, out / item.name)
        for name in earlier - {item.name for item in new}:
            (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    return info
