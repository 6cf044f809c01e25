"""``agelens report RUN_DIR``: one self-contained HTML page for a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run folder (with manifest.json, evaluation/, explain/, scores/).", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the page (default: RUN_DIR/report.html)."),
    ] = None,
) -> None:
    """Write a single offline report.html (images embedded) from a run folder.

    Every part of the run folder is optional; a missing part is noted on the page.

    Examples:

      agelens report runs/2024-06-01

      agelens report runs/2024-06-01 --out /tmp/run.html
    """
    from agelens.report.html import write_report  # lazy: keeps `agelens --help` fast

    if not run_dir.is_dir():
        typer.echo(f"error: {run_dir}: not a folder (expected a run folder)", err=True)
        raise typer.Exit(1)
    try:
        path = write_report(run_dir, out)
    except OSError as exc:
        typer.echo(f"error: {exc.filename or out or run_dir}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    # A run folder's parts, or a single part's own folder (score's --out holds scores.json).
    parts = (
        "manifest.json",
        "evaluation",
        "explain",
        "scores",
        "scores.json",
        "shortcut.json",
        "model_card.md",
        "model_card.json",
    )
    if not any((run_dir / p).exists() for p in parts):
        typer.echo(
            f"warning: {run_dir} has none of a run's parts ({', '.join(parts)}): the page is nearly empty",
            err=True,
        )
