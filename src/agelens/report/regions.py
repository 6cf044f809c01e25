"""Where the maps look: share of map energy per face region, images grouped by true age group."""

from __future__ import annotations

import math
from typing import Any

from agelens.report.tables import Cell, Table, cell, fmt, is_baseline, number, tables_from_json

BY_LABEL = "by true label"
"""Region shares group images by their true age group (``score_methods``'s ``labels``)."""


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
    area = [number(a) for a in area] if isinstance(area, list) and len(area) == len(names) else None
    rows = []
    for g, name in enumerate(groups):
        row = shares[g] if isinstance(shares, list) and g < len(shares) else []
        n = counts[g] if isinstance(counts, list) and g < len(counts) else None
        head = Cell(str(name), "rowhead", sub=f"n = {fmt(n)}" if n is not None else "")
        values = [row[i] if isinstance(row, list) and i < len(row) else None for i in range(len(names))]
        if n == 0 or all(number(v) is None for v in values):
            rows.append([head, Cell(f"no images with true label {name}", "muted empty", span=len(names))])
            continue
        cells = [_share_cell(str(names[i]), v, area[i] if area else None) for i, v in enumerate(values)]
        rows.append([head, *cells])
    if area is not None:
        rows.append([Cell("area share", "rowhead muted")] + [Cell(fmt(a), "num muted") for a in area])
    shown = f"{title} (baseline)" if is_baseline(title) else title
    note = (
        "Shading: share ÷ area share (× beside each value), i.e. how much more of the map falls on a region "
        "than a uniform map would put there; unshaded at ×1 or below, darkest at ×4 or more."
        if area is not None
        else "Shading: the share itself (no area shares recorded to compare with)."
    )
    title = " · ".join(filter(None, (shown, BY_LABEL)))
    return Table(title, ["true label", *map(str, names)], rows, note=note)


def _share_cell(region: str, value: Any, area: float | None) -> Cell:
    """A region's share, shaded by share/area: a big region (background) soaks up energy by size alone."""
    if area is None:
        return cell(region, value, heat=True)
    c = cell(region, value)
    share = number(value)
    if share is not None and area > 0:
        ratio = share / area
        c.heat = max(0.0, min(1.0, math.log2(ratio) / 2)) if ratio > 0 else 0.0
        c.sub = f"×{ratio:.1f}"
    return c
