"""The "Scores" and "Shortcut check" sections, from ``scores/*.json`` and ``scores/*.png``.

``agelens.metrics`` writes ``scores.json`` as ``{"metrics": [{name, higher_is_better,
category}], "scores": {method: {metric: {mean, ci_low, ci_high, n}}}, "ranking": [...],
"difference_vs_matched_random": ..., "regions": ...}``. That shape is read first, split
into faithfulness / sanity / localisation tables by each metric's category. Any other
shape falls back to grouping top-level keys by name and to generic tables, so a schema
change degrades the page gracefully instead of breaking it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from agelens.report.assets import Notes, image_uri, read_json
from agelens.report.findings import (
    BEATS,
    DIFFERENCE,
    LABELS,
    SCORE,
    SHORTCUT_COLUMNS,
    UNCLEAR,
    WEIGHTS,
    WORSE,
    Said,
    bounds_side,
    directed_side,
    join,
    ranked_on_phrase,
    ranking_findings,
    sanity_findings,
    shortcut_findings,
    vs_random_findings,
    whole_count,
    with_sample,
)
from agelens.report.page import Figure, Section, Term
from agelens.report.tables import (
    BASELINE_NOTE,
    DEGENERATE,
    RANK_ALL,
    RANK_HERE,
    Cell,
    Table,
    cell,
    direction,
    fmt,
    is_baseline,
    is_leaf,
    mark_baseline,
    mark_best,
    number,
    pct,
    rank_text,
    stat,
    stated_directions,
    tables_from_json,
    tie_rank,
)
from agelens.wording import counted

SPEARMAN_FLAG = 0.5
"""Sanity rule of ``agelens.metrics.sanity``: maps whose similarity, averaged over a cascading
randomisation, stays above this are flagged."""
DATA_RANDOMISATION = "data_randomisation"
"""The data-randomisation metric's column (``agelens.metrics.data_randomisation``)."""

_CATEGORIES = (
    (
        "faithfulness",
        "Faithfulness",
        "Does removing the highlighted pixels change the prediction most?",
        True,
    ),
    (
        "randomisation",
        "Sanity checks",
        "Maps must change when the model's weights are randomised (or it is trained on shuffled labels).",
        True,
    ),
    ("localisation", "Localisation", "Does the map land on the ground-truth age cues?", True),
    ("robustness", "Robustness", "Does the map stay put under noise nobody can see?", True),
    (
        "complexity",
        "Complexity",
        "How concentrated is the map? Not ranked on: one bright pixel is sparse and explains nothing.",
        False,
    ),
)
_NAME_GROUPS = (  # fallback for files without per-metric categories
    ("faithfulness", ("faith", "deletion", "insertion", "drop", "road")),
    ("randomisation", ("sanity", "random", "cascad")),
    ("localisation", ("local", "pointing", "energy", "mask")),
    ("robustness", ("sensitiv", "robust", "lipschitz")),
    ("complexity", ("sparse", "gini", "complex")),
)
_NOT_TABLES = (
    "curves",
    "gallery",
    "metrics",
    "methods",
    "matched_random",
    "direction",
    "directions",
    "files",  # the list of files the scorer wrote: bookkeeping, not a result
    "class_mean_counts",  # stated in the class-mean figure's panel titles
)
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


def scores_dir(run_dir: Path) -> Path:
    """Where a run's score files are: ``RUN/scores``, or the folder itself when it is one.

    ``agelens score --out X`` writes scores.json (and plots) straight into X, so
    ``agelens report X`` must read X, as an explain folder passed directly is read itself.
    """
    sd = run_dir / "scores"
    own = any((run_dir / f).is_file() for f in ("scores.json", "shortcut.json", "regions.json"))
    return run_dir if own and not (sd / "scores.json").is_file() else sd


def scores_section(run_dir: Path, notes: Notes) -> Section | None:
    sd = scores_dir(run_dir)
    scores = read_json(sd / "scores.json", notes, "Scores")
    regions = read_json(sd / "regions.json", notes, "Regions")
    pngs = sorted(p for p in sd.glob("*.png") if not p.stem.startswith("shortcut")) if sd.is_dir() else []
    if scores is None and regions is None and not pngs:
        notes.add("Scores: no scores/ folder; faithfulness, sanity and localisation omitted.")
        return None
    sec = Section("scores", "Scores")
    if isinstance(scores, dict) and isinstance(scores.get("scores"), dict):
        sec.subsections += _structured(scores)
    elif scores is not None:
        sec.subsections += _by_name(scores)
    sec.lead = _checked(sec.subsections) + _left_out(scores)
    if regions is None and isinstance(scores, dict):
        regions = scores.get("regions") or None
    used: set[Path] = set()
    by_class = _class_mean_grouping(scores)
    for sid, title, stem, caption in (
        ("regions", f"Where the maps look, per age group ({BY_LABEL})", "region", _REGION_CAPTION),
        (
            "class-means",
            f"Mean maps per class ({by_class})",
            "class_mean",
            _class_mean_caption(by_class) + _no_images(unpredicted_classes(scores)),
        ),
    ):
        sub = Section(f"scores-{sid}", title)
        if sid == "regions" and regions is not None:
            sub.lead = (
                f"Share of map energy per face region, images grouped {BY_LABEL} (n = images per group); "
                "compare with the area share a uniform map would get. The Glossary at the end says what "
                "each region covers."
            )
            sub.tables = region_tables(regions)
        for p in pngs:
            if p.stem.startswith(stem) and (uri := image_uri(p)):
                sub.figures.append(Figure(f"{_caption(p)}: {caption}", uri))
                used.add(p)
        if sub.tables or sub.figures:
            sec.subsections.append(sub)
    other = [Figure(_caption(p), u) for p in pngs if p not in used and (u := image_uri(p))]
    if other:
        sec.subsections.append(Section("scores-figures", "Score plots", figures=other))
    return sec


_WAYS = {1: "one way", 2: "two ways", 3: "three ways", 4: "four ways", 5: "five ways", 6: "six ways"}


def _checked(sections: list[Section]) -> str:
    """The Scores lead: the kinds of checks this run holds, counted and named.

    Why: "checked three ways" was printed over a run that scored faithfulness alone.
    """
    kinds = {f"scores-{cat}": title for cat, title, *_ in (*_CATEGORIES, ("other", "Other metrics"))}
    found = [kinds[sub.id].lower() for sub in sections if sub.id in kinds]
    if not found:
        return "How well each saliency method explains the model."
    ways = _WAYS.get(len(found), f"{len(found)} ways")
    return f"How well each saliency method explains the model, checked {ways}: {join(found)}."


def _left_out(scores: Any) -> str:
    """The photos score could not use, said where the numbers are: a reader must know the
    sample lost some (``meta.skipped_photos``, "file: reason", as the command printed them)."""
    meta = scores.get("meta") if isinstance(scores, dict) else None
    left = meta.get("skipped_photos") if isinstance(meta, dict) else None
    if not isinstance(left, list) or not left:
        return ""
    shown = "; ".join(str(x) for x in left[:3]) + ("; ..." if len(left) > 3 else "")
    return f" Left out: {counted(len(left), 'photo')} unreadable or unlabelled ({shown})."


def _caption(p: Path) -> str:
    return p.stem.replace("_", " ").replace("curves ", "curves: ")


BY_LABEL = "by true label"
"""Region shares group images by their true age group (``score_methods``'s ``labels``)."""
_REGION_CAPTION = f"images grouped {BY_LABEL}, n per group in the legend; black bars: area share."


def _class_mean_grouping(scores: Any) -> str:
    """Class means group images by the class explained: the predicted one unless targets were given."""
    meta = scores.get("meta") if isinstance(scores, dict) else None
    explained = meta.get("explained") if isinstance(meta, dict) else None
    return "by given target class" if explained == "given targets" else "by predicted class"


def unpredicted_classes(scores: Any) -> list[str]:
    """Classes no scored image was predicted as, where scores.json lets us tell for sure; else [].

    Their class-mean panels are blank, which reads as a broken plot. The file has no per-class
    counts, but its ``gallery`` (confident right and wrong cases) records each case's predicted
    class, and when those cases cover every scored image the counts follow exactly.
    """
    meta = scores.get("meta") if isinstance(scores, dict) else None
    gallery = scores.get("gallery") if isinstance(scores, dict) else None
    if not (isinstance(meta, dict) and isinstance(gallery, dict)) or meta.get("explained") == "given targets":
        return []
    names, n = meta.get("class_names"), meta.get("n_images")
    cases = [c for v in gallery.values() if isinstance(v, list) for c in v if isinstance(c, dict)]
    if not isinstance(names, list) or not isinstance(n, int) or len({c.get("index") for c in cases}) != n:
        return []
    seen = {c.get("predicted") for c in cases}
    return [str(name) for i, name in enumerate(names) if i not in seen]


def _no_images(classes: list[str]) -> str:
    return "".join(f" No images predicted {c}: its panels are blank." for c in classes)


def _class_mean_caption(by_class: str) -> str:
    """What the colours of ``class_mean_maps.png`` mean (:func:`agelens.metrics.plots.plot_class_means`):
    one scale per method, so a reader can compare one method's classes, and not methods."""
    return (
        f"mean map per class, images grouped {by_class}, n per class in each panel's title. "
        "Colour scale: one per row (method), from 0 (dark) to the largest value of that method's class "
        "means (bright), so the classes of one method can be compared, but brightness is not comparable "
        "between methods. A near-flat mean (e.g. random) shows as an even colour with no hot spot."
    )


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
    section_cols: dict[str, list[str]] = {}
    sanity: dict[str, str | None] = {}  # each method's sanity verdict, marked beside its overall rank
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
        section_cols[sub.id] = cols
        directions = _sanity_directions(cols, stated) if cat == "randomisation" else stated
        t = tables_from_json(rows, "Mean over images [95% CI]", rank=rank, stated=directions, arrows=True)
        if cat == "randomisation":
            t = [_flag(tab, rows) for tab in t]
            sanity = _method_verdicts(rows)
            _say(sub, _sanity_said(rows, cols))
            if DATA_RANDOMISATION in cols and (fit := _control_fit(scores)):
                sub.findings.append(fit)
        sub.tables = t
        out.append(sub)
    diff = scores.get("difference_vs_matched_random")
    ranking, ranked_on = _contender_ranking(scores, table, stated)
    order = [str(r.get("method")) for r in ranking]
    if ranked_on and any(on == DIFFERENCE for on in ranked_on.values()):
        for sub in out:  # each section's order, bold and mean rank follow the overall ranking's ranks
            sub.tables = [_rerank(t, ranking, ranked_on) for t in sub.tables]
    if isinstance(diff, dict) and diff and out:
        unranked = {name for name, info in infos.items() if info.get("ranked") is False}
        out[0].tables.append(_vs_random(diff, stated, unranked, order))
    for sub in out:
        cat = sub.id.removeprefix("scores-")
        if cat in ("faithfulness", "localisation"):
            cols = [m for m in metrics if _category(m, infos.get(m, {})) == cat]
            said = vs_random_findings(diff, cols, stated, sub.title, order)
            _say(sub, said)
            if said and cat == "localisation" and out[0] is not sub:
                sub.findings.append(
                    f"The paired differences with their CIs are in “{_VS_RANDOM}” under {out[0].title}."
                )
    if ranking and out:
        overall = _ranking_table(ranking, "Overall ranking: mean rank over all metrics", ranked_on, sanity)
        ranked = {m for r in ranking if isinstance(r.get("ranks"), dict) for m in r["ranks"]}
        named = [sub.title.lower() for sub in out if ranked & set(section_cols.get(sub.id, ()))]
        out.insert(0, _ranking_section(overall, named, ranked_on))
        _say(out[0], ranking_findings(ranking, scores.get("scores"), diff, ranked_on, sanity))
    n = scored_images(scores)
    for sub in out:  # each finding names the photos its own metrics rest on
        own = _largest_n(table, section_cols.get(sub.id))
        sub.key = with_sample(sub.key, own if own is not None and n and own < n else n, of=n)
        if n and (why := dropped_note(table, section_cols.get(sub.id) or [], n)):
            for t in sub.tables[:1]:  # the means table, whose n these are
                t.note = f"{why} {t.note}".strip()
            short = _DROP_SHORT.get(_drop_reason(section_cols.get(sub.id) or []))
            if sub.key and short and own is not None and own < n:
                sub.key += " " + short.format(k=n - own)
    extra = {
        k: v
        for k, v in scores.items()
        if k not in ("scores", "ranking", "ranked_on", "regions", "difference_vs_matched_random")
        and k not in _NOT_TABLES
        and v not in (None, {}, [])
    }
    if extra:
        labels = {"meta": "Scoring settings", "skipped": "Metrics not computed"}
        tables = [t for k, v in extra.items() for t in tables_from_json(v, labels.get(k, str(k)))]
        out.append(Section("scores-details", "Scoring details", tables=tables))
    return out


def scored_images(scores: Any) -> int | None:
    """How many photos the scores rest on: ``meta.n_images``, else the largest ``n`` of any score.

    A metric may drop photos it cannot score (NaN), so per-score ``n`` can be smaller than the
    run's count; the largest is what the run scored, the count a reader needs beside a verdict.
    """
    meta = scores.get("meta") if isinstance(scores, dict) else None
    if n := whole_count(meta.get("n_images") if isinstance(meta, dict) else None):
        return n
    table = scores.get("scores") if isinstance(scores, dict) else None
    return _largest_n(table if isinstance(table, dict) else {})


def _largest_n(table: dict, cols: list[str] | None = None) -> int | None:
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


def _flag(table: Table, rows: dict[str, dict]) -> Table:
    """Add the sanity verdict, decided by where each score's 95% CI lies against the threshold.

    A mean under the threshold is not enough: with few images the CI can reach well above
    it, and "passes" would claim more than the data show (see :func:`verdict`).
    """
    table.columns.append("verdict")
    order = list(_VERDICTS)
    for row in table.rows:
        found = [v for v in map(verdict, rows.get(row[0].text, {}).values()) if v is not None]
        if not found:
            row.append(Cell("—", "baseline" if "baseline" in row[0].cls else ""))
            continue
        text, cls = _VERDICTS[max(found, key=order.index)]  # the worst verdict over the columns
        row.append(Cell(text.format(t=SPEARMAN_FLAG), cls))
    what = []
    if any(c != DATA_RANDOMISATION for c in table.columns[1:-1]):
        what.append(
            "randomisation: similarity (Spearman) between each map before and after randomising the weights "
            "from the top layer down, averaged over the stages (a quarter, half, three quarters, all of the "
            "layers random)"
        )
    if DATA_RANDOMISATION in table.columns:
        what.append(
            f"{DATA_RANDOMISATION}: similarity (Spearman) between each map and the same method's map of the "
            "network trained on shuffled labels"
        )
    rule = (
        f"{'; '.join(what)}. Lower is better (a faithful map depends on what the model learned). Verdict on "
        f"the 95% CI, the worst over the columns: ✓ passes when its upper end is below {SPEARMAN_FLAG}; "
        f"⚠ flagged when its lower end is above {SPEARMAN_FLAG}; ? inconclusive when it contains "
        f"{SPEARMAN_FLAG} (score more images). Without a CI the mean decides."
    )
    table.note = f"{rule} {table.note}".strip()
    return table


def _control_fit(scores: dict) -> str | None:
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


def _sanity_said(rows: dict[str, dict], columns: list[str]) -> Said:
    """The sanity findings: each method's worst verdict, the checks that were scored (those with a
    verdict for some method), and per flagged method the checks that flagged it."""
    scored = [
        c
        for c in columns
        if any(verdict(r.get(c)) is not None for m, r in rows.items() if not is_baseline(m))
    ]
    checks = tuple(dict.fromkeys(_check_of(c) for c in scored))
    failed = {
        meth: tuple(_check_of(c) for c in scored if verdict(r.get(c)) == "fail") for meth, r in rows.items()
    }
    return sanity_findings(_method_verdicts(rows), SPEARMAN_FLAG, checks, failed)


def _say(sec: Section, said: Said) -> None:
    """Put a builder's conclusions on a section: sentences under its heading, a line for Key findings."""
    sec.findings += said.sentences
    sec.key = sec.key or said.short


def _method_verdicts(rows: dict[str, dict]) -> dict[str, str | None]:
    """Each method's worst sanity verdict over its columns, as the table's verdict column shows it."""
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


def _sanity_directions(columns: list[str], stated: dict[str, str]) -> dict[str, str]:
    """``stated`` plus "lower" for similarity columns whose direction the file does not declare."""
    guessed = {
        c: "lower"
        for c in columns
        if direction(c, stated) is None and any(w in c.lower() for w in _SIMILARITY)
    }
    return {**guessed, **stated}


def _contender_ranking(
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


def _rerank(table: Table, ranking: list[dict], ranked_on: dict[str, str]) -> Table:
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
        f"means, so the order can differ from the bold; “{_VS_RANDOM}” bolds the best difference."
    )
    rest = f" {BASELINE_NOTE}" if BASELINE_NOTE in table.note else ""  # the generic note's one keeper
    table.note = (said + rest).strip()
    return table


def _ranking_section(
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
    phrase = ranked_on_phrase(ranked_on, f"the “{_VS_RANDOM}” table")
    return f"Ranked {phrase}." if phrase else ""


def _ranking_table(
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


_VS_RANDOM = "Difference from a matched random map [95% CI]"


def _vs_random(
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
    table = Table(_VS_RANDOM, ["method", *metrics], rows)
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
        directions = _sanity_directions(_columns(rest, keys), stated) if cat == "randomisation" else stated
        tables = [
            t
            for k in keys
            for t in tables_from_json(
                rest.pop(k), "" if len(keys) == 1 else str(k), rank=rank, stated=directions
            )
        ]
        if tables:
            out.append(Section(f"scores-{cat}", title, lead, tables=tables))
    ranking = rest.pop("ranking", None)
    if ranking is not None and out:
        ranked = [r for r in ranking if isinstance(r, dict)] if isinstance(ranking, list) else []
        shown = [r for r in ranked if not is_baseline(str(r.get("method", r.get("name", ""))))]
        title = "Overall ranking (from scores.json)"
        if shown and any(isinstance(r.get("ranks"), dict) or "mean_rank" in r for r in shown):
            out.insert(0, _ranking_section(_ranking_table(shown, title)))
        elif not ranked:
            out.insert(0, _ranking_section(tables_from_json(ranking, title)[0]))
    if rest:
        out.append(
            Section(
                "scores-details", "Other scores", tables=tables_from_json(rest, "", rank=True, stated=stated)
            )
        )
    return out


def _columns(doc: dict, keys: list) -> list[str]:
    """Every key of every row under ``doc[k]`` (a dict or list of row dicts), for direction lookups."""
    out: list[str] = []
    for k in keys:
        v = doc.get(k)
        rows = v.values() if isinstance(v, dict) else v if isinstance(v, list) else []
        out += [str(c) for r in rows if isinstance(r, dict) for c in r if str(c) not in out]
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


def shortcut_section(run_dir: Path, notes: Notes) -> Section | None:
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
        _say(sec, shortcut_findings(data))
        sec.key = with_sample(sec.key, _shortcut_count(data), "draw firm conclusions")
    sec.figures = [Figure(_caption(p), u) for p in pngs if (u := image_uri(p))]
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


# --- glossary -------------------------------------------------------------------------------------

_PLAIN = {
    "deletion": "Removes the pixels the map calls most important first, step by step, and follows the "
    "model's confidence in the explained class. If the map found what the model really uses, confidence "
    "falls fast; the number is the area under that falling curve.",
    "insertion": "The reverse of deletion: starts from a blurred photo and puts the most important pixels "
    "back first. A good map brings the model's confidence back quickly; the number is the area under "
    "that rising curve.",
    "average_drop": "How much the model's confidence in the class falls when it sees only what the map "
    "highlights (the photo dimmed by the map), as a share of its confidence on the whole photo.",
    "increase_in_confidence": "Share of photos on which seeing only what the map highlights makes the "
    "model more confident in the class than the whole photo does.",
    "road_morf": "ROAD, most relevant first: like deletion, but removed pixels are filled in from their "
    "neighbours, so the model reacts to missing evidence rather than to odd-looking holes.",
    "road_lerf": "ROAD, least relevant first: removes the pixels the map calls unimportant first (filled "
    "in from their neighbours); a faithful map leaves the model's confidence where it was.",
    "pointing_game": "Share of photos on which the map's brightest point falls inside the region known to "
    "carry the age cue (needs ground-truth masks, e.g. synthetic faces).",
    "energy_in_mask": "Share of the map's total brightness that falls inside the region known to carry "
    "the age cue (needs ground-truth masks).",
    "randomisation": "Sanity check: the model's weights are replaced by random numbers, layer by layer "
    "from the top, and the map is drawn again; the number is how similar the new map is to the "
    "original (rank correlation). A map that explains the model must change when the model is destroyed.",
    "data_randomisation": "Sanity check: the same network is trained again on shuffled labels, so it can "
    "only memorise, and the map is drawn with it; the number is how similar the two maps are (rank "
    "correlation). A map that explains what the model learned about age must differ.",
    "max_sensitivity": "How much the map changes when the photo gets noise too small to see (the largest "
    "change over several noisy copies). A trustworthy map barely moves.",
    "sparseness": "How concentrated the map is (Gini index): high means a few small spots, low means "
    "spread out. It describes a map; one bright pixel is very sparse and explains nothing.",
    "stamp_energy": "Share of the map's brightness on the label-leaking corner stamp.",
    "stamp_area": "The stamp's share of the photo: what a uniform map would put on it.",
    "stamp_pointing": "How often the map's brightest point lands on the stamp.",
    "cue_energy": "Share of the map's brightness on the drawn age cues (the real signal).",
    "cue_area": "The age cues' share of the photo: what a uniform map would put on them.",
}
"""Plain words for the metric names the page prints; directions come from the metrics themselves."""

_REGIONS = {
    "hair_background": "Everything outside the face boxes below: hair, ears, neck and background.",
    "hair_bg": "Everything outside the face boxes: hair, ears, neck and background.",
    "background": "The backdrop behind the head (synthetic faces).",
    "hair": "The hair (synthetic faces).",
    "forehead": "The band between the hairline and the eyebrows.",
    "eyes": "A band across the eyebrows and eyes, including the outer corners (crow's feet).",
    "nose": "A central column from just below the eyes to just above the mouth.",
    "cheeks": "Either side of the nose, from under the eyes down to the mouth.",
    "mouth_chin": "Mouth, lips and chin, including the lines beside the mouth.",
}
_REGION_INTRO = (
    "Face regions of “Where the maps look”. On real photos (aligned face crops) they are fixed boxes "
    "at the usual positions in a centred face, not traced on each face, so a tilted or off-centre face "
    "fits them only roughly; synthetic faces come with exact region masks. Compare a region's share of "
    "the map with its area share: a big region (the background) gets much of a map by size alone."
)
_GENERAL = {
    "95% CI": "95% confidence interval, by bootstrap: how far the mean over photos like these could "
    "plausibly move, from resampling the scored photos. It is about one method's mean; to compare two "
    "methods use the paired differences the report gives (each method against matched random maps on "
    "the same photos), not whether their intervals overlap. “(all photos equal)” in place of an "
    "interval: every photo scored the same, so there was nothing to resample.",
    "matched random map": "Random noise made as smooth as a method's own maps and scored on the same "
    "photos: the chance level a method must beat.",
}


def glossary_section(sections: list[Section], scores: Any) -> Section | None:
    """A folded list defining each metric and region name printed on the page, with its direction.

    Directions are the ones the tables use (stated in scores.json), else the metric's declared
    ``higher_is_better`` in ``agelens.metrics``; unknown names get the metric's own docstring.
    Names the page does not print are left out: a glossary of absent terms is noise.
    """
    shown = _names_on(sections)
    registry = _registry()
    stated = stated_directions(scores) if scores is not None else {}
    terms = []
    for name in shown:
        key = name.removesuffix("_auc")
        if key in _PLAIN or key in registry:
            meaning = _PLAIN.get(key) or _doc_sentence(registry[key])
            terms.append(Term(name, meaning, _reading(name, key, stated, registry)))
    terms += [Term(r, _REGIONS[r], "", "Face regions") for r in shown if r in _REGIONS]
    if not terms:
        return None
    if any(s.id == "scores" for s in sections):
        terms += [Term(k, v, "", "General") for k, v in _GENERAL.items()]
    regions = any(t.group == "Face regions" for t in terms)
    sec = Section("glossary", "Glossary", _REGION_INTRO if regions else "", terms=terms)
    sec.summary = (
        f"Plain-language meanings of the {len(terms)} metric{' and region' if regions else ''} names "
        "printed in this report's tables, each with the way it is read (higher or lower is better)."
    )
    sec.fold = "Show the glossary"
    return sec


def _names_on(sections: list[Section]) -> list[str]:
    """Every column and row name of every table, in page order ("rank on X" read as X)."""
    out: dict[str, None] = {}

    def walk(sec: Section) -> None:
        for t in sec.tables:
            for name in [*t.columns, *(row[0].text for row in t.rows if row)]:
                out.setdefault(str(name).removeprefix("rank on "), None)
        for sub in sec.subsections:
            walk(sub)

    for s in sections:
        walk(s)
    return list(out)


def _registry() -> dict[str, Any]:
    """``agelens.metrics``' metric classes by name; {} if that package cannot load here."""
    try:
        from agelens.metrics.registry import METRICS
    except ImportError:
        return {}
    return dict(METRICS)


def _reading(name: str, key: str, stated: dict[str, str], registry: dict[str, Any]) -> str:
    cls = registry.get(key)
    if cls is not None and not getattr(cls, "ranked", True):
        return "describes the map; not used to rank methods"
    d = stated.get(name) or stated.get(key)
    if d is None and cls is not None:
        d = "higher" if cls.higher_is_better else "lower"
    return f"{d} is better" if d else ""  # no guess from the name: stamp_energy is not "better" high


def _doc_sentence(cls: Any) -> str:
    """The first sentence of a metric's docstring, without reST markup."""
    doc = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(doc.replace("``", "").split())
