"""Seeded, stratified subsets: score a few hundred images that keep the dataset's class mix."""

from __future__ import annotations

import numpy as np


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(n, len(labels))`` items, classes in proportion (largest remainder), seeded.

    Why proportional rather than balanced: the scores should describe the model on the
    data as it comes; every class with items still gets at least one when ``n`` allows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / counts.sum()
    take = np.floor(quota).astype(int)
    if n >= len(classes):
        take = np.maximum(take, 1)
    for i in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= n:
            break
        take[i] += 1
    while take.sum() > n:  # the at-least-one rule can overshoot: trim the largest
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picks))
