"""Acceptance on real photos: Grad-CAM on the shipped model beats random maps (slow; needs data and model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agelens.model.io import SHIPPED_MODEL

UTK200 = (Path(__file__).parents[2] / ".." / "shared" / "data" / "utkface-200").resolve()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.realdata,
    pytest.mark.skipif(not UTK200.is_dir(), reason=f"real data not found at {UTK200}"),
    pytest.mark.skipif(not SHIPPED_MODEL.exists(), reason=f"shipped model not found at {SHIPPED_MODEL}"),
]


def _check(layer: str | None) -> dict:
    from agelens.metrics.acceptance import faithfulness_check, sample_photos
    from agelens.model.io import load_model

    model = load_model()
    images, labels, _ = sample_photos(UTK200, model.input_size, 500, seed=0)
    assert len(images) == 500 and len(set(labels.tolist())) == 3
    return faithfulness_check(model, images, "gradcam", layer=layer, step=0.05, seed=0)


@pytest.fixture(scope="module")
def result() -> dict:
    """Grad-CAM at the shipped model's default layer (its metadata declares block_13_expand_relu)."""
    return _check(None)


def test_gradcam_beats_smoothness_matched_random_maps_on_500_real_photos(result) -> None:
    """The baseline ``agelens score`` reports: random maps as smooth as the method's own."""
    assert result["layer"] == "block_13_expand_relu"
    base = "matched_smoothness"
    deletion, insertion = result["deletion"][base]["difference"], result["insertion"][base]["difference"]
    assert deletion["ci_high"] < 0, f"deletion vs {base}: {deletion}"  # lower than random, CI excludes 0
    assert insertion["ci_low"] > 0, f"insertion vs {base}: {insertion}"  # higher than random
    assert result["passed_by_baseline"][base]


@pytest.mark.xfail(
    strict=True,
    reason="pixel-noise random maps are not a fair baseline for a CNN on faces: deleting scattered pixels "
    "wipes out skin texture everywhere, and inserting them gives the model a sparse sample of the whole "
    "face, so both move the age score faster than any one region. Measured on the shipped model, 500 "
    "held-out photos (benchmarks/faithfulness_real.py --layer late): deletion +0.24 [+0.21, +0.26], "
    "insertion -0.062 [-0.077, -0.047] (Grad-CAM minus pixel noise)",
)
def test_gradcam_beats_pixel_noise_maps_on_500_real_photos(result) -> None:
    base = "uniform_noise"
    differences = {k: result[k][base]["difference"] for k in ("deletion", "insertion")}
    assert result["passed_by_baseline"][base], differences


@pytest.mark.xfail(
    strict=True,
    reason="the last conv map of the 112 px model is 4x4: deleting its top regions first is not "
    "distinguishable from deleting random blobs as smooth (benchmarks/faithfulness_real.py: +0.0044 "
    "[-0.0061, +0.0155]; insertion passes, +0.034). Why the model declares block_13_expand_relu (7x7)",
)
def test_last_conv_gradcam_deletion_beats_smoothness_matched_maps() -> None:
    deletion = _check("last-conv")["deletion"]["matched_smoothness"]["difference"]
    assert deletion["ci_high"] < 0, deletion
