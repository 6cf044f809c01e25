"""Deterministic stratified train/val/test splits.

A split is a pure function of the sorted sample keys, their labels and a seed,
so the same data always splits the same way on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Return a split index (0=train, 1=val, 2=test) per sample, stratified by label.

    Each class is shuffled with its own generator stream and cut by the fractions,
    so class proportions are kept in every split even for rare classes.
    """
    labels = np.asarray(labels)
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    out = np.zeros(len(labels), dtype=np.int8)
    rng = np.random.default_rng(seed)
    cum = np.cumsum(fractions)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_train = int(round(cum[0] * n))
        n_val = int(round(cum[1] * n)) - n_train
        if n >= 3 and fractions[1] > 0 and n_val == 0:
            n_val = 1
            n_train = max(n_train - 1, 1)
        n_test_start = n_train + n_val
        out[idx[n_train:n_test_start]] = 1
        out[idx[n_test_start:]] = 2
        if fractions[2] > 0 and n >= 3 and n_test_start >= n:
            out[idx[-1]] = 2
    return out


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int, power: float = 1.0) -> np.ndarray:
    """Inverse-frequency weights (``power=0.5`` for the gentler square-root form), mean 1."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(float)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return w / w[counts > 0].mean()
