"""The table of each method's paired difference from a matched random map, with its 95% CI."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from agelens.report.findings import BEATS, WORSE, directed_side, join
from agelens.report.tables import DEGENERATE, Cell, Table, cell, is_baseline, mark_best, number, stat

VS_RANDOM = "Difference from a matched random map [95% CI]"


def vs_random_table(
    diff: dict, stated: dict[str, str], unranked: Collection[str] = (), order: Sequence[str] = ()
) -> Table:
    """Paired difference with a matched random map: a method should beat chance with its CI off zero.

    Numbers are written as ``agelens score`` and scores.md write them (:func:`signed`), rows in
    ``order`` (the ranking) first. An ``unranked`` metric (sparseness) gets no mark: a sparser
    map than chance is a description, not a merit.
    """
    from agelens.metrics.report import signed, unmarked_note

    metrics = [  # a column with no difference on any row (a sanity metric has none) says nothing
        k
        for k in dict.fromkeys(k for r in diff.values() if isinstance(r, dict) for k in r)
        if any(isinstance(r, dict) and number(r.get(k)) is not None for r in diff.values())
    ]
    rows = []
    for meth in sorted(diff, key=lambda m: order.index(m) if m in order else len(order)):
        r = diff[meth]
        cells = [Cell(str(meth), "rowhead")]
        for m in metrics:
            v = r.get(m) if isinstance(r, dict) else None
            c = cell(m, v)
            st = stat(v)
            if st and isinstance(v, dict):
                lo, hi = v.get("ci_low"), v.get("ci_high")
                if isinstance(lo, int | float) and isinstance(hi, int | float):
                    c.sub = DEGENERATE if lo == hi else f"[{signed(lo)}, {signed(hi)}]"
                    side = directed_side(v, stated.get(m)) if m not in unranked else None
                    c.cls += " badge good" if side == BEATS else (" badge bad" if side == WORSE else "")
                    c.text = ("✓ " if side == BEATS else "⚠ " if side == WORSE else "") + signed(st[0])
            cells.append(c)
        rows.append(cells)
    table = Table(VS_RANDOM, ["method", *metrics], rows)
    bold = _bold_differences(table, diff, stated, unranked)
    note = "✓ the CI excludes zero in the good direction (beats chance); ⚠ worse than chance."
    if bold:
        note += (
            " The best difference in each ranked column is in bold: the ranking ranks these "
            "differences, not the means over images."
        )
    undirected = [m for m in metrics if stated.get(m) not in ("higher", "lower") and m not in unranked]
    if undirected:
        them = "it" if len(undirected) == 1 else "them"
        note += f" No mark on {join(undirected)}: scores.json states no direction for {them}."
    if plain := [m for m in metrics if m in unranked]:
        note += " " + unmarked_note(plain)
    table.note = note
    return table


def _bold_differences(table: Table, diff: dict, stated: dict[str, str], unranked: Collection[str]) -> bool:
    """Bold the best difference of each directed, ranked column (ties as shown alike); True if any was."""
    names = [row[0].text for row in table.rows]
    done = False
    for j, m in enumerate(table.columns[1:], start=1):
        d = stated.get(m)
        if d not in ("higher", "lower") or m in unranked:
            continue
        values = [None if is_baseline(n) else number((diff.get(n) or {}).get(m)) for n in names]
        keys = [None if v is None else (-v if d == "higher" else v) for v in values]
        if sum(k is not None for k in keys) >= 2:
            mark_best(table, j, keys)
            done = True
    return done
