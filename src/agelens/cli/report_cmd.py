"""``agelens report RUN_DIR``: one self-contained HTML page for a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agelens.cli.common import fail


def report_command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run folder (with manifest.json, evaluation/, explain/, scores/), or the --out folder of "
            "explain, evaluate, score or filters.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str | None,  # as typed: Path() would drop the trailing slash that says "a folder"
        typer.Option(
            "--out",
            "-o",
            help="Where to write the page: a path ending in .html or .htm is the page (its folder "
            "must exist); anything else is a folder, made if missing (the folder above must exist), "
            "that gets report.html inside it (default: RUN_DIR/report.html).",
            metavar="<path>",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report.html.")] = False,
) -> None:
    """Write a single offline report.html (images embedded) from a run folder.

    Every part of the run folder is optional; a missing part is noted on the page. A folder
    with no part at all, or whose only parts cannot be read (a corrupt manifest.json), is an
    error, and nothing is written.

    Examples:

      agelens report runs/2024-06-01

      agelens evaluate photos --out ev1 && agelens report ev1

      agelens report runs/2024-06-01 --out /tmp/run.html --force

      agelens report runs/2024-06-01 --out pages/
    """
    from agelens.report.html import NothingToReport, write_report  # lazy: keeps `agelens --help` fast

    try:
        path = write_report(run_dir, out, force=force)
    except (OSError, NothingToReport) as exc:
        fail(_one_line(exc, out or run_dir))
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


def _one_line(exc: Exception, fallback: Path | str) -> str:
    """``<path>: <reason>``: our own checks carry the whole line; an OS error names its file apart."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or fallback}: {exc.strerror}"
    return str(exc)
