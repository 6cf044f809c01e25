"""``agelens app``: the local web app for explaining single photos."""

from __future__ import annotations

import errno
from typing import Annotated

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    load_cli_model,
    load_options,
)


def app_command(
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 7860,
    host: Annotated[
        str,
        typer.Option(help="Interface to bind. Keep 127.0.0.1 unless others on the network should reach it."),
    ] = "127.0.0.1",
) -> None:
    """Open a local web app: upload a photo, see class probabilities and where the model looks.

    Examples:

      agelens app

      agelens app --model runs/x/model.keras --port 8080
    """
    from agelens.report.app import check_port, launch  # lazy: gradio and TensorFlow load only here

    try:
        check_port(host, port)  # a busy port fails now, not after the model has loaded
        am = load_cli_model(
            model,
            load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins),
        )
        launch(model=am, port=port, host=host)
    except OSError as exc:  # port in use, cannot bind
        hint = " (pick another with --port)" if exc.errno == errno.EADDRINUSE else ""
        typer.echo(f"error: {host}:{port}: {exc.strerror or exc}{hint}", err=True)
        raise typer.Exit(1) from None
