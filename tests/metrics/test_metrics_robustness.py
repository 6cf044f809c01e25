"""Max-Sensitivity (Yeh et al. 2019): known answers on toy explainers, then Grad-CAM on a trained net."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metric_toys import gradcam, sobel_model_explainer

from agelens.metrics import MaxSensitivity, get_metric

# The toys pass model=object(), which cannot predict, so class-changing copies cannot be spotted;
# that warning is tested in test_api_review_faithfulness.py.
pytestmark = pytest.mark.filterwarnings("ignore:max_sensitivity. cannot predict with object:UserWarning")


def _brightness(model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A "map" equal to each pixel's mean grey level: it follows the noise exactly (no normalisation)."""
    return np.asarray(x, np.float64).mean(-1).astype(np.float32)


def _fixed(model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A map that ignores the input entirely: a centred blob."""
    s = x.shape[1]
    r, c = np.mgrid[:s, :s]
    blob = np.exp(-((r - s / 2) ** 2 + (c - s / 2) ** 2) / (2 * (s / 6) ** 2))
    return np.repeat(blob[None].astype(np.float32), len(x), axis=0)


GREY = np.full((3, 32, 32, 3), 128.0, np.float32)


def test_a_map_that_ignores_the_input_is_perfectly_robust() -> None:
    maps = _fixed(None, GREY, None)
    scores = MaxSensitivity(n_samples=4)(GREY, maps, np.zeros(3, int), model=object(), model_explainer=_fixed)
    np.testing.assert_allclose(scores, 0.0)


@pytest.mark.parametrize("radius", [4.0, 16.0])
def test_a_map_that_copies_the_noise_scores_the_noise_over_the_signal(radius: float) -> None:
    """Known answer: on grey 128 the map changes by the channel mean of the U(-r, r) noise, an RMS of
    r / 3 per pixel (variance r^2 / 3, over 3 channels r^2 / 9), against 128 per pixel for the clean map."""
    maps = _brightness(None, GREY, None)
    metric = MaxSensitivity(n_samples=5, radius=radius)
    res = metric.evaluate(GREY, maps, np.zeros(3, int), model=object(), model_explainer=_brightness)
    expected = (radius / 3) / 128
    np.testing.assert_allclose(res.extra["mean_sensitivity"], expected, rtol=0.06)
    assert np.all(res.scores >= res.extra["mean_sensitivity"])  # the max of the copies
    assert np.all(res.scores < expected * 1.1)
    assert list(res.extra["kept"]) == [5, 5, 5]  # a model that cannot predict: every copy counts


def test_copies_that_change_the_predicted_class_are_left_out() -> None:
    """A "model" that predicts class 0 only for whole-number pixels: every noisy copy changes class."""

    def predict(x: np.ndarray) -> np.ndarray:
        whole = np.all(np.asarray(x) == np.round(x), axis=(1, 2, 3))
        return np.stack([whole, ~whole], axis=1).astype(np.float32)

    maps = _brightness(None, GREY, None)
    res = MaxSensitivity(n_samples=3).evaluate(
        GREY, maps, np.zeros(3, int), predict_fn=predict, model=object(), model_explainer=_brightness
    )
    assert np.all(np.isnan(res.scores)) and res.extra["all_changed"] == 3
    assert list(res.extra["kept"]) == [0, 0, 0]


def test_an_empty_map_has_no_sensitivity_to_report() -> None:
    maps = np.zeros((3, 32, 32), np.float32)
    scores = MaxSensitivity(n_samples=2)(
        GREY, maps, np.zeros(3, int), model=object(), model_explainer=lambda m, x, t: np.zeros(x.shape[:3])
    )
    assert np.all(np.isnan(scores))


def test_noisy_copies_stay_in_range_and_repeat_with_the_seed() -> None:
    seen: list[np.ndarray] = []

    def spy(model, x, targets):
        seen.append(np.array(x))
        return _brightness(model, x, targets)

    x = np.zeros((2, 8, 8, 3), np.float32)
    x[1] = 255.0
    maps = _brightness(None, x, None) + 1.0  # non-zero clean maps
    metric = MaxSensitivity(n_samples=2, radius=20.0)
    first = metric(x, maps, np.zeros(2, int), model=object(), model_explainer=spy, seed=5)
    again = metric(x, maps, np.zeros(2, int), model=object(), model_explainer=spy, seed=5)
    np.testing.assert_array_equal(first, again)
    copies = np.stack(seen)
    assert copies.min() >= 0.0 and copies.max() <= 255.0
    assert copies[:, 0].max() > 0 and copies[:, 1].min() < 255  # noise was added, then clipped


def test_settings_and_needs_are_checked() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        MaxSensitivity(n_samples=0)
    with pytest.raises(ValueError, match="radius"):
        MaxSensitivity(radius=0)
    with pytest.raises(ValueError, match="needs model, model_explainer"):
        MaxSensitivity()(GREY, _fixed(None, GREY, None), np.zeros(3, int))
    m = get_metric("max_sensitivity", n_samples=3)
    assert m.info() == {
        "name": "max_sensitivity",
        "higher_is_better": False,
        "applies_to": m.applies_to,
        "category": "robustness",
        "ranked": True,
    }


def test_gradcam_on_a_trained_net_is_steadier_than_an_edge_map(squares_model) -> None:
    """Grad-CAM reads the coloured square, which noise of 8 grey levels does not hide; an edge detector
    of the noisy background redraws its speckle on every copy."""
    model, x, _ = squares_model
    x = x[:8]
    targets = np.argmax(model.predict(x, flip=False)["probabilities"], axis=1)
    metric = MaxSensitivity(n_samples=4)
    cam = metric.score(
        x, gradcam(model, x, targets), targets, predict_fn=model, model=model, model_explainer=gradcam
    )
    edges = metric.score(
        x,
        sobel_model_explainer(model, x, targets),
        targets,
        predict_fn=model,
        model=model,
        model_explainer=sobel_model_explainer,
    )
    assert cam.n >= 6 and edges.n == 8
    assert cam.mean < edges.mean


def test_score_methods_reports_robustness_without_a_random_comparison_and_sparseness_unranked(
    squares_model, tmp_path
) -> None:
    pytest.importorskip("agelens.explain")
    from agelens.metrics import score_methods
    from agelens.report.scores import _structured

    model, x, y = squares_model
    table = score_methods(
        model,
        x[:6],
        y[:6],
        ["gradcam", "saliency"],
        ["deletion", MaxSensitivity(n_samples=2), "sparseness"],
        n_boot=200,
        out_dir=tmp_path,
    )
    for method in ("gradcam", "saliency"):
        s = table.scores[method]["max_sensitivity"]
        assert s.n >= 4 and np.isfinite(s.mean) and s.mean >= 0
        assert "max_sensitivity" not in table.vs_random[method]  # random maps cannot be re-explained
        assert "sparseness" in table.vs_random[method] and "deletion" in table.vs_random[method]
    assert np.isnan(table.scores["random"]["max_sensitivity"].mean)  # noise is model-blind: not re-explained
    for row in table.ranking():
        assert set(row["ranks"]) == {"deletion", "max_sensitivity"}  # sparseness is shown, not ranked on
    doc = json.loads((tmp_path / "scores.json").read_text())
    sections = {s.id: s for s in _structured(doc)}
    assert {"scores-faithfulness", "scores-robustness", "scores-complexity"} <= set(sections)
    assert sections["scores-robustness"].title == "Robustness"
    (complexity,) = sections["scores-complexity"].tables
    assert (
        complexity.arrows == {"sparseness": "↑"} and "not ranked" in complexity.note
    )  # direction, no ranking
    assert not any("best" in c.cls for row in complexity.rows for c in row)
