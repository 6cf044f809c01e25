"""Robustness: does a map stay put when the photo changes by an amount nobody can see?

Max-Sensitivity (Yeh et al., "On the (In)fidelity and Sensitivity of Explanations",
NeurIPS 2019; Quantus ``MaxSensitivity``): per image, the largest relative change of the
map over ``n_samples`` copies of the photo with uniform noise of at most ``radius`` grey
levels added to every pixel,

    max_k  || e(x + d_k) - e(x) ||_F  /  || e(x) ||_F ,

lower is better. A map that jumps around under invisible noise cannot be read as "the
regions that drive the prediction": the next photo of the same face would show others.

Choices (ours, stated so a number can be read):

- ``radius`` is in the model's input units (RGB 0..255); 8 is the customary "invisible"
  L-infinity budget (8/255 of the range). Noisy copies are clipped to 0..255.
- Copies whose predicted class differs from the clean photo's are left out (Quantus's
  ``return_nan_when_prediction_changes``): then the map *should* change, and counting it
  would punish a faithful method for the model's own instability. An image whose copies all
  change class scores NaN (dropped from the mean) and is counted in ``extra``. The class is
  predicted by ``predict_fn`` when given, else by ``model`` (the model the maps explain);
  only a ``model`` that cannot predict (a toy stand-in) keeps every copy, with a warning.
- The map explains the same target on every copy (the clean photo's target), not whatever
  the noisy copy predicts.
- No matched-random comparison: a random map has no input to be sensitive to; the
  baseline for this metric is the other methods in the table.

Cost: ``n_samples`` extra explanations of every image. Quantus defaults to 200 copies, made
for cheap gradients; we default to 10 so that Score-CAM or occlusion stay affordable. A max
grows with the number of copies, so compare methods at the same ``n_samples``.
"""

from __future__ import annotations

import warnings

import numpy as np

from agelens.metrics.adapters import resolve_predict_fn
from agelens.metrics.base import (
    NEEDS_MODEL_NOISY,
    Context,
    Metric,
    MetricResult,
    PredictFn,
    checked_predict_fn,
)

INVISIBLE_RADIUS = 8.0
"""Default noise bound in grey levels (of 0..255): the customary imperceptible L-infinity budget."""


class MaxSensitivity(Metric):
    """Largest relative Frobenius change of the map over noisy copies of the photo; lower is better.

    ``extra``: ``mean_sensitivity`` (mean over the kept copies, per image, a smoother
    companion of the max), ``kept`` (copies per image whose class did not change) and
    ``all_changed`` (images scored NaN because every copy changed class).
    """

    name = "max_sensitivity"
    higher_is_better = False
    applies_to = NEEDS_MODEL_NOISY
    category = "robustness"
    requires = ("model", "model_explainer")

    def __init__(self, n_samples: int = 10, radius: float = INVISIBLE_RADIUS) -> None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        if not radius > 0:
            raise ValueError(f"radius must be positive (grey levels of 0..255), got {radius}")
        self.n_samples = int(n_samples)
        self.radius = float(radius)

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        explain = ctx.model_explainer
        assert explain is not None  # checked by ``requires``
        rng = np.random.default_rng(ctx.seed)
        base = maps.astype(np.float64).reshape(len(x), -1)
        denom = np.linalg.norm(base, axis=1)
        predict = self._class_predictor(ctx, targets)
        clean_class = None if predict is None else np.argmax(predict(x), axis=1)
        ratios = np.full((self.n_samples, len(x)), np.nan)
        for k in range(self.n_samples):
            noise = rng.uniform(-self.radius, self.radius, x.shape).astype(np.float32)
            xk = np.clip(x + noise, 0.0, 255.0)
            mk = np.asarray(explain(ctx.model, xk, _explained(ctx, targets)), dtype=np.float64)
            mk = mk.reshape(len(x), -1)
            r = np.linalg.norm(mk - base, axis=1) / np.where(denom > 0, denom, np.nan)
            if predict is not None:
                r = np.where(np.argmax(predict(xk), axis=1) == clean_class, r, np.nan)
            ratios[k] = r
        kept = np.isfinite(ratios).sum(axis=0)
        with warnings.catch_warnings():  # all-NaN columns are expected here and handled by ``kept``
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = np.where(kept > 0, np.nanmax(ratios, axis=0), np.nan)
            mean = np.where(kept > 0, np.nanmean(ratios, axis=0), np.nan)
        extra = {
            "mean_sensitivity": mean,
            "kept": kept,
            "all_changed": int(np.sum((kept == 0) & (denom > 0))),
            "n_samples": self.n_samples,
            "radius": self.radius,
        }
        return MetricResult(scores, extra=extra)

    def _class_predictor(self, ctx: Context, targets: np.ndarray) -> PredictFn | None:
        """``predict_fn``, else the explained model's own forward pass, to spot class-changing copies.

        Why not only ``predict_fn``: ``model`` is required anyway, and without a predictor the
        promised filter silently did nothing. None (with a warning) for a model that cannot predict.
        """
        if ctx.readout is not None:  # predict_fn reads the age or a contrast: classes come from here
            if ctx.class_predict_fn is None:
                self._cannot_predict(ctx)
            return ctx.class_predict_fn
        if ctx.predict_fn is not None:
            return ctx.predict_fn
        try:
            predict, _ = resolve_predict_fn(ctx.model, ctx.batch_size)
        except TypeError:
            self._cannot_predict(ctx)
            return None
        return checked_predict_fn(predict, targets)

    def _cannot_predict(self, ctx: Context) -> None:
        warnings.warn(
            f"{self.name}: cannot predict with {type(ctx.model).__name__}, so copies that change the "
            "predicted class are kept; pass predict_fn=the model to leave them out",
            stacklevel=5,
        )


def _explained(ctx: Context, targets: np.ndarray) -> object:
    """What the explainer is asked to explain: the class indices, or a readout's spec (``"age"``)."""
    return ctx.explain_targets if ctx.explain_targets is not None else targets
