"""The "method minus matched random maps" table reads the same in the terminal, scores.md and the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from report_factory import make_run, score, scores_json, write_json

from agelens.metrics.report import ScoreTable
from agelens.report.html import render_report


def _doc() -> dict:
    """scorecam listed first in the differences but ranked second; a tiny difference; sparseness
    (not ranked) far above chance for both methods."""
    doc = scores_json()
    doc["metrics"].append(
        {"name": "sparseness", "higher_is_better": True, "ranked": False, "category": "complexity"}
    )
    for row in doc["scores"].values():
        row["sparseness"] = score(0.5)
    diff = doc["difference_vs_matched_random"]
    diff["gradcam"]["deletion"] = {"mean": -2e-4, "ci_low": -3e-4, "ci_high": -1e-4, "n": 20}
    for row in diff.values():
        row["sparseness"] = score(0.3)  # CI [0.25, 0.35]: off zero, on the "higher" side
    doc["difference_vs_matched_random"] = {"scorecam": diff["scorecam"], "gradcam": diff["gradcam"]}
    return doc


def _report_table(page: str) -> list[list[str]]:
    block = page.split("Difference from a matched random map")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", block, re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S) for r in rows]
    return [[re.sub(r"<[^>]+>|\s+", " ", c).strip() for c in row] for row in cells]


def test_the_report_writes_differences_as_the_cli_does_in_ranking_order(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    write_json(run / "scores/scores.json", _doc())
    rows = [r for r in _report_table(render_report(run)) if r and r[0] in ("gradcam", "scorecam")]
    assert [r[0] for r in rows] == ["gradcam", "scorecam"]  # the ranking's order, not the file's
    gradcam_deletion = rows[0][1]
    assert gradcam_deletion.startswith("✓ -2e-04") and "[-3e-04, -1e-04]" in gradcam_deletion
    assert rows[1][1].startswith("+0.010") and rows[1][1].endswith("[-0.040, +0.060]")  # signs on both ends


def test_sparseness_gets_no_chance_mark_anywhere(tmp_path: Path) -> None:
    doc = _doc()
    run = make_run(tmp_path)
    write_json(run / "scores/scores.json", doc)
    page = render_report(run)
    rows = [r for r in _report_table(page) if r and r[0] in ("gradcam", "scorecam")]
    header = next(r for r in _report_table(page) if r and r[0] == "method")
    col = header.index("sparseness")
    assert all(r[col].startswith("+0.300") for r in rows)  # no ✓ although the CI is off zero
    assert "No mark on sparseness: it describes maps without judging them." in page
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "scores.json").write_text(json.dumps(doc))
    table = ScoreTable.load(tmp_path / "s")
    md = table.to_markdown().split("## Method minus random maps")[1]
    md_rows = [ln for ln in md.splitlines() if ln.startswith("| gradcam") or ln.startswith("| scorecam")]
    assert [ln.split("|")[1].strip() for ln in md_rows] == ["gradcam", "scorecam"]
    assert all(ln.rstrip(" |").endswith("[+0.250, +0.350]") for ln in md_rows)  # no mark after it
    assert "✓" in md_rows[0] and "No mark on sparseness" in md
    from agelens.cli.score_cmd import _rich_tables

    diff = _rich_tables(table)[1]
    assert [c for c in diff.columns[0].cells] == ["gradcam", "scorecam"]
    assert (
        all(not c.endswith("✓") for c in diff.columns[-1].cells) and "No mark on sparseness" in diff.caption
    )
