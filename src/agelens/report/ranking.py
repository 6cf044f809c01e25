"""The overall ranking of methods: its table, its section, and the reranking of each section's table.

A metric is ranked on each method's difference from a matched random map where the file has one,
else on its score, as ``agelens.metrics.report.ScoreTable.ranking`` ranks; the ``random``
baseline is a reference and never ranked.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from agelens.report.findings import DIFFERENCE, SCORE, join, ranked_on_phrase
from agelens.report.page import Section
from agelens.report.tables import (
    BASELINE_NOTE,
    RANK_ALL,
    RANK_HERE,
    Cell,
    Table,
    direction,
    is_baseline,
    mark_baseline,
    number,
    rank_text,
    tie_rank,
)
from agelens.report.vs_random import VS_RANDOM


def contender_ranking(
    scores: dict, table: dict[str, dict], stated: dict[str, str]
) -> tuple[list[dict], dict[str, str] | None]:
    """The file's ranking of methods, never with the baseline in it, and what its ranks compare
    (metric -> ``DIFFERENCE`` or ``SCORE``; None when the file does not say).

    Newer files state it (``ranked_on``). Files from before ranked every metric on its score, and
    older ones ranked ``random`` with the methods, which also shifted every method's ranks: those
    are recomputed without it, as ``ScoreTable.ranking`` now ranks (on the difference from matched
    random maps where the file has one).
    """
    ranking, declared = scores.get("ranking"), scores.get("ranked_on")
    rows = [r for r in ranking if isinstance(r, dict)] if isinstance(ranking, list) else []
    ranked_on = {str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else None
    if not any(is_baseline(str(r.get("method", ""))) for r in rows):
        return rows, ranked_on
    diff = scores.get("difference_vs_matched_random")
    return _rank_methods(
        {m: r for m, r in table.items() if not is_baseline(m)}, stated, diff if isinstance(diff, dict) else {}
    )


def _rank_methods(
    table: dict[str, dict], stated: dict[str, str], diff: dict | None = None
) -> tuple[list[dict], dict[str, str]]:
    """Mean rank over directed metrics (1 = best, ties share), as ``ScoreTable.ranking`` computes it:
    a metric on which two methods have a difference from matched random maps (``diff``) is ranked on
    it, any other on the score. Returns the rows and what each metric's ranks compare."""
    ranks: dict[str, dict[str, float]] = {m: {} for m in table}
    ranked_on: dict[str, str] = {}
    for metric in dict.fromkeys(k for r in table.values() for k in r):
        d = direction(metric, stated)
        if d is None:
            continue
        found = {DIFFERENCE: _metric_values(diff, table, metric), SCORE: _metric_values(table, table, metric)}
        on = next((on for on, values in found.items() if len(values) >= 2), None)
        if on is None:
            continue
        values = found[on]
        keys = {m: v if d == "lower" else -v for m, v in values.items()}
        ranked_on[metric] = on
        for m, k in keys.items():
            ranks[m][metric] = tie_rank(k, list(keys.values()))
    rows = [
        {"method": m, "mean_rank": sum(r.values()) / len(r) if r else None, "ranks": r}
        for m, r in ranks.items()
    ]
    rows.sort(key=lambda r: (r["mean_rank"] is None, r["mean_rank"] or 0.0, r["method"]))
    return rows, ranked_on


def _metric_values(source: dict | None, methods: Collection[str], metric: str) -> dict[str, float]:
    """``metric``'s mean per method in ``source`` (method -> metric -> stat), where it has one."""
    rows = {m: source.get(m) for m in methods} if isinstance(source, dict) else {}
    return {m: v for m, r in rows.items() if isinstance(r, dict) and (v := number(r.get(metric))) is not None}


def rerank(table: Table, ranking: list[dict], ranked_on: dict[str, str]) -> Table:
    """Order a section's scores table, bold its best values and give its “mean rank, these metrics”
    from the overall ranking's per-metric ranks, so they rank what the overall ranking ranks.

    Why: the generic table ranks the means it shows, so a method could be bold "best" on a metric on
    which its difference from matched random maps is ⚠ worse than random. A table without a ranked
    column ranked on the difference is left as it was (its ranks are the means it shows).
    """
    cols = [c for c in table.columns[1:] if c in ranked_on]
    if not table.ranking or not any(ranked_on[c] == DIFFERENCE for c in cols):
        return table
    ranks = {str(r.get("method")): r.get("ranks") for r in ranking if isinstance(r.get("ranks"), dict)}
    mean: dict[str, float] = {}
    for name, r in ranks.items():
        mine = [x for c in cols if (x := number(r.get(c))) is not None]
        if mine:
            mean[name] = sum(mine) / len(mine)
    table.rows.sort(key=lambda row: (is_baseline(row[0].text), mean.get(row[0].text, math.inf)))
    table.ranking = [(row[0].text, mean[row[0].text]) for row in table.rows if row[0].text in mean]
    phrase = ranked_on_phrase({c: ranked_on[c] for c in cols})
    # The bold stays on the best mean shown (tables._rank): bold on a worse-looking number, because
    # its difference from random ranked first, read as a mistake. The order is the ranking's.
    said = (
        "↑ higher is better, ↓ lower is better; the best mean in each column is in bold. "
        f"Rows are ordered by “{RANK_HERE}”, ranked {phrase} (as the overall ranking is), not on these "
        f"means, so the order can differ from the bold; “{VS_RANDOM}” bolds the best difference."
    )
    rest = f" {BASELINE_NOTE}" if BASELINE_NOTE in table.note else ""  # the generic note's one keeper
    table.note = (said + rest).strip()
    return table


def ranking_section(
    table: Table, sections: list[str] | None = None, ranked_on: dict[str, str] | None = None
) -> Section:
    """The ranking over all metrics gets its own heading: under "Faithfulness" it read as that alone.

    ``sections`` names the sections whose metrics were ranked on (lower case), so the lead lists
    what the rank rests on, robustness included when it was scored, and nothing that was not.
    ``ranked_on`` says what the ranks compare (the difference from matched random maps, or the score).
    """
    which = f" ({join(sections)})" if sections else ""
    lead = (
        f"“{RANK_ALL}”: each method's ranks averaged over every directed metric of the sections below"
        f"{which}. Each section's table has its own “mean rank, these metrics”."
    )
    if basis := _basis_sentence(ranked_on):
        lead += f" {basis}"
    return Section("scores-ranking", "Overall ranking (all metrics)", lead, tables=[table])


def _basis_sentence(ranked_on: dict[str, str] | None) -> str:
    """What the page's ranks compare, in one sentence; for a file that does not say, that its ranks
    are its own (files written before ranking on the difference from matched random maps ranked means)."""
    if ranked_on is None:
        return (
            "Ranked as scores.json ranked them, on the means (it predates ranking on the difference "
            "from matched random maps; score again to rank on it)."
        )
    phrase = ranked_on_phrase(ranked_on, f"the “{VS_RANDOM}” table")
    return f"Ranked {phrase}." if phrase else ""


def ranking_table(
    ranking: list[dict],
    title: str,
    ranked_on: dict[str, str] | None = None,
    sanity: dict[str, str | None] | None = None,
) -> Table:
    """Method, mean rank and one "rank on <metric>" column per metric; a missing rank is "—", never ``{}``.

    ``sanity`` (method -> "pass" / "inconclusive" / "fail") marks a method that fails the sanity
    check, or is not shown to pass it, beside its rank: a map that survives randomising the model
    can rank first on faithfulness, and a bare "1" next to it would recommend it. Ranks stay as they are.
    """
    metrics = list(dict.fromkeys(k for r in ranking if isinstance(r.get("ranks"), dict) for k in r["ranks"]))
    rows = []
    for i, r in enumerate(ranking):
        ranks = r.get("ranks") if isinstance(r.get("ranks"), dict) else {}
        name = str(r.get("method", r.get("name", i + 1)))
        row = [Cell(name, "rowhead"), Cell(rank_text(r.get("mean_rank")), "num rank")]
        row += [Cell(rank_text(ranks.get(m)), "num") for m in metrics]
        if is_baseline(name):
            mark_baseline(row)
        elif (mark := _SANITY_MARK.get((sanity or {}).get(name) or "")) is not None:
            row[1].sub, row[1].cls = mark[0], f"{row[1].cls} {mark[1]}"
        rows.append(row)
    on = ranked_on_phrase({m: v for m, v in (ranked_on or {}).items() if m in metrics})
    note = (
        "1 = best; each metric ranked in its stated direction"
        + (f", {on}" if on else "")
        + ", ties share a rank. The random baseline is a reference and is not ranked."
    )
    shown = {(sanity or {}).get(str(r.get("method"))) for r in ranking}
    if shown & set(_SANITY_MARK):
        note += (
            f" {_SANITY_MARK['fail'][0]}: the method's map survives the randomisation of the sanity checks; "
            f"{_SANITY_MARK['inconclusive'][0]}: its sanity check is inconclusive. Its ranks are kept, "
            "but such a map may not show what the model learned (Sanity checks)."
        )
    return Table(title, ["method", RANK_ALL, *(f"rank on {m}" for m in metrics)], rows, note=note)


_SANITY_MARK = {
    "fail": ("⚠ fails sanity check", "badge bad"),
    "inconclusive": ("? sanity inconclusive", "badge unsure"),
}
"""What the overall ranking shows beside a method's mean rank for its sanity verdict (none for a pass)."""
