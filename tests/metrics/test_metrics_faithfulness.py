"""Deletion, insertion, Average Drop, Increase in Confidence and ROAD on a model that sees one quadrant."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, quadrant_maps, quadrant_model

from agelens.metrics import (
    AverageDrop,
    Deletion,
    IncreaseInConfidence,
    Insertion,
    RoadLeRF,
    RoadMoRF,
    random_maps,
)
from agelens.metrics.perturb import impute_linear, noisy_linear_impute

N = 6


@pytest.fixture(scope="module")
def setup():
    """Images, targets and three maps: on the model's quadrant, on the opposite one, and random noise."""
    x = checker_images(N)
    maps = {
        "on": quadrant_maps(N, "tl"),
        "off": quadrant_maps(N, "br"),
        "random": random_maps(N, SIZE, seed=5),
    }
    return x, np.ones(N, np.int64), maps


def _means(metric, setup) -> dict[str, float]:
    x, t, maps = setup
    return {k: float(metric(x, m, t, predict_fn=quadrant_model()).mean()) for k, m in maps.items()}


def test_deletion_rewards_the_map_on_the_evidence(setup) -> None:
    s = _means(Deletion(), setup)
    assert s["on"] < 0.2 and s["on"] + 0.25 < s["random"] and s["random"] < s["off"]


def test_insertion_rewards_the_map_on_the_evidence(setup) -> None:
    s = _means(Insertion(), setup)
    assert s["on"] > 0.8 and s["on"] > s["random"] + 0.25 and s["random"] > s["off"]


def test_deletion_curve_runs_from_image_to_black_baseline(setup) -> None:
    x, t, maps = setup
    res = Deletion(step=0.1).evaluate(x, maps["on"], t, predict_fn=quadrant_model())
    p0 = quadrant_model()(x)[:, 1]
    p_black = quadrant_model()(np.zeros_like(x))[:, 1]
    np.testing.assert_allclose(res.curve_x, np.linspace(0, 1, 11))
    assert res.curves.shape == (N, 11)
    np.testing.assert_allclose(res.curves[:, 0], p0)
    np.testing.assert_allclose(res.curves[:, -1], p_black)
    np.testing.assert_allclose(res.scores, np.trapezoid(res.curves, res.curve_x, axis=1))


def test_insertion_curve_starts_blurred_and_ends_at_the_image(setup) -> None:
    x, t, maps = setup
    res = Insertion(step=0.25).evaluate(x, maps["on"], t, predict_fn=quadrant_model())
    assert res.curves[:, 0].max() < 0.1  # blur wipes the checkerboard
    np.testing.assert_allclose(res.curves[:, -1], quadrant_model()(x)[:, 1])


def test_curves_are_batched_per_chunk_not_per_pixel(setup) -> None:
    x, t, maps = setup
    calls: list[int] = []
    a = Deletion(step=0.05).evaluate(x, maps["random"], t, predict_fn=quadrant_model(calls), batch_size=16)
    b = Deletion(step=0.05).evaluate(x, maps["random"], t, predict_fn=quadrant_model(), batch_size=64)
    np.testing.assert_allclose(a.curves, b.curves)  # chunking does not change results
    assert sum(calls) == N * 21 and max(calls) == 16 and len(calls) == -(-N * 21 // 16)


def test_deletion_baselines_and_validation(setup) -> None:
    x, t, maps = setup
    blur = Deletion(baseline="blur")(x, maps["on"], t, predict_fn=quadrant_model())
    assert blur.mean() < 0.2
    with pytest.raises(ValueError, match="unknown baseline"):
        Deletion(baseline="white")(x, maps["on"], t, predict_fn=quadrant_model())
    with pytest.raises(ValueError, match="step"):
        Deletion(step=0)


def test_average_drop(setup) -> None:
    s = _means(AverageDrop(), setup)
    assert s["on"] == pytest.approx(0.0, abs=1e-9)  # x * map keeps the quadrant intact
    assert s["off"] > 0.95 and 0.2 < s["random"] < 0.8


def test_increase_in_confidence_counts_images_where_masking_helps() -> None:
    x = checker_images(4)
    x[:2, 16:, 16:] = 255.0  # a bright distractor the model dislikes, on two images

    def model(batch: np.ndarray) -> np.ndarray:
        p_quad = quadrant_model()(batch)[:, 1]
        p = p_quad * (
            1 - 0.5 * (batch[:, 16:, 16:] > 200).mean(axis=(1, 2, 3))
        )  # only the bright patch hurts
        return np.stack([1 - p, p], 1)

    scores = IncreaseInConfidence()(x, quadrant_maps(4, "tl"), np.ones(4, int), predict_fn=model)
    np.testing.assert_array_equal(scores, [1, 1, 0, 0])


def test_linear_imputation_fills_a_pixel_with_its_neighbours_weighted_mean() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (7, 7, 3))
    removed = np.zeros((7, 7), bool)
    removed[3, 4] = True
    out = impute_linear(img, removed)
    direct = img[[2, 4, 3, 3], [4, 4, 3, 5]].sum(0)
    diag = img[[2, 2, 4, 4], [3, 5, 3, 5]].sum(0)
    np.testing.assert_allclose(out[3, 4], direct / 6 + diag / 12)
    np.testing.assert_array_equal(out[~removed], img[~removed])


def test_linear_imputation_restores_a_smooth_image() -> None:
    r, c = np.mgrid[:16, :16].astype(float)
    ramp = np.stack([10 + 3 * r + 5 * c, 200 - 4 * c, 50 + 2 * r], -1)  # linear: harmonic, so exact
    removed = np.zeros((16, 16), bool)
    removed[4:9, 6:12] = True
    np.testing.assert_allclose(impute_linear(ramp, removed), ramp, atol=1e-8)
    removed[0, :3] = True  # at the border the one-sided mean is no longer exact, but stays in range
    border = impute_linear(ramp, removed)[0, :3]
    assert (border >= ramp.min((0, 1))).all() and (border <= ramp.max((0, 1))).all()
    everything = impute_linear(ramp, np.ones((16, 16), bool))
    np.testing.assert_allclose(everything, np.broadcast_to(ramp.mean((0, 1)), ramp.shape))


def test_noisy_imputation_only_perturbs_removed_pixels() -> None:
    img = np.full((8, 8, 3), 100.0)
    removed = np.zeros((8, 8), bool)
    removed[2:5, 2:5] = True
    out = noisy_linear_impute(img, removed, 5.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out[~removed], 100.0)
    assert 1.0 < out[removed].std() < 10.0 and abs(out[removed].mean() - 100) < 5


def test_road_morf_and_lerf_order_maps_by_faithfulness(setup) -> None:
    morf, lerf = _means(RoadMoRF(), setup), _means(RoadLeRF(), setup)
    assert morf["on"] + 0.2 < morf["random"] and morf["on"] + 0.2 < morf["off"]
    assert lerf["on"] > lerf["random"] + 0.2 and lerf["on"] > lerf["off"] + 0.2
    with pytest.raises(ValueError, match="levels"):
        RoadMoRF(levels=(0.0, 0.5))


def test_road_curve_shape_and_levels(setup) -> None:
    x, t, maps = setup
    res = RoadMoRF(levels=(0.25, 0.5)).evaluate(x, maps["on"], t, predict_fn=quadrant_model())
    assert res.curves.shape == (N, 2)
    np.testing.assert_allclose(res.curve_x, [0.25, 0.5])
    np.testing.assert_allclose(res.scores, res.curves.mean(1))
