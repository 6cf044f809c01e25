"""Output paths that misbehave: an --out under a file, a full disk while writing, and folder and file
names with spaces and non-ASCII letters. Each failure is one line naming the path and the reason,
with a non-zero exit and nothing half-written left behind."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from synthetic_folders import faces_and_tiny_model
from typer.testing import CliRunner

import agelens.atomic
from agelens.cli.main import app

runner = CliRunner()
QUICK_SCORE = ["--methods", "gradcam", "--metrics", "deletion", "--n", "3"]


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of 6 labelled synthetic faces named with a space and umlauts, and a tiny agelens model."""
    return faces_and_tiny_model(tmp_path_factory.mktemp("outpaths"), "fötos Ä", seed=2)


def _disk_full_on(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Every atomic write from the ``call``-th on fails as a full disk does (ENOSPC)."""
    real, calls = agelens.atomic.atomic_write_bytes, []

    def full(path: str | Path, data: bytes) -> Path:
        calls.append(path)
        if len(calls) >= call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(agelens.atomic, "atomic_write_bytes", full)


def _one_error_line(res, *words: str) -> str:
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    err = res.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    assert all(w in err for w in words), err
    return err


def _leftovers(folder: Path) -> list[str]:
    """Hidden staging folders or temp files left in ``folder``."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_score_out_under_a_file_is_one_line_before_any_scoring(data_and_model, tmp_path, monkeypatch):
    """It was a NotADirectoryError traceback once the whole scoring run had ended."""
    import agelens.metrics.report

    data, model = data_and_model
    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    def no_scoring(*_a, **_k):
        raise AssertionError("scored before the --out check")

    monkeypatch.setattr(agelens.metrics.report, "score_methods", no_scoring)
    out = blocker / "sub"
    res = runner.invoke(app, ["score", str(data), "-m", str(model), *QUICK_SCORE, "--out", str(out)])
    _one_error_line(res, f"{out}: cannot write --out there", "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder: chmod does not bite")
def test_score_out_in_a_read_only_folder_is_one_line_before_any_scoring(data_and_model, tmp_path):
    data, model = data_and_model
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        out = locked / "sc"
        res = runner.invoke(app, ["score", str(data), "-m", str(model), *QUICK_SCORE, "--out", str(out)])
        _one_error_line(res, f"{out}: cannot write --out there", "Permission denied")
    finally:
        locked.chmod(0o755)


def test_evaluate_out_on_a_full_disk_leaves_no_folder_and_says_why(data_and_model, tmp_path, monkeypatch):
    """metrics.json was left without its manifest (the report showed it as an evaluation), after
    an OSError traceback."""
    data, model = data_and_model
    out = tmp_path / "eval run"
    _disk_full_on(monkeypatch, call=2)  # metrics.json written, metrics.md not
    res = runner.invoke(
        app, ["evaluate", str(data), "-m", str(model), "--engine", "keras", "--out", str(out)]
    )
    _one_error_line(res, f"{out}: could not write the metrics: No space left on device")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_evaluate_force_on_a_full_disk_keeps_the_earlier_run_whole(data_and_model, tmp_path, monkeypatch):
    """With --force the new metrics.json replaced the earlier one beside the earlier manifest: two
    runs mixed."""
    data, model = data_and_model
    out = tmp_path / "ev"
    args = ["evaluate", str(data), "-m", str(model), "--engine", "keras", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    (out / "metrics.json").write_text('{"earlier": true}')  # tells the earlier run's file from a new one
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _disk_full_on(monkeypatch, call=2)
    _one_error_line(runner.invoke(app, [*args, "--force"]), "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_score_out_on_a_full_disk_leaves_no_folder_and_says_why(data_and_model, tmp_path, monkeypatch):
    """scores.md and plots were left without scores.json, after an OSError traceback."""
    data, model = data_and_model
    out = tmp_path / "sc"
    _disk_full_on(monkeypatch, call=2)  # scores.md written, scores.json not
    res = runner.invoke(app, ["score", str(data), "-m", str(model), *QUICK_SCORE, "--out", str(out)])
    _one_error_line(res, f"{out}: could not write the scores: No space left on device")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_report_into_a_new_folder_on_a_full_disk_leaves_no_empty_folder(tmp_path, monkeypatch):
    import numpy as np

    from agelens.model.evaluate import classification_metrics, write_evaluation

    run = tmp_path / "run"
    write_evaluation(classification_metrics(np.array([0, 1]), np.array([0, 0]), ["young", "old"]), run)
    pages = tmp_path / "pages"
    _disk_full_on(monkeypatch, call=1)
    res = runner.invoke(app, ["report", str(run), "--out", str(pages)])
    _one_error_line(res, "report.html: No space left on device")
    assert not pages.exists() and _leftovers(tmp_path) == []


def _hrefs(page: Path) -> list[str]:
    return re.findall(r'href="([^"]*)"', page.read_text(encoding="utf-8"))


def test_spaces_and_umlauts_in_paths_through_explain_evaluate_and_report(data_and_model, tmp_path):
    """A clean bill, kept: such names go through every command, and the page links only within
    itself (every photo is embedded), so no file link can break on a space or an umlaut."""
    data, model = data_and_model
    photo = data / "bild 1.jpg"
    Image.open(next(data.glob("*.chip.jpg"))).save(photo, quality=95)
    explained = tmp_path / "aus gäbe" / "run 1"
    args = [
        "explain",
        str(photo),
        "-m",
        str(model),
        "--method",
        "gradcam",
        "--no-detect",
        "--out",
        str(explained),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in explained.iterdir())[0] == "000_bild_1_gradcam_map.npy"
    res = runner.invoke(app, ["report", str(explained)])
    assert res.exit_code == 0, res.output
    page = explained / "report.html"
    html = page.read_text(encoding="utf-8")
    assert 'alt="' in html and "bild 1.jpg" in html and 'src="data:image/' in html  # the photo, embedded
    assert all(h.startswith("#") for h in _hrefs(page)), _hrefs(page)

    evaluated = tmp_path / "aus gäbe" / "eval 1"
    res = runner.invoke(
        app, ["evaluate", str(data), "-m", str(model), "--engine", "keras", "--out", str(evaluated)]
    )
    assert res.exit_code == 0, res.output
    pages = tmp_path / "seiten ö"
    res = runner.invoke(app, ["report", str(evaluated), "--out", f"{pages}/"])
    assert res.exit_code == 0, res.output
    html = (pages / "report.html").read_text(encoding="utf-8")
    assert "fötos Ä" in html and '<th scope="row" class="rowhead">bild 1.jpg</th>' in html  # skipped: no age
    assert all(h.startswith("#") for h in _hrefs(pages / "report.html"))
