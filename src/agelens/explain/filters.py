"""What single filters respond to: per-filter activation maps and top-activating patches.

Per-filter maps show a layer's raw activations, upsampled to the photo. The filter tiles of
one grid share one colour scale (divided by the largest activation shown), so the colour
map's top end (red in jet, which is not its brightest colour) really is the more active
filter; the label gives the filter index and its mean activation. The grid's first tile, the
layer's mean over all filters, is min-max scaled on its own, and its caption says so.

:func:`top_activating` ranks images by a filter's peak activation and cuts out the
filter's *theoretical receptive field* around the peak (computed from kernel sizes,
strides, dilation and padding along the graph; where branches merge the widest field is
kept). Deep MobileNetV2 layers see most of the image, so their boxes clip to its edges.
"""

from __future__ import annotations

import math
import textwrap
import weakref
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from agelens.explain.base import compiled, image_spec, upsample
from agelens.explain.layers import as_age_model, model_view
from agelens.explain.overlay import DEFAULT_ALPHA, DEFAULT_CMAP, overlay

_WINDOWED = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)


@dataclass
class FilterMaps:
    """Activation maps of chosen filters of one layer, for one model-sized image."""

    layer: str
    indices: list[int]
    means: list[float]  # mean activation of each filter on the image
    maps: np.ndarray  # (k, S, S) raw activations, bilinear-upsampled to the model input
    summary: np.ndarray  # (S, S) mean over all channels, min-max normalised
    named: bool = False  # the caller named the filters (else: the most active ones)


class _Features:
    """Compiled ``x -> activations of one layer`` (cached per model and layer)."""

    def __init__(self, model: Any, layer: Any) -> None:
        self.layer = model_view(model).resolve(layer)[0]
        self.view = model_view(model, fold=[self.layer])
        self.size = int(self.view.model.input_size)
        sub = keras.Model(self.view.input, self.view.output_of(self.layer))
        feed = self.view.feed
        self.sub, self.feed = sub, feed  # differentiable, for feature_vis's pattern search

        @compiled([image_spec(self.size)])
        def run(x: Any) -> Any:
            return sub(feed(x), training=False)

        self.run = run

    def __call__(self, images: Any, batch_size: int = 32) -> np.ndarray:
        x = np.asarray(images, np.float32)
        x = x[None] if x.ndim == 3 else x
        outs = [self.run(tf.constant(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.asarray(tf.concat(outs, 0))


_FEATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _features(model: Any, layer: Any) -> _Features:
    """Cached per Keras model and layer, so repeated calls reuse one compiled trace."""
    am = as_age_model(model)
    name = model_view(am).resolve(layer)[0]
    per_model = _FEATURES.setdefault(am.keras_model, {})
    if name not in per_model:
        per_model[name] = _Features(am, name)
    return per_model[name]


def filter_maps(
    model: Any, image: np.ndarray, layer: Any = None, k: int = 8, filters: list[int] | None = None
) -> FilterMaps:
    """The ``k`` most active filters (by mean activation) of ``layer`` on one model-sized image,
    or the named ``filters``."""
    feats = _features(model, layer)
    acts = feats(image)[0]  # (h, w, K)
    means = acts.mean(axis=(0, 1))
    if filters is None:
        chosen = [int(i) for i in np.argsort(-means, kind="stable")[: max(0, k)]]
    else:
        bad = [f for f in filters if not 0 <= f < acts.shape[-1]]
        if bad:
            raise ValueError(
                f"filters {bad} out of range: layer {feats.layer!r} has {acts.shape[-1]} filters"
            )
        chosen = [int(f) for f in filters]
    maps = np.asarray(upsample(tf.constant(np.moveaxis(acts[..., chosen], -1, 0)), feats.size))
    summary = np.asarray(upsample(tf.constant(acts.mean(axis=-1)[None]), feats.size))[0]
    rng = summary.max() - summary.min()
    summary = (summary - summary.min()) / rng if rng > 1e-12 else np.zeros_like(summary)
    return FilterMaps(
        feats.layer,
        chosen,
        [float(means[i]) for i in chosen],
        maps,
        summary.astype(np.float32),
        named=filters is not None,
    )


def filter_grid(
    image: np.ndarray, fm: FilterMaps, cols: int = 4, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP
) -> Any:
    """A matplotlib Figure: the layer summary, then one labelled overlay per filter, and a
    caption saying what the numbers are (a bare "filter 532 mean 1.19" meant nothing to readers)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = max(float(fm.maps.max()) if fm.maps.size else 0.0, 1e-12)
    tiles = [("layer mean (all filters)", fm.summary)] + [
        (f"filter {i} · mean {m:.3g}", mp / scale)
        for i, m, mp in zip(fm.indices, fm.means, fm.maps, strict=True)
    ]
    # Balance the rows (5 tiles at cols=4 -> 3 + 2, not 4 + a lone panel), never wider than asked.
    rows = math.ceil(len(tiles) / max(1, min(cols, len(tiles))))
    cols = math.ceil(len(tiles) / rows)
    # Laid out in inches, not by tight_layout: with square images in taller cells it packed
    # the rows so that the second row's titles ran into the first row's images.
    tile, gap, title, head = 2.4, 0.2, 0.35, 0.5
    width = cols * (tile + gap)
    caption = _grid_caption(fm.layer, cmap, scale, fm.named)
    caption = textwrap.wrap(caption, width=max(30, int(width / 0.065)))
    foot = 0.2 + 0.14 * len(caption)
    height = head + rows * (title + tile) + foot
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    grid = tile_grid(width, height, tile=tile, gap=gap, title=title, head=head, foot=foot, side=gap / 2)
    axes = np.atleast_1d(fig.subplots(rows, cols, gridspec_kw=grid)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (label, m) in zip(axes, tiles, strict=False):
        ax.imshow(overlay(image, np.clip(m, 0, 1), alpha, cmap))
        ax.set_title(label, fontsize=8, pad=4)
    which = "the filters asked for" if fm.named else f"its {len(fm.indices)} most active filters"
    fig.suptitle(f"layer {fm.layer}: {which}", fontsize=10, y=1 - 0.12 / height)
    fig.text(0.5, 0.08 / height, "\n".join(caption), ha="center", va="bottom", fontsize=7.5)
    return fig


def tile_grid(
    width: float,
    height: float,
    *,
    tile: float,
    gap: float,
    title: float,
    head: float,
    foot: float,
    side: float,
) -> dict[str, float]:
    """``gridspec_kw`` for square image tiles laid out in inches: ``title`` above each tile,
    ``gap`` between them, ``head`` above the first row, ``foot`` below the last, ``side`` at the
    edges. Shared by every grid of tiles (filter maps, the atlas, the app's patterns), so their
    titles never run into the row above, as tight_layout let them."""
    return dict(
        left=side / width,
        right=1 - side / width,
        top=1 - (head + title) / height,
        bottom=foot / height,
        wspace=gap / tile,
        hspace=title / tile,
    )


COLOUR_ENDS = {
    "jet": ("dark blue", "dark red"),
    "turbo": ("dark blue", "dark red"),
    "viridis": ("purple", "yellow"),
    "inferno": ("black", "pale yellow"),
    "magma": ("black", "pale yellow"),
}
"""The low and high colours of common colormaps, as a caption names them."""


def _grid_caption(
    layer: str, cmap: str = DEFAULT_CMAP, scale: float | None = None, named: bool = False
) -> str:
    """What a filter grid shows, in words, for readers who never saw the code.

    Why the colours are named: in jet the strongest colour is dark red, not the brightest (yellow
    and cyan are brighter), so "brighter = stronger" misread every tile; and the first tile is on
    its own scale, so "all tiles share one colour scale" was not true of it.
    """
    low, high = COLOUR_ENDS.get(cmap, (f"the low end of {cmap}", "its top end"))
    top = f"{scale:.3g}, " if scale is not None else ""
    return (
        f"Each tile shows where one filter (channel) of layer {layer} responds on this photo. "
        "'mean' is that filter's average activation over the whole photo; the tiles are "
        + ("the filters asked for. " if named else "the filters with the highest means. ")
        + f"The filter tiles share one colour scale: {low} = no "
        f"activation, {high} = {top}the largest activation in any of them. The first tile, the "
        f"mean of every filter of the layer, has its own scale: {low} at its weakest point, {high} "
        "at its strongest. Filters show what responds, not why the model predicts a class."
    )


@dataclass
class TopActivation:
    """One image that strongly activates a filter, and where."""

    index: int  # position in the images given
    value: float  # peak activation
    location: tuple[int, int]  # (row, col) of the peak in the feature map
    box: tuple[int, int, int, int]  # (top, left, bottom, right) receptive field in model-input pixels
    patch: np.ndarray  # the image inside ``box`` (uint8 RGB)


def top_activating(
    model: Any, images: np.ndarray, layer: Any, filter: int, k: int = 9
) -> list[TopActivation]:
    """The ``k`` images (model-sized, 0..255) with the highest peak activation of ``filter``."""
    feats = _features(model, layer)
    acts = feats(images)
    if not 0 <= filter < acts.shape[-1]:
        raise ValueError(f"filter {filter} out of range: layer {feats.layer!r} has {acts.shape[-1]} filters")
    return top_of(acts[..., filter], np.asarray(images), receptive_field(model, feats.layer), feats.size, k)


def top_of(a: np.ndarray, images: np.ndarray, rf: Field, size: int, k: int) -> list[TopActivation]:
    """The ``k`` images with the highest peak of one filter's maps ``a`` (N, h, w), each cut to
    the receptive field ``rf`` around its peak (boxes clipped to the ``size``-pixel input)."""
    flat = a.reshape(len(a), -1)
    peaks = flat.max(axis=1)
    out = []
    for i in np.argsort(-peaks, kind="stable")[: max(0, k)]:
        r, c = divmod(int(flat[i].argmax()), a.shape[2])
        box = rf.box(r, c, size)
        patch = np.asarray(images[i][box[0] : box[2], box[1] : box[3]], np.uint8)
        out.append(TopActivation(int(i), float(peaks[i]), (r, c), box, patch))
    return out


@dataclass(frozen=True)
class Field:
    """Receptive field per axis (rows, cols): size, jump (stride product), centre of unit 0."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def box(self, row: int, col: int, limit: int) -> tuple[int, int, int, int]:
        cy, cx = self.start[0] + row * self.jump[0], self.start[1] + col * self.jump[1]
        hy, hx = self.size[0] / 2, self.size[1] / 2
        top, left = max(0, math.floor(cy - hy)), max(0, math.floor(cx - hx))
        return top, left, min(limit, math.ceil(cy + hy)), min(limit, math.ceil(cx + hx))


def receptive_field(model: Any, layer: str) -> Field:
    """Theoretical receptive field of one unit of ``layer`` (input pixel centres at i + 0.5)."""
    view = model_view(model)
    fields = {id(view.input): Field((1.0, 1.0), (1.0, 1.0), (0.5, 0.5))}
    for step in view.graph.steps:
        known = [fields[id(t)] for t in step.inputs if id(t) in fields]
        if not known:
            continue
        f = max(known, key=lambda q: q.size)
        f = _through(step.op, f, step.inputs[0].shape)
        for y in step.outputs:
            fields[id(y)] = f
    target = view.output_of(layer)
    return fields.get(id(target), Field((float(view.model.input_size),) * 2, (1.0, 1.0), (0.5, 0.5)))


def _through(op: Any, f: Field, in_shape: Any) -> Field:
    if isinstance(op, keras.layers.ZeroPadding2D):
        (t, _), (left, _) = op.padding
        return Field(f.size, f.jump, (f.start[0] - t * f.jump[0], f.start[1] - left * f.jump[1]))
    if isinstance(op, keras.layers.Cropping2D):
        (t, _), (left, _) = op.cropping
        return Field(f.size, f.jump, (f.start[0] + t * f.jump[0], f.start[1] + left * f.jump[1]))
    if not isinstance(op, _WINDOWED) or len(in_shape) != 4:
        return f
    pool = isinstance(op, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D)
    kernel = op.pool_size if pool else op.kernel_size
    strides = op.strides
    dilation = (1, 1) if pool else op.dilation_rate
    size, jump, start = [], [], []
    for ax in range(2):
        k_eff = dilation[ax] * (kernel[ax] - 1) + 1
        n = in_shape[1 + ax] or 0
        before = 0
        if op.padding == "same":
            total = max((math.ceil(n / strides[ax]) - 1) * strides[ax] + k_eff - n, 0)
            before = total // 2
        size.append(f.size[ax] + (k_eff - 1) * f.jump[ax])
        start.append(f.start[ax] + ((k_eff - 1) / 2 - before) * f.jump[ax])
        jump.append(f.jump[ax] * strides[ax])
    return Field(tuple(size), tuple(jump), tuple(start))
