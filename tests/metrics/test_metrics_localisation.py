"""Pointing game and energy-in-mask on hand-made masks and maps."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.metrics import EnergyInMask, PointingGame, energy_in_mask, pointing_hits
from agelens.metrics.localisation import default_tolerance


def _mask() -> np.ndarray:
    m = np.zeros((1, 20, 20), np.float32)
    m[0, 5:10, 5:10] = 1
    return m


def _peak_at(r: int, c: int) -> np.ndarray:
    m = np.full((1, 20, 20), 0.1, np.float32)
    m[0, r, c] = 1.0
    return m


def test_pointing_game_hit_miss_and_tolerance() -> None:
    mask = _mask()
    assert pointing_hits(_peak_at(7, 7), mask, tolerance=0)[0] == 1
    assert pointing_hits(_peak_at(7, 11), mask, tolerance=0)[0] == 0
    assert pointing_hits(_peak_at(7, 11), mask, tolerance=2)[0] == 1
    assert pointing_hits(_peak_at(15, 15), mask, tolerance=2)[0] == 0


def test_pointing_game_ties_score_the_share_of_peak_pixels_inside() -> None:
    flat = np.zeros((1, 20, 20), np.float32)
    flat[0, 5:10, 8:12] = 1.0  # plateau: columns 8, 9 inside the mask, 10, 11 outside
    assert pointing_hits(flat, _mask(), tolerance=0)[0] == pytest.approx(0.5)


def test_pointing_game_empty_mask_is_not_applicable() -> None:
    hits = pointing_hits(
        np.concatenate([_peak_at(7, 7)] * 2), np.concatenate([_mask(), np.zeros((1, 20, 20))])
    )
    assert hits[0] == 1 and np.isnan(hits[1])
    s = PointingGame(tolerance=0).score(
        np.zeros((2, 20, 20, 3)),
        np.concatenate([_peak_at(7, 7)] * 2),
        [0, 0],
        masks=np.concatenate([_mask(), np.zeros((1, 20, 20))]),
    )
    assert s.n == 1 and s.mean == 1


def test_default_tolerance_scales_the_papers_15px_at_224() -> None:
    assert default_tolerance(224) == 15 and default_tolerance(64) == 4


def test_energy_in_mask_against_area_share() -> None:
    mask = _mask()
    uniform = np.ones((1, 20, 20))
    share, area = energy_in_mask(uniform, mask)
    assert share[0] == pytest.approx(25 / 400) and area[0] == pytest.approx(25 / 400)
    share, _ = energy_in_mask(mask, mask)
    assert share[0] == pytest.approx(1.0)
    half = mask.copy()
    half[0, 15:20, 15:20] = 1  # as much mass outside as inside
    res = EnergyInMask().evaluate(np.zeros((1, 20, 20, 3)), half, [0], masks=mask)
    assert res.scores[0] == pytest.approx(0.5) and res.extra["gain"][0] == pytest.approx(0.5 / (25 / 400))


def test_energy_in_mask_nan_for_empty_map_or_mask() -> None:
    share, _ = energy_in_mask(np.zeros((1, 20, 20)), _mask())
    assert np.isnan(share[0])
    share, area = energy_in_mask(np.ones((1, 20, 20)), np.zeros((1, 20, 20)))
    assert np.isnan(share[0]) and np.isnan(area[0])
