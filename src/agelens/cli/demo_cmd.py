"""``agelens demo``: the README's main command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agelens.cli.common import fail


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (report.html lands here).")] = Path(
        "outputs/demo"
    ),
    quick: Annotated[
        bool, typer.Option(help="About 1-2 minutes on 2 cores: fewer faces, epochs and methods.")
    ] = False,
    real: Annotated[
        list[str] | None,
        typer.Option(
            "--real", help="Your photos (files, folders, globs): explain them with the shipped model."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out folder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for faces, split and training.")] = 0,
) -> None:
    """Run the whole pipeline and write one self-contained HTML report.

    Synthetic faces -> a MobileNetV2 trained from scratch -> evaluation -> activation maps
    -> faithfulness, sanity, localisation and shortcut checks -> report.html.

    Examples:

      agelens demo

      agelens demo --quick --out outputs/quick

      agelens demo --real my_photos/ --out outputs/mine
    """
    from agelens.demo import run_demo, run_real_demo

    if real and (quick or seed):  # the shipped model explains the photos: nothing trains or samples
        raise typer.BadParameter(
            "--quick and --seed shape the synthetic demo; --real explains your photos with the shipped model",
            param_hint="--real",
        )
    try:
        if real:
            report = run_real_demo(real, out, force=force, echo=typer.echo)
        else:
            report = run_demo(out, quick=quick, force=force, seed=seed, echo=typer.echo)
    except typer.Exit:  # a step (explain) already printed its one-line error; an Exit is a RuntimeError
        raise
    except (FileExistsError, ValueError, RuntimeError) as e:
        fail(str(e))
    typer.echo(f"\nreport: {report.resolve()}")
