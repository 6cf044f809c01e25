"""The "Scores" section, from ``scores/scores.json``, ``scores/regions.json`` and ``scores/*.png``.

``agelens.metrics`` writes ``scores.json`` as ``{"metrics": [{name, higher_is_better,
category}], "scores": {method: {metric: {mean, ci_low, ci_high, n}}}, "ranking": [...],
"difference_vs_matched_random": ..., "regions": ...}``. That shape is read first, split
into faithfulness / sanity / localisation tables by each metric's category. Any other
shape falls back to grouping top-level keys by name and to generic tables, so a schema
change degrades the page gracefully instead of breaking it. The sanity verdicts, the
overall ranking, the differences from matched random maps, the photo counts and the region
tables each have a module of their own; this one lays them out as sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agelens.report.assets import JsonFiles, Notes, image_uri
from agelens.report.findings import DIFFERENCE, Said, join, ranking_findings, vs_random_findings, with_sample
from agelens.report.page import Figure, Section
from agelens.report.photo_counts import drop_short, dropped_note, largest_n, scored_images
from agelens.report.ranking import contender_ranking, ranking_section, ranking_table, rerank
from agelens.report.regions import BY_LABEL, region_tables
from agelens.report.sanity import (
    DATA_RANDOMISATION,
    control_fit,
    method_verdicts,
    sanity_directions,
    sanity_said,
    verdict_column,
)
from agelens.report.tables import is_baseline, stated_directions, tables_from_json
from agelens.report.vs_random import VS_RANDOM, vs_random_table
from agelens.wording import counted

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


def scores_dir(run_dir: Path) -> Path:
    """Where a run's score files are: ``RUN/scores``, or the folder itself when it is one.

    ``agelens score --out X`` writes scores.json (and plots) straight into X, so
    ``agelens report X`` must read X, as an explain folder passed directly is read itself.
    """
    sd = run_dir / "scores"
    own = any((run_dir / f).is_file() for f in ("scores.json", "shortcut.json", "regions.json"))
    return run_dir if own and not (sd / "scores.json").is_file() else sd


def scores_section(run_dir: Path, notes: Notes, reads: JsonFiles | None = None) -> Section | None:
    """The "Scores" section: one sub-section per kind of check, then the region tables and the plots
    (shortcut plots are the Shortcut check's); None, with a note saying so, when the run has none.

    ``reads``: the page build's JSON files (:class:`~agelens.report.assets.JsonFiles`): the glossary
    and the model card's lookup want scores.json too, a page's largest JSON, read once."""
    sd = scores_dir(run_dir)
    reads = JsonFiles() if reads is None else reads
    scores = reads.read(sd / "scores.json", notes, "Scores")
    regions = reads.read(sd / "regions.json", notes, "Regions")
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
    sec.subsections += _map_sections(scores, regions, pngs)
    return sec


def _map_sections(scores: Any, regions: Any, pngs: list[Path]) -> list[Section]:
    """Where the maps look (region tables and plots), the class-mean maps, then the other plots."""
    out: list[Section] = []
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
                sub.figures.append(Figure(f"{plot_caption(p)}: {caption}", uri))
                used.add(p)
        if sub.tables or sub.figures:
            out.append(sub)
    other = [Figure(plot_caption(p), u) for p in pngs if p not in used and (u := image_uri(p))]
    if other:
        out.append(Section("scores-figures", "Score plots", figures=other))
    return out


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


def plot_caption(p: Path) -> str:
    return p.stem.replace("_", " ").replace("curves ", "curves: ")


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
    """The sub-sections of a file in ``agelens.metrics``' shape: one per metric category, the overall
    ranking first, the differences from matched random maps under the first category, details last."""
    infos = {m["name"]: m for m in scores.get("metrics") or [] if isinstance(m, dict) and "name" in m}
    stated = stated_directions(scores)
    table: dict[str, dict] = {m: r for m, r in scores["scores"].items() if isinstance(r, dict)}
    metrics = list(dict.fromkeys(k for r in table.values() for k in r))
    out: list[Section] = []
    section_cols: dict[str, list[str]] = {}
    sanity: dict[str, str | None] = {}  # each method's sanity verdict, marked beside its overall rank
    for cat, title, lead, rank in [*_CATEGORIES, ("other", "Other metrics", "", True)]:
        cols = _columns_in(cat, metrics, infos)
        if not cols:
            continue
        rows = {meth: {c: r[c] for c in cols if c in r} for meth, r in table.items()}
        sub = Section(f"scores-{cat}", title, lead)
        section_cols[sub.id] = cols
        directions = sanity_directions(cols, stated) if cat == "randomisation" else stated
        sub.tables = tables_from_json(
            rows, "Mean over images [95% CI]", rank=rank, stated=directions, arrows=True
        )
        if cat == "randomisation":
            sanity = _judge_sanity(sub, rows, cols, scores)
        out.append(sub)
    diff = scores.get("difference_vs_matched_random")
    ranking, ranked_on = contender_ranking(scores, table, stated)
    order = [str(r.get("method")) for r in ranking]
    if ranked_on and any(on == DIFFERENCE for on in ranked_on.values()):
        for sub in out:  # each section's order, bold and mean rank follow the overall ranking's ranks
            sub.tables = [rerank(t, ranking, ranked_on) for t in sub.tables]
    if isinstance(diff, dict) and diff and out:
        unranked = {name for name, info in infos.items() if info.get("ranked") is False}
        out[0].tables.append(vs_random_table(diff, stated, unranked, order))
    _say_vs_random(out, diff, section_cols, stated, order)
    if ranking and out:
        overall = ranking_table(ranking, "Overall ranking: mean rank over all metrics", ranked_on, sanity)
        ranked = {m for r in ranking if isinstance(r.get("ranks"), dict) for m in r["ranks"]}
        named = [sub.title.lower() for sub in out if ranked & set(section_cols.get(sub.id, ()))]
        out.insert(0, ranking_section(overall, named, ranked_on))
        say(out[0], ranking_findings(ranking, scores.get("scores"), diff, ranked_on, sanity))
    _name_samples(out, table, section_cols, scored_images(scores))
    if (details := _details(scores)) is not None:
        out.append(details)
    return out


def _columns_in(cat: str, metrics: list[str], infos: dict[str, dict]) -> list[str]:
    """The metrics of category ``cat``; "other" takes those of no known category."""
    known = {c[0] for c in _CATEGORIES}
    return [
        m
        for m in metrics
        if _category(m, infos.get(m, {})) == cat
        or (cat == "other" and _category(m, infos.get(m, {})) not in known)
    ]


def _judge_sanity(
    sub: Section, rows: dict[str, dict], cols: list[str], scores: dict
) -> dict[str, str | None]:
    """Give the sanity section its verdict column and findings; return each method's verdict."""
    verdicts = method_verdicts(rows)
    sub.tables = [verdict_column(t, verdicts) for t in sub.tables]
    say(sub, sanity_said(rows, cols, verdicts))
    if DATA_RANDOMISATION in cols and (fit := control_fit(scores)):
        sub.findings.append(fit)
    return verdicts


def _say_vs_random(
    out: list[Section],
    diff: Any,
    section_cols: dict[str, list[str]],
    stated: dict[str, str],
    order: list[str],
) -> None:
    """Under faithfulness and localisation, which methods beat matched random maps on their metrics."""
    for sub in out:
        cat = sub.id.removeprefix("scores-")
        if cat in ("faithfulness", "localisation"):
            said = vs_random_findings(diff, section_cols[sub.id], stated, sub.title, order)
            say(sub, said)
            if said and cat == "localisation" and out[0] is not sub:
                sub.findings.append(
                    f"The paired differences with their CIs are in “{VS_RANDOM}” under {out[0].title}."
                )


def _name_samples(out: list[Section], table: dict, section_cols: dict[str, list[str]], n: int | None) -> None:
    """Each section's key finding names the photos its own metrics rest on; its means table says why
    a metric rests on fewer than the ``n`` scored."""
    for sub in out:
        cols = section_cols.get(sub.id)
        own = largest_n(table, cols)
        sub.key = with_sample(sub.key, own if own is not None and n and own < n else n, of=n)
        if n and (why := dropped_note(table, cols or [], n)):
            for t in sub.tables[:1]:  # the means table, whose n these are
                t.note = f"{why} {t.note}".strip()
            short = drop_short(cols or [])
            if sub.key and short and own is not None and own < n:
                sub.key += " " + short.format(k=n - own)


def _details(scores: dict) -> Section | None:
    """The file's other top-level entries (settings, metrics not computed) as "Scoring details"."""
    extra = {
        k: v
        for k, v in scores.items()
        if k not in ("scores", "ranking", "ranked_on", "regions", "difference_vs_matched_random")
        and k not in _NOT_TABLES
        and v not in (None, {}, [])
    }
    if not extra:
        return None
    labels = {"meta": "Scoring settings", "skipped": "Metrics not computed"}
    tables = [t for k, v in extra.items() for t in tables_from_json(v, labels.get(k, str(k)))]
    return Section("scores-details", "Scoring details", tables=tables)


def say(sec: Section, said: Said) -> None:
    """Put a builder's conclusions on a section: sentences under its heading, a line for Key findings."""
    sec.findings += said.sentences
    sec.key = sec.key or said.short


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
        directions = sanity_directions(_columns(rest, keys), stated) if cat == "randomisation" else stated
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
            out.insert(0, ranking_section(ranking_table(shown, title)))
        elif not ranked:
            out.insert(0, ranking_section(tables_from_json(ranking, title)[0]))
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
