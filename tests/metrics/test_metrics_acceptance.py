"""The acceptance check's logic on a toy whose evidence is known: Grad-CAM must beat random maps."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.metrics.acceptance import faithfulness_check


def test_gradcam_beats_random_maps_on_the_squares_model(squares_model) -> None:
    pytest.importorskip("agelens.explain")
    model, x, y = squares_model
    assert (model.predict(x)["probabilities"].argmax(1) == y).mean() > 0.9  # the toy learned the squares
    res = faithfulness_check(model, x, "gradcam", step=0.05, n_boot=1000)
    assert res["passed"] and res["n_images"] == 40
    assert res["passed_by_baseline"] == {"uniform_noise": True, "matched_smoothness": True}
    for base in ("uniform_noise", "matched_smoothness"):
        assert res["deletion"][base]["difference"]["ci_high"] < -0.02
        assert res["insertion"][base]["difference"]["ci_low"] > 0.01
        assert res["deletion"][base]["beats_random"] and res["insertion"][base]["beats_random"]


def test_acceptance_fails_a_map_that_points_away_from_the_evidence(squares_model, monkeypatch) -> None:
    """Inverted Grad-CAM (high where Grad-CAM is low) must not pass: the check can fail."""
    pytest.importorskip("agelens.explain")
    import agelens.metrics.acceptance as acc
    from agelens.metrics.adapters import method_explainer

    def inverted(model, method):
        real = method_explainer(model, method)
        return lambda x, t: 1.0 - real(x, t)

    monkeypatch.setattr(acc, "method_explainer", inverted)
    model, x, _ = squares_model
    res = acc.faithfulness_check(model, x, "gradcam", step=0.05, n_boot=1000)
    assert not res["passed"] and not any(res["passed_by_baseline"].values())
    assert res["deletion"]["uniform_noise"]["difference"]["mean"] > 0
    assert np.isfinite(res["matched_sigma"])
