"""Does the map point at where the evidence really is? (Needs a ground-truth mask, e.g. synthetic cue masks.)

* Pointing game (Zhang et al., ECCV 2016): a hit when the map's maximum lies inside
  the mask grown by a small tolerance (15 px at 224 px in the paper, scaled to the
  image size here). Images whose mask is empty score NaN and are left out.
* Energy in mask: the share of map mass inside the mask. A map that knows nothing
  puts ``area share`` of its mass there, so that is reported as the random
  expectation, and ``energy / area`` (the gain over chance) alongside.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation

from agelens.metrics.base import NEEDS_MASK, Context, Metric, MetricResult


def default_tolerance(size: int) -> int:
    """Pointing-game tolerance in pixels: Zhang et al.'s 15 px at 224 px, scaled to ``size``."""
    return int(round(15 * size / 224))


def pointing_hits(maps: np.ndarray, masks: np.ndarray, tolerance: int | None = None) -> np.ndarray:
    """1.0 / 0.0 per image (NaN for an empty mask): is the map's argmax inside the dilated mask?

    Ties at the maximum score the share of maximal pixels inside, i.e. the chance that an
    argmax picked at random among them hits: a flat-topped map is neither rewarded for
    touching the mask somewhere nor punished for where ``argmax`` happens to land first.
    """
    n, h, w = maps.shape
    tol = default_tolerance(h) if tolerance is None else tolerance
    inside = np.asarray(masks) > 0.5
    if tol > 0:
        disk = np.hypot(*np.mgrid[-tol : tol + 1, -tol : tol + 1]) <= tol
        inside = binary_dilation(inside, structure=disk[None])
    peak = maps >= maps.max(axis=(1, 2), keepdims=True)
    hits = (peak & inside).sum(axis=(1, 2)) / peak.sum(axis=(1, 2))
    hits[~(np.asarray(masks) > 0.5).any(axis=(1, 2))] = np.nan
    return hits


def energy_in_mask(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of map mass inside the mask, mask's area share) per image; NaN for empty masks or maps."""
    m = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    k = np.clip(np.asarray(masks, dtype=np.float64), 0, 1)
    total = m.sum(axis=(1, 2))
    area = k.mean(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, (m * k).sum(axis=(1, 2)) / total, np.nan)
    share[area == 0] = np.nan
    return share, np.where(area > 0, area, np.nan)


class PointingGame(Metric):
    """Hit rate of the map's peak inside the ground-truth mask (with tolerance); higher is better."""

    name = "pointing_game"
    higher_is_better = True
    applies_to = NEEDS_MASK
    category = "localisation"
    requires = ("masks",)
    reads_targets = False  # the peak or the mass of the map against its mask, whatever it explains

    def __init__(self, tolerance: int | None = None) -> None:
        self.tolerance = tolerance

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        hits = pointing_hits(maps, ctx.masks, self.tolerance)
        return MetricResult(hits, extra={"tolerance": self.tolerance or default_tolerance(maps.shape[1])})


class EnergyInMask(Metric):
    """Share of map mass inside the mask (a random map gets ``extra['area']``); higher is better."""

    name = "energy_in_mask"
    higher_is_better = True
    applies_to = NEEDS_MASK
    category = "localisation"
    requires = ("masks",)
    reads_targets = False  # the peak or the mass of the map against its mask, whatever it explains

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        share, area = energy_in_mask(maps, ctx.masks)
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = share / area
        return MetricResult(share, extra={"area": area, "gain": gain})
