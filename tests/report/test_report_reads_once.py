"""One page build reads each manifest once and judges the sanity verdicts once.

Why: building one page read an explain folder's manifest.json up to four times (finding the
command folders, the Run section, the gallery, the model card's model), parsing its list of
every map each time, and computed each method's sanity verdict twice (the verdict column, then
again for the findings). The page must not change: a corrupt manifest keeps its one note.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from report_factory import _explain, make_run, scores_json, write_json

import agelens.report.sanity as sanity
from agelens.report.html import render_report, write_report


@pytest.fixture
def manifest_reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times each manifest.json (and metrics.json) is read, by its path."""
    counts: Counter = Counter()
    read_text = Path.read_text

    def counting(self: Path, *args, **kwargs) -> str:
        if self.name in ("manifest.json", "metrics.json"):
            counts[self] += 1
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    return counts


def _outputs(root: Path) -> Path:
    """What running explain twice, evaluate and score without a run folder leaves: every manifest
    is wanted by several sections (command folders, Run, gallery, model card, evaluated-on)."""
    out = root / "outputs"
    _explain(out / "explain", 1)
    _explain(out / "explain-2", 2)
    os.utime(out / "explain/manifest.json", (1_000_000, 1_000_000))
    write_json(out / "score/scores.json", scores_json())
    write_json(out / "ev/metrics.json", {"accuracy": 0.5, "n_images": 4, "evaluated_on": "/data/x"})
    write_json(out / "ev/manifest.json", {"command": "evaluate", "settings": {"data": "/data/x"}})
    return out


def test_a_run_reads_its_explain_manifest_once(tmp_path: Path, manifest_reads: Counter) -> None:
    run = make_run(tmp_path)
    write_report(run)
    assert manifest_reads[run / "explain" / "manifest.json"] == 1
    assert manifest_reads[run / "manifest.json"] == 1
    assert manifest_reads[run / "evaluation" / "metrics.json"] == 1


def test_an_explain_folder_reads_its_manifest_once(tmp_path: Path, manifest_reads: Counter) -> None:
    ex = make_run(tmp_path) / "explain"
    write_report(ex)
    assert manifest_reads[ex / "manifest.json"] == 1


def test_a_folder_of_command_outputs_reads_each_manifest_once(
    tmp_path: Path, manifest_reads: Counter
) -> None:
    out = _outputs(tmp_path)
    page = out / "report.html"
    write_report(out)
    assert "explanations from explain-2/ (newest; not explain/)" in page.read_text()
    read = {p.relative_to(out).as_posix(): n for p, n in manifest_reads.items()}
    assert read == {
        "explain/manifest.json": 1,
        "explain-2/manifest.json": 1,
        "ev/manifest.json": 1,
        "ev/metrics.json": 1,
    }


def test_a_corrupt_explain_manifest_is_read_once_and_noted_once(
    tmp_path: Path, manifest_reads: Counter
) -> None:
    """The note for a broken file is what it was: one line, in the notes, naming the error."""
    run = make_run(tmp_path)
    (run / "explain" / "manifest.json").write_text("{not json")
    page = render_report(run)
    assert manifest_reads[run / "explain" / "manifest.json"] == 1
    note = (
        "Explanations: could not read manifest.json (Expecting property name enclosed in double quotes, "
        "line 1 column 2); section skipped."
    )
    assert page.count(note) == 1


def test_a_folder_whose_only_manifest_is_corrupt_is_refused_naming_it_once(
    tmp_path: Path, manifest_reads: Counter
) -> None:
    only = tmp_path / "only"
    only.mkdir()
    (only / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="nothing else to report") as err:
        write_report(only)
    assert str(err.value).count("could not read") == 1
    assert manifest_reads[only / "manifest.json"] == 1


def test_sanity_verdicts_are_judged_once_per_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict column and the findings show one judgement: computed once, shared."""
    calls: list[int] = []
    judge = sanity.method_verdicts

    def counting(rows: dict) -> dict:
        calls.append(len(rows))
        return judge(rows)

    monkeypatch.setattr(sanity, "method_verdicts", counting)
    monkeypatch.setattr("agelens.report.scores.method_verdicts", counting)
    page = render_report(make_run(tmp_path))
    assert calls == [3]  # gradcam, scorecam and the random baseline, once
    assert "⚠ flagged: map survives the randomisation" in page  # scorecam's verdict, in the column
    assert "gradcam passes; scorecam flagged." in page  # and the same verdicts in the findings
