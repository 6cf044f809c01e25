"""Methods are ranked on their difference from matched random maps, as the page tells readers to judge.

A user test: the report put gradcam first on average_drop ("rank on average_drop 1") while the
table of differences below marked it ⚠ worse than random maps on that very metric, because the
mean rank was computed from the raw means of the first table. Numbers below are that run's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from agelens.metrics._io import dumps
from agelens.metrics.base import Score
from agelens.metrics.report import ScoreTable
from agelens.report.findings import ranking_findings
from agelens.report.html import render_report

DIFFERENCE, SCORE = "difference_vs_matched_random", "scores"  # scores.json's ``ranked_on`` values
LOWER = {"deletion": True, "average_drop": True, "randomisation": True, "insertion": False}
RAW = {  # deletion ↓, insertion ↑, average_drop ↓: gradcam has the best raw average_drop
    "occlusion": (0.350, 0.648, 0.485),
    "saliency": (0.413, 0.650, 0.511),
    "gradcam": (0.472, 0.509, 0.378),
    "random": (0.460, 0.611, 0.467),
}
DIFF = {  # method minus its matched random maps: gradcam is ⚠ worse than random on average_drop
    "occlusion": ((-0.047, -0.125, 0.038), (0.124, 0.078, 0.173), (0.029, -0.344, 0.370)),
    "saliency": ((-0.033, -0.089, 0.029), (0.037, -0.039, 0.118), (-0.007, -0.330, 0.313)),
    "gradcam": ((0.044, -0.051, 0.154), (0.024, -0.060, 0.092), (0.159, 0.033, 0.288)),
}
FAITH = ("deletion", "insertion", "average_drop")
SANITY = {"occlusion": -0.021, "saliency": 0.387, "gradcam": 0.102}  # lower is better; no difference


def _score(mean: float, lo: float | None = None, hi: float | None = None, metric: str = "") -> Score:
    lo = mean - 0.05 if lo is None else lo
    hi = mean + 0.05 if hi is None else hi
    return Score(mean, lo, hi, 12, not LOWER.get(metric, False))


def _table(sanity: bool = False) -> ScoreTable:
    """The user's run as a ScoreTable: faithfulness (and, with ``sanity``, randomisation)."""
    names = [*FAITH, *(["randomisation"] if sanity else [])]
    metrics = [
        {
            "name": n,
            "higher_is_better": not LOWER[n],
            "category": "randomisation" if n == "randomisation" else "faithfulness",
            "ranked": True,
        }
        for n in names
    ]
    scores = {
        m: {n: _score(v, metric=n) for n, v in zip(FAITH, vals, strict=True)} for m, vals in RAW.items()
    }
    if sanity:
        for m, row in scores.items():
            nan = Score(float("nan"), float("nan"), float("nan"), 0, False)
            row["randomisation"] = _score(SANITY[m], metric="randomisation") if m in SANITY else nan
    vs_random = {
        m: {n: _score(*d, metric=n) for n, d in zip(FAITH, ds, strict=True)} for m, ds in DIFF.items()
    }
    return ScoreTable(
        list(RAW), metrics, scores, vs_random=vs_random, meta={"n_images": 12, "explained": "predicted class"}
    )


def _ranks(table: ScoreTable) -> dict[str, dict[str, float]]:
    return {r["method"]: r["ranks"] for r in table.ranking()}


def _page(tmp_path: Path, doc: dict) -> str:
    folder = tmp_path / "s"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scores.json").write_text(json.dumps(doc))
    return render_report(folder)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _doc(sanity: bool = False) -> dict:
    return json.loads(dumps(_table(sanity).to_dict()))


# --- A. the ranking ------------------------------------------------------------------------------


def test_a_method_worse_than_random_on_a_metric_is_not_ranked_first_on_it() -> None:
    ranks = _ranks(_table())
    assert ranks["gradcam"]["average_drop"] == 3.0  # ⚠ +0.159 [+0.033, +0.288]: last, not first
    assert ranks["saliency"]["average_drop"] == 1.0  # the smallest difference in the ↓ direction
    assert ranks["occlusion"] == {"deletion": 1.0, "insertion": 1.0, "average_drop": 2.0}
    rows = _table().ranking()
    assert [r["method"] for r in rows] == ["occlusion", "saliency", "gradcam"]
    assert [r["mean_rank"] for r in rows] == pytest.approx([4 / 3, 5 / 3, 3.0])


def test_a_metric_without_a_random_map_difference_is_ranked_on_its_score() -> None:
    table = _table(sanity=True)
    assert table.ranking_basis() == {
        "deletion": DIFFERENCE,
        "insertion": DIFFERENCE,
        "average_drop": DIFFERENCE,
        "randomisation": SCORE,
    }
    assert {m: r["randomisation"] for m, r in _ranks(table).items()} == {
        "occlusion": 1.0,
        "gradcam": 2.0,
        "saliency": 3.0,
    }
    data = table.to_dict()
    assert data["ranked_on"] == table.ranking_basis()
    assert data["ranking"] == table.ranking()


def test_a_loaded_table_ranks_as_the_scored_one(tmp_path: Path) -> None:
    table = _table(sanity=True)
    table.write(tmp_path, plots=False)
    back = ScoreTable.load(tmp_path)
    assert back.ranking() == table.ranking() and back.ranking_basis() == table.ranking_basis()


def test_scores_md_says_what_the_mean_rank_is_computed_from() -> None:
    md = _table().to_markdown()
    assert (
        "Mean rank: each method's ranks averaged, on each metric's difference from random maps as smooth "
        "as its own (the table below); 1 = best." in md
    )
    scores = md.split("## Method minus random maps")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in scores.splitlines() if line.startswith("| ")}
    assert rows["gradcam"].endswith("| 3.00 |") and rows["occlusion"].endswith("| 1.33 |")
    mixed = _table(sanity=True).to_markdown()
    assert (
        "on the difference from random maps as smooth as its own for deletion, insertion and average_drop "
        "(the table below), on the score for randomisation (no random-map difference); 1 = best." in mixed
    )


def test_the_report_ranks_and_concludes_on_the_difference(tmp_path: Path) -> None:
    page = _page(tmp_path, _doc(sanity=True))
    text = _text(page)
    overall = re.search(r'id="scores-ranking">(.*?)</section>', page, re.S).group(1)
    gradcam = re.search(r"gradcam</th>(.*?)</tr>", overall, re.S).group(1)
    cells = re.findall(r">([^<]+)</td>", gradcam)
    assert cells[:4] == ["2.75", "3", "3", "3"]  # mean rank; deletion, insertion, average_drop
    assert "on the score for randomisation (no random-map difference)" in _text(overall)
    assert (
        "Overall ranking (on the difference from matched random maps; on the score for randomisation): "
        "occlusion comes first" in text
    )
    faith = re.search(r'id="scores-faithfulness">(.*?)</section>', page, re.S).group(1)
    first = faith.split("Difference from a matched random map")[0]
    best = [b.strip() for b in re.findall(r'class="num best"[^>]*>([^<]+)', first)]
    assert best == ["0.350", "0.650", "0.378"]  # the best means shown, by each column's arrow
    diff = faith.split("<h4>Difference from a matched random map")[1]
    best_diff = [b.strip() for b in re.findall(r'class="[^"]*best[^"]*"[^>]*>([^<]+)', diff)]
    assert best_diff == ["-0.047", "✓ +0.124", "-0.007"]  # occlusion, occlusion, saliency: what is ranked
    names = re.findall(r'<th scope="row"[^>]*>([a-z]+)', first)
    assert names[:3] == ["occlusion", "saliency", "gradcam"]  # ordered as the overall ranking


def test_the_leader_is_checked_on_the_cis_its_ranks_come_from() -> None:
    ranking = [
        {"method": "a", "mean_rank": 1.0, "ranks": {"deletion": 1.0}},
        {"method": "b", "mean_rank": 2.0, "ranks": {"deletion": 2.0}},
    ]
    raw = {
        "a": {"deletion": {"mean": 0.3, "ci_low": 0.2, "ci_high": 0.4}},
        "b": {"deletion": {"mean": 0.35, "ci_low": 0.25, "ci_high": 0.45}},
    }
    diff = {
        "a": {"deletion": {"mean": -0.2, "ci_low": -0.25, "ci_high": -0.15}},
        "b": {"deletion": {"mean": 0.1, "ci_low": 0.05, "ci_high": 0.15}},
    }
    said = ranking_findings(ranking, raw, diff, {"deletion": DIFFERENCE})
    assert said.short == (
        "Overall ranking (on the difference from matched random maps): a comes first "
        "(mean rank 1 over 1 metrics; next: b, 2)."
    )
    assert "ranked on each metric's difference from random maps as smooth as its own" in said.sentences[0]
    assert ranking_findings(ranking, raw, diff, {"deletion": SCORE}).short.startswith(
        "Overall ranking (on the scores: no random-map differences): no method clearly leads"
    )


def test_an_old_file_that_ranked_random_is_reranked_on_the_difference(tmp_path: Path) -> None:
    doc = _doc()
    del doc["ranked_on"]
    doc["ranking"] = [  # as scorers before the baseline left the ranking wrote it: raw means
        {"method": "random", "mean_rank": 1.0, "ranks": {}},
        {"method": "gradcam", "mean_rank": 2.0, "ranks": {"average_drop": 1.0}},
    ]
    overall = re.search(r'id="scores-ranking">(.*?)</section>', _page(tmp_path, doc), re.S).group(1)
    gradcam = re.findall(r">([^<]+)</td>", re.search(r"gradcam</th>(.*?)</tr>", overall, re.S).group(1))
    assert gradcam[:4] == ["3", "3", "3", "3"]


# --- B. the Scores lead counts the checks present ------------------------------------------------


@pytest.mark.parametrize(
    ("sanity", "said"),
    [(False, "checked one way: faithfulness."), (True, "checked two ways: faithfulness and sanity checks.")],
)
def test_the_scores_lead_names_the_checks_that_ran(tmp_path: Path, sanity: bool, said: str) -> None:
    text = _text(_page(tmp_path, _doc(sanity)))
    assert f"How well each saliency method explains the model, {said}" in text
    assert "three ways" not in text


# --- C. the difference table has no column that is n/a on every row -----------------------------


def test_scores_md_leaves_out_a_difference_column_with_no_value() -> None:
    md = _table(sanity=True).to_markdown()
    diff = md.split("## Method minus random maps")[1]
    assert "Δ randomisation" not in diff and "n/a" not in diff
    assert "| method | Δ deletion ↓ | Δ insertion ↑ | Δ average_drop ↓ |" in diff
    assert "| randomisation ↓ |" in md  # the scores table keeps it


def test_the_report_leaves_out_a_difference_column_with_no_value(tmp_path: Path) -> None:
    doc = _doc(sanity=True)
    empty = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    for row in doc["difference_vs_matched_random"].values():  # a file that lists the empty cells
        row["randomisation"] = dict(empty)
    page = _page(tmp_path, doc)
    block = page.split("<h4>Difference from a matched random map")[1].split("</table>")[0]
    header = re.findall(r"<th[^>]*>([^<]+)</th>", block.split("</tr>")[0])
    assert [h.strip() for h in header] == ["method", "deletion", "insertion", "average_drop"]
    assert np.isfinite(doc["difference_vs_matched_random"]["gradcam"]["average_drop"]["mean"])
