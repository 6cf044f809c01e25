"""Complexity: how concentrated is a map? A reader takes in a few bright regions, not a haze.

Sparseness (Chalasani et al., "Concise Explanations of Neural Networks using Adversarial
Training", ICML 2020; Quantus ``Sparseness``): the Gini index of the map's absolute
values, 0 for a map that is the same everywhere, (n - 1) / n for one lit pixel out of n.
Higher is better, as Quantus declares it: a concise map is easier to read.

Why it is not a faithfulness score: a single bright pixel is maximally sparse and
explains nothing. Read it beside deletion / insertion: among equally faithful methods,
prefer the sparser. It is reported but left out of the methods' ranking. It is scale-free
(a map and twice that map score the same) and blind to where the mass sits; it is compared
with random maps of the same smoothness like the faithfulness metrics, because smooth blobs
are less sparse than pixel noise by construction.
"""

from __future__ import annotations

import numpy as np

from agelens.metrics.base import Context, Metric, MetricResult


def gini(maps: np.ndarray) -> np.ndarray:
    """Gini index of ``|maps|`` per map (``(N, ...)`` -> ``(N,)``); NaN for an all-zero map.

    With the values sorted ascending, ``a_1 <= ... <= a_n``:
    ``G = sum_i (2i - n - 1) a_i / (n sum_i a_i)``.
    """
    a = np.sort(np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), -1), axis=1)
    n = a.shape[1]
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (a @ weights) / (n * total), np.nan)


class Sparseness(Metric):
    """Gini index of each map's absolute values; higher is better (more concise)."""

    name = "sparseness"
    higher_is_better = True
    category = "complexity"
    ranked = False
    reads_targets = False

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        return MetricResult(gini(maps))
