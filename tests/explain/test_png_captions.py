"""What the explain PNGs say about their colours: the panel's heatmap has a colour bar with its
values (0..1, or -1..1 signed), and the filter grid's caption is true of its tiles."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.explain.overlay import panel_figure

PHOTO = np.zeros((20, 30, 3), np.uint8)


def _colour_bar(fig):
    """The colour bar drawn under the panel's heatmap (an inset of its axes)."""
    bars = [child for child in fig.axes[1].child_axes if child.collections]
    assert len(bars) == 1, "the heatmap has no colour bar"
    return bars[0]


@pytest.mark.parametrize(
    ("signed", "limits", "said", "cmap"),
    [
        (False, (0.0, 1.0), "1 most important", "jet"),
        (True, (-1.0, 1.0), "against the target", "RdBu_r"),
    ],
)
def test_the_panel_heatmap_has_a_colour_bar_saying_what_its_values_mean(signed, limits, said, cmap):
    heat = np.linspace(-1 if signed else 0, 1, 100).reshape(10, 10)
    fig = panel_figure(PHOTO, heat, title="gradcam", signed=signed)
    bar = _colour_bar(fig)
    assert bar.get_xlim() == pytest.approx(limits)
    assert said in bar.get_xlabel()
    drawn = [c.get_cmap().name for c in bar.collections if type(c).__name__ == "QuadMesh"]
    assert drawn == [cmap]  # the colours the heatmap was drawn in
    heat_title = "map (red: for the target, blue: against)" if signed else "heatmap"
    assert [ax.get_title() for ax in fig.axes] == [
        "photo",
        heat_title,
        "overlay",
    ]  # three pictures, as before


def test_the_colour_bar_keeps_inside_the_figure():
    fig = panel_figure(PHOTO, np.random.default_rng(0).random((10, 10)))
    fig.canvas.draw()
    box = _colour_bar(fig).get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= width and box.y1 <= height


def _grid_text(cmap: str = "jet") -> str:
    from agelens.explain.filters import FilterMaps, filter_grid

    rng = np.random.default_rng(0)
    maps = rng.random((3, 16, 16)).astype(np.float32) * np.array([1.0, 2.0, 4.5], np.float32)[:, None, None]
    fm = FilterMaps("block_3", [5, 9, 2], [0.5, 1.0, 2.2], maps, rng.random((16, 16)).astype(np.float32))
    fig = filter_grid(np.zeros((16, 16, 3), np.uint8), fm, cmap=cmap)
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def test_the_filter_grid_caption_names_the_colours_and_the_first_tiles_own_scale():
    text = _grid_text()
    # jet's strongest colour is dark red, not its brightest: "brighter = stronger" misread the tiles
    assert "brighter" not in text
    assert "dark blue = no activation, dark red =" in text
    maps_max = float(
        (np.random.default_rng(0).random((3, 16, 16)) * np.array([1.0, 2.0, 4.5])[:, None, None]).max()
    )
    assert f"{maps_max:.3g}" in text  # what the top colour is worth
    # the layer-mean tile is min-max scaled alone: not "all tiles share one colour scale"
    assert "All tiles share one colour scale" not in text
    assert "The first tile" in text and "its own scale" in text


def test_the_caption_names_no_jet_colours_for_another_colormap():
    text = _grid_text("inferno")
    assert "dark red" not in text and "black = no activation, pale yellow =" in text
    assert "the low end of PiYG" in _grid_text("PiYG")


def test_filters_the_caller_named_are_not_called_the_most_active():
    """helper-86: ``filter_maps(..., filters=[...])`` drew "its 3 most active filters" and a caption
    saying the tiles were those with the highest means."""
    from agelens.explain.filters import FilterMaps, _grid_caption

    named = _grid_caption("block_3", named=True)
    assert "the filters asked for" in named and "highest means" not in named
    assert "highest means" in _grid_caption("block_3")
    rng = np.random.default_rng(0)
    maps = rng.random((2, 16, 16)).astype(np.float32)
    fm = FilterMaps("block_3", [7, 1], [0.3, 0.2], maps, maps[0], named=True)
    from agelens.explain.filters import filter_grid

    fig = filter_grid(np.zeros((16, 16, 3), np.uint8), fm)
    assert fig._suptitle.get_text() == "layer block_3: the filters asked for"
