"""Per-filter maps, top-activating patches, receptive fields, colouring and panels."""

from __future__ import annotations

import numpy as np
import pytest
from explain_models import quadrant_images, quadrant_model
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agelens.explain.base import normalize_maps
from agelens.explain.filters import filter_grid, filter_maps, receptive_field, top_activating
from agelens.explain.overlay import caption, colorize, overlay, panel_figure


@pytest.fixture(scope="module")
def quad():
    return quadrant_model()


def test_filter_maps_pick_the_most_active_filters(age_model, faces64):
    fm = filter_maps(age_model, faces64[0], "block_6_expand_relu", k=5)
    assert fm.layer == "block_6_expand_relu" and len(fm.indices) == 5 == len(fm.means)
    assert fm.maps.shape == (5, 64, 64) and fm.summary.shape == (64, 64)
    assert fm.means == sorted(fm.means, reverse=True)
    assert fm.summary.min() == 0 and fm.summary.max() == pytest.approx(1)
    named = filter_maps(age_model, faces64[0], "block_6_expand_relu", filters=[3, 1])
    assert named.indices == [3, 1]
    with pytest.raises(ValueError, match="out of range"):
        filter_maps(age_model, faces64[0], "block_6_expand_relu", filters=[10_000])
    fig = filter_grid(faces64[0].astype(np.uint8), fm, cols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("layer mean") and titles[1].startswith(f"filter {fm.indices[0]}")
    assert len(titles) == 6
    # 5 filters + the summary at cols=4: rows of 3 and 3, not 4 and a lone panel
    grid = filter_grid(faces64[0].astype(np.uint8), fm, cols=4)
    assert len(grid.axes) == 6 and grid.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 3)


def test_receptive_field_of_a_known_stack(quad):
    # conv 3x3 same -> max-pool 2 -> conv 3x3 same: field 8 px, jump 2, unit 0 centred at pixel 1.0
    rf = receptive_field(quad, "relu2")
    assert rf.size == (8.0, 8.0) and rf.jump == (2.0, 2.0) and rf.start == (1.0, 1.0)
    assert rf.box(0, 0, 32) == (0, 0, 5, 5)
    assert rf.box(5, 7, 32) == (7, 11, 15, 19)
    assert receptive_field(quad, "conv1").size == (3.0, 3.0)


def test_top_activating_ranks_images_and_cuts_the_field(quad):
    x = quadrant_images(6, seed=3)
    x[2] = 128.0  # flat grey: the "bright" channel stays silent
    x[4, :16, :16] = 255.0  # the brightest top-left quadrant
    top = top_activating(quad, x, "relu2", 0, k=3)
    assert [t.index for t in top][0] == 4 and 2 not in [t.index for t in top]
    assert [t.value for t in top] == sorted((t.value for t in top), reverse=True)
    for t in top:
        t0, l0, b0, r0 = t.box
        assert 0 <= t0 < b0 <= 32 and 0 <= l0 < r0 <= 32
        assert t.patch.shape == (b0 - t0, r0 - l0, 3)
        assert t.location[0] < 8 and t.location[1] < 8  # the peak is in the top-left quadrant


def test_colorize_and_overlay():
    m = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    rgb = colorize(m, "inferno")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb, colorize(m, "jet"))
    photo = np.full((8, 10, 3), 77, np.uint8)
    np.testing.assert_array_equal(overlay(photo, m, alpha=0.0), photo)  # map resized to the photo
    np.testing.assert_array_equal(overlay(photo, np.zeros((8, 10)), alpha=1.0), colorize(np.zeros((8, 10))))
    np.testing.assert_array_equal(colorize(m * 5 + 3, normalize=True), colorize(m))
    with pytest.raises(ValueError, match="alpha"):
        overlay(photo, m, alpha=1.5)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (6, 7), elements=st.floats(-0.5, 1.5, width=32)),
    st.sampled_from(["jet", "inferno", "viridis", "turbo", "gray"]),
)
def test_colorize_gives_matplotlibs_own_colours(m, cmap):
    """The table lookup must be the colormap itself: same bins at 0, 1 and every edge between."""
    import matplotlib

    expected = np.round(matplotlib.colormaps[cmap](np.clip(m, 0, 1))[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(colorize(m, cmap), expected)


def test_overlay_blends_within_one_grey_level():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    m = rng.random((30, 40)).astype(np.float32)
    for alpha in (0.2, 0.45, 0.8):
        exact = (1 - alpha) * photo + alpha * colorize(m).astype(np.float64)
        assert np.abs(overlay(photo, m, alpha).astype(np.float64) - exact).max() <= 0.5 + 1e-6


def test_colouring_a_phone_photo_allocates_a_few_bytes_a_pixel():
    """A 12-megapixel map once cost 32 bytes a pixel in float64 RGBA; colours and blend stay small."""
    import tracemalloc

    h, w = 1200, 1600
    m = np.random.default_rng(1).random((h, w)).astype(np.float32)
    photo = np.zeros((h, w, 3), np.uint8)
    colorize(m[:2, :2])  # build the colour table outside the measurement
    tracemalloc.start()
    overlay(photo, m)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the output (3 bytes a pixel), the colours (3), the clipped map (4) and the bin indices (4)
    assert peak / (h * w) < 16


def test_panel_of_a_large_photo_shows_it_shrunk():
    big = np.zeros((3000, 4000, 3), np.uint8)
    fig = panel_figure(big, np.random.rand(30, 40))
    shown = fig.axes[0].get_images()[0].get_array()
    assert max(shown.shape[:2]) <= 640 and shown.shape[1] / shown.shape[0] == pytest.approx(4 / 3, rel=0.01)
    assert fig.get_size_inches().tolist() == [9.6, 3.6]


def test_caption_and_panel():
    text = caption([0.1, 0.2, 0.7], ["young", "middle-aged", "old"], age=71.4)
    assert text == "old 70% · middle-aged 20% · young 10% · age ≈ 71"
    fig = panel_figure(np.zeros((20, 30, 3), np.uint8), np.random.rand(10, 10), title=text)
    assert [ax.get_title() for ax in fig.axes] == ["photo", "heatmap", "overlay"]


@pytest.mark.parametrize(
    ("cmap", "title"),
    [
        ("jet", "map (red: for the target, blue: against)"),  # the default: drawn in RdBu_r
        ("coolwarm", "map (red: for the target, blue: against)"),
        ("PiYG", "map (PiYG: top end for the target, bottom end against)"),  # no red or blue in it
    ],
)
def test_a_signed_panel_names_the_colours_of_the_colormap_it_was_drawn_in(cmap, title):
    from agelens.explain.explanation import manifest_header
    from agelens.explain.overlay import signed_cmap

    fig = panel_figure(
        np.zeros((20, 30, 3), np.uint8), np.linspace(-1, 1, 100).reshape(10, 10), cmap=cmap, signed=True
    )
    assert fig.axes[1].get_title() == title
    assert manifest_header(None, cmap=cmap, alpha=0.5)["overlay"]["signed_cmap"] == signed_cmap(cmap)
    assert signed_cmap(cmap) == ("RdBu_r" if cmap == "jet" else cmap)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (3, 5, 6), elements=st.floats(-1e3, 1e3, width=32)))
def test_normalised_maps_span_zero_to_one_or_are_zero(maps):
    out = np.asarray(normalize_maps(maps))
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1 + 1e-6
    for m, o in zip(maps, out, strict=True):
        if np.ptp(m) > 1e-3 * max(1e-30, np.abs(m).max()):
            assert o.min() == 0 and o.max() == pytest.approx(1, abs=1e-6)
            assert o.flat[np.argmax(m)] == pytest.approx(1, abs=1e-6)
        if np.ptp(m) == 0:
            assert not o.any()  # flat (incl. all-zero) maps stay zero


def test_a_signed_overlay_leaves_neutral_pixels_alone_and_colours_by_sign():
    from agelens.explain.overlay import overlay

    photo = np.full((4, 3, 3), 120, np.uint8)
    m = np.array([[0.0, 1.0, -1.0]] * 4, np.float32)
    out = overlay(photo, m, alpha=1.0, signed=True).astype(int)
    np.testing.assert_array_equal(out[:, 0], photo[:, 0])  # 0: the photo, no white wash
    r, _, b = out[0, 1]
    assert r > 60 + b  # +1: red (for the target)
    r, _, b = out[0, 2]
    assert b > 60 + r  # -1: blue (against it)
    half = overlay(photo, m * 0.5, alpha=1.0, signed=True).astype(int)
    assert abs(half[0, 1] - 120).sum() < abs(out[0, 1] - 120).sum()  # weaker evidence, fainter colour
