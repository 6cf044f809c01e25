"""The "Scores" and "Shortcut check" sections, from ``scores/*.json`` and ``scores/*.png``.

``agelens.metrics`` writes ``scores.json`` as ``{"metrics": [{name, higher_is_better,
category}], "scores": {method: {metric: {mean, ci_low, ci_high, n}}}, "ranking": [...],
"difference_vs_matched_random": ..., "regions": ...}``. That shape is read first, split
into faithfulness / sanity / localisation tables by each metric's category. Any other
shape falls back to grouping top-level keys by name and to generic tables, so a schema
change degrades the page gracefully instead of breaking it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agelens.report.assets import Notes, image_uri, read_json
from agelens.report.page import Figure, Section
from agelens.report.tables import (
    Cell,
    Table,
    cell,
    fmt,
    is_leaf,
    number,
    stat,
    stated_directions,
    tables_from_json,
)

SPEARMAN_FLAG = 0.5
"""Sanity rule of ``agelens.metrics.sanity``: maps that survive full randomisation above this are flagged."""

_CATEGORIES = (
    (
        "faithfulness",
        "Faithfulness",
        "Does removing the highlighted pixels change the prediction most?",
        True,
    ),
    ("randomisation", "Sanity checks", "Maps must change when the model's weights are randomised.", False),
    ("localisation", "Localisation", "Does the map land on the ground-truth age cues?", True),
)
_NAME_GROUPS = (  # fallback for files without per-metric categories
    ("faithfulness", ("faith", "deletion", "insertion", "drop", "road")),
    ("randomisation", ("sanity", "random", "cascad")),
    ("localisation", ("local", "pointing", "energy", "mask")),
)
_NOT_TABLES = ("curves", "gallery", "metrics", "methods", "matched_random", "direction", "directions")


def scores_section(run_dir: Path, notes: Notes) -> Section | None:
    sd = run_dir / "scores"
    scores = read_json(sd / "scores.json", notes, "Scores")
    regions = read_json(sd / "regions.json", notes, "Regions")
    pngs = sorted(p for p in sd.glob("*.png") if not p.stem.startswith("shortcut")) if sd.is_dir() else []
    if scores is None and regions is None and not pngs:
        notes.add("Scores: no scores/ folder; faithfulness, sanity and localisation omitted.")
        return None
    sec = Section("scores", "Scores", "How well each saliency method explains the model, checked three ways.")
    if isinstance(scores, dict) and isinstance(scores.get("scores"), dict):
        sec.subsections += _structured(scores)
    elif scores is not None:
        sec.subsections += _by_name(scores)
    if regions is None and isinstance(scores, dict):
        regions = scores.get("regions") or None
    used: set[Path] = set()
    for sid, title, stem in (
        ("regions", "Where the maps look, per age group", "region"),
        ("class-means", "Mean maps per class", "class_mean"),
    ):
        sub = Section(f"scores-{sid}", title)
        if sid == "regions" and regions is not None:
            sub.lead = (
                "Share of map energy per face region; compare with the area share a uniform map would get."
            )
            sub.tables = region_tables(regions)
        for p in pngs:
            if p.stem.startswith(stem) and (uri := image_uri(p)):
                sub.figures.append(Figure(_caption(p), uri))
                used.add(p)
        if sub.tables or sub.figures:
            sec.subsections.append(sub)
    other = [Figure(_caption(p), u) for p in pngs if p not in used and (u := image_uri(p))]
    if other:
        sec.subsections.append(Section("scores-figures", "Score plots", figures=other))
    return sec


def _caption(p: Path) -> str:
    return p.stem.replace("_", " ").replace("curves ", "curves: ")


def _category(name: str, info: dict) -> str:
    if isinstance(info.get("category"), str):
        return info["category"]
    low = name.lower()
    return next((cat for cat, words in _NAME_GROUPS if any(w in low for w in words)), "other")


def _structured(scores: dict) -> list[Section]:
    infos = {m["name"]: m for m in scores.get("metrics") or [] if isinstance(m, dict) and "name" in m}
    stated = stated_directions(scores)
    table: dict[str, dict] = {m: r for m, r in scores["scores"].items() if isinstance(r, dict)}
    metrics = list(dict.fromkeys(k for r in table.values() for k in r))
    out: list[Section] = []
    cats = [*_CATEGORIES, ("other", "Other metrics", "", True)]
    for cat, title, lead, rank in cats:
        cols = [
            m
            for m in metrics
            if _category(m, infos.get(m, {})) == cat
            or (cat == "other" and _category(m, infos.get(m, {})) not in {c[0] for c in _CATEGORIES})
        ]
        if not cols:
            continue
        rows = {meth: {c: r[c] for c in cols if c in r} for meth, r in table.items()}
        sub = Section(f"scores-{cat}", title, lead)
        t = tables_from_json(rows, "Mean over images [95% CI]", rank=rank, stated=stated)
        if cat == "randomisation":
            t = [_flag(tab, rows) for tab in t]
        sub.tables = t
        out.append(sub)
    diff = scores.get("difference_vs_matched_random")
    if isinstance(diff, dict) and diff and out:
        out[0].tables.append(_vs_random(diff, stated))
    ranking = scores.get("ranking")
    if isinstance(ranking, list) and ranking and out:
        out[0].tables.insert(0, tables_from_json(ranking, "Overall ranking (mean rank over all metrics)")[0])
    extra = {
        k: v
        for k, v in scores.items()
        if k not in ("scores", "ranking", "regions", "difference_vs_matched_random")
        and k not in _NOT_TABLES
        and v not in (None, {}, [])
    }
    if extra:
        labels = {"meta": "Scoring settings", "skipped": "Metrics not computed"}
        tables = [t for k, v in extra.items() for t in tables_from_json(v, labels.get(k, str(k)))]
        out.append(Section("scores-details", "Scoring details", tables=tables))
    return out


def _flag(table: Table, rows: dict[str, dict]) -> Table:
    """Add the sanity verdict: flagged when maps still correlate with the originals after randomisation."""
    table.columns.append("verdict")
    for row in table.rows:
        values = [v for v in map(number, rows.get(row[0].text, {}).values()) if v is not None]
        if not values:
            row.append(Cell("—"))
            continue
        flagged = max(values) > SPEARMAN_FLAG
        row.append(cell("flagged", flagged))
        row[-1].text = "⚠ flagged: map ignores the weights" if flagged else "✓ passes"
    table.note = (
        f"Spearman correlation between maps before and after full randomisation (lower is better); "
        f"flagged above {SPEARMAN_FLAG}."
    )
    return table


def _vs_random(diff: dict, stated: dict[str, str]) -> Table:
    """Paired difference with a matched random map: a method should beat chance with its CI off zero."""
    metrics = list(dict.fromkeys(k for r in diff.values() if isinstance(r, dict) for k in r))
    rows = []
    for meth, r in diff.items():
        cells = [Cell(str(meth), "rowhead")]
        for m in metrics:
            v = r.get(m) if isinstance(r, dict) else None
            c = cell(m, v)
            st = stat(v)
            if st and isinstance(v, dict):
                lo, hi = v.get("ci_low"), v.get("ci_high")
                good = stated.get(m, "higher") == "higher"
                if isinstance(lo, int | float) and isinstance(hi, int | float):
                    beats = (lo > 0) if good else (hi < 0)
                    loses = (hi < 0) if good else (lo > 0)
                    c.cls += " badge good" if beats else (" badge bad" if loses else "")
                    c.text = ("✓ " if beats else "⚠ " if loses else "") + f"{st[0]:+.3f}"
            cells.append(c)
        rows.append(cells)
    return Table(
        "Difference from a matched random map [95% CI]",
        ["method", *metrics],
        rows,
        note="✓ the CI excludes zero in the good direction (beats chance); ⚠ worse than chance.",
    )


def _by_name(scores: Any) -> list[Section]:
    """Fallback: group top-level keys into the three families by their names."""
    stated = stated_directions(scores)
    if not isinstance(scores, dict):
        return [
            Section("scores-other", "Scores", tables=tables_from_json(scores, "", rank=True, stated=stated))
        ]
    rest = {k: v for k, v in scores.items() if str(k).lower() not in _NOT_TABLES}
    out = []
    for cat, title, lead, rank in _CATEGORIES:
        words = dict(_NAME_GROUPS)[cat]
        keys = [k for k in list(rest) if any(w in str(k).lower() for w in words)]
        tables = [
            t
            for k in keys
            for t in tables_from_json(rest.pop(k), "" if len(keys) == 1 else str(k), rank=rank, stated=stated)
        ]
        if tables:
            out.append(Section(f"scores-{cat}", title, lead, tables=tables))
    ranking = rest.pop("ranking", None)
    if ranking is not None and out:
        out[0].tables.insert(0, tables_from_json(ranking, "Ranking (from scores.json)")[0])
    if rest:
        out.append(
            Section(
                "scores-details", "Other scores", tables=tables_from_json(rest, "", rank=True, stated=stated)
            )
        )
    return out


def region_tables(regions: Any) -> list[Table]:
    """``{regions, groups, shares[G][R], area[R], counts[G]}`` (per method or alone) as group x region."""
    if isinstance(regions, dict) and {"regions", "groups", "shares"} <= set(regions):
        return [_region_matrix("", regions)]
    if (
        isinstance(regions, dict)
        and regions
        and all(isinstance(v, dict) and {"regions", "groups", "shares"} <= set(v) for v in regions.values())
    ):
        return [_region_matrix(str(k), v) for k, v in regions.items()]
    return tables_from_json(regions, "Share of map energy per face region", heat=True)


def _region_matrix(title: str, r: dict) -> Table:
    names, groups, shares = list(r["regions"]), list(r["groups"]), r["shares"]
    counts, area = r.get("counts"), r.get("area")
    rows = []
    for g, name in enumerate(groups):
        row = shares[g] if isinstance(shares, list) and g < len(shares) else []
        cells = [Cell(str(name), "rowhead")] + [
            cell(str(n), row[i] if i < len(row) else None, heat=True) for i, n in enumerate(names)
        ]
        if isinstance(counts, list):
            cells.append(cell("n", counts[g] if g < len(counts) else None))
        rows.append(cells)
    if isinstance(area, list):
        rows.append(
            [Cell("area share", "rowhead muted")]
            + [Cell(fmt(a), "num muted") for a in area]
            + ([Cell("")] if isinstance(counts, list) else [])
        )
    return Table(title, ["group", *map(str, names), *(["images"] if isinstance(counts, list) else [])], rows)


def shortcut_section(run_dir: Path, notes: Notes) -> Section | None:
    sd = run_dir / "scores"
    data = read_json(sd / "shortcut.json", notes, "Shortcut")
    pngs = sorted(sd.glob("shortcut*.png")) if sd.is_dir() else []
    if data is None and not pngs:
        return None
    sec = Section(
        "shortcut",
        "Shortcut check",
        "A model trained with a label-leaking corner stamp: does accuracy collapse without the stamp, "
        "and do the maps point at it?",
    )
    if data is not None:
        for path, v in _leaves(data):
            n = (
                stat(v)[0]
                if stat(v)
                else (v if isinstance(v, int | float) and not isinstance(v, bool) else None)
            )
            if "acc" in path.lower() and n is not None:
                label = path.replace("_", " ").replace("accuracy · ", "accuracy ")
                sec.stats.append((label, f"{n:.1%}" if 0 <= n <= 1 else fmt(n)))
        sec.stats = sec.stats[:6]
        body = (
            {k: v for k, v in data.items() if "acc" not in str(k).lower()} if isinstance(data, dict) else data
        )
        labels = {"methods": "Map energy on the stamp, per method", "config": "Settings"}
        if isinstance(body, dict):
            flat = {k: v for k, v in body.items() if is_leaf(v)}
            sec.tables = tables_from_json(flat, "Settings") if flat else []
            sec.tables += [
                t
                for k, v in body.items()
                if k not in flat
                for t in tables_from_json(v, labels.get(k, str(k)), heat=True)
            ]
        else:
            sec.tables = tables_from_json(body, "", heat=True)
    sec.figures = [Figure(_caption(p), u) for p in pngs if (u := image_uri(p))]
    return sec


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict) and stat(obj) is None:
        return [x for k, v in obj.items() for x in _leaves(v, f"{prefix} · {k}" if prefix else str(k))]
    return [(prefix, obj)]
