"""Does the model's target-class probability actually depend on the pixels a map calls important?

* Deletion / insertion (Petsiuk et al., RISE, BMVC 2018): remove (or insert) pixels in
  order of map value, ``step`` of the image at a time, and record the target-class
  probability; the score is the area under that curve over the removed fraction
  ``x in [0, 1]`` (the same trapezoid area as RISE's ``auc``). Deletion goes from the
  image to a *black* baseline by default (``baseline="blur"`` or ``"mean"`` avoid black's
  out-of-distribution artefact); RISE's code zeroes the ImageNet-normalised tensor, which is
  the ImageNet mean colour, so its "black" is grey. Insertion starts from a blurred copy by
  default, as RISE does, but blurred harder: sigma ``S/16`` (7 px at 112 px) against RISE's
  11x11 kernel of nominal sigma 5 (about 3 px in effect), so the wrinkle-scale texture
  the age cues live in is really gone; ``baseline="black"`` or ``"mean"`` start from those
  instead. Low deletion AUC and high insertion AUC are good.
* Average Drop / Increase in Confidence (Chattopadhay et al., Grad-CAM++, WACV 2018):
  feed ``x * map`` (the map as a soft mask, max-normalised) and compare the target
  probability with the original's. Negative attributions are clipped to 0 first (with a
  warning): a mask can keep or dim a pixel, not negate it, and the Grad-CAM family's
  maps are non-negative (ReLU) by construction.

Maps of the age or of a contrast: ``targets="age"`` or ``"old-young"`` makes every metric
here read that quantity (the expected age in years, or ``p(old) - p(young)``) where it would
read the target-class probability (:mod:`agelens.metrics.readouts`).

Signed maps: the ranking metrics (deletion, insertion, ROAD) use only the order of map
values, so a signed map works as-is (most positive = most relevant, negative = least);
:func:`agelens.metrics.explanation_inputs` keeps the sign of a signed Explanation for them.
* ROAD (Rong et al., ICML 2022): remove the most (MoRF) or least (LeRF) relevant
  pixels at several levels and fill them by noisy linear imputation from their
  neighbours, which avoids the black-hole artefact that lets deletion reward
  methods for creating out-of-distribution inputs. Scored on target probability.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from agelens.metrics.base import Context, Metric, MetricResult
from agelens.metrics.perturb import (
    baseline_images,
    noisy_linear_impute,
    pixel_ranks,
    run_curves,
    step_counts,
    target_probs,
)

BASELINES = ("black", "blur", "mean")
"""What deleted pixels become, or inserted ones start from (:func:`baseline_images`)."""


class _PixelCurve(Metric):
    """Shared deletion/insertion engine: pixels with rank < count(k) switch from ``start`` to ``end``.

    ``baseline`` None means the paper's choice for the direction (``default_baseline``); a
    name outside :data:`BASELINES` is refused here, not on the first score, so a typo
    cannot quietly give the default's numbers.
    """

    requires = ("predict_fn",)
    deletes: ClassVar[bool]
    default_baseline: ClassVar[str]

    def __init__(
        self,
        step: float = 0.02,
        baseline: str | None = None,
        blur_sigma: float | None = None,
        progress: bool = False,
    ) -> None:
        if not 0 < step <= 0.5:
            raise ValueError(f"step is a fraction of the image in (0, 0.5], got {step}")
        baseline = self.default_baseline if baseline is None else baseline
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; use {', '.join(BASELINES)}")
        self.step, self.baseline, self.blur_sigma, self.progress = step, baseline, blur_sigma, progress

    def fractions(self) -> np.ndarray:
        k = int(round(1 / self.step))
        return np.linspace(0.0, 1.0, k + 1)

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        fr = self.fractions()
        counts = step_counts(fr, maps.shape[1] * maps.shape[2])
        ranks = pixel_ranks(maps, ctx.seed)
        start, end = x, baseline_images(x, self.baseline, self.blur_sigma)
        if not self.deletes:
            start, end = end, x

        def build(ii: np.ndarray, kk: np.ndarray) -> np.ndarray:
            changed = ranks[ii] < counts[kk][:, None, None]
            return np.where(changed[..., None], end[ii], start[ii])

        curves = run_curves(
            ctx.predict_fn, targets, len(fr), build, ctx.batch_size, self.name if self.progress else None
        )
        return MetricResult(np.trapezoid(curves, fr, axis=1), fr, curves)


class Deletion(_PixelCurve):
    """AUC of target probability while deleting the most relevant pixels first; lower is better."""

    name = "deletion"
    higher_is_better = False
    deletes = True
    default_baseline = "black"


class Insertion(_PixelCurve):
    """AUC of target probability while inserting the most relevant pixels into a blur (or ``baseline``);
    higher is better."""

    name = "insertion"
    higher_is_better = True
    deletes = False
    default_baseline = "blur"


def soft_masks(maps: np.ndarray, name: str = "average_drop") -> np.ndarray:
    """Maps as soft masks in [0, 1]: negative values clipped to 0 (warned), then divided by each map's peak.

    Why clip rather than min-max: min-max would make a map's most *negative* pixel fully
    dark and its zeros partly visible, i.e. change what the map says; clipping keeps the
    map's own scale for the evidence *for* the class and drops the evidence against it,
    which ``x * map`` could only express as negative pixels the model never sees.
    """
    if (maps < 0).any():
        warnings.warn(
            f"{name}: maps hold negative attributions; they are clipped to 0 for the soft mask",
            stacklevel=5,
        )
        maps = np.maximum(maps, 0.0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0).astype(np.float32)


def _masked_probs(
    x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context, name: str
) -> tuple[np.ndarray, ...]:
    soft = soft_masks(maps, name)
    y = target_probs(ctx.predict_fn, x, targets, ctx.batch_size)
    o = target_probs(ctx.predict_fn, x * soft[..., None], targets, ctx.batch_size)
    return y, o


class AverageDrop(Metric):
    """``max(0, Y - O) / Y`` , Y on the image, O on ``image x map``; lower is better (paper: x100).

    Negative map values are clipped to 0 before masking (see :func:`soft_masks`). Reading a
    contrast (:mod:`~agelens.metrics.readouts`), an image whose margin Y is not positive
    scores NaN: a relative drop from zero or below means nothing. A margin can also fall
    below zero (p(old) - p(young) from 0.1 to -0.6 would be a 700% "drop"), so with a
    readout the drop is capped at 1: losing the whole margin, or more, is a full drop, and
    the score stays in [0, 1] as it does for a probability.
    """

    name = "average_drop"
    higher_is_better = False
    requires = ("predict_fn",)

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        y, o = _masked_probs(x, maps, targets, ctx, self.name)
        drop = np.maximum(0.0, y - o) / np.maximum(y, 1e-12)
        if ctx.readout is not None:  # a margin at or below 0 has nothing to drop from: no score
            drop = np.where(y > 0, np.minimum(drop, 1.0), np.nan)
        return MetricResult(drop, extra={"original": y, "masked": o})


class IncreaseInConfidence(Metric):
    """1 where ``image x map`` beats the image's target probability (mean: share); higher is better.

    Negative map values are clipped to 0 before masking (see :func:`soft_masks`).
    """

    name = "increase_in_confidence"
    higher_is_better = True
    requires = ("predict_fn",)

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        y, o = _masked_probs(x, maps, targets, ctx, self.name)
        return MetricResult((o > y).astype(np.float64), extra={"original": y, "masked": o})


class _Road(Metric):
    """Mean target probability over removal levels with noisy linear imputation (normalised AUC)."""

    requires = ("predict_fn",)
    most_relevant_first: ClassVar[bool]

    def __init__(
        self,
        levels: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        noise_std: float = 0.01 * 255,
        progress: bool = False,
    ) -> None:
        lv = np.asarray(levels, dtype=np.float64)
        if lv.size == 0 or (lv <= 0).any() or (lv >= 1).any():
            raise ValueError(f"ROAD levels are fractions strictly between 0 and 1, got {levels}")
        self.levels, self.noise_std, self.progress = lv, noise_std, progress

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        n_pix = maps.shape[1] * maps.shape[2]
        ranks = pixel_ranks(maps, ctx.seed)
        if not self.most_relevant_first:
            ranks = n_pix - 1 - ranks
        counts = step_counts(self.levels, n_pix)
        rng = np.random.default_rng(ctx.seed)

        def build(ii: np.ndarray, kk: np.ndarray) -> np.ndarray:
            return np.stack(
                [
                    noisy_linear_impute(x[i], ranks[i] < counts[k], self.noise_std, rng)
                    for i, k in zip(ii, kk, strict=True)
                ]
            )

        curves = run_curves(
            ctx.predict_fn, targets, len(counts), build, ctx.batch_size, self.name if self.progress else None
        )
        return MetricResult(curves.mean(axis=1), self.levels, curves)


class RoadMoRF(_Road):
    """ROAD, most relevant first: a faithful map makes the probability fall fast; lower is better."""

    name = "road_morf"
    higher_is_better = False
    most_relevant_first = True


class RoadLeRF(_Road):
    """ROAD, least relevant first: removing the "irrelevant" should keep the probability; higher is better."""

    name = "road_lerf"
    higher_is_better = True
    most_relevant_first = False
