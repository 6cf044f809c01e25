"""The sanity checks' verdicts: does a method's map change when the model is randomised?

``agelens.metrics`` scores each map's similarity to the map of a randomised model (its weights,
or a twin trained on shuffled labels); a map that explains the model must change, so lower is
better and a score whose 95% CI stays above :data:`SPEARMAN_FLAG` flags the method.
"""

from __future__ import annotations

from typing import Any

from agelens.report.findings import BEATS, LABELS, UNCLEAR, WEIGHTS, WORSE, Said, bounds_side, sanity_findings
from agelens.report.tables import Cell, Table, direction, is_baseline, number

SPEARMAN_FLAG = 0.5
"""Sanity rule of ``agelens.metrics.sanity``: maps whose similarity, averaged over a cascading
randomisation, stays above this are flagged."""
DATA_RANDOMISATION = "data_randomisation"
"""The data-randomisation metric's column (``agelens.metrics.data_randomisation``)."""


_SIMILARITY = ("spearman", "ssim", "correlation", "similarity", "randomis")
"""Sanity scores compare a map with the map after randomisation: a map that depends on the
weights changes, so for these *lower* is better (unless the file declares otherwise)."""
_VERDICTS = {
    "pass": ("✓ passes", "badge good"),
    "inconclusive": ("? inconclusive: CI contains {t}", "badge unsure"),
    "fail": ("⚠ flagged: map survives the randomisation", "badge bad"),
}
_SANITY = {BEATS: "pass", UNCLEAR: "inconclusive", WORSE: "fail"}
"""Sanity verdicts are the CI sides of a lower-is-better score against the threshold."""


def verdict_column(table: Table, verdicts: dict[str, str | None]) -> Table:
    """Add each method's sanity verdict (:func:`method_verdicts`), decided by where each score's 95% CI
    lies against the threshold, and the note saying so.

    A mean under the threshold is not enough: with few images the CI can reach well above
    it, and "passes" would claim more than the data show (see :func:`verdict`).
    """
    table.columns.append("verdict")
    for row in table.rows:
        worst = verdicts.get(row[0].text)
        if worst is None:
            row.append(Cell("—", "baseline" if "baseline" in row[0].cls else ""))
            continue
        text, cls = _VERDICTS[worst]
        row.append(Cell(text.format(t=SPEARMAN_FLAG), cls))
    table.note = f"{_verdict_rule(table.columns[1:-1])} {table.note}".strip()
    return table


def _verdict_rule(columns: list[str]) -> str:
    """What the sanity ``columns`` measure and how the verdict reads their CIs."""
    what = []
    if any(c != DATA_RANDOMISATION for c in columns):
        what.append(
            "randomisation: similarity (Spearman) between each map before and after randomising the weights "
            "from the top layer down, averaged over the stages (a quarter, half, three quarters, all of the "
            "layers random)"
        )
    if DATA_RANDOMISATION in columns:
        what.append(
            f"{DATA_RANDOMISATION}: similarity (Spearman) between each map and the same method's map of the "
            "network trained on shuffled labels"
        )
    return (
        f"{'; '.join(what)}. Lower is better (a faithful map depends on what the model learned). Verdict on "
        f"the 95% CI, the worst over the columns: ✓ passes when its upper end is below {SPEARMAN_FLAG}; "
        f"⚠ flagged when its lower end is above {SPEARMAN_FLAG}; ? inconclusive when it contains "
        f"{SPEARMAN_FLAG} (score more images). Without a CI the mean decides."
    )


def control_fit(scores: dict) -> str | None:
    """One sentence on how well the shuffled-label control memorised its labels, when recorded.

    Why: the check isolates what the model learned from its labels only if the control learned
    its own (random) ones; one that stayed near chance is close to its random start.
    """
    meta = scores.get("meta") if isinstance(scores, dict) else None
    fit = meta.get("shuffled_model_fit") if isinstance(meta, dict) else None
    if not isinstance(fit, int | float) or isinstance(fit, bool):
        return None
    names = meta.get("class_names")
    k = len(names) if isinstance(names, list) else 0
    chance = f" (chance about {1 / k:.2f} for {k} classes)" if k else ""
    low = "; it memorised little, so its maps are close to those of its random start" if fit < 0.6 else ""
    return (
        f"The shuffled-label network fits its permuted training labels to {fit:.2f} training accuracy"
        f"{chance}{low}."
    )


def _check_of(column: str) -> str:
    """The sanity check a column holds, in the words the findings use."""
    return LABELS if column == DATA_RANDOMISATION else WEIGHTS


def sanity_said(rows: dict[str, dict], columns: list[str], verdicts: dict[str, str | None]) -> Said:
    """The sanity findings: each method's worst verdict (``verdicts``, :func:`method_verdicts` of
    ``rows``, which the verdict column shows: judged once for both), the checks that were scored
    (those with a verdict for some method), and per flagged method the checks that flagged it."""
    scored = [
        c
        for c in columns
        if any(verdict(r.get(c)) is not None for m, r in rows.items() if not is_baseline(m))
    ]
    checks = tuple(dict.fromkeys(_check_of(c) for c in scored))
    failed = {
        meth: tuple(_check_of(c) for c in scored if verdict(r.get(c)) == "fail") for meth, r in rows.items()
    }
    return sanity_findings(verdicts, SPEARMAN_FLAG, checks, failed)


def method_verdicts(rows: dict[str, dict]) -> dict[str, str | None]:
    """Each method's worst sanity verdict over its columns (None where none has a value): the one
    owner of that verdict, shown in the table's verdict column, the findings and the ranking."""
    order = list(_VERDICTS)
    out: dict[str, str | None] = {}
    for meth, r in rows.items():
        found = [v for v in map(verdict, r.values()) if v is not None]
        out[meth] = max(found, key=order.index) if found else None
    return out


def verdict(v: Any, threshold: float = SPEARMAN_FLAG) -> str | None:
    """``"pass"`` / ``"inconclusive"`` / ``"fail"`` for one sanity score (None without a value).

    The findings' CI rule (:func:`~agelens.report.findings.bounds_side`) with lower is better
    and ``threshold`` for zero; a score without a CI is judged on its mean alone.
    """
    mean = number(v)
    if mean is None:
        return None
    lo, hi = (number(v.get("ci_low")), number(v.get("ci_high"))) if isinstance(v, dict) else (None, None)
    if lo is None or hi is None:
        lo = hi = mean
    return _SANITY[bounds_side(lo, hi, False, threshold)]


def sanity_directions(columns: list[str], stated: dict[str, str]) -> dict[str, str]:
    """``stated`` plus "lower" for similarity columns whose direction the file does not declare."""
    guessed = {
        c: "lower"
        for c in columns
        if direction(c, stated) is None and any(w in c.lower() for w in _SIMILARITY)
    }
    return {**guessed, **stated}
