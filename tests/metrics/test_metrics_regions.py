"""Dataset-level views: class-mean maps, energy per face region per age group, gallery picks."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.metrics.regions import (
    LAYOUT_NAMES,
    class_mean_maps,
    extreme_cases,
    face_layout,
    region_shares,
    region_shares_by_group,
)


def test_face_layout_places_regions_where_an_aligned_face_has_them() -> None:
    lay = face_layout(100)
    name = lambda y, x: LAYOUT_NAMES[lay[int(y * 100), int(x * 100)]]  # noqa: E731
    assert name(0.30, 0.30) == "eyes" and name(0.30, 0.70) == "eyes"
    assert name(0.50, 0.50) == "nose" and name(0.70, 0.50) == "mouth_chin"
    assert name(0.12, 0.50) == "forehead" and name(0.50, 0.20) == "cheeks"
    assert name(0.02, 0.02) == "hair_background" and name(0.95, 0.50) == "hair_background"
    assert set(np.unique(lay)) == set(range(len(LAYOUT_NAMES)))


def test_class_mean_maps() -> None:
    maps = np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 1.0, 0.5)])
    means, counts = class_mean_maps(maps, np.array([0, 0, 2]), 3)
    assert counts.tolist() == [2, 0, 1]
    assert np.allclose(means[0], 0.5) and np.isnan(means[1]).all() and np.allclose(means[2], 0.5)


def test_region_shares_sum_to_one_and_follow_the_map() -> None:
    regions = np.zeros((8, 8), np.uint8)
    regions[:4] = 1  # top half is region 1
    maps = np.zeros((2, 8, 8))
    maps[0, :4] = 1.0  # all mass on the top
    maps[1] = 1.0  # uniform
    s = region_shares(maps, regions, 3)
    np.testing.assert_allclose(s, [[0, 1, 0], [0.5, 0.5, 0]])
    assert np.isnan(region_shares(np.zeros((1, 8, 8)), regions, 3)).all()


def test_region_shares_by_group_with_per_image_masks() -> None:
    regions = np.zeros((3, 8, 8), np.uint8)
    regions[:, :, 4:] = 1
    maps = np.zeros((3, 8, 8))
    maps[0, :, :4] = 1  # group 0 looks left (region 0)
    maps[1:, :, 4:] = 1  # group 1 looks right (region 1)
    out = region_shares_by_group(maps, regions, np.array([0, 1, 1]), ["young", "old"], ["left", "right"])
    np.testing.assert_allclose(out["shares"], [[1, 0], [0, 1]])
    np.testing.assert_allclose(out["area"], [0.5, 0.5])
    assert out["counts"].tolist() == [1, 2] and out["regions"] == ["left", "right"]


def test_extreme_cases_pick_confident_right_and_wrong() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 1, 1])
    out = extreme_cases(probs, labels, k=2)
    assert [c["index"] for c in out["confident_right"]] == [3, 0]
    assert [c["index"] for c in out["confident_wrong"]] == [2, 4]
    wrong = out["confident_wrong"][0]
    assert wrong["predicted"] == 1 and wrong["p_predicted"] == pytest.approx(0.8) and wrong["p_true"] == 0.2
