"""RISE against a plain NumPy reference: show the model the photo through each mask, weight each mask
by the class probability it leaves, average per pixel over the masks' coverage, subtract the mean."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from explain_models import quadrant_images, quadrant_model, small_convnet

from agelens.explain import make_method
from agelens.explain.api import resolved_options
from agelens.explain.rise import RISE, rise_masks

SIZE = 24


@pytest.fixture(scope="module")
def convnet() -> keras.Model:
    return small_convnet(seed=5, size=SIZE, softmax_in_dense=False)


def _reference(
    model: keras.Model, x: np.ndarray, cls: int, masks: np.ndarray, fill: str | float, signed: bool
):
    """The map as computed (unnormalised): mean probability over the masks that kept each pixel,
    weighted by how much they kept it, minus the mean over all masks; ReLU'd unless signed."""
    scores = np.zeros((len(x), len(masks)))
    value = x.mean(axis=(1, 2)) if fill == "mean" else np.full((len(x), 3), float(fill))
    for k, m in enumerate(masks):
        shown = x * m[None, :, :, None] + value[:, None, None, :] * (1 - m[None, :, :, None])
        scores[:, k] = model.predict(shown.astype(np.float32), verbose=0)[:, cls]
    raw = np.einsum("nk,kij->nij", scores, masks) / masks.sum(0) - scores.mean(1)[:, None, None]
    return raw if signed else np.maximum(raw, 0)


@pytest.mark.parametrize(
    ("fill", "max_batch", "signed"), [(0.0, 64, False), ("mean", 7, False), (90.0, 64, True)]
)
def test_matches_the_numpy_reference(convnet, fill, max_batch, signed):
    """A max_batch of 7 splits the masks into uneven chunks; the maps must not change. Compared as
    computed: a random network's probabilities move by about 0.002 under masking, so its maps are
    differences of nearly equal float32 numbers, and the per-image scaling to [0, 1] would magnify
    their rounding a thousandfold."""
    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    opts = dict(n_masks=40, cells=4, seed=3, fill=fill, max_batch=max_batch, signed=signed)
    got = make_method(convnet, "rise", normalize=False, **opts).attribute(x, 1)
    want = _reference(convnet, x, 1, rise_masks(40, SIZE, 4, 0.5, 3), fill, signed)
    assert np.ptp(want) > 5e-5  # the maps differ across pixels far beyond the tolerance below
    np.testing.assert_allclose(got, want, atol=1e-6)  # ~30 float32 steps of a probability near 0.3
    assert (got < 0).any() == signed  # pixels whose presence lowers the probability, kept only signed
    scaled = RISE(convnet, **opts).attribute(x, 1)
    assert np.abs(scaled).max() == pytest.approx(1.0) and np.ptp(scaled[0]) > 0.5  # a real map


def test_masks_are_soft_seeded_and_keep_the_share_asked_for():
    a = rise_masks(2000, 32, 6, 0.3, seed=0)
    assert a.shape == (2000, 32, 32) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert abs(float(a.mean()) - 0.3) < 0.02  # bilinear enlargement keeps the expected share
    assert np.mean((a > 0.05) & (a < 0.95)) > 0.2  # soft edges, not a hard binary grid
    np.testing.assert_array_equal(a, rise_masks(2000, 32, 6, 0.3, seed=0))
    assert not np.array_equal(a, rise_masks(2000, 32, 6, 0.3, seed=1))
    assert len({m.tobytes() for m in a[:50]}) == 50  # random offsets: no two masks alike


def test_credits_the_quadrant_the_model_reads_not_an_equally_bright_one():
    """Bright top-left *and* bottom-right: only the top-left drives the class. RISE's blobs are a
    few pixels wide, so some credit spills over the top-left's edges, none goes to the far corner."""
    maps = make_method(quadrant_model(), "rise", n_masks=600).attribute(quadrant_images(4, 1, True), 1)
    h = maps.shape[1] // 2
    total = maps.sum(axis=(1, 2))
    top_left, bottom_right = maps[:, :h, :h].sum((1, 2)) / total, maps[:, h:, h:].sum((1, 2)) / total
    assert (top_left > 0.7).all() and (bottom_right < top_left / 10).all(), (top_left, bottom_right)


def test_same_seed_same_map_and_settings_are_recorded(convnet):
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    a = make_method(convnet, "rise", n_masks=30, seed=4).attribute(x, 0)
    np.testing.assert_array_equal(a, make_method(convnet, "rise", n_masks=30, seed=4).attribute(x, 0))
    assert not np.allclose(a, make_method(convnet, "rise", n_masks=30, seed=5).attribute(x, 0))
    ran = resolved_options(convnet, "rise", {"n_masks": 30})
    assert ran["n_masks"] == 30 and ran["cells"] == 7 and ran["p_keep"] == 0.5 and ran["fill"] == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_masks=0),
        dict(cells=0),
        dict(cells=SIZE + 1),
        dict(p_keep=0.0),
        dict(p_keep=1.0),
        dict(fill="blur"),
        dict(fill=300),
        dict(max_batch=0),
    ],  # fmt: skip
)
def test_bad_settings_are_refused_in_one_line(convnet, bad):
    with pytest.raises(ValueError, match="rise|max_batch"):
        RISE(convnet, **bad)
