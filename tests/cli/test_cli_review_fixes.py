"""Review fixes in the CLI helpers: a stale report page goes with --force, counts read as sentences,
and ``data synth --force`` replaces only what an earlier synth wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.common import counted, drop_stale_report
from agelens.cli.main import app

runner = CliRunner()


def test_drop_stale_report_removes_the_page_and_says_why(tmp_path: Path, capsys) -> None:
    drop_stale_report(tmp_path)  # no page: nothing to say
    assert capsys.readouterr().err == ""
    (tmp_path / "report.html").write_text("<html>the earlier run</html>")
    drop_stale_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert capsys.readouterr().err.strip() == f"removed {tmp_path / 'report.html'}: it showed the earlier run"


def test_counted_groups_thousands() -> None:
    assert [counted(n, "file") for n in (1, 2, 1200)] == ["1 file", "2 files", "1,200 files"]


def test_inspect_says_one_file_not_one_files(tmp_path: Path) -> None:
    data = write_utk_folder(tmp_path / "utk", 2, seed=0, size=32)
    (data / "40_0_0_20170101000000.jpg.chip.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["data", "inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "2 usable images, 1 problem " in result.output
    assert "(1 file not used)" in result.output and "files not used" not in result.output
    assert any(line.rstrip().endswith("1 problem") for line in result.output.splitlines())


@pytest.fixture
def synth_out(tmp_path: Path) -> Path:
    out = tmp_path / "synth"
    result = runner.invoke(app, ["data", "synth", str(out), "--n", "6", "--size", "32", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_synth_force_replaces_the_earlier_output_and_keeps_other_files(synth_out: Path) -> None:
    before = {p.name for p in synth_out.glob("*.png")}
    (synth_out / "notes.txt").write_text("mine")
    again = runner.invoke(app, ["data", "synth", str(synth_out), "--n", "3", "--size", "32"])
    assert again.exit_code == 1 and "--force" in again.stderr
    res = runner.invoke(
        app, ["data", "synth", str(synth_out), "--n", "3", "--size", "32", "--seed", "2", "--force"]
    )
    assert res.exit_code == 0, res.output
    assert f"to {synth_out} in" in res.stdout  # the folder asked for, never the temporary one
    after = {p.name for p in synth_out.glob("*.png")}
    assert len(after) == 3 and not before & after  # no image of the earlier run is left to mix in
    assert json.loads((synth_out / "synth.json").read_text())["seed"] == 2
    assert (synth_out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in synth_out.parent.iterdir()) == ["synth"]  # no temporary folder left


def test_synth_force_refuses_a_folder_synth_did_not_write(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"a photo")
    res = runner.invoke(app, ["data", "synth", str(photos), "--n", "3", "--size", "32", "--force"])
    assert res.exit_code == 1 and "not an earlier 'agelens data synth' output" in res.stderr
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"]
