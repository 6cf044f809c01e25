"""The console script's own duties: interrupts end cleanly, leaving no half-written output."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
import typer

from agelens.cli import main
from agelens.explain.explanation import output_dir


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])  # fmt: skip
def test_a_signal_mid_run_removes_the_partial_folder_and_exits_128_plus_signal(
    tmp_path, monkeypatch, capsys, restore_signals, sig, code, word
):
    def half_done(**_click_options: object) -> None:
        with output_dir(tmp_path / "out") as tmp:
            (tmp / "half.png").write_bytes(b"x")
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises in here

    monkeypatch.setattr(main, "app", half_done)
    monkeypatch.setattr(sys, "argv", ["agelens", "report", "x"])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == code
    assert list(tmp_path.iterdir()) == []  # neither the output nor its .partial folder
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])  # fmt: skip
def test_a_signal_inside_a_real_typer_command_is_still_reported(
    tmp_path, monkeypatch, capsys, restore_signals, sig, code, word
):
    """Typer turns a KeyboardInterrupt into Exit(130) and, not standalone, returns it: the run
    must still say it was stopped and exit 128 + the signal, not 130 in silence."""
    cli = typer.Typer()

    @cli.command()
    def work() -> None:
        with output_dir(tmp_path / "out") as tmp:
            (tmp / "half.png").write_bytes(b"x")
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises in here

    monkeypatch.setattr(main, "app", cli)
    monkeypatch.setattr(sys, "argv", ["agelens"])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == code
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err


def test_a_run_that_finishes_keeps_its_exit_status(monkeypatch, restore_signals):
    def done(**_click_options: object) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(main, "app", done)
    monkeypatch.setattr(sys, "argv", ["agelens", "report", "x"])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == 0


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["explain", "--bogus"], "error: No such option: --bogus"),
        (["explain"], "error: Missing argument 'photos'."),
        (["nosuchcmd"], "error: No such command 'nosuchcmd'."),
        (["evaluate", "--json", "--bogus"], "error: No such option: --bogus"),
    ],
)
def test_a_bad_option_or_argument_is_one_error_line_with_where_to_read_more(
    monkeypatch, capsys, restore_signals, argv, said
):
    """Typer would draw a 6-8 line box around the sentence; every agelens error is one line."""
    monkeypatch.setattr(sys, "argv", ["agelens", *argv])
    with pytest.raises(SystemExit) as e:
        main.run()
    assert e.value.code == 2  # click's usage status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(said), err
    assert err.rstrip().endswith("--help)") and "╭" not in err


def test_a_group_called_bare_prints_its_help_and_no_empty_error(monkeypatch, capsys, restore_signals):
    monkeypatch.setattr(sys, "argv", ["agelens", "data"])
    with pytest.raises(SystemExit) as e:
        main.run()
    out = capsys.readouterr()
    assert e.value.code == 2 and "inspect" in out.out and "error" not in out.err


def test_help_paragraphs_are_reflowed_but_examples_keep_their_lines():
    from agelens.cli.common import reflow

    doc = """One line.

    Prose broken for the
    source file, twice
    over.

    Examples:

      agelens a
      agelens b --x
    """
    assert reflow(doc) == (
        "One line.\n\nProse broken for the source file, twice over.\n\n"
        "Examples:\n\n  agelens a\n  agelens b --x"
    )


def test_explain_help_at_80_columns_is_not_ragged():
    from typer.testing import CliRunner

    out = CliRunner().invoke(main.app, ["explain", "--help"], terminal_width=80).output
    text = [line.strip() for line in out.split("Examples")[0].splitlines()]
    # each prose line fills the width: a line broken in the source file left 'heatmap |' alone
    assert "heatmap | overlay with the top-3 probabilities" in " ".join(text)
    short = [a for a, b in zip(text, text[1:], strict=False) if a and b and len(a) < 50]
    assert not short, short


def test_top_level_help_leads_with_the_first_steps():
    """``agelens --help`` groups the commands by task, the demo and explain first, and every command
    is listed once; its examples start with the README's main command."""
    from typer.testing import CliRunner

    out = CliRunner().invoke(main.app, ["--help"], env={"COLUMNS": "120"}).output
    panels = [p for p in ("Start here", "Train and evaluate", "Faithfulness and reports", "Data") if p in out]
    assert panels == ["Start here", "Train and evaluate", "Faithfulness and reports", "Data"]
    assert [out.index(p) for p in panels] == sorted(out.index(p) for p in panels)
    start = out[out.index("Start here") : out.index("Train and evaluate")]
    assert all(f"│ {cmd} " in start for cmd in ("demo", "explain", "predict", "app"))
    rows = [line.split() for line in out.splitlines() if line.startswith("│ ")]
    listed = [r[1] for r in rows if len(r) > 1]  # a command's row, or a wrapped description's
    commands = ["demo", "explain", "predict", "app", "train", "evaluate", "layers", "score", "report", "data"]
    assert [c for c in listed if c in commands] == commands
    assert out.index("agelens demo") < out.index("agelens explain")


@pytest.mark.parametrize("argv", [[], ["data"]])
def test_without_rich_a_bare_call_prints_help_not_an_error_line(monkeypatch, capsys, restore_signals, argv):
    """With TYPER_USE_RICH=0 click raises the help text as a usage error; it is help, not an error."""
    import typer.core

    monkeypatch.setattr(typer.core, "HAS_RICH", False, raising=False)
    monkeypatch.setattr(sys, "argv", ["agelens", *argv])
    with pytest.raises(SystemExit) as e:
        main.run()
    out = capsys.readouterr()
    assert e.value.code == 2 and out.out.startswith("Usage: ") and "COMMAND [ARGS]" in out.out
    assert out.err == ""


def test_agelens_warnings_print_as_one_line_and_others_keep_their_origin(monkeypatch, capsys):
    import warnings

    from agelens.explain import perturb

    passed_on = []
    monkeypatch.setattr(warnings, "showwarning", lambda *a, **k: passed_on.append(a))  # Python's own
    main.one_line_warnings()
    warnings.showwarning(UserWarning(perturb.WEAK_TARGET), UserWarning, perturb.__file__, 96)
    warnings.showwarning(UserWarning("from elsewhere"), UserWarning, "/somewhere/else.py", 3)
    assert capsys.readouterr().err == f"warning: {perturb.WEAK_TARGET}\n"  # no file, line or source line
    assert [str(a[0]) for a in passed_on] == ["from elsewhere"]  # not ours: Python's format, origin and all
