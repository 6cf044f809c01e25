"""The ``agelens`` command: one Typer app that sub-command groups attach to."""

from __future__ import annotations

import signal
import sys
from typing import Annotated, NoReturn

import click
import typer

from agelens import __version__
from agelens.cli.common import reflow_help
from agelens.cli.data_cmd import data_app
from agelens.quiet import import_tensorflow_quietly

app = typer.Typer(
    name="agelens",
    no_args_is_help=True,
    help=(
        "See what an age-detection CNN looks at: check data, train, evaluate and explain a "
        "MobileNetV2 age-group classifier (young < 30 <= middle-aged < 60 <= old).\n\n"
        "Examples:\n\n"
        "  agelens demo\n\n"
        "  agelens explain face.jpg --method gradcam,scorecam\n\n"
        "  agelens predict photos/ --json\n\n"
        "  agelens evaluate ../shared/data/utkface-200 --json"
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


# --help groups the commands by what a user came to do, the first steps first.
_START, _MODEL, _FAITH, _DATA = "Start here", "Train and evaluate", "Faithfulness and reports", "Data"


def _register() -> None:
    """Attach the command groups; each imports its heavy modules only when it runs."""
    for module, names in (
        ("demo_cmd", (("demo", "demo_command", _START),)),
        ("explain_cmd", (("explain", "explain_command", _START),)),
        ("predict_cmd", (("predict", "predict_command", _START),)),
        ("app_cmd", (("app", "app_command", _START),)),
        ("train_cmd", (("train", "train_command", _MODEL),)),
        ("evaluate_cmd", (("evaluate", "evaluate_command", _MODEL),)),
        ("explain_cmd", (("layers", "layers_command", _MODEL),)),
        ("filters_cmd", (("filters", "filters_command", _MODEL),)),
        ("score_cmd", (("score", "score_command", _FAITH),)),
        ("report_cmd", (("report", "report_command", _FAITH),)),
    ):
        try:
            mod = __import__(f"agelens.cli.{module}", fromlist=["_"])
        except ModuleNotFoundError as e:
            if e.name != f"agelens.cli.{module}":
                raise
            continue
        for cmd, attr, panel in names:
            if hasattr(mod, attr):
                app.command(cmd, rich_help_panel=panel)(getattr(mod, attr))
    app.add_typer(data_app, name="data", rich_help_panel=_DATA)


_register()
reflow_help(app)

_TF_COMMANDS = {"demo", "app"}
"""Commands that load TensorFlow (quietly) before they start. The others (explain, predict, train,
evaluate, layers, filters, score) do it themselves once their arguments pass the cheap checks, so a typo in
a path fails in a second, not ten."""


class _Stopped(KeyboardInterrupt):
    """Raised from the SIGTERM handler so ``finally`` blocks (temporary output folders) run."""


def run() -> None:
    """The console script: the Typer app, quiet TensorFlow start-up, and clean Ctrl-C / SIGTERM.

    An interrupt unwinds like an exception, so half-written output folders are
    removed; the user gets one line and the conventional exit status (130 / 143)
    instead of a traceback from wherever the interrupt landed (inside TensorFlow it
    can surface as an unrelated ``SystemError``).
    """
    stopped: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopped.append(signum)
        raise _Stopped() if signum == signal.SIGTERM else KeyboardInterrupt()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    one_line_warnings()
    argv = sys.argv[1:]
    try:
        if argv and argv[0] in _TF_COMMANDS and not {"--help", "-h"} & set(argv):
            import_tensorflow_quietly()
        code = app(standalone_mode=False)
    except _USAGE_ERRORS as e:
        if stopped:
            raise
        _usage_error(e)
    except _ABORTS:  # Ctrl-D at a prompt, or an interrupt click caught first
        if not stopped:
            typer.echo("aborted", err=True)
            sys.exit(1)
        _say_stopped(stopped[0])
    except BaseException as e:  # noqa: BLE001 - an interrupt may surface as any exception type
        # A signal that landed where Python ignores exceptions (a weakref callback) did not
        # stop the run; a run that then finished is reported as the success it is.
        if not stopped or (isinstance(e, SystemExit) and e.code in (0, None)):
            raise
        _say_stopped(stopped[0])
    if stopped:  # click turned the interrupt into Exit(130) and returned it: say so, with the signal's status
        _say_stopped(stopped[0])
    if isinstance(code, int) and code:  # typer.Exit(code) returns it when click does not exit itself
        sys.exit(code)


def one_line_warnings() -> None:
    """Print agelens's own warnings as ``warning: <message>``, one line like its errors.

    Why: Python's default shows the file, line number and source line of the ``warnings.warn``
    call, which tells a user of the command nothing (e.g. Score-CAM's note on a non-class
    target). Warnings from other packages keep Python's format: their origin is the clue.
    """
    import warnings
    from pathlib import Path

    ours = str(Path(__file__).resolve().parents[1])
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if str(Path(filename).resolve()).startswith(ours):
            typer.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _say_stopped(signum: int) -> NoReturn:
    """One line for an interrupted run and the conventional status, 128 + the signal (130 / 143)."""
    typer.echo("terminated" if signum == signal.SIGTERM else "\ninterrupted", err=True)
    sys.exit(128 + signum)


# Typer 0.29 vendors click (``typer._click``), older ones use click itself: catch both.
_USAGE_ERRORS = tuple({click.ClickException, getattr(typer, "TyperException", click.ClickException)})
_ABORTS = tuple({click.exceptions.Abort, getattr(typer, "Abort", click.exceptions.Abort)})


def _usage_error(e: Exception) -> NoReturn:
    """A bad option or argument as one line, like every other agelens error, with where to read more.

    Why not Typer's own: it draws a 6-8 line box around the same sentence; the house rule is one
    clear line (and scripts grep for ``error:``). The exit status stays click's (2 for usage).
    """
    if type(e).__name__ == "NoArgsIsHelpError":  # a group called bare without rich: its help, as is
        typer.echo(e.format_message() if hasattr(e, "format_message") else str(e))
        sys.exit(getattr(e, "exit_code", 2))
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", None)
    where = f" (see {path} --help)" if path and getattr(e, "exit_code", 1) == 2 else ""
    message = " ".join((e.format_message() if hasattr(e, "format_message") else str(e)).split())
    if message:  # empty: a group called bare, whose help was just printed
        typer.echo(f"error: {message}{where}", err=True)
    sys.exit(getattr(e, "exit_code", 1))


if __name__ == "__main__":
    run()
