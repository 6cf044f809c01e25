"""``agelens app``: a port it cannot use fails in one line, before any URL is printed."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()


def test_a_busy_port_is_one_error_line_and_no_url() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = runner.invoke(app, ["app", "--port", str(port)])  # the shipped model: never loaded
    assert res.exit_code == 1
    assert "http://" not in res.output  # the URL of a server that never started is not shown
    lines = res.output.strip().splitlines()
    assert lines == [f"error: 127.0.0.1:{port}: Address already in use (pick another with --port)"], lines
