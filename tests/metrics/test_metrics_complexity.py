"""Sparseness (Gini index of the map, Chalasani et al. 2020): known answers and invariances."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agelens.metrics import Sparseness, gini

X = np.zeros((2, 8, 8, 3), np.float32)


def test_known_answers() -> None:
    one = np.zeros((1, 8, 8))
    one[0, 3, 4] = 0.7
    flat = np.full((1, 8, 8), 0.3)
    half = np.zeros((1, 8, 8))
    half[0, :4] = 1.0
    np.testing.assert_allclose(gini(one), [63 / 64])  # (n - 1) / n
    np.testing.assert_allclose(gini(flat), [0.0], atol=1e-12)
    np.testing.assert_allclose(gini(half), [0.5])
    assert np.isnan(gini(np.zeros((1, 8, 8))))[0]
    # Uniform noise: the Gini index of U(0, 1) is 1/3 (the score table's pixel-noise row).
    noise = np.random.default_rng(0).uniform(0, 1, (1, 300, 300))
    np.testing.assert_allclose(gini(noise), [1 / 3], atol=3e-3)


def test_the_metric_ranks_a_concentrated_map_above_a_haze() -> None:
    maps = np.full((2, 8, 8), 0.2, np.float32)
    maps[0] = 0.0
    maps[0, 2:4, 2:4] = 1.0
    scores = Sparseness()(X, maps, np.zeros(2, int))
    assert scores[0] > 0.9 and scores[1] < 1e-6
    assert Sparseness.higher_is_better and not Sparseness.ranked and Sparseness.category == "complexity"


_MASS = st.one_of(st.just(0.0), st.floats(1e-30, 1))
"""Map values: zero, or far from float64's subnormals, where scaling by 0.5 rounds 5e-324 to nothing
(hypothesis found that: a scale-free metric cannot survive its input vanishing)."""


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (3, 5, 5), elements=_MASS), st.floats(0.01, 100), st.integers(0, 2**31))
def test_bounded_scale_free_and_blind_to_where_the_mass_sits(maps, scale, seed) -> None:
    g = gini(maps)
    ok = np.isfinite(g)
    assert np.all(maps.reshape(3, -1).sum(1)[~ok] == 0)
    assert np.all((g[ok] >= -1e-12) & (g[ok] <= 24 / 25 + 1e-12))
    np.testing.assert_allclose(gini(maps * scale), g, rtol=1e-9, atol=1e-12)
    shuffled = np.random.default_rng(seed).permuted(maps.reshape(3, -1), axis=1).reshape(maps.shape)
    np.testing.assert_allclose(gini(shuffled), g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gini(-maps), g, rtol=1e-9, atol=1e-12)  # absolute values
