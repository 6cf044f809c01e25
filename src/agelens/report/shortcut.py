"""The "Shortcut check" section, from ``scores/shortcut.json`` and ``scores/shortcut*.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agelens.report.assets import Notes, image_uri, read_json
from agelens.report.findings import SHORTCUT_COLUMNS, shortcut_findings, whole_count, with_sample
from agelens.report.page import Figure, Section
from agelens.report.photo_counts import dropped_note
from agelens.report.scores import plot_caption, say, scores_dir
from agelens.report.tables import is_leaf, pct, stat, tables_from_json


def shortcut_section(run_dir: Path, notes: Notes) -> Section | None:
    """The "Shortcut check" section: accuracy with and without the label-leaking stamp, the maps' energy
    on it, and the plots; None when the run has no shortcut files."""
    sd = scores_dir(run_dir)
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
                # a drop is a difference of two accuracies: percentage points, not a percentage
                pp = "drop" in path.lower() and -1 <= n <= 1
                shown = f"{n * 100:.1f} pp" if pp else pct(n)
                sec.stats.append((label + (" (percentage points)" if pp else ""), shown))
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
            total = _shortcut_count(data)
            methods = body.get("methods") if isinstance(body.get("methods"), dict) else {}
            for t in sec.tables:
                if any(c in t.columns for c in ("stamp_energy", "stamp_pointing", "cue_energy", "cue_area")):
                    why = dropped_note(methods, t.columns[1:], total) if total else ""
                    t.note = " ".join(filter(None, (SHORTCUT_COLUMNS, why, t.note)))
        else:
            sec.tables = tables_from_json(body, "", heat=True)
        say(sec, shortcut_findings(data))
        sec.key = with_sample(sec.key, _shortcut_count(data), "draw firm conclusions")
    sec.figures = [Figure(plot_caption(p), u) for p in pngs if (u := image_uri(p))]
    return sec


def _shortcut_count(data: Any) -> int | None:
    """Test faces the shortcut check rests on: ``config.n_test``, else the accuracies' ``n``."""
    config = data.get("config") if isinstance(data, dict) else None
    if n := whole_count(config.get("n_test") if isinstance(config, dict) else None):
        return n
    acc = data.get("accuracy") if isinstance(data, dict) else None
    values = acc.values() if isinstance(acc, dict) else []
    return max((k for v in values if isinstance(v, dict) and (k := whole_count(v.get("n")))), default=None)


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict) and stat(obj) is None:
        return [x for k, v in obj.items() for x in _leaves(v, f"{prefix} · {k}" if prefix else str(k))]
    return [(prefix, obj)]
