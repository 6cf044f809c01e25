"""Every ``python benchmarks/...`` command the docs print must parse with its script's options.

A number in a README or model card is only worth its command; a command that stops at "the
following arguments are required" (or names a placeholder such as ``--split ...``) cannot be
rerun. Each command is parsed by the script's own argparse parser, stopped right after parsing,
so nothing heavy runs.
"""

from __future__ import annotations

import argparse
import ast
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "benchmarks/README.md", "src/agelens/assets/MODEL_CARD.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
)]  # fmt: skip
_SPAN = re.compile(r"`(python benchmarks/[^`]+)`")  # inline code, possibly wrapped over lines
_BLOCK = re.compile(r"^ {4,}(python benchmarks/\S+\.py(?:[^\n]*?\\+\n)*[^\n]*)", re.M)  # code blocks


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each command in the docs and in the benchmark scripts' docstrings."""
    found: dict[str, str] = {}
    sources = [(d, (ROOT / d).read_text()) for d in DOCS]
    sources += [
        (str(p.relative_to(ROOT)), ast.get_docstring(ast.parse(p.read_text()), clean=False) or "")
        for p in sorted((ROOT / "benchmarks").glob("*.py"))
    ]
    for where, text in sources:
        for m in [*_SPAN.finditer(text), *_BLOCK.finditer(text)]:
            command = re.sub(r"\s+", " ", re.sub(r"\\+\n", " ", m.group(1))).split(" # ")[0].strip()
            found.setdefault(command, where)
    return sorted((where, command) for command, where in found.items())


class _Parsed(Exception):
    """Raised by the patched parse_args once the command line has parsed."""


def test_the_docs_hold_commands_to_check() -> None:
    scripts = {c.split()[1] for _, c in documented_commands()}
    assert {"benchmarks/accuracy_ceiling.py", "benchmarks/decision_calibration.py"} <= scripts


@pytest.mark.parametrize(("where", "command"), documented_commands(), ids=lambda v: v[:70])
def test_a_documented_command_parses(where: str, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(command)[1:]
    if where.endswith(".md"):  # what a user reads and pastes; a docstring may name a free-text value
        assert "..." not in argv, f"{where}: a placeholder in {command!r}"
    if "ArgumentParser" not in (ROOT / argv[0]).read_text():
        pytest.fail(f"{argv[0]} reads its command line by hand: give it an argparse parser")
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # noqa: ANN001, ANN202
        parse(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.chdir(ROOT)
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except _Parsed:
        return
    except ModuleNotFoundError as e:  # torch_train.py and friends need PyTorch, a GPU-machine tool
        pytest.skip(f"{argv[0]} needs {e.name}")
    except SystemExit as e:
        pytest.fail(f"{where}: {command!r} does not parse (exit {e.code})")
    pytest.fail(f"{where}: {command!r} ran without parsing a command line")
