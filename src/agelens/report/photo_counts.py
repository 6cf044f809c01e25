"""How many photos each score rests on, and why a metric scored fewer than the run did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agelens.report.findings import join, whole_count
from agelens.report.tables import is_baseline


def scored_images(scores: Any) -> int | None:
    """How many photos the scores rest on: ``meta.n_images``, else the largest ``n`` of any score.

    A metric may drop photos it cannot score (NaN), so per-score ``n`` can be smaller than the
    run's count; the largest is what the run scored, the count a reader needs beside a verdict.
    """
    meta = scores.get("meta") if isinstance(scores, dict) else None
    if n := whole_count(meta.get("n_images") if isinstance(meta, dict) else None):
        return n
    table = scores.get("scores") if isinstance(scores, dict) else None
    return largest_n(table if isinstance(table, dict) else {})


def largest_n(table: dict, cols: list[str] | None = None) -> int | None:
    """The largest per-score ``n`` in ``table`` (method -> metric -> stat), over ``cols`` if given."""
    rows = [row for row in table.values() if isinstance(row, dict)]
    found = [
        k
        for row in rows
        for c, v in row.items()
        if (cols is None or c in cols) and isinstance(v, dict) and (k := whole_count(v.get("n")))
    ]
    return max(found, default=None)


_CUE_DROP = (
    "a photo whose cue mask is empty (no age cue drawn on it) has nothing to find, and a map that is zero "
    "everywhere has no share to measure; such photos are left out"
)
_DROPS = {
    "pointing_game": _CUE_DROP,
    "energy_in_mask": _CUE_DROP,
    "cue_energy": _CUE_DROP,
    "stamp_energy": "a photo on which the map is zero everywhere has no energy to share, and is left out",
}
"""Why a metric scores fewer photos than were scored: what gives it no value (NaN) in
``agelens.metrics.localisation`` and ``agelens.metrics.shortcut``."""
_DROP_DEFAULT = "photos the metric gives no value for are left out"
_DROP_SHORT = {
    m: "The other {k} have an empty cue mask (no age cue drawn on them), so there is nothing to find."
    for m in ("pointing_game", "energy_in_mask")
}


def _drop_reason(metrics: Sequence[str]) -> str:
    """The first of ``metrics`` with a known reason for dropping photos (the key of :data:`_DROPS`)."""
    return next((m for m in metrics if m in _DROPS), "")


def drop_short(metrics: Sequence[str]) -> str | None:
    """The Key-findings clause on why ``metrics`` rest on fewer photos, ``{k}`` for how many fewer;
    None when no reason is known."""
    return _DROP_SHORT.get(_drop_reason(metrics))


def dropped_note(table: dict, metrics: Sequence[str], total: int) -> str:
    """Which columns rest on fewer than ``total`` photos, on how many, and why ("" when none do).

    Why: "27 of the 48 photos" with no reason reads as lost data; a photo with no age cue drawn
    simply has nothing for a localisation metric to find. Baseline rows and zero counts (a metric
    a row cannot take) are not counted.
    """
    said: dict[str, dict[str, list[str]]] = {}  # reason -> counts -> metrics
    for metric in metrics:
        ns = {
            str(meth): k
            for meth, row in table.items()
            if not is_baseline(str(meth)) and isinstance(row, dict) and isinstance(row.get(metric), dict)
            and (k := whole_count(row[metric].get("n"))) is not None
        }  # fmt: skip
        short = {m: k for m, k in ns.items() if k < total}
        if not short:
            continue
        if len(set(short.values())) == 1 and len(short) == len(ns):
            counts = f"{next(iter(short.values()))} of the {total} photos"
        else:
            counts = f"{join(map(str, short.values()))} of the {total} photos for {join(short)}"
        said.setdefault(_DROPS.get(metric, _DROP_DEFAULT), {}).setdefault(counts, []).append(metric)
    return " ".join(
        f"{'; '.join(f'{join(ms)} {_are(ms)} scored on {c}' for c, ms in by.items())}: {why}."
        for why, by in said.items()
    )


def _are(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"
