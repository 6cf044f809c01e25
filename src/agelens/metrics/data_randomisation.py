"""Data-randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, sec. 4).

The second of the paper's two sanity checks. The model-parameter test
(:mod:`agelens.metrics.sanity`) destroys the trained weights; this one keeps the network
and its recipe but breaks the link between photo and label: the same architecture is
trained on randomly permuted labels (``agelens train --shuffle-labels``), so all it can do
is memorise. A method whose maps of the real model and of the memorising one look alike
shows the photo (edges, contrast, the face outline), not what the model learned about age.

Why a separate model and not a clone: the permuted-label model has to be trained, which
takes as long as training the real one; agelens cannot make it on the fly. It is passed as
``shuffled_model`` (a context key, like ``masks``); a run without one skips the metric and
says how to make it.

Score per image: Spearman rank correlation between the two maps of the same photo and
the same target (the class index, ``"age"`` or a contrast: the two models share their
classes), NaN where the real model's map is constant, 0 where only the shuffled one's is
(:func:`~agelens.metrics.sanity.stage_spearman`). Lower is better; a method is flagged
when the mean exceeds 0.5, the model-parameter test's threshold. What to compare it with:
two models trained on the *real* labels from different seeds agree more than either
agrees with a shuffled one; ``benchmarks/data_randomisation.py`` measures both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agelens.metrics.base import (
    HOW_TO_GET,
    NEEDS_SHUFFLED,
    Context,
    Metric,
    MetricResult,
    ModelExplainer,
    as_pixels,
    check_finite,
    class_targets,
    means_predicted,
    n_classes_of,
)
from agelens.metrics.readouts import readout_of
from agelens.metrics.sanity import SPEARMAN_THRESHOLD, nanmean, ssim_rows, stage_spearman


@dataclass
class DataRandomisationResult:
    """Per image: how alike the real model's map and the shuffled-label model's map are."""

    spearman: np.ndarray  # (N,)
    ssim: np.ndarray  # (N,)
    threshold: float = SPEARMAN_THRESHOLD
    original_maps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    shuffled_maps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def mean_spearman(self) -> float:
        return nanmean(self.spearman)

    @property
    def flagged(self) -> bool:
        """True when the maps stay alike on average: the method does not see what the model learned."""
        return self.mean_spearman > self.threshold

    def summary(self) -> dict[str, Any]:
        return {
            "spearman": self.mean_spearman,
            "ssim": float(np.mean(self.ssim)) if self.ssim.size else float("nan"),
            "threshold": self.threshold,
            "flagged": self.flagged,
            "unscored": int(np.isnan(self.spearman).sum()),  # constant maps of the real model
        }


def check_comparable(model: Any, shuffled_model: Any) -> None:
    """The two models must take the same input and name the same classes, else the test compares
    maps of different questions. A one-line ValueError says which differs."""
    for what in ("input_size", "class_names"):
        a, b = getattr(model, what, None), getattr(shuffled_model, what, None)
        if a is not None and b is not None and list(np.atleast_1d(a)) != list(np.atleast_1d(b)):
            raise ValueError(
                f"shuffled_model: its {what.replace('_', ' ')} ({b}) differs from the model's ({a}); "
                "train it with the same options as the model it checks, adding --shuffle-labels"
            )


def shuffled_fit(shuffled_model: Any) -> float | None:
    """How well the control fits its permuted training labels: the training accuracy of the epoch it
    kept (``agelens train --shuffle-labels`` keeps the best fit), None when its metadata lacks it.

    Why it is worth showing: a control that has not memorised its labels is close to its random
    start, and the check then repeats the model-parameter test rather than isolating what was
    learned from the labels. Measured during the epoch (dropout on), so it errs low.
    """
    training = (getattr(shuffled_model, "metadata", None) or {}).get("training") or {}
    best = training.get("best_epoch")
    kept = next((r for r in training.get("history", []) if r.get("epoch") == best), None)
    fit = None if kept is None else kept.get("train_accuracy")
    return float(fit) if isinstance(fit, int | float) and np.isfinite(fit) else None


def explained_like(shuffled: Any, model: Any) -> Any:
    """``shuffled`` declaring the layer ``model`` declares (``explain_layer``), so that an explainer
    left to its default explains the same layer of both.

    Why: the shipped model declares ``block_13_expand_relu``; a model from ``agelens train``
    declares none and defaults to the last conv layer, and comparing maps of two layers would
    measure the layers, not the labels. The caller's model object is not changed (a copy).
    """
    from dataclasses import is_dataclass, replace

    meta = getattr(model, "metadata", None)
    own = getattr(shuffled, "metadata", None)
    if not (is_dataclass(shuffled) and isinstance(meta, dict) and isinstance(own, dict)):
        return shuffled
    if own.get("explain_layer") == meta.get("explain_layer"):
        return shuffled
    declared = {k: v for k, v in own.items() if k != "explain_layer"}
    if meta.get("explain_layer"):
        declared["explain_layer"] = meta["explain_layer"]
    return replace(shuffled, metadata=declared)


def data_randomisation_test(
    model: Any,
    shuffled_model: Any,
    explain_fn: ModelExplainer,
    x: np.ndarray,
    targets: Any = None,
    *,
    original_maps: np.ndarray | None = None,
    threshold: float = SPEARMAN_THRESHOLD,
) -> DataRandomisationResult:
    """Explain ``x`` with ``model`` and with ``shuffled_model`` and compare the maps photo by photo.

    ``targets`` (class indices or names, ``"age"``, a contrast such as ``"old-young"``) default (None or
    ``"predicted"``) to ``model``'s predicted classes and are the same for both models: the question
    is whether the method answers "where is the evidence for *old*?" differently for a model that
    learned age and one that did not. ``original_maps`` saves re-explaining ``model``. An explainer
    left to its default layer explains the layer ``model`` declares in both (:func:`explained_like`).
    Neither model is changed.
    """
    from agelens.metrics.adapters import as_age_model
    from agelens.metrics.sanity import _predict

    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be a callable, got {explain_fn!r}; {HOW_TO_GET['model_explainer']}")
    real, shuffled = as_age_model(model) or model, as_age_model(shuffled_model) or shuffled_model
    check_comparable(real, shuffled)
    x = as_pixels(x)
    check_finite("x", x)
    targets = None if means_predicted(targets) else targets  # "predicted", as explain spells it
    readout = readout_of(targets, getattr(real, "class_names", None))
    if readout is not None:
        if readout.kind == "age" and getattr(shuffled, "age_output", None) is None:
            raise ValueError("targets 'age': the shuffled-label model has no age output (train it with ages)")
        targets = readout.spec
    else:
        if targets is None:
            targets = _predict(real, x).argmax(axis=1)
        targets = class_targets(targets, getattr(real, "class_names", None), len(x), n_classes_of(real))
    original = explain_fn(real, x, targets) if original_maps is None else original_maps
    original = np.asarray(original, np.float32)
    other = np.asarray(explain_fn(explained_like(shuffled, real), x, targets), np.float32)
    if other.shape != original.shape:
        raise ValueError(f"shuffled_model: its maps are {other.shape}, the model's {original.shape}")
    return DataRandomisationResult(
        stage_spearman(original, other), ssim_rows(original, other), threshold, original, other
    )


class DataRandomisation(Metric):
    """Per image, the Spearman between the map of the model and the map of the same network trained on
    shuffled labels (``shuffled_model``); lower is better. ``extra`` has SSIM and the flag (mean > 0.5).

    Costs one more explanation per image (of the shuffled model).
    """

    name = "data_randomisation"
    higher_is_better = False
    applies_to = NEEDS_SHUFFLED
    category = "randomisation"
    requires = ("model", "model_explainer", "shuffled_model")

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        res = data_randomisation_test(
            ctx.model,
            ctx.shuffled_model,
            ctx.model_explainer,
            x,
            ctx.readout.spec if ctx.readout is not None else targets,
            original_maps=maps,
        )
        extra = {"ssim": res.ssim, "flagged": res.flagged}
        return MetricResult(res.spearman, extra=extra)
