"""Dataset-level views of the maps: class-mean maps, map energy per facial region, gallery picks.

Aligned crops make pixel positions comparable across faces, so averaging maps per class
and summing map energy per region is meaningful. Synthetic faces carry exact region
masks (``agelens.data.synthetic.REGION_NAMES``); for real aligned crops (UTKFace chips)
we use :func:`face_layout`, a fixed layout in fractions of the crop, calibrated on the
mean of 221 utkface-200 chips (eye centres at y = 0.30, x = 0.30 / 0.70; nose tip at
y = 0.52; mouth at y = 0.68; chin at y = 0.85):

============  ================  ================  ==========================
region        rows (y)          columns (x)       note
============  ================  ================  ==========================
forehead      0.04 - 0.22       0.22 - 0.78
eyes          0.22 - 0.38       0.14 - 0.86       brows, eyes, crow's feet
cheeks        0.38 - 0.64       0.12 - 0.88       minus the nose column
nose          0.38 - 0.60       0.38 - 0.62
mouth_chin    0.60 - 0.92       0.26 - 0.74       painted last, over cheeks
hair_bg       everything else                     hair, ears, neck, background
============  ================  ================  ==========================

A fixed layout is approximate for tilted or off-centre faces; it is a population view,
not a per-face segmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LAYOUT_NAMES: tuple[str, ...] = ("hair_background", "forehead", "eyes", "nose", "cheeks", "mouth_chin")
_LAYOUT: tuple[tuple[str, float, float, float, float], ...] = (  # painted in order: name, y0, y1, x0, x1
    ("forehead", 0.04, 0.22, 0.22, 0.78),
    ("eyes", 0.22, 0.38, 0.14, 0.86),
    ("cheeks", 0.38, 0.64, 0.12, 0.88),
    ("nose", 0.38, 0.60, 0.38, 0.62),
    ("mouth_chin", 0.60, 0.92, 0.26, 0.74),
)


def face_layout(size: int) -> np.ndarray:
    """``(size, size)`` uint8 region ids into :data:`LAYOUT_NAMES` for an aligned face crop."""
    out = np.zeros((size, size), np.uint8)
    for name, y0, y1, x0, x1 in _LAYOUT:
        out[round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = LAYOUT_NAMES.index(
            name
        )
    return out


def class_mean_maps(maps: np.ndarray, classes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean map per class ``(C, S, S)`` (NaN for a class with no image) and the image count per class."""
    classes = np.asarray(classes, dtype=np.int64)
    counts = np.bincount(classes, minlength=n_classes)
    sums = np.zeros((n_classes, *maps.shape[1:]), np.float64)
    np.add.at(sums, classes, maps)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None, None]
    return means.astype(np.float32), counts


def region_shares(maps: np.ndarray, region_masks: np.ndarray, n_regions: int) -> np.ndarray:
    """``(N, R)`` share of each map's (non-negative) mass per region; rows of all-zero maps are NaN."""
    n = len(maps)
    ids = np.broadcast_to(np.asarray(region_masks, dtype=np.int64), maps.shape)
    m = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    keys = (np.arange(n)[:, None, None] * n_regions + ids).reshape(-1)
    mass = np.bincount(keys, weights=m.reshape(-1), minlength=n * n_regions).reshape(n, n_regions)
    total = mass.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, mass / total, np.nan)


def region_shares_by_group(
    maps: np.ndarray,
    region_masks: np.ndarray,
    groups: np.ndarray,
    group_names: Sequence[str],
    region_names: Sequence[str],
) -> dict[str, Any]:
    """Mean share of map energy per region for each group (e.g. age group), plus each region's area share.

    The area share is what a map spread evenly would give: a region matters to the
    model when its energy share clearly exceeds its area share.
    """
    r = len(region_names)
    per_image = region_shares(maps, region_masks, r)
    ids = np.broadcast_to(np.asarray(region_masks, dtype=np.int64), maps.shape)
    area = np.bincount(ids.reshape(-1), minlength=r)[:r] / ids.size
    groups = np.asarray(groups, dtype=np.int64)
    shares = np.full((len(group_names), r), np.nan)
    counts = np.zeros(len(group_names), np.int64)
    for g in range(len(group_names)):
        rows = per_image[groups == g]
        rows = rows[np.isfinite(rows).all(axis=1)]
        counts[g] = len(rows)
        if len(rows):
            shares[g] = rows.mean(axis=0)
    return {
        "regions": list(region_names),
        "groups": list(group_names),
        "shares": shares,
        "area": area,
        "counts": counts,
    }


def extreme_cases(probs: np.ndarray, labels: np.ndarray, k: int = 8) -> dict[str, list[dict[str, Any]]]:
    """The ``k`` most confidently right and ``k`` most confidently wrong images, for the gallery.

    Right: highest probability on the true class among correct predictions. Wrong:
    highest probability on the (wrong) predicted class among errors.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), pred]

    def pick(mask: np.ndarray) -> list[dict[str, Any]]:
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-conf[idx], kind="stable")][:k]
        return [
            {
                "index": int(i),
                "label": int(labels[i]),
                "predicted": int(pred[i]),
                "p_predicted": float(conf[i]),
                "p_true": float(probs[i, labels[i]]),
                "probabilities": [float(p) for p in probs[i]],
            }
            for i in idx
        ]

    return {"confident_right": pick(pred == labels), "confident_wrong": pick(pred != labels)}
