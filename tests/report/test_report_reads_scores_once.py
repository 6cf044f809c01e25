"""One page build reads scores.json once.

Why: the Scores section, the glossary (which metrics the file names) and the model card's lookup
(its ``meta.model``) each read and parsed the file, a page's largest JSON with every metric's
per-method scores. The page must not change: a corrupt file keeps its one note.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from report_factory import make_run, scores_json, write_json

from agelens.report.html import render_report, write_report


@pytest.fixture
def scores_reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times each scores.json is read, by its path."""
    counts: Counter = Counter()
    read_text = Path.read_text

    def counting(self: Path, *args, **kwargs) -> str:
        if self.name == "scores.json":
            counts[self] += 1
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    return counts


def test_a_run_reads_its_scores_json_once(tmp_path: Path, scores_reads: Counter) -> None:
    run = make_run(tmp_path)
    page = write_report(run).read_text(encoding="utf-8")
    assert dict(scores_reads) == {run / "scores" / "scores.json": 1}
    assert 'id="scores"' in page and 'id="glossary"' in page  # both sections still drawn from it


def test_a_score_out_folder_reads_its_scores_json_once(tmp_path: Path, scores_reads: Counter) -> None:
    """``agelens score --out X`` writes scores.json straight into X, which names its model."""
    folder = tmp_path / "sc"
    write_json(folder / "scores.json", scores_json())
    render_report(folder)
    assert dict(scores_reads) == {folder / "scores.json": 1}


def test_a_corrupt_scores_json_is_read_once_and_noted_once(tmp_path: Path, scores_reads: Counter) -> None:
    run = make_run(tmp_path)
    (run / "scores" / "scores.json").write_text("{not json")
    page = render_report(run)
    assert dict(scores_reads) == {run / "scores" / "scores.json": 1}
    note = (
        "Scores: could not read scores.json (Expecting property name enclosed in double quotes, "
        "line 1 column 2); section skipped."
    )
    assert page.count(note) == 1
