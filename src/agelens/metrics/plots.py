"""PNG plots for a :class:`~agelens.metrics.report.ScoreTable` (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agelens.metrics._io import atomic_savefig

if TYPE_CHECKING:
    from agelens.metrics.report import ScoreTable


def _figure(w: float, h: float, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False)


def plot_curves(table: ScoreTable, metric: str, path: str | Path) -> Path:
    """Mean curve per method (solid) with its matched-random baseline (dashed, same colour)."""
    if any(m.get("name") == metric and m.get("category") == "randomisation" for m in table.metrics):
        return _plot_cascade(table, metric, path)
    fig, axes = _figure(6.5, 4.2)
    ax = axes[0, 0]
    for i, (method, rows) in enumerate(table.curves.items()):
        c = rows.get(metric)
        if not c:
            continue
        colour = "0.45" if method == "random" else f"C{i}"
        score = table.scores[method][metric]
        ax.plot(c["x"], c["mean"], color=colour, lw=2, label=f"{method} (AUC {score.mean:.3f})")
        if c.get("matched_random_mean") is not None:
            ax.plot(c["x"], c["matched_random_mean"], color=colour, lw=1, ls="--")
    label = "fraction of pixels removed" if metric != "insertion" else "fraction of pixels inserted"
    ax.set_xlabel(label if not metric.startswith("road") else "fraction of pixels imputed")
    readout = table.meta.get("readout") or {}
    ax.set_ylabel(readout.get("label", "target-class probability"))  # the age in years, a margin
    ax.set_title(f"{metric} (dashed: random maps of the same smoothness)")
    if not readout:
        ax.set_ylim(0, 1)
    elif readout.get("kind") == "contrast":
        ax.set_ylim(-1, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path)


def _plot_cascade(table: ScoreTable, metric: str, path: str | Path) -> Path:
    """Adebayo et al.'s cascading-randomisation figure: each method's similarity to its own map as
    more layers, from the top, get random weights. A faithful map drops early and stays low."""
    from agelens.metrics.sanity import SPEARMAN_THRESHOLD

    fig, axes = _figure(6.5, 4.2)
    ax = axes[0, 0]
    for i, (method, rows) in enumerate(table.curves.items()):
        c = rows.get(metric)
        if c:
            score = table.scores[method][metric]
            ax.plot(
                c["x"], c["mean"], color=f"C{i}", lw=2, marker="o", label=f"{method} (mean {score.mean:.3f})"
            )
    ax.axhline(SPEARMAN_THRESHOLD, color="0.5", lw=1, ls=":", label=f"flag line ({SPEARMAN_THRESHOLD:g})")
    ax.set_xlabel("share of the layers with random weights (from the top)")
    ax.set_ylabel("Spearman with the trained model's map")
    ax.set_title("cascading randomisation (lower is better)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.2, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path)


def plot_region_shares(table: ScoreTable, path: str | Path) -> Path:
    """Per method: share of map energy per face region, one bar per age group; black ticks = area share."""
    methods = list(table.regions)
    fig, axes = _figure(4.8 * len(methods), 3.8, ncols=len(methods))
    for ax, method in zip(axes[0], methods, strict=True):
        r = table.regions[method]
        shares = np.asarray(r["shares"], dtype=float)
        regions, groups = r["regions"], r["groups"]
        width = 0.8 / max(1, len(groups))
        pos = np.arange(len(regions))
        for g, name in enumerate(groups):
            ax.bar(
                pos + (g - (len(groups) - 1) / 2) * width,
                shares[g],
                width,
                label=f"{name} (n={r['counts'][g]})",
            )
        ax.scatter(pos, r["area"], marker="_", s=300, color="k", zorder=3, label="area share")
        ax.set_xticks(pos, [str(s) for s in regions], rotation=35, ha="right", fontsize=8)
        ax.set_title(method)
        ax.set_ylabel("share of map energy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return atomic_savefig(fig, path)


CLASS_MEAN_SCALE = "colour: one scale per row, 0 (dark) to that method's largest mean value (bright)"
"""How :func:`plot_class_means` scales colour, printed on the figure (and said by the report's caption)."""


def plot_class_means(table: ScoreTable, path: str | Path) -> Path:
    """Mean map per explained class (rows: methods, columns: classes); aligned crops make these comparable.

    One colour scale per row (method), from 0 to the largest value of that method's class means:
    the panels of a row are what a reader compares (does the map move between age groups?), and a
    scale per panel stretched each class to its own maximum, so a weaker class looked as strong.
    Methods' maps have different units and spreads, so each row keeps its own scale.
    """
    methods = list(table.class_means)
    names = table.meta.get("class_names") or []
    n_cls = max(len(m[0]) for m in table.class_means.values())
    fig, axes = _figure(2.3 * n_cls, 2.4 * len(methods) + 0.3, ncols=n_cls, nrows=len(methods))
    for r, method in enumerate(methods):
        means, counts = table.class_means[method]
        shown = [np.asarray(means[c], dtype=float) for c in range(n_cls) if counts[c]]
        top = max((float(np.nanmax(m)) for m in shown if np.isfinite(m).any()), default=0.0)
        for c in range(n_cls):
            ax = axes[r, c]
            ax.axis("off")
            label = names[c] if c < len(names) else f"class {c}"
            ax.set_title(f"{method}: {label} (n={int(counts[c])})", fontsize=8)
            if counts[c]:
                ax.imshow(means[c], cmap="inferno", vmin=0, vmax=max(top, 1e-6))
            else:  # say why the panel is empty rather than leave a hole that looks broken
                ax.text(0.5, 0.5, f"no image explained\nas {label}", ha="center", va="center",
                        fontsize=8, color="0.4", transform=ax.transAxes)  # fmt: skip
    fig.suptitle(CLASS_MEAN_SCALE, fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path)


def plot_shortcut(result: dict, path: str | Path) -> Path:
    """Left: accuracy with and without the stamps. Right: share of map energy on the stamp vs its area."""
    fig, axes = _figure(9.5, 3.6, ncols=2)
    acc = result["accuracy"]
    for i, key in enumerate(("stamped", "clean")):
        s = acc[key]
        axes[0, 0].bar(i, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]], capsize=4)
    axes[0, 0].set_xticks([0, 1], ["test with stamps", "same faces, no stamps"])
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].set_title(f"accuracy drop {100 * acc['drop']['mean']:+.1f} percentage points")
    methods = list(result["methods"])
    for i, m in enumerate(methods):
        s = result["methods"][m]["stamp_energy"]
        err = [[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]]
        axes[0, 1].bar(i, s["mean"], yerr=err, capsize=4, color="0.6" if m == "random" else f"C{i}")
    area = result["methods"][methods[0]]["stamp_area"]
    axes[0, 1].axhline(area, color="k", ls="--", lw=1, label=f"stamp area share ({area:.1%})")
    axes[0, 1].set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axes[0, 1].set_ylabel("share of map energy on the stamp")
    axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path)
