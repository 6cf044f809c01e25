"""Turn maps into pictures: colour a heatmap, blend it over the photo, lay out panels.

Normalisation: maps from :mod:`agelens.explain` are already per-image min-max scaled to
[0, 1], so 1 is the most important pixel *of that image* (colours are not comparable
across images). Other arrays are clipped to [0, 1] unless ``normalize=True``, which
min-max scales them first (a flat map stays all zero).

Figures use matplotlib's object API (``Figure`` + Agg canvas), never ``pyplot``, so this
works in threads and servers without a display or global state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DEFAULT_CMAP = "jet"
SIGNED_CMAP = "RdBu_r"
"""Signed maps (-1..1): blue against the target, white neutral, red for it."""
RED_HIGH = ("RdBu_r", "coolwarm", "bwr", "seismic", "RdYlBu_r")
"""Diverging colormaps that run blue (low: against) to red (high: for): a legend may name the colours."""
DEFAULT_ALPHA = 0.45
PANEL_MAX_SIDE = 640
"""Longest side a photo is drawn at in a panel (each of its three plots is about 300 px wide)."""


def _unit(heatmap: np.ndarray, normalize: bool) -> np.ndarray:
    """``heatmap`` in [0, 1] as a new float32 array (never the caller's)."""
    m = np.asarray(heatmap, np.float32)
    if normalize:
        lo, hi = float(m.min()), float(m.max())
        return (m - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(m)
    out = np.nan_to_num(m)  # a copy
    return np.clip(out, 0.0, 1.0, out=out)


def signed_cmap(cmap: str) -> str:
    """The colormap a signed map is drawn in: :data:`SIGNED_CMAP` for the default (a sequential
    ``jet`` has no neutral middle for "no effect"), else the colormap the user chose."""
    return SIGNED_CMAP if cmap == DEFAULT_CMAP else cmap


def signed_label(cmap: str) -> str:
    """How a panel titles a signed map drawn in ``cmap``: colours only where they hold."""
    drawn = signed_cmap(cmap)
    if drawn in RED_HIGH:
        return "map (red: for the target, blue: against)"
    return f"map ({drawn}: top end for the target, bottom end against)"


def check_cmap(cmap: str) -> str:
    """The name itself if matplotlib knows the colormap, else a ``ValueError`` that says so."""
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {cmap!r}; try jet, inferno, viridis, magma or turbo")
    return cmap


def colorize(heatmap: np.ndarray, cmap: str = DEFAULT_CMAP, normalize: bool = False) -> np.ndarray:
    """``H x W`` map -> ``H x W x 3`` uint8 RGB through a matplotlib colormap (e.g. 'jet', 'inferno').

    Looks colours up in the colormap's own table (what ``cmap(x)`` does, same bins, same colours)
    instead of calling it on the map: that call builds a float64 RGBA copy, 32 bytes a pixel, which
    is 400 MB for a 12-megapixel phone photo; the table lookup needs one byte a pixel besides the output.
    """
    table = _colour_table(check_cmap(cmap))
    n = len(table)
    scaled = _unit(heatmap, normalize)  # always a new array, so scaling it in place is safe
    scaled *= n
    index = scaled.astype(np.int32)
    np.minimum(index, n - 1, out=index)
    return table[index]


@functools.lru_cache(maxsize=16)
def _colour_table(cmap: str) -> np.ndarray:
    colormap = matplotlib.colormaps[cmap]
    table = np.round(colormap(np.arange(colormap.N))[:, :3] * 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    normalize: bool = False,
    signed: bool = False,
) -> np.ndarray:
    """Blend the coloured map over the photo: ``(1 - alpha) * photo + alpha * colour``.

    The map is resized (bilinear) to the photo if their sizes differ. A ``signed`` map (-1..1)
    takes a diverging colormap (:data:`SIGNED_CMAP` for the default) and its opacity grows with
    ``|value|``: neutral pixels show the photo, not a white wash over it.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image, np.uint8)
    m = np.asarray(heatmap, np.float32)
    if m.shape != img.shape[:2]:
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    if signed:
        return _signed_blend(img, m, alpha, signed_cmap(cmap))
    # uint8 blend with rounding (OpenCV saturates), not a float32 copy of a photo that may be 12 MP
    return cv2.addWeighted(img, 1.0 - alpha, colorize(m, cmap, normalize), alpha, 0.0)


def colorize_signed(heatmap: np.ndarray, cmap: str = SIGNED_CMAP) -> np.ndarray:
    """A -1..1 map through a diverging colormap: -1 at its low end, 0 in the middle, +1 at the top."""
    return colorize((np.clip(np.asarray(heatmap, np.float32), -1.0, 1.0) + 1.0) / 2.0, cmap)


def _signed_blend(img: np.ndarray, m: np.ndarray, alpha: float, cmap: str) -> np.ndarray:
    """Per-pixel opacity ``alpha * |m|``, in uint16 integer arithmetic (no float copy of the photo)."""
    weight = np.round(np.minimum(np.abs(m), 1.0) * (alpha * 255.0)).astype(np.uint16)[..., None]
    mixed = img.astype(np.uint16) * (255 - weight) + colorize_signed(m, cmap).astype(np.uint16) * weight
    mixed += 127
    mixed //= 255
    return mixed.astype(np.uint8)


def caption(probabilities: Sequence[float], class_names: Sequence[str], age: float | None = None) -> str:
    """'old 81% · middle-aged 15% · young 4%' (top three), plus the expected age if known."""
    p = np.asarray(probabilities, np.float64)
    top = np.argsort(-p)[:3]
    text = " · ".join(f"{class_names[i]} {100 * p[i]:.0f}%" for i in top)
    return f"{text} · age ≈ {age:.0f}" if age is not None else text


def panel_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    title: str = "",
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    signed: bool = False,
) -> Figure:
    """Photo | heatmap | overlay side by side, with ``title`` (e.g. a :func:`caption`) on top.

    A ``signed`` map is drawn in a diverging colormap (:func:`signed_cmap`; blue against the
    target, red for it by default), and its title says which end means what.

    Each third of the 960 x 360 px figure shows a few hundred pixels, so a larger photo is
    shrunk to :data:`PANEL_MAX_SIDE` first: the same picture, without matplotlib resampling
    (and holding copies of) a full-size phone photo three times.
    """
    fig = Figure(figsize=(9.6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    image, heatmap = _shrunk(image, heatmap, PANEL_MAX_SIDE)
    if signed:
        heat = colorize_signed(_resized(heatmap, image), signed_cmap(cmap))
        labels = ("photo", signed_label(cmap), "overlay")
    else:
        heat, labels = colorize(_resized(heatmap, image), cmap), ("photo", "heatmap", "overlay")
    shown = [image, heat, overlay(image, heatmap, alpha, cmap, signed=signed)]
    for ax, pic, label in zip(axes, shown, labels, strict=True):
        ax.imshow(pic)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0.0, 0.13, 1.0, 1.0))  # room below for the heatmap's colour bar
    colour_bar(fig, axes[1], cmap, signed)
    return fig


def colour_bar(fig: Figure, ax: object, cmap: str = DEFAULT_CMAP, signed: bool = False) -> object:
    """A slim colour bar under the heatmap ``ax``, saying what its colours are worth: 0..1 (1: the
    most important pixel of this image) or, ``signed``, -1..1 (against the target .. for it).

    Why: without one a reader guesses whether red or white is "most", and jet's red is not its
    brightest colour. Placed inside the heatmap's cell, below the picture, so the three pictures
    keep one size. Returns the colour bar.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    lo, drawn = (-1.0, signed_cmap(cmap)) if signed else (0.0, cmap)
    bar = ax.inset_axes((0.1, -0.1, 0.8, 0.04))
    cb = fig.colorbar(ScalarMappable(Normalize(lo, 1.0), drawn), cax=bar, orientation="horizontal")
    cb.set_ticks([lo, (lo + 1.0) / 2, 1.0])
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    said = "-1 against the target · 0 no effect · 1 for it" if signed else "0 least · 1 most important"
    cb.set_label(said, fontsize=7, labelpad=1)
    return cb


def _shrunk(image: np.ndarray, heatmap: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (area-averaged) and ``heatmap`` at the same new size, longest side at most ``max_side``."""
    from agelens.data.images import fit_longest_side

    small = fit_longest_side(np.asarray(image, np.uint8), max_side)
    if small.shape == image.shape:
        return image, heatmap
    size = (small.shape[1], small.shape[0])
    return small, cv2.resize(np.asarray(heatmap, np.float32), size, interpolation=cv2.INTER_AREA)


def _resized(heatmap: np.ndarray, image: np.ndarray) -> np.ndarray:
    m = np.asarray(heatmap, np.float32)
    if m.shape == image.shape[:2]:
        return m
    return cv2.resize(m, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 array as PNG (raises OSError if it cannot be written)."""
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
    return path
