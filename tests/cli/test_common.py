"""Small CLI helpers: where a run writes when no --out is given, and how counts read."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from agelens.cli.common import counted, fresh_out, say_fresh_out


def test_without_out_a_second_run_gets_the_next_free_folder(tmp_path: Path, capsys) -> None:
    default = tmp_path / "outputs" / "explain"
    assert fresh_out(None, default, force=False) == default  # nothing there yet
    default.mkdir(parents=True)
    assert fresh_out(None, default, force=False) == default  # an empty folder is free
    (default / "manifest.json").write_text("{}")
    chosen = fresh_out(None, default, force=False)
    assert chosen == tmp_path / "outputs" / "explain-2"
    assert capsys.readouterr().err == ""  # said only once the run's inputs proved usable
    say_fresh_out(None, chosen, default)
    assert "outputs/explain holds an earlier run" in capsys.readouterr().err.replace("\\", "/")
    say_fresh_out(chosen, chosen, default)  # --out named it: nothing to explain
    assert capsys.readouterr().err == ""
    (tmp_path / "outputs" / "explain-2").mkdir()
    (tmp_path / "outputs" / "explain-2" / "x.png").write_bytes(b"")
    assert fresh_out(None, default, force=False) == tmp_path / "outputs" / "explain-3"


def test_force_reuses_the_default_and_an_explicit_out_is_kept(tmp_path: Path) -> None:
    default = tmp_path / "explain"
    default.mkdir()
    (default / "old.png").write_bytes(b"")
    assert fresh_out(None, default, force=True) == default
    assert fresh_out(default, default, force=False) == default  # --out given: the strict check decides


def test_a_marker_file_decides_when_runs_share_a_folder(tmp_path: Path) -> None:
    default = tmp_path / "score"
    default.mkdir()
    (default / "notes.txt").write_text("mine")
    assert fresh_out(None, default, force=False, marker="scores.json") == default
    (default / "scores.json").write_text("{}")
    assert fresh_out(None, default, force=False, marker="scores.json") == tmp_path / "score-2"


def test_counts_read_as_words() -> None:
    assert [counted(n, "photo") for n in (1, 0, 3)] == ["1 photo", "0 photos", "3 photos"]
    assert counted(2, "copy", "copies") == "2 copies"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "split.json: file not found (--holdout takes a split file"),
        ("{nope", "split.json: not valid JSON (Expecting property name"),
        ("{}", "split.json: no 'test' list; --holdout takes a split file as 'agelens train' writes"),
        ('{"test": "a.jpg"}', "split.json: its 'test' entry is not a list of file names"),
        ("[1, 2]", "split.json: no 'test' list"),
    ],
)
def test_a_bad_holdout_file_says_which_part_is_wrong(tmp_path: Path, capsys, content, said) -> None:
    from agelens.cli.common import read_holdout

    path = tmp_path / "split.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(typer.Exit):
        read_holdout(path)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path}/{said}") and len(err.splitlines()) == 1, err
    path.write_text('{"test": ["a.jpg", "b/c.jpg"], "train": []}')
    assert read_holdout(path) == {"a.jpg", "b/c.jpg"}
