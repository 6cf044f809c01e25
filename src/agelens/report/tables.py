"""Generic JSON-to-table shaping, so the report survives schema drift in the files it reads.

The scoring and evaluation code is written by other people and will change. Rather
than bind the page to one schema, any list of dicts or dict of dicts becomes a table,
scalars become key/value rows, and anything deeper is shown as compact JSON. On top
of that, method-by-metric tables get direction arrows and a mean-rank ranking when
the direction of a metric is stated in the file or obvious from its name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from agelens.report.assets import shared_path

MAX_DEPTH = 3
MAX_LIST = 12  # long lists (a training history) are cut, with their length shown

# Name fragments whose direction is unambiguous in this project's scores.
_LOWER_BETTER = ("deletion", "drop", "error", "loss", "mae", "seconds", "runtime", "time_")
_HIGHER_BETTER = ("insertion", "pointing", "energy", "accuracy", "increase", "iou", "hit_rate", "f1")
_BAD_FLAG = ("flag", "fail", "warn", "suspicious", "degenerate", "broken")
_GOOD_FLAG = {"passed", "passes", "pass", "ok", "success", "succeeded", "valid", "beats", "found"}
"""Words of a boolean's key (``passed``, ``face_found``, ``beats_random``) for which false is a problem.

Any other boolean is a setting (``signed``, ``detect``, ``test_time_flip``): a ⚠ beside its
default "no" read as a fault, so such values are shown as plain yes/no.
"""
_ROW_KEYS = ("method", "name", "metric", "class", "group", "layer", "region")
BASELINES = ("random",)
"""Reference rows (``agelens.metrics.adapters.RANDOM``: uniform pixel-noise maps), never contenders.

Scattered noise scores deceptively well on deletion/insertion, so ranking it would mark
an artefact "best". Spelled out here, not imported: the report must not load TensorFlow.
"""
RANK_HERE = "mean rank, these metrics"
RANK_ALL = "mean rank, all metrics"
"""Two different numbers share the words "mean rank"; these labels keep them apart on the page."""
BASELINE_NOTE = (
    "random (baseline): uniform pixel-noise maps, a reference that is never ranked or marked best. "
    "Whether a method beats chance is judged against noise as smooth as its own maps, image by image "
    "(the table of differences with matched random maps), not against this row."
)


@dataclass
class Cell:
    """One rendered table cell: text, a CSS class and an optional heat (0..1) background."""

    text: str
    cls: str = ""
    heat: float | None = None
    title: str = ""
    sub: str = ""  # small print after the value, e.g. a confidence interval
    span: int = 1  # columns this cell covers (one sentence in place of a row of blanks)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""
    arrows: dict[str, str] = field(default_factory=dict)  # column -> "↑" / "↓"
    ranking: list[tuple[str, float]] = field(default_factory=list)  # (row name, mean rank)
    kv: bool = False  # a key/value list rather than a grid (values read left-aligned)
    fold: str = ""  # when set, the table is collapsed (<details>) under this summary: reference, not results


def fmt(value: Any) -> str:
    """Numbers short (3 decimals, thousands separators), everything else readable.

    A value under 0.001 keeps 3 significant digits in plain notation (a CI bound of 0.0000839
    next to 0.012 must not read as 0.000 or as 8.39e-05); only below a millionth does it switch
    to scientific notation.
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 1e5:
            return f"{value:,.0f}"
        if value != 0 and abs(value) < 1e-3:  # 3 significant digits in plain notation, not 8.39e-05
            if abs(value) < 1e-6:
                return f"{value:.3g}"
            return f"{value:.{2 - math.floor(math.log10(abs(value)))}f}"
        return f"{value:,.3f}"
    if isinstance(value, list) and all(_scalar(v) for v in value):
        shown = ", ".join(fmt(v) for v in value[:MAX_LIST])
        return shown + (f", … ({len(value):,} values)" if len(value) > MAX_LIST else "")
    if isinstance(value, dict) and (st := stat(value)) is not None:
        return f"{fmt(st[0])} {st[1]}".strip()
    if (text := prediction_text(value)) is not None:
        return text
    if empty_stat(value):
        return "—"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str, separators=(", ", ": "))
        return text if len(text) <= 160 else text[:157] + "…"
    return str(value)


def pct(value: float) -> str:
    """A share as a percentage ("83.3%") when it lies in 0..1, else the number as :func:`fmt` shows it."""
    return f"{value:.1%}" if 0 <= value <= 1 else fmt(value)


def tie_rank(key: float, keys: list[float]) -> float:
    """Rank of ``key`` among ``keys`` (lower key is better, 1 = best); tied keys share their mean rank."""
    better, equal = sum(k < key for k in keys), sum(k == key for k in keys)
    return better + (equal + 1) / 2


def rank_text(value: Any) -> str:
    """A mean rank with at most 2 decimals ("1", "1.5", "1.22"): ranks are not measured to 1/1000."""
    v = number(value)
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


DEGENERATE = "(all photos equal)"
"""Shown instead of a 95% CI whose ends are equal: every photo scored the same, so the bootstrap
has nothing to resample and its "interval" is a single point, not a measured uncertainty."""

_STAT_KEYS = {"mean", "std", "sem", "n", "ci_low", "ci_high", "lo", "hi", "median", "higher_is_better"}


def stat(v: Any) -> tuple[float, str] | None:
    """``(mean, "[lo, hi]" or "± std")`` for a summary dict such as metrics' ``Score.to_dict()``."""
    if not isinstance(v, dict):
        return None
    low = {str(k).lower(): x for k, x in v.items()}
    mean = low.get("mean")
    if not isinstance(mean, int | float) or isinstance(mean, bool) or not set(low) <= _STAT_KEYS:
        return None
    lo, hi = low.get("ci_low", low.get("lo")), low.get("ci_high", low.get("hi"))
    if isinstance(lo, int | float) and isinstance(hi, int | float) and not (math.isnan(lo) or math.isnan(hi)):
        if lo == hi:  # a bootstrap of identical values: "[0.000, 0.000]" is no interval
            return float(mean), DEGENERATE
        return float(mean), f"[{fmt(float(lo))}, {fmt(float(hi))}]"
    spread = low.get("std", low.get("sem"))
    return float(mean), (f"± {fmt(float(spread))}" if isinstance(spread, int | float) else "")


def prediction_text(v: Any, from_age: bool = False, bins: Any = None) -> str | None:
    """The explain CLI's prediction dict as text: "old 58% (young 12%, middle-aged 30%), age output ≈ 61 y".

    A person reads a prediction, not its JSON; other dicts give None. ``from_age``: the classes are
    the model's age cut by its bins (``model_read_as.groups_from_age``), whose percentages are no
    confidence: the group and the age alone, "old, age output ≈ 61 y". ``bins``: those bins
    (:class:`~agelens.data.bins.AgeBins`, or the report's ``(edges, names)``), so an age just under
    an edge is printed on its group's side ("young, age output ≈ 29.9 y" for 29.96 y, not "≈ 30 y",
    :func:`agelens.model.predict.shown_age`); without them whole years, as before.
    """
    if not (
        isinstance(v, dict)
        and isinstance(v.get("class"), str)
        and set(v) <= {"class", "probabilities", "age"}
    ):
        return None
    probs = v.get("probabilities") if isinstance(v.get("probabilities"), dict) else {}
    probs = {str(k): p for k, p in probs.items() if isinstance(p, int | float) and not isinstance(p, bool)}
    top = v["class"]
    age = v.get("age")
    has_age = isinstance(age, int | float) and not isinstance(age, bool) and math.isfinite(age)
    if from_age and has_age:
        from agelens.model.predict import shown_age

        return f"{top}, age output ≈ {shown_age(float(age), age_bins_of(bins), top)} y"
    text = top + (f" {probs[top]:.0%}" if top in probs else "")
    rest = [f"{k} {p:.0%}" for k, p in probs.items() if k != top]
    text += f" ({', '.join(rest)})" if rest else ""
    if has_age:
        text += f", age output ≈ {age:.0f} y"  # a separate age head's estimate, not the class
    return text


def age_bins_of(bins: Any) -> Any:
    """``bins`` as :class:`~agelens.data.bins.AgeBins`: given so, or as the report's ``(edges, names)``
    pair (:data:`agelens.report.gallery.Bins`); ``None`` for none, or for a pair that makes no bins."""
    from agelens.data.bins import AgeBins

    if bins is None or isinstance(bins, AgeBins):
        return bins
    try:
        edges, names = bins
        return AgeBins(tuple(edges), tuple(names))
    except (TypeError, ValueError):
        return None


def empty_stat(v: Any) -> bool:
    """A summary dict with no value (``mean`` null, e.g. a sanity check a random map cannot take)."""
    if not isinstance(v, dict) or not v:
        return False
    low = {str(k).lower(): x for k, x in v.items()}
    return "mean" in low and low["mean"] is None and set(low) <= _STAT_KEYS


def is_stat(v: Any) -> bool:
    """A summary dict, with or without a value: one cell, never split into sub-columns."""
    return stat(v) is not None or empty_stat(v)


def number(v: Any) -> float | None:
    """A plottable/rankable number from a cell value (``{"mean", "std"}`` counts), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return None if math.isnan(float(v)) else float(v)
    if (st := stat(v)) is not None:
        return None if math.isnan(st[0]) else st[0]
    return None


def flag_sense(key: str) -> str | None:
    """``"bad"`` when a true value under ``key`` is a problem, ``"good"`` when a false one is, else None
    (a plain setting, whose yes/no judges nothing)."""
    low = key.lower()
    if any(w in low for w in _BAD_FLAG):
        return "bad"
    return "good" if _GOOD_FLAG & set(re.split(r"[^a-z0-9]+", low)) else None


def cell(column: str, value: Any, heat: bool = False, context: str = "") -> Cell:
    """A cell with pass/flag badges for check results and status words, and optional heat.

    ``context`` (the table's title) names what a bare key belongs to: ``passed_by_baseline · random``.
    A path the page is shared with is shortened: a model to its file name (:func:`shared_path`).
    """
    value = shared_path(column, value)
    col = column.lower()
    if isinstance(value, bool):
        sense = flag_sense(column) or flag_sense(context)
        if sense is None:
            return Cell(fmt(value))
        bad = value if sense == "bad" else not value
        return Cell(("⚠ " if bad else "✓ ") + fmt(value), "badge bad" if bad else "badge good")
    if isinstance(value, str) and col in ("status", "flag", "result", "verdict", "check"):
        low = value.lower()
        if any(w in low for w in ("fail", "flag", "warn", "bad")):
            return Cell("⚠ " + value, "badge bad")
        if any(w in low for w in ("pass", "ok", "good")):
            return Cell("✓ " + value, "badge good")
    n = number(value)
    h = n if heat and n is not None and 0.0 <= n <= 1.0 else None
    if (st := stat(value)) is not None:
        size = value.get("n")
        return Cell(fmt(st[0]), "num", h, f"n = {size}" if isinstance(size, int) else "", st[1])
    if empty_stat(value):
        return Cell("—")
    return Cell(fmt(value), "num" if n is not None else "", h)


def direction(metric: str, stated: dict[str, str]) -> str | None:
    """``"higher"``/``"lower"`` if stated in the file or obvious from the name, else None."""
    for key in (metric, metric.lower()):
        if key in stated:
            return stated[key]
    low = metric.lower()
    if any(w in low for w in ("std", "sem", "support", "count", "n_")) or low == "n":
        return None
    if any(w in low for w in _LOWER_BETTER):
        return "lower"
    if any(w in low for w in _HIGHER_BETTER):
        return "higher"
    return None


def stated_directions(obj: Any) -> dict[str, str]:
    """Collect ``directions`` / ``higher_is_better`` maps found anywhere in a JSON document."""
    found: dict[str, str] = {}
    if isinstance(obj, dict):
        if isinstance(obj.get("name"), str) and isinstance(obj.get("higher_is_better"), bool):
            found[obj["name"]] = "higher" if obj["higher_is_better"] else "lower"
        for k, v in obj.items():
            kl = str(k).lower()
            if kl in ("direction", "directions") and isinstance(v, dict):
                for m, d in v.items():
                    ds = str(d).lower()
                    if ds in ("higher", "lower", "max", "min", "up", "down", "↑", "↓"):
                        found[str(m)] = "higher" if ds in ("higher", "max", "up", "↑") else "lower"
            elif kl == "higher_is_better" and isinstance(v, dict):
                found.update(
                    {str(m): "higher" if b else "lower" for m, b in v.items() if isinstance(b, bool)}
                )
            elif isinstance(v, dict | list):
                for m, d in stated_directions(v).items():
                    found.setdefault(m, d)
    elif isinstance(obj, list):
        for v in obj:
            for m, d in stated_directions(v).items():
                found.setdefault(m, d)
    return found


def _is_meta(key: str) -> bool:
    return key.lower() in ("direction", "directions", "higher_is_better", "ranking", "rank")


def _rows_of(obj: Any) -> tuple[str, list[tuple[str, dict]]] | None:
    """``(row label, [(row name, row dict)])`` if ``obj`` is a list/dict of flat-ish dicts."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        label = next((k for k in _ROW_KEYS if all(k in r for r in obj)), "")
        rows = [(str(r.get(label, i + 1)) if label else str(i + 1), r) for i, r in enumerate(obj)]
        return label or "#", [(n, _flatten({k: v for k, v in r.items() if k != label})) for n, r in rows]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) and not is_stat(v) for v in obj.values()):
        return "", [(str(k), _flatten(v)) for k, v in obj.items()]
    return None


def is_leaf(v: Any) -> bool:
    return (
        _scalar(v)
        or is_stat(v)
        or prediction_text(v) is not None
        or (isinstance(v, list) and all(map(_scalar, v)))
    )


def _flatten(row: dict, depth: int = 0) -> dict:
    """Lift nested dicts into "outer · inner" columns (e.g. a ranking's per-metric ranks).

    A dict is never one cell of raw JSON: it becomes columns, and an empty one (a
    baseline with no ranks) becomes nothing, so its row shows "—" under the others' columns.
    """
    out: dict = {}
    for k, v in row.items():
        if isinstance(v, dict) and not is_leaf(v) and depth < MAX_DEPTH:
            out.update({f"{k} · {kk}": x for kk, x in _flatten(v, depth + 1).items()})
        else:
            out[k] = v
    return out


def _flat_enough(rows: list[tuple[str, dict]]) -> bool:
    return all(is_leaf(v) for _, r in rows for v in r.values())


def tables_from_json(
    obj: Any,
    title: str,
    *,
    heat: bool = False,
    rank: bool = False,
    stated: dict[str, str] | None = None,
    depth: int = 0,
    arrows: bool = False,
) -> list[Table]:
    """Best-effort tables for any JSON value; never raises on odd shapes.

    ``rank`` arrows, bolds and orders metric columns; ``arrows`` alone marks their direction only.
    """
    stated = stated if stated is not None else stated_directions(obj)
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if not _is_meta(str(k))}
    shaped = _rows_of(obj)
    if shaped and _flat_enough(shaped[1]):
        return [_grid(title, shaped[0], shaped[1], heat=heat, rank=rank, stated=stated, arrows=arrows)]
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if is_leaf(v)}
        out = [_key_value(title, scalars)] if scalars else []
        for k, v in obj.items():
            if k in scalars:
                continue
            sub = f"{title} · {k}" if title else str(k)
            if depth >= MAX_DEPTH:
                out.append(_key_value(sub, {"value": v}))
            else:
                out.extend(
                    tables_from_json(
                        v, sub, heat=heat, rank=rank, stated=stated, depth=depth + 1, arrows=arrows
                    )
                )
        return out
    if isinstance(obj, list):
        if shaped:  # list of dicts with nested values: one row each, nested cells as JSON
            return [_grid(title, shaped[0], shaped[1], heat=heat, rank=rank, stated=stated, arrows=arrows)]
        return [_key_value(title, {"values": obj})]
    return [_key_value(title, {"value": obj})]


def _key_value(title: str, items: dict) -> Table:
    rows = [[Cell(str(k), "rowhead"), cell(str(k), v, context=title)] for k, v in items.items()]
    return Table(title, ["", ""], rows, kv=True)


def _grid(
    title: str,
    label: str,
    rows: list[tuple[str, dict]],
    *,
    heat: bool,
    rank: bool,
    stated: dict[str, str],
    arrows: bool = False,
) -> Table:
    columns: list[str] = []
    for _, r in rows:
        columns.extend(str(k) for k in r if str(k) not in columns)
    body = [[Cell(name, "rowhead")] + [cell(c, r.get(c), heat) for c in columns] for name, r in rows]
    table = Table(title, [label, *columns], body)
    if label in ("", "method"):
        for row, (name, _) in zip(body, rows, strict=True):
            if is_baseline(name):
                mark_baseline(row)
    if rank and len(rows) > 1:
        _rank(table, rows, columns, stated)
    elif arrows:  # still say which way is better: an unranked (or one-row) column is not undirected
        for col in columns:
            d = direction(col, stated)
            if d is not None:
                table.arrows[col] = "↑" if d == "higher" else "↓"
        if table.arrows:
            ranked = "." if rank else "; shown, not ranked on."
            table.note = "↑ higher is better, ↓ lower is better" + ranked
        if any(is_baseline(name) for name, _ in rows):
            table.note = f"{table.note} {BASELINE_NOTE}".strip()
    return table


def is_baseline(name: str) -> bool:
    return str(name).strip().lower() in BASELINES


def mark_baseline(row: list[Cell]) -> None:
    """Show a reference row as one: "random (baseline)", muted, with a tooltip saying why."""
    row[0].sub, row[0].title = "(baseline)", BASELINE_NOTE
    for c in row:
        c.cls = (c.cls + " baseline").strip()


def _rank(table: Table, rows: list[tuple[str, dict]], columns: list[str], stated: dict[str, str]) -> None:
    """Arrow each directed metric, bold its best value, and order rows by mean rank (ties share).

    Baseline rows take no part: they get no rank and no "best" mark, and go last.
    """
    ranks: list[list[float]] = [[] for _ in rows]
    contender = [not is_baseline(name) for name, _ in rows]
    for j, col in enumerate(columns):
        d = direction(col, stated)
        values = [number(r.get(col)) if ok else None for (_, r), ok in zip(rows, contender, strict=True)]
        keys = [None if v is None else (-v if d == "higher" else v) for v in values]
        present = [k for k in keys if k is not None]
        if d is None or len(present) < 2:
            continue
        table.arrows[col] = "↑" if d == "higher" else "↓"
        for i, key in enumerate(keys):
            if key is not None:
                ranks[i].append(tie_rank(key, present))
        mark_best(table, j + 1, keys)
    if table.arrows:
        mean = [sum(r) / len(r) if r else float("inf") for r in ranks]
        order = sorted(range(len(rows)), key=lambda i: (not contender[i], mean[i]))
        table.rows = [table.rows[i] for i in order]  # best first: the table is the ranking
        table.ranking = [(rows[i][0], mean[i]) for i in order if ranks[i]]
        table.note = (
            "↑ higher is better, ↓ lower is better; best in bold; rows ordered by "
            f"“{RANK_HERE}”: the mean of each method's ranks over the ↑/↓ columns of this table only."
        )
    if not all(contender):
        table.note = f"{table.note} {BASELINE_NOTE}".strip()


def mark_best(table: Table, j: int, keys: list[float | None]) -> None:
    """Bold the best of column ``j`` by ``keys`` (lower is better; None takes no part), and every
    cell that shows the same text as it: two methods printed 0.741 are tied on the page, so both
    are bold, even where their unrounded values differ in a late digit."""
    present = [k for k in keys if k is not None]
    if not present:
        return
    best = min(present)
    shown = table.rows[keys.index(best)][j].text
    for i, key in enumerate(keys):
        if key is not None and (key == best or table.rows[i][j].text == shown):
            table.rows[i][j].cls = (table.rows[i][j].cls + " best").strip()
