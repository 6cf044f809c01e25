"""``agelens score``: prove the maps — faithfulness (and sanity) scores per method, with CIs and a ranking."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agelens.cli.common import fail, read_holdout, report_problems

if TYPE_CHECKING:
    import numpy as np
    from rich.table import Table

    from agelens.data.sources import Dataset
    from agelens.metrics.report import ScoreTable
    from agelens.model.io import AgeModel

_DEFAULT_METRICS = "deletion,insertion,average_drop,increase_in_confidence,road_morf,road_lerf"


def score_command(
    data: Annotated[Path, typer.Argument(help="UTKFace-style folder, class sub-folders, or a CSV.")],
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="A .keras/.h5 model (default: the shipped model).")
    ] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated explain methods, or 'all'.")] = "gradcam",
    metrics: Annotated[
        str, typer.Option(help="Comma-separated metrics, or 'all' (mask metrics need masks: skipped).")
    ] = _DEFAULT_METRICS,
    n: Annotated[int, typer.Option("--n", help="Images to score (stratified, seeded sample).")] = 500,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("outputs/score"),
    seed: Annotated[int, typer.Option(help="Seed for the sample, tie-breaks, noise and bootstrap.")] = 0,
    force: Annotated[bool, typer.Option(help="Overwrite an existing scores.json in --out.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 64,
    holdout: Annotated[
        Path | None,
        typer.Option(help="JSON with a 'test' list of file names: sample only those (a held-out split)."),
    ] = None,
) -> None:
    """Score attribution methods on a labelled dataset: each metric per method beside random maps.

    Writes scores.json, scores.md, curve plots and region-share plots (fixed face layout)
    to --out, and prints the table. Every method is compared, image by image, with random
    maps of the same smoothness; a ✓ marks a 95% CI that excludes chance.

    Example: agelens score ../shared/data/utkface-200 --methods gradcam,gradcam++ --n 200
    """
    import numpy as np
    from rich.console import Console

    from agelens.data.sources import DatasetError, load_dataset
    from agelens.metrics.adapters import RANDOM, available_methods
    from agelens.metrics.registry import METRICS, parse_names
    from agelens.metrics.sampling import stratified_sample
    from agelens.model.io import ModelLoadError, load_model

    if n < 1:
        fail(f"--n must be at least 1, got {n}")
    if (out / "scores.json").exists() and not force:
        fail(f"{out / 'scores.json'} exists; use --force to overwrite")
    try:
        method_names = parse_names(_canonical(methods), [*available_methods(), RANDOM], "method")
        metric_names = parse_names(metrics, list(METRICS), "metric")
    except ValueError as e:
        fail(str(e))
    if methods.strip().lower() == "all":
        method_names = [m for m in method_names if m != RANDOM]
    try:
        am = load_model(model)
        ds = load_dataset(data, check_images=False)
    except (ModelLoadError, DatasetError) as e:
        fail(str(e))
    pool = list(range(len(ds)))
    if holdout is not None:
        names = read_holdout(holdout)
        pool = [i for i, r in enumerate(ds.records) if r.path.name in names]
    if not pool:
        fail(f"{data}: no labelled images" + (f" named in {holdout}" if holdout else ""))
    labels_pool = np.asarray(ds.labels)[pool]
    idx = [pool[i] for i in stratified_sample(labels_pool, n, seed)]
    images, ok, labels, problems = _load_sample(ds, idx, pool, am.input_size, seed)
    report_problems(problems)
    if len(images) == 0:
        fail(f"{data}: none of the sampled images could be read")
    err = Console(stderr=True)
    with err.status("scoring...") as status:
        table = _score(am, images, labels, method_names, metric_names, seed, batch_size, status.update)
    from agelens.explain.layers import resolve_layer

    table.meta.update(
        data=str(data),
        model=str(am.path) if am.path else None,
        cam_layer=resolve_layer(am, None)[0],  # the CAM methods' layer: the model's declared default
        class_names=am.class_names,
        holdout=str(holdout) if holdout else None,
        images=[p.name for p in ok],
    )
    paths = table.write(out)
    Console().print(_rich_table(table))
    for p in paths.values():
        typer.echo(f"wrote {p}", err=True)
    sys.stdout.flush()


def _load_sample(
    ds: Dataset, idx: list[int], pool: list[int], size: int, seed: int
) -> tuple[np.ndarray, list[Path], list[int], list]:
    """Load the sampled images; each unreadable one is replaced by an unused photo of its class.

    ``--n 300`` should score 300 photos even if a few files in the folder are broken.
    """
    import numpy as np

    from agelens.data.images import load_batch

    rng = np.random.default_rng(seed + 1)
    chosen = set(idx)
    unused = [i for i in pool if i not in chosen]
    batches, ok, labels, problems = [], [], [], []
    while idx:
        records = [ds.records[i] for i in idx]
        x, good, bad = load_batch([r.path for r in records], size)
        keep = set(good)
        batches.append(x)
        ok += good
        labels += [r.label for r in records if r.path in keep]
        problems += bad
        idx = []
        for r in (r for r in records if r.path not in keep):
            same = [i for i in unused if ds.records[i].label == r.label] or unused
            if same:
                pick = same[int(rng.integers(len(same)))]
                unused.remove(pick)
                idx.append(pick)
    return (
        np.concatenate(batches) if batches else np.zeros((0, size, size, 3), np.uint8),
        ok,
        labels,
        problems,
    )


def _canonical(spec: str) -> str:
    """Resolve the explain engine's aliases (``integrated_gradients``, ``grad-cam``); unknown names pass."""
    try:
        from agelens.explain.api import canonical
    except ImportError:
        return spec

    def one(name: str) -> str:
        try:
            return canonical(name)
        except ValueError:
            return name.strip()

    return ",".join(
        one(n) if n.strip().lower() not in ("all", "random") else n.strip() for n in spec.split(",")
    )


def _score(
    am: AgeModel,
    images: np.ndarray,
    labels: list[int],
    methods: list[str],
    metrics: list[str],
    seed: int,
    batch_size: int,
    update: Callable[[str], None],
) -> ScoreTable:
    import numpy as np

    from agelens.metrics.regions import LAYOUT_NAMES, face_layout
    from agelens.metrics.report import score_methods

    return score_methods(
        am,
        images,
        np.asarray(labels),
        methods,
        metrics,
        region_masks=face_layout(am.input_size),
        region_names=LAYOUT_NAMES,
        group_names=am.class_names,
        seed=seed,
        batch_size=batch_size,
        on_progress=lambda msg: update(f"scoring: {msg}"),
    )


def _rich_table(table: ScoreTable) -> Table:
    from rich.table import Table

    from agelens.metrics.report import arrow

    names = [m["name"] for m in table.metrics]
    rank = {r["method"]: r["mean_rank"] for r in table.ranking()}
    t = Table(title=f"Attribution scores ({table.meta.get('n_images')} images, mean [95% CI])")
    t.add_column("method")
    for name in names:
        header = f"{name.replace('_', ' ')} {arrow(table.direction(name))}"
        # Headers wrap at spaces rather than being cut to "deleti…" on an 80-column terminal.
        t.add_column(header, justify="right", min_width=max(len(w) for w in header.split()))
    t.add_column("mean rank", justify="right")
    for r in table.ranking():
        m = r["method"]
        cells = []
        for name in names:
            s, d = table.scores[m][name], table.vs_random.get(m, {}).get(name)
            good = d is not None and (d.ci_low > 0 if table.direction(name) else d.ci_high < 0)
            cells.append(f"{s}{' ✓' if good else ''}")
        t.add_row(m, *cells, f"{rank[m]:.2f}")
    return t
