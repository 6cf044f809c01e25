"""Score several attribution methods with several metrics on the same images; rank them; write the evidence.

Every method is scored beside a random-map baseline on the same images: one shared
``random`` row (pixel noise), shown for reference and never ranked (scattered noise
scores deceptively well on deletion/insertion, so ranking it would reward that
artefact, not an explanation), and, per method, noise
maps blurred to the method's own smoothness (:func:`~agelens.metrics.base.smoothness_sigma`),
whose paired difference with a bootstrap CI says whether the method beats chance.

Outputs (all written atomically): ``scores.json`` (everything, per-image values left
out), ``scores.md`` (tables with direction arrows), ``curves_<metric>.png`` for curve
metrics and ``region_shares.png`` when regions are given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from agelens.metrics._io import atomic_write_text, dumps
from agelens.metrics.adapters import (
    RANDOM,
    age_predict_fn,
    as_age_model,
    input_size_of,
    method_explainer,
    method_model_explainer,
    predict_fn_of,
)
from agelens.metrics.base import (
    Explainer,
    Metric,
    ModelExplainer,
    Score,
    as_pixels,
    check_finite,
    check_images,
    class_targets,
    means_predicted,
    paired_difference,
    random_maps,
    smoothness_sigma,
)
from agelens.metrics.readouts import AGE, Readout, readout_of
from agelens.metrics.regions import class_mean_maps, extreme_cases, region_shares_by_group
from agelens.metrics.registry import DEFAULT_METRICS, get_metric
from agelens.provenance import provenance, resolved_paths
from agelens.wording import counted


def arrow(higher_is_better: bool | None) -> str:
    return "" if higher_is_better is None else ("↑" if higher_is_better else "↓")


def rank_cell(mean_rank: float) -> str:
    """A mean rank as shown; "–" where there is none (a lone method has nothing to be ranked against)."""
    return f"{mean_rank:.2f}" if np.isfinite(mean_rank) else "–"


@dataclass
class ScoreTable:
    """Method x metric scores (mean, 95% CI), matched-random baselines, ranking, curves and region views."""

    methods: list[str]
    metrics: list[dict[str, Any]]
    scores: dict[str, dict[str, Score]]
    baselines: dict[str, dict[str, Score]] = field(default_factory=dict)
    vs_random: dict[str, dict[str, Score]] = field(default_factory=dict)
    curves: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    gallery: dict[str, Any] = field(default_factory=dict)
    class_means: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def direction(self, metric: str) -> bool:
        return next(m["higher_is_better"] for m in self.metrics if m["name"] == metric)

    def ranked(self, metric: str) -> bool:
        """False for a metric that describes maps without judging them (sparseness): not ranked on,
        and its difference from random maps gets no ✓ (a sparser map is not a better one)."""
        return next(bool(m.get("ranked", True)) for m in self.metrics if m["name"] == metric)

    def compared(self) -> list[str]:
        """Methods with a paired difference from matched random maps, in ranking order (as in the
        scores table above it), so the CLI, scores.md and the report list them alike."""
        order = list(dict.fromkeys([*(r["method"] for r in self.ranking()), *self.vs_random]))
        return [m for m in order if self.vs_random.get(m)]

    @property
    def contenders(self) -> list[str]:
        """The methods being compared: every method but the ``random`` reference row."""
        return [m for m in self.methods if m != RANDOM]

    def ranking_basis(self) -> dict[str, str]:
        """What each ranked metric's ranks compare, by metric: ``DIFFERENCE`` (each method minus random
        maps as smooth as its own, the paired difference of the second table) where at least two methods
        have one, else ``SCORE`` (the mean score itself, for a metric with no random-map difference, such
        as randomisation). Only metrics that rank at least two methods are listed.

        Why the difference first: scattered noise scores well on deletion/insertion without explaining
        anything, and a smooth map (Grad-CAM) can top a raw column while its own matched random maps do
        better still; ranking raw means contradicted the ✓/⚠ marks the page tells readers to judge by.
        """
        from agelens.report.findings import DIFFERENCE, SCORE

        out: dict[str, str] = {}
        for info in self.metrics:
            name = info["name"]
            if not info.get("ranked", True):  # e.g. sparseness: a lone bright pixel would win it
                continue
            if len(_finite_means(self.vs_random, self.contenders, name)) >= 2:
                out[name] = DIFFERENCE
            elif len(_finite_means(self.scores, self.contenders, name)) >= 2:
                out[name] = SCORE
        return out

    def ranking(self) -> list[dict[str, Any]]:
        """Methods by mean rank over the ranked metrics (1 = best), each in its own direction.

        Each metric is ranked on what :meth:`ranking_basis` says: the difference from matched random
        maps where there is one, else the score itself. The ``random`` baseline is left out: it is
        the reference each method should beat (see ``difference_vs_matched_random``), not a method to
        recommend.
        """
        from agelens.report.findings import DIFFERENCE

        ranks: dict[str, dict[str, float]] = {m: {} for m in self.contenders}
        for name, on in self.ranking_basis().items():
            have = _finite_means(self.vs_random if on == DIFFERENCE else self.scores, self.contenders, name)
            v = np.array(list(have.values()))
            r = rankdata(-v if self.direction(name) else v, method="average")
            for m, rr in zip(have, r, strict=True):
                ranks[m][name] = float(rr)
        rows = [
            {"method": m, "mean_rank": float(np.mean(list(r.values()))) if r else float("nan"), "ranks": r}
            for m, r in ranks.items()
        ]
        return sorted(rows, key=lambda row: (np.nan_to_num(row["mean_rank"], nan=np.inf), row["method"]))

    def compared_metrics(self) -> list[str]:
        """The metrics, in table order, on which some compared method has a difference from matched
        random maps: the columns of the difference table (a sanity metric has none, and a column of
        n/a on every row says nothing)."""
        return [
            m["name"]
            for m in self.metrics
            if any(meth in _finite_means(self.vs_random, [meth], m["name"]) for meth in self.compared())
        ]

    def ranking_note(self) -> str:
        """One sentence saying what the mean rank is computed from ("" when nothing is ranked)."""
        from agelens.report.findings import ranking_basis_sentence

        return ranking_basis_sentence(self.ranking_basis(), "the table below" if self.vs_random else "")

    def add_metrics(self, other: ScoreTable) -> None:
        """Fold ``other``'s metrics into this table, for the methods both scored.

        Why: a metric whose input arrives late (the data-randomisation control, trained while
        the other metrics run) is scored in a second call on the same photos and targets;
        ``other`` must have scored the same number of photos at the same size. Its metrics
        replace same-named ones here and leave ``skipped``.
        """
        for key in ("n_images", "size", "explained"):
            if key in self.meta and key in other.meta and self.meta[key] != other.meta[key]:
                raise ValueError(f"cannot merge score tables: {key} {other.meta[key]} != {self.meta[key]}")
        names = [m["name"] for m in other.metrics]
        self.metrics = [m for m in self.metrics if m["name"] not in names] + list(other.metrics)
        n = int(other.meta.get("n_images", 0))
        for method, row in self.scores.items():  # a method ``other`` did not score gets empty cells
            for info in other.metrics:
                mine = other.scores.get(method, {}).get(info["name"])
                row[info["name"]] = mine or Score.from_values(np.full(n, np.nan), info["higher_is_better"])
        for name in names:
            self.skipped.pop(name, None)
        if isinstance(params := other.meta.get("metric_params"), dict):  # the merged metrics' settings too
            self.meta.setdefault("metric_params", {}).update(params)

    def to_dict(self) -> dict[str, Any]:
        def table(d: dict[str, dict[str, Score]]) -> dict[str, Any]:
            return {m: {k: s.to_dict() for k, s in row.items()} for m, row in d.items()}

        return {
            "meta": self.meta,
            "metrics": self.metrics,
            "methods": self.methods,
            "scores": table(self.scores),
            "matched_random": table(self.baselines),
            "difference_vs_matched_random": table(self.vs_random),
            "ranking": self.ranking(),
            "ranked_on": self.ranking_basis(),  # per metric: difference_vs_matched_random, or scores
            "curves": self.curves,
            "regions": self.regions,
            "gallery": self.gallery,
            # images per explained class behind each class-mean panel (0: an empty panel)
            "class_mean_counts": {m: [int(c) for c in counts] for m, (_, counts) in self.class_means.items()},
            "skipped": self.skipped,
        }

    def _what_was_scored(self) -> list[str]:
        """One line naming what the numbers are about (model, data, layer, target), when known."""
        m = self.meta
        parts = [
            f"model `{m['model']}`" if m.get("model") else None,
            f"data `{m['data']}`" + (f" (held-out photos of `{m['holdout']}`)" if m.get("holdout") else "")
            if m.get("data")
            else None,
            f"CAM layer `{m['cam_layer']}`" if m.get("cam_layer") else None,
            f"target: each image's {m['explained']}" if m.get("explained") else None,
            f"seed {m['seed']}" if "seed" in m else None,
        ]
        said = [p for p in parts if p]
        left_out = m.get("skipped_photos") or []
        return (
            ["Scored: " + "; ".join(said) + ". Method options and versions are in scores.json.", ""]
            if said
            else []
        ) + (
            [f"Left out: {counted(len(left_out), 'photo')} unreadable or unlabelled "
             "(`meta.skipped_photos` in scores.json names each with its reason).", ""]
            if left_out
            else []
        )  # fmt: skip

    def to_markdown(self) -> str:
        names = [m["name"] for m in self.metrics]
        head = "| method | " + " | ".join(f"{n} {arrow(self.direction(n))}" for n in names) + " | mean rank |"
        sep = "|---" * (len(names) + 2) + "|"
        rank = {r["method"]: r["mean_rank"] for r in self.ranking()}
        lines = [
            "# Attribution scores",
            "",
            f"{self.meta.get('n_images', '?')} images; mean [95% bootstrap CI]; ↑ higher is better, "
            "↓ lower is better. `random (baseline)` = uniform pixel-noise maps, for reference: not ranked."
            + (
                " Scattered noise scores well on deletion/insertion without explaining anything: judge a "
                "method by the table below (method minus random maps as smooth as its own)."
                if self.vs_random
                else ""
            ),
            "",
            *self._what_was_scored(),
            head,
            sep,
        ]
        for m in [*(r["method"] for r in self.ranking()), *([RANDOM] if RANDOM in self.methods else [])]:
            cells = [str(self.scores[m][n]) for n in names]
            label, r = (f"{m} (baseline)", "–") if m == RANDOM else (m, rank_cell(rank[m]))
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {r} |")
        if note := self.ranking_note():
            lines += ["", note]
        if self.vs_random:
            shown = self.compared_metrics()  # a column that is n/a on every row is left out
            lines += [
                "",
                "## Method minus random maps of the same smoothness (paired, same images)",
                "",
                chance_legend([n for n in shown if not self.ranked(n)]),
                "",
                "| method | " + " | ".join(f"Δ {n} {arrow(self.direction(n))}" for n in shown) + " |",
                "|---" * (len(shown) + 1) + "|",
            ]
            for m in self.compared():
                row = self.vs_random[m]
                cells = (delta_cell(row.get(n), self.direction(n), self.ranked(n)) for n in shown)
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> ScoreTable:
        """A table back from a ``scores.json`` (or the folder holding one) that :meth:`write` or
        ``agelens score`` wrote: means, CIs and counts, baselines, ranking inputs, curves, regions.

        Why: comparing two runs (layers, targets, models) is one ``load`` each instead of re-scoring
        for minutes. Per-image values and the class-mean maps are not saved, so a loaded table
        cannot bootstrap again or redraw ``class_mean_maps.png``; ``ranking()``, ``to_markdown()``
        and the numbers work as before. Write a loaded table to a new folder: ``write`` replaces a
        folder's earlier run, plots included. A missing or foreign file is a one-line ValueError
        naming it.
        """
        src = Path(path)
        file = src / SCORES_JSON if src.is_dir() else src
        try:
            doc = json.loads(file.read_text())
        except FileNotFoundError:
            raise ValueError(f"{file}: file not found (agelens score writes scores.json)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{file}: not a readable scores.json ({type(e).__name__})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("scores"), dict):
            raise ValueError(f"{file}: not a scores.json written by agelens score (no 'scores' table)")
        metrics = [m for m in doc.get("metrics") or [] if isinstance(m, dict) and "name" in m]
        hib = {m["name"]: m.get("higher_is_better") for m in metrics}

        def table(key: str) -> dict[str, dict[str, Score]]:
            rows = doc.get(key) or {}
            return {
                str(meth): {str(k): _score_of(v, hib.get(k)) for k, v in row.items() if isinstance(v, dict)}
                for meth, row in rows.items()
                if isinstance(row, dict)
            }

        return cls(
            methods=[str(m) for m in doc.get("methods") or doc["scores"]],
            metrics=metrics,
            scores=table("scores"),
            baselines=table("matched_random"),
            vs_random=table("difference_vs_matched_random"),
            curves=doc.get("curves") or {},
            regions=doc.get("regions") or {},
            gallery=doc.get("gallery") or {},
            skipped=doc.get("skipped") or {},
            meta=doc.get("meta") or {},
        )

    def write(self, out_dir: str | Path, plots: bool = True) -> dict[str, Path]:
        """Write scores.json, scores.md and (optionally) the PNG plots into ``out_dir``; returns the paths.

        ``scores.json`` goes last and lists every file of this run; files an earlier run
        listed (or, for older runs, named the way runs name them) that this run did not
        write are removed, so a folder never shows one run's plots beside another's scores.
        The files are written in a hidden folder and moved in together
        (:func:`agelens.atomic.staged_folder`): a full disk or a Ctrl-C leaves the folder as it was.
        """
        from agelens.atomic import staged_folder

        out = Path(out_dir)
        earlier = _earlier_outputs(out)
        with staged_folder(out, last=SCORES_JSON) as tmp:
            paths = self._write_files(tmp, plots)
            files = [SCORES_JSON, *(p.name for p in paths.values())]
            data = dict(self.to_dict(), meta=_saved_meta(self.meta, out), files=files)
            paths = {"json": atomic_write_text(tmp / SCORES_JSON, dumps(data)), **paths}
        for name in earlier - set(files):
            (out / name).unlink(missing_ok=True)
        return {k: out / p.name for k, p in paths.items()}

    def _write_files(self, out: Path, plots: bool) -> dict[str, Path]:
        """scores.md and the plots into ``out`` (:meth:`write`'s staging folder)."""
        paths = {"markdown": atomic_write_text(out / "scores.md", self.to_markdown())}
        if plots:
            from agelens.metrics.plots import plot_class_means, plot_curves, plot_region_shares

            for metric in sorted({k for row in self.curves.values() for k in row}):
                paths[f"curves_{metric}"] = plot_curves(self, metric, out / f"curves_{metric}.png")
            if self.regions:
                paths["regions"] = plot_region_shares(self, out / "region_shares.png")
            if self.class_means:
                paths["class_means"] = plot_class_means(self, out / "class_mean_maps.png")
        return paths


SCORES_JSON = "scores.json"


def _finite_means(
    table: dict[str, dict[str, Score]], methods: Sequence[str], metric: str
) -> dict[str, float]:
    """``metric``'s mean per method in ``table`` (scores or differences), where it is finite."""
    cells = {m: table.get(m, {}).get(metric) for m in methods}
    return {m: float(s.mean) for m, s in cells.items() if s is not None and np.isfinite(s.mean)}


def _score_of(d: dict[str, Any], higher_is_better: bool | None) -> Score:
    """A saved ``{mean, ci_low, ci_high, n}`` as a :class:`Score` (None, JSON's NaN, back to NaN)."""

    def num(key: str) -> float:
        v = d.get(key)
        return float(v) if isinstance(v, int | float) else float("nan")

    n = d.get("n")
    return Score(
        num("mean"), num("ci_low"), num("ci_high"), int(n) if isinstance(n, int) else 0, higher_is_better
    )


def _earlier_outputs(out: Path) -> set[str]:
    """Files an earlier ``write`` into ``out`` made: its scores.json's list, else its name patterns."""
    try:
        listed = json.loads((out / SCORES_JSON).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    if isinstance(listed, list):
        return {f for f in listed if isinstance(f, str) and f == Path(f).name and f not in ("", ".", "..")}
    ours = [
        "scores.md",
        "region_shares.png",
        "class_mean_maps.png",
        *(p.name for p in out.glob("curves_*.png")),
    ]
    return {name for name in ours if (out / name).is_file()}


def chance_mark(d: Score | None, higher_is_better: bool) -> str:
    """`` ✓`` when the paired difference with matched random maps has its 95% CI on the good side of 0,
    `` ⚠`` on the bad side (worse than chance), else nothing."""
    from agelens.report.findings import BEATS, WORSE, bounds_side  # the report's rule, one home

    if d is None or not d.n:
        return ""
    side = bounds_side(d.ci_low, d.ci_high, higher_is_better)
    return " ✓" if side == BEATS else " ⚠" if side == WORSE else ""


CHANCE_LEGEND = (
    "✓ = beats random maps as smooth as the method's own (the 95% CI of the paired difference excludes 0 "
    "on the good side); ⚠ = worse than them."
)


def chance_legend(unmarked: Sequence[str] = ()) -> str:
    """:data:`CHANCE_LEGEND`, and why ``unmarked`` metrics (not ranked: they describe maps) carry no mark."""
    return " ".join(filter(None, (CHANCE_LEGEND, unmarked_note(unmarked))))


def unmarked_note(unmarked: Sequence[str]) -> str:
    """Why the ``unmarked`` metrics' differences from random maps carry no ✓/⚠ ("" when none)."""
    if not unmarked:
        return ""
    them = "it describes" if len(unmarked) == 1 else "they describe"
    return f"No mark on {', '.join(unmarked)}: {them} maps without judging them."


def delta_cell(s: Score | None, higher_is_better: bool, marked: bool = True) -> str:
    """A paired difference as ``+0.012 [-0.027, +0.048]`` with its chance mark (``marked``: the metric
    is ranked); ``n/a`` when not compared."""
    if s is None:
        return "n/a"
    mark = chance_mark(s, higher_is_better) if marked else ""
    return f"{signed(s.mean)} [{signed(s.ci_low)}, {signed(s.ci_high)}]" + mark


def signed(v: float) -> str:
    """``+0.012``; a nonzero value under 0.0005 in one significant digit (``+4e-04``), as wide.

    Why: a CI that excludes zero printed as ``+0.000 [+0.000, +0.000] ✓`` looked like a bug, so a
    tiny value keeps its sign and size; and in the six characters of ``+0.000``, so it does not
    widen its column past a terminal's width (``+4.2e-04`` could). ``<0.001`` would drop the sign
    a CI's ends need, ``+0.000`` the point above. A value too small for a two-digit exponent is
    zero to every purpose here (``+0.000``).
    """
    if v == 0 or abs(v) >= 5e-4 or not np.isfinite(v) or len(tiny := f"{v:+.0e}") > len("+0.000"):
        return f"{v:+.3f}"
    return tiny


def score_methods(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray | None,
    methods: Sequence[str],
    metrics: Sequence[str | Metric] = DEFAULT_METRICS,
    *,
    targets: Any = None,
    masks: np.ndarray | None = None,
    region_masks: np.ndarray | None = None,
    region_names: Sequence[str] | None = None,
    group_names: Sequence[str] | None = None,
    explainers: Mapping[str, Explainer] | None = None,
    model_explainers: Mapping[str, ModelExplainer] | None = None,
    layer: Any = None,
    shuffled_model: Any = None,
    random_baseline: bool = True,
    seed: int = 0,
    n_boot: int = 2000,
    batch_size: int = 64,
    out_dir: str | Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScoreTable:
    """Score each method with each metric on ``images``, explaining ``targets`` (default, None or
    ``"predicted"``: each image's predicted class).

    ``model`` is an :class:`AgeModel` or a keras.Model (wrapped as the explain engine wraps
    it, so randomisation and robustness run on it too), or a bare ``predict_fn`` when every
    method has an entry in ``explainers``. ``targets`` are class indices or class names, one
    for every image or one per image; ``"age"`` or a contrast (``"old-young"``) explains that and
    scores it on the same quantity (:mod:`agelens.metrics.readouts`). Metrics that need what is
    not given (``masks`` for localisation, a model for randomisation) are skipped and listed in
    ``skipped``. ``shuffled_model`` (the same network trained on shuffled labels) enables the
    ``data_randomisation`` check.
    The options recorded per method are those it ran with; for a method given in
    ``explainers`` they are the explainer's own (its ``options``, where it carries them),
    else marked as given by the caller, never the defaults it may not have used.
    ``labels`` (true classes, one per image: indices or class names) group the region view and the
    gallery; None leaves the gallery empty and is refused with ``region_masks``. ``layer`` is the CAM
    methods' layer (a keyword such as ``"last-conv"`` or a layer name; default: the model's declared
    one): faithfulness depends on it, so comparing layers is one call per layer. ``images`` are
    model-sized RGB in 0..255 (floats all in 0..1 are scaled, with a warning, before the targets are
    predicted); photo-size images are refused in one line: get model-size ones with
    :func:`~agelens.metrics.explanation_inputs`. Writes to ``out_dir`` if given.
    """
    # Checked and scaled first: the targets are predicted here, before any metric would check x or
    # scale 0..1 input, so a photo-size batch fails in one line, not inside the traced forward pass.
    checked = check_images(images, input_size_of(model), "images")  # integers kept as they are
    x = as_pixels(checked, "images", stacklevel=3)
    check_finite("images", x)
    n = len(x)
    labels = _labels_counted(labels, n)
    if labels is None and region_masks is not None:
        raise ValueError(
            "labels: the region view (region_masks) groups images by their true class; "
            "pass labels, one class index or name per image"
        )
    predict = predict_fn_of(model, batch_size)
    probs = np.concatenate([np.asarray(predict(x[s : s + batch_size])) for s in range(0, n, batch_size)])
    am = as_age_model(model)  # a keras.Model too: randomisation needs weights, not only predictions
    declared = getattr(am, "class_names", None)
    labels = _labels_named(labels, declared or group_names, probs.shape[1])
    aim = _aim(model, targets, probs, declared or group_names, batch_size)
    shuffled = _shuffled_twin(shuffled_model, am)
    objs, skipped = _usable_metrics(metrics, masks, am, shuffled)
    names = list(dict.fromkeys([*methods, *([RANDOM] if random_baseline else [])]))
    table = ScoreTable(names, [m.info() for m in objs], {}, skipped=skipped)
    run = _Run(
        model=model,
        am=am,
        predict=predict,
        x=x,
        x_in=checked if checked.dtype.kind in "iu" else x,  # the metrics check x again: integers stay so
        aim=aim,
        metrics=objs,
        masks=masks,
        shuffled=shuffled,
        explainers=explainers or {},
        model_explainers=model_explainers or {},
        layer=layer,
        seed=seed,
        n_boot=n_boot,
        batch_size=batch_size,
        random_baseline=random_baseline,
        n_classes=probs.shape[1],
        class_names=list(group_names or declared or range(probs.shape[1])),
        labels=labels,
        region_masks=region_masks,
        region_names=region_names,
        say=on_progress or (lambda _msg: None),
    )
    for name in names:
        _method_pass(table, name, run)
    table.vs_random = {k: v for k, v in table.vs_random.items() if v}
    table.baselines = {k: v for k, v in table.baselines.items() if v}
    table.gallery = {} if labels is None else extreme_cases(probs, labels)  # right or wrong needs labels
    _record_meta(table, run)
    if out_dir is not None:
        table.write(out_dir)
    return table


@dataclass(frozen=True)
class _Aim:
    """What the maps explain and the metrics score, resolved once for every method.

    Why ``classes`` beside ``metric_targets``: a readout ("age", "old-young") is explained and scored
    on that quantity (``metric_targets`` is its spec), while the class-mean maps are still grouped by
    each image's predicted class; for class targets the two are the same array.
    """

    explained: str  # as scores.md says it: "predicted class", "given targets" or the readout's label
    metric_targets: Any  # what the explainers and metrics get: class indices, or a readout's spec
    classes: np.ndarray  # each image's class index, grouping the class-mean maps
    readout: Readout | None


def _aim(model: Any, targets: Any, probs: np.ndarray, class_names: Any, batch_size: int) -> _Aim:
    """The targets :func:`score_methods` was given as an :class:`_Aim`: each image's predicted class
    (None or ``"predicted"``), given class indices or names (names are ``class_names``), or a readout.

    Why here, before any map is drawn: a readout of ``"age"`` on a model without an age output, or a
    class name the model lacks, fails in one line now rather than after minutes of explaining.
    """
    targets = None if means_predicted(targets) else targets  # "predicted", as explain spells it
    readout = readout_of(targets, class_names)
    predicted = probs.argmax(1)
    if readout is not None:  # "age", "old-young": maps of it, scored on it; classes only group the views
        if readout.kind == AGE:
            age_predict_fn(model, batch_size)  # no age output: one line now, before any map is drawn
        return _Aim(readout.label, readout.spec, predicted, readout)
    if targets is None:
        return _Aim("predicted class", predicted, predicted, None)
    classes = class_targets(targets, class_names, len(probs), probs.shape[1])
    return _Aim("given targets", classes, classes, None)


@dataclass(frozen=True)
class _Run:
    """What every method's pass of :func:`score_methods` shares, checked and resolved once.

    Why one object: each pass explains, scores, averages per class and splits by region with the
    same images, targets, metrics and options; passing them one by one took twenty arguments.
    """

    model: Any  # as the caller gave it: the method explainers are built from it
    am: Any  # the model as an AgeModel (None for a bare predict_fn)
    predict: Callable[[np.ndarray], Any]
    x: np.ndarray  # float pixels 0..255, explained
    x_in: np.ndarray  # the images as the metrics get them (integers stay integers)
    aim: _Aim
    metrics: list[Metric]
    masks: np.ndarray | None
    shuffled: Any
    explainers: Mapping[str, Explainer]
    model_explainers: Mapping[str, ModelExplainer]
    layer: Any
    seed: int
    n_boot: int
    batch_size: int
    random_baseline: bool
    n_classes: int
    class_names: list[Any]
    labels: np.ndarray | None
    region_masks: np.ndarray | None
    region_names: Sequence[str] | None
    say: Callable[[str], None]


def _method_pass(table: ScoreTable, name: str, run: _Run) -> None:
    """Explain with one method, then fill ``table`` for it: scores against matched random maps,
    the class-mean maps and, with region masks, the region shares.

    Why per method: the maps are the largest thing a call makes; each method's are reduced to its
    scores and views here, and only those are kept in ``table``.
    """
    run.say(f"explaining with {name}")
    opts = _method_options(name, run.seed, run.layer, run.aim.readout)
    fn = run.explainers.get(name) or method_explainer(run.model, name, **opts)
    maps = np.asarray(fn(run.x, run.aim.metric_targets), dtype=np.float32)
    custom = name in run.explainers and name not in run.model_explainers
    ctx = {
        "predict_fn": run.predict if run.aim.readout is None else run.model,  # the age is read from the model
        "masks": run.masks,
        "batch_size": run.batch_size,
        "seed": run.seed,
        "model": run.am,
        "model_explainer": run.model_explainers.get(name) or method_model_explainer(name, **opts),
        "shuffled_model": run.shuffled,
    }
    skip_random = name == RANDOM or custom  # noise is model-blind; custom maps have no model form
    _score_method(
        table,
        name,
        run.x_in,
        maps,
        run.aim.metric_targets,
        run.metrics,
        ctx,
        run.random_baseline,
        skip_random,
        run.n_boot,
        run.say,
    )
    table.class_means[name] = class_mean_maps(maps, run.aim.classes, run.n_classes)
    if run.region_masks is not None:
        rnames = list(run.region_names or range(int(np.max(run.region_masks)) + 1))
        table.regions[name] = _jsonable_regions(
            region_shares_by_group(maps, run.region_masks, run.labels, run.class_names, rnames)
        )


def _record_meta(table: ScoreTable, run: _Run) -> None:
    """What scores.json records about the call: sizes, seed, target, each method's options as it ran,
    the metrics' settings and provenance.

    Why after the loop: the matched random maps' smoothness (``matched_sigma``) is recorded while the
    methods are scored, and scores.json keeps it first.
    """
    size = run.x.shape[1]
    table.meta.update(
        n_images=len(run.x),
        size=size,
        seed=run.seed,
        n_boot=run.n_boot,
        explained=run.aim.explained,
        readout=None if run.aim.readout is None else run.aim.readout.describe(),
        class_names=run.class_names,
        method_options={
            name: _ran_with(name, run.seed, run.layer, run.explainers.get(name), run.aim.readout, run.am)
            for name in table.methods
        },
        metric_params=_metric_params(run.metrics, size),
        **provenance(getattr(run.am, "path", None)),  # versions, created, command_line, model_file
    )


def _saved_meta(meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """``meta`` as scores.json records it: the photo folders typed relative (``data``, ``holdout``,
    ``masks``) also as absolute paths (:func:`~agelens.provenance.resolved_paths`), and the
    shuffled-label model's fingerprint beside its path (found as given, or in the run folder
    ``out`` is part of, as the demo names it). scores.md keeps the paths as typed."""
    from agelens.provenance import model_fingerprint

    saved = resolved_paths(meta)
    twin = saved.get("shuffled_model")
    if isinstance(twin, str) and twin and "shuffled_model_file" not in saved:
        found = model_fingerprint(twin) or model_fingerprint(out.parent / twin)
        if found is not None:
            saved["shuffled_model_file"] = found
    return saved


def _metric_params(metrics: list[Metric], size: int) -> dict[str, dict[str, Any]]:
    """Each metric's settings (:meth:`Metric.params`), a blur left to its default as the sigma used
    at this image ``size``: the same name scores otherwise with another baseline, step or level."""
    from agelens.metrics.perturb import default_blur_sigma

    out = {}
    for m in metrics:
        params = m.params()
        if params.get("baseline") == "blur" and params.get("blur_sigma", 0) is None:
            params["blur_sigma"] = round(float(default_blur_sigma(size)), 4)
        out[m.name] = params
    return out


def _labels_counted(labels: Any, n: int) -> np.ndarray | None:
    """``labels`` as an array of one true class per image (None stays None); a one-line error otherwise.

    Why before predicting: a wrong count used to fail as "operands could not be broadcast" in the
    gallery, after every method had been explained and scored.
    """
    if labels is None:
        return None
    t = np.asarray(labels)
    if t.ndim != 1 or len(t) != n:
        got = f"{len(t)}" if t.ndim == 1 else f"shape {t.shape}"
        raise ValueError(
            f"labels: {got} for {n} images; give one true class (index or name) per image, or labels=None"
        )
    return t


def _labels_named(labels: np.ndarray | None, class_names: Any, n_classes: int) -> np.ndarray | None:
    """``(n,)`` int64 class indices from :func:`_labels_counted`'s labels (indices or class names)."""
    if labels is None:
        return None
    names = [str(c) for c in class_names] if class_names is not None else []
    if labels.dtype.kind in "US":
        unknown = sorted({str(v) for v in labels} - set(names))
        if unknown:
            said = f"the classes are {', '.join(names)}" if names else "give class indices"
            raise ValueError(f"labels: unknown class {unknown[0]!r}; {said}")
        return np.array([names.index(str(v)) for v in labels], np.int64)
    integral = labels.dtype.kind in "iub" or (
        labels.dtype.kind == "f" and bool(np.all(np.isfinite(labels) & (labels == np.round(labels))))
    )
    if not integral:
        raise ValueError(f"labels must be class indices or class names, got dtype {labels.dtype}")
    t = labels.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        bad = int(t.min() if t.min() < 0 else t.max())
        raise ValueError(f"labels must be class indices in [0, {n_classes}), got {bad}")
    return t


def _shuffled_twin(shuffled_model: Any, model: Any) -> Any:
    """``shuffled_model`` as an AgeModel, checked against ``model`` now: a path or a mismatch must not
    be skipped as "not given" or fail after minutes of other metrics."""
    if shuffled_model is None:
        return None
    twin = as_age_model(shuffled_model)
    if twin is None:
        raise TypeError(
            f"shuffled_model must be an AgeModel or keras.Model, got {type(shuffled_model).__name__}; "
            "load a file with agelens.load_model(path)"
        )
    from agelens.metrics.data_randomisation import check_comparable

    check_comparable(model, twin)
    return twin


GIVEN_BY_CALLER = {"options": "given by the caller's explainer"}
"""Recorded for a caller's explainer that does not say its options: unknown beats a wrong default."""


def _ran_with(
    name: str,
    seed: int,
    layer: Any,
    explainer: Any = None,
    readout: Readout | None = None,
    model: Any = None,
) -> dict[str, Any] | None:
    """Every option a method ran with, defaults included (None for an unregistered name); with
    ``model``, a default the method resolves from it (occlusion's window and stride) as resolved.

    Why a caller's explainer is not given the defaults: ``method_explainer(model, "smoothgrad",
    n=3)`` ran with ``n=3``, and recording the default ``n=25`` was wrong. Its own options are
    recorded where it carries them (``explainer.options``), else :data:`GIVEN_BY_CALLER`.
    """
    from agelens.explain.api import effective_options, resolved_options

    if explainer is not None:
        carried = getattr(explainer, "options", None)
        if not isinstance(carried, Mapping):
            return dict(GIVEN_BY_CALLER)
        name, opts = str(getattr(explainer, "method", name)), dict(carried)
    else:
        opts = _method_options(name, seed, layer, readout)
    try:
        ran = effective_options(name, opts) if model is None else resolved_options(model, name, opts)
        return {k: v for k, v in ran.items() if isinstance(v, str | int | float | bool)}
    except (KeyError, ValueError, TypeError):  # random maps, or a custom explainer's name
        if name == RANDOM or explainer is not None:
            return {k: v for k, v in opts.items() if k != "layer" and isinstance(v, str | int | float | bool)}
        return None


def _method_options(name: str, seed: int, layer: Any, readout: Readout | None = None) -> dict[str, Any]:
    """Options for one method: the noise seed for ``random``, ``layer`` for methods that explain a layer,
    and the readout's target (``"age"``) for every real method when one is read."""
    if name == RANDOM:
        return {"seed": seed}
    target = {} if readout is None else {"target": readout.spec}
    if layer is None:
        return target
    from agelens.explain.api import takes_layer

    try:
        return {"layer": layer, **target} if takes_layer(name) else target
    except ValueError:  # a custom explainer's name: it is given no options
        return {}


def _score_method(
    table: ScoreTable,
    name: str,
    x: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    metrics: list[Metric],
    ctx: dict[str, Any],
    random_baseline: bool,
    skip_reexplain: bool,
    n_boot: int,
    say: Callable[[str], None],
) -> None:
    """Fill ``table`` for one method: scores, matched-random baseline and paired difference, mean curves."""
    seed = ctx["seed"]
    base = None
    if random_baseline and name != RANDOM:
        sigma = smoothness_sigma(maps)
        base = random_maps(len(x), x.shape[1], seed + 1, sigma=sigma)
        table.meta.setdefault("matched_sigma", {})[name] = sigma
    table.scores[name], table.baselines[name], table.vs_random[name] = {}, {}, {}
    for metric in metrics:
        say(f"{name}: {metric.name}")
        hib = metric.higher_is_better
        reexplains = "model_explainer" in metric.requires  # randomisation, robustness: maps of other inputs
        if reexplains and skip_reexplain:
            table.scores[name][metric.name] = Score.from_values(np.full(len(x), np.nan), hib)
            continue
        res = metric.evaluate(x, maps, targets, **ctx)
        table.scores[name][metric.name] = Score.from_values(res.scores, hib, n_boot, seed)
        curve = {"x": res.curve_x, "mean": res.mean_curve()} if res.curves is not None else None
        if base is not None and not reexplains:  # a random map cannot be re-explained
            bres = metric.evaluate(x, base, targets, **ctx)
            table.baselines[name][metric.name] = Score.from_values(bres.scores, hib, n_boot, seed)
            table.vs_random[name][metric.name] = paired_difference(res.scores, bres.scores, n_boot, seed)
            if curve is not None:
                curve["matched_random_mean"] = bres.mean_curve()
        if curve is not None:
            table.curves.setdefault(name, {})[metric.name] = {
                k: np.asarray(v).tolist() for k, v in curve.items()
            }


def _usable_metrics(
    metrics: Sequence[str | Metric], masks: np.ndarray | None, model: Any, shuffled_model: Any = None
) -> tuple[list[Metric], dict[str, str]]:
    objs, skipped = [], {}
    for spec in metrics:
        m = get_metric(spec)
        if "masks" in m.requires and masks is None:
            skipped[m.name] = "no ground-truth masks given"
        elif "shuffled_model" in m.requires and shuffled_model is None:
            skipped[m.name] = "no model trained on shuffled labels given (agelens train --shuffle-labels)"
        elif "model" in m.requires and model is None:
            verb = "randomise" if m.category == "randomisation" else "re-explain"
            skipped[m.name] = f"needs a model (an AgeModel or keras.Model) to {verb}, not a bare predict_fn"
        else:
            objs.append(m)
    return objs, skipped


def _jsonable_regions(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}
