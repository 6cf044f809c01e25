"""The ``agelens`` command: one Typer app that sub-command groups attach to."""

from __future__ import annotations

from typing import Annotated

import typer

from agelens import __version__
from agelens.cli.data_cmd import data_app

app = typer.Typer(
    name="agelens",
    no_args_is_help=True,
    help=(
        "See what an age-detection CNN looks at: check data, train, evaluate and explain a "
        "MobileNetV2 age-group classifier (young < 30 <= middle-aged < 60 <= old).\n\n"
        "Examples:\n\n"
        "  agelens data inspect ../shared/data/utkface-200\n\n"
        "  agelens data synth /tmp/synth --n 300"
    ),
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"agelens {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Entry point; the sub-commands do the work."""


app.add_typer(data_app, name="data")


def _register() -> None:
    """Attach the command groups; each imports its heavy modules only when it runs."""
    from agelens.cli import model_cmd

    app.command("train")(model_cmd.train_command)
    app.command("evaluate")(model_cmd.evaluate_command)
    app.command("predict")(model_cmd.predict_command)
    for module, names in (
        ("explain_cmd", (("explain", "explain_command"), ("layers", "layers_command"))),
        ("score_cmd", (("score", "score_command"),)),
        ("report_cmd", (("report", "report_command"),)),
        ("demo_cmd", (("demo", "demo_command"),)),
        ("app_cmd", (("app", "app_command"),)),
    ):
        try:
            mod = __import__(f"agelens.cli.{module}", fromlist=["_"])
        except ModuleNotFoundError as e:
            if e.name != f"agelens.cli.{module}":
                raise
            continue
        for cmd, attr in names:
            if hasattr(mod, attr):
                app.command(cmd)(getattr(mod, attr))


_register()


if __name__ == "__main__":
    app()
