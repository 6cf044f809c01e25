"""The acceptance check of "prove the maps": does a method beat random maps on deletion and insertion?

A method passes when, on the same images, its deletion AUC is *below* and its insertion
AUC *above* that of random maps, each with the 95% bootstrap CI of the per-image paired
difference excluding 0. Two baselines are checked: uniform pixel noise (the contract)
and noise blurred to the method's own smoothness (the fair one for smooth CAM maps).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from agelens.metrics.adapters import method_explainer, predict_fn_of
from agelens.metrics.base import Score, paired_difference, random_maps, smoothness_sigma
from agelens.metrics.faithfulness import Deletion, Insertion


def faithfulness_check(
    model: Any,
    images: np.ndarray,
    method: str = "gradcam",
    *,
    step: float = 0.05,
    deletion_baseline: str = "black",
    seed: int = 0,
    batch_size: int = 64,
    n_boot: int = 2000,
    layer: str | None = None,
) -> dict[str, Any]:
    """Deletion / insertion of ``method`` vs random maps on ``images`` (explaining the predicted class).

    ``layer`` picks the CAM layer (default: the model's declared layer, else ``last-conv``);
    on a 64 px model the last conv map is 2x2, so a 4x4 layer such as ``late`` gives a
    fairer test of the method.
    """
    from agelens.explain.layers import default_layer_spec  # TensorFlow only when a check runs

    t0 = time.time()
    x = np.asarray(images, dtype=np.float32)
    n, size = len(x), x.shape[1]
    predict = predict_fn_of(model, batch_size)
    targets = predict(x).argmax(1)
    opts = {"layer": layer} if layer else {}
    maps = np.asarray(method_explainer(model, method, **opts)(x, targets), np.float32)
    sigma = smoothness_sigma(maps)
    baselines = {
        "uniform_noise": random_maps(n, size, seed + 1),
        "matched_smoothness": random_maps(n, size, seed + 1, sigma=sigma),
    }
    ctx = {"predict_fn": predict, "seed": seed, "batch_size": batch_size}
    out: dict[str, Any] = {
        "method": method,
        "layer": layer or default_layer_spec(model),
        "n_images": n,
        "size": size,
        "step": step,
        "deletion_baseline": deletion_baseline,
        "matched_sigma": sigma,
    }
    passed = True
    per_baseline = dict.fromkeys(baselines, True)
    for metric in (Deletion(step=step, baseline=deletion_baseline), Insertion(step=step)):
        mine = metric.evaluate(x, maps, targets, **ctx).scores
        row: dict[str, Any] = {
            "score": Score.from_values(mine, metric.higher_is_better, n_boot, seed).to_dict()
        }
        for name, base in baselines.items():
            theirs = metric.evaluate(x, base, targets, **ctx).scores
            diff = paired_difference(mine, theirs, n_boot, seed)
            ok = diff.ci_low > 0 if metric.higher_is_better else diff.ci_high < 0
            passed &= ok
            per_baseline[name] &= ok
            row[name] = {
                "score": Score.from_values(theirs, metric.higher_is_better, n_boot, seed).to_dict(),
                "difference": diff.to_dict(),
                "beats_random": bool(ok),
            }
        out[metric.name] = row
    out["passed"] = bool(passed)  # against every baseline
    out["passed_by_baseline"] = {k: bool(v) for k, v in per_baseline.items()}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def heldout_names(utk64: str | Path, seed: int = 0) -> set[str] | None:
    """File names of the shipped model's test split, recomputed as its training recipe made it.

    ``benchmarks/train_shipped.py`` splits the sorted utkface-64 file names 80/10/10,
    stratified by age group, with ``stratified_split(seed=0)``; utkface-200 photos share
    those names. Returns None when the folder is absent. Assumes every file decodes (the
    recipe drops undecodable ones before splitting; utkface-64 has none).
    """
    from agelens.data.bins import AgeBins
    from agelens.data.split import stratified_split

    folder = Path(utk64)
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    labels = AgeBins().index(np.array([int(n.split("_")[0]) for n in names], dtype=np.float32))
    split = stratified_split(np.asarray(labels).astype(np.int32), seed=seed)
    return {names[i] for i in np.flatnonzero(split == 2)}


def sample_photos(
    data: str | Path, size: int, n: int, seed: int = 0, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(images, labels, which photos)``: ``n`` stratified, seeded photos of a UTKFace folder.

    ``split="test"`` restricts to the shipped model's held-out split when a sibling
    ``utkface-64`` folder lets us recompute it (:func:`heldout_names`); else all photos.
    """
    from agelens.data.images import load_batch
    from agelens.data.sources import load_dataset
    from agelens.metrics.sampling import stratified_sample

    data = Path(data)
    ds = load_dataset(data, check_images=False)
    used = "all photos"
    if split == "test":
        names = heldout_names(data.parent / "utkface-64")
        if names is not None:
            keep = [i for i, r in enumerate(ds.records) if r.path.name in names]
            ds, used = ds.subset(keep), f"held-out test split ({len(keep)} photos)"
    idx = stratified_sample(ds.labels, n, seed)
    images, ok, _ = load_batch([ds.records[i].path for i in idx], size)
    label_of = {r.path: r.label for r in ds.records}
    return images, np.array([label_of[p] for p in ok], dtype=np.int64), used
