"""What a filter looks for: the image that drives it hardest (activation maximisation), and the
photo patches that drive it most (:func:`agelens.explain.filters.top_activating`), side by side.

Per-filter maps answer "where on this photo does filter 37 fire"; this module answers "what is
filter 37 for". Searching pixel space directly for the input that maximises a filter gives
high-frequency noise that fools the filter but shows nothing (Olah et al., "Feature
Visualization", Distill 2017), so the search here is shaped the way that work found useful:

- **Fourier parameterisation.** The image is held as a spectrum scaled by 1/frequency, so
  gradient steps change coarse structure about as easily as fine detail, instead of mostly
  the latter.
- **Colour decorrelation from the user's photos.** The three channels are mixed by the
  square root of the photos' RGB covariance, so a step in the search space is a step along
  the colour directions photos actually vary in. Without photos the channels are independent.
- **Transformation robustness.** Every step shows the model a randomly shifted and rescaled
  crop of a slightly larger canvas, so a pattern survives only if the filter responds to it
  wherever it sits, not to one exact pixel alignment.
- **A gradient for silent filters.** Where the layer is an activation of its own (MobileNetV2's
  ReLU6 layers), the search maximises the activation plus 1% of its input, so a filter that no
  pixel of the near-grey start drives above zero still gets a direction; without it a red
  detector stayed grey (its ReLU passed no gradient at all). What is reported is the
  activation alone.
- **A sigmoid to 0..255**, so the result is a valid photo and is fed through the model's own
  pixel convention (:class:`agelens.model.pixel_range.PixelFeed`), like every other input.

All filters asked for are optimised together, one image each, in one traced loop (no NumPy
round trip per step); the caller's model is read, never changed. The reported activation is
measured again on the saved uint8 image, so it is what the PNG really does to the filter.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from agelens.explain.filters import TopActivation, _features, receptive_field, tile_grid, top_of
from agelens.explain.gradients import activation_kind

DEFAULT_STEPS = 256
DEFAULT_LR = 0.05
LEAK = 0.01  # share of the pre-activation in the searched objective (see _Search.objective)
CHUNK = 16  # filters optimised in one batch (memory grows with it)


@dataclass
class FilterPatterns:
    """One synthetic image per filter, each the search's best attempt at what drives it."""

    layer: str
    filters: list[int]
    images: np.ndarray  # (k, S, S, 3) uint8 at the model's input size
    activation: np.ndarray  # (k,) each filter's mean activation over its own image (as saved)
    start_activation: np.ndarray  # (k,) the same on the starting image, for scale
    settings: dict = field(default_factory=dict)


def colour_transform(photos: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 mixing matrix, mean colour in logit space) from photos' pixels (0..255 RGB).

    The matrix is the symmetric square root of the RGB covariance, scaled so its largest
    column has unit length: a unit step in the search space moves the colour along the
    photos' main axes of variation. ``None`` (or too few pixels) gives independent channels
    around mid grey.
    """
    if photos is None or np.asarray(photos).size < 3 * 16:
        return np.eye(3, dtype=np.float32) / math.sqrt(3), np.zeros(3, np.float32)
    px = np.asarray(photos, np.float64).reshape(-1, 3) / 255.0
    if len(px) > 200_000:  # the covariance of a strided sample is the same to 3 decimals
        px = px[:: len(px) // 200_000]
    cov = np.cov(px, rowvar=False) + 1e-6 * np.eye(3)
    w, u = np.linalg.eigh(cov)
    root = u @ np.diag(np.sqrt(np.maximum(w, 0))) @ u.T
    root /= max(np.linalg.norm(root, axis=0).max(), 1e-12)
    mean = np.clip(px.mean(axis=0), 0.05, 0.95)
    return root.astype(np.float32), np.log(mean / (1 - mean)).astype(np.float32)


def _spectrum_scale(canvas: int, decay: float) -> np.ndarray:
    """1/frequency^decay per rfft2 coefficient, normalised so unit-variance coefficients give
    unit-variance pixels (so the learning rate means the same at every image size)."""
    fy = np.fft.fftfreq(canvas)[:, None]
    fx = np.fft.rfftfreq(canvas)[None, :]
    freq = np.sqrt(fy**2 + fx**2)
    scale = 1.0 / np.maximum(freq, 1.0 / canvas) ** decay
    n = canvas * canvas
    return (scale * n / np.sqrt(2 * np.sum(scale**2))).astype(np.float32)


class _Search:
    """The traced optimisation loop for one model and layer (built once, reused for every
    chunk of filters and every call with the same canvas)."""

    def __init__(self, model: Any, layer: Any, decay: float) -> None:
        self.feats = _features(model, layer)
        self.size = self.feats.size
        self.pad = max(2, round(self.size * 0.08))
        self.canvas = self.size + 2 * self.pad
        self.scale = tf.constant(_spectrum_scale(self.canvas, decay))
        feed, size, canvas = self.feats.feed, self.size, self.canvas
        post = self.feats.sub.output
        pre = _pre_activation(self.feats.view, self.feats.layer)
        sub = keras.Model(self.feats.view.input, [pre if pre is not None else post, post])
        self.leaky = pre is not None
        n_filters = int(post.shape[-1])
        self.n_filters = n_filters

        def render(spec: Any, mix: Any, mean: Any) -> Any:
            """Spectrum (k, 3, C, C//2+1, 2) -> canvas images (k, C, C, 3) in 0..255."""
            coeffs = tf.complex(spec[..., 0], spec[..., 1]) * tf.cast(self.scale, tf.complex64)
            planes = tf.signal.irfft2d(coeffs, fft_length=[canvas, canvas])  # (k, 3, C, C)
            z = tf.transpose(planes, [0, 2, 3, 1])
            return tf.sigmoid(tf.einsum("kyxc,dc->kyxd", z, mix) + mean) * 255.0

        def jittered(img: Any, step: Any, seed: Any, jitter: Any) -> Any:
            """A random crop of side size*s (s in [1 - jitter, 1 + jitter], never beyond the
            canvas) at a random place, resized to the model's input."""
            k = tf.shape(img)[0]
            rnd = tf.random.stateless_uniform([k, 3], seed=tf.stack([seed, tf.cast(step, tf.int64)]))
            side = tf.minimum(size * (1.0 - jitter + 2.0 * jitter * rnd[:, 0]), float(canvas))
            y0 = (canvas - side) * rnd[:, 1]
            x0 = (canvas - side) * rnd[:, 2]
            last = float(canvas - 1)
            boxes = tf.stack([y0, x0, y0 + side - 1, x0 + side - 1], axis=1) / last
            return tf.image.crop_and_resize(img, boxes, tf.range(k), [size, size])

        def objective(x: Any, onehot: Any) -> Any:
            before, act = sub(feed(x), training=False)
            # LEAK x the pre-activation keeps a gradient where the filter is silent everywhere
            # (a ReLU below zero passes none, and a near-grey start is often all below zero).
            act = act + LEAK * before
            return tf.reduce_sum(tf.reduce_mean(act, axis=[1, 2]) * onehot, axis=1)  # (k,)

        @tf.function(reduce_retracing=True)
        def search(
            spec: Any, onehot: Any, mix: Any, mean: Any, steps: Any, seed: Any, lr: Any, jitter: Any
        ) -> Any:
            m = tf.zeros_like(spec)
            v = tf.zeros_like(spec)
            b1, b2 = 0.9, 0.999
            for t in tf.range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(spec)
                    x = jittered(render(spec, mix, mean), t, seed, jitter)
                    loss = -tf.reduce_sum(objective(x, onehot))
                g = tape.gradient(loss, spec)
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                tf1 = tf.cast(t + 1, tf.float32)
                step = lr * (m / (1 - b1**tf1)) / (tf.sqrt(v / (1 - b2**tf1)) + 1e-8)
                spec = spec - step
            return render(spec, mix, mean)

        self.search = search
        self.render = tf.function(render, reduce_retracing=True)


def _pre_activation(view: Any, layer: str) -> Any:
    """The input of ``layer`` when it is an element-wise activation layer of its own (ReLU,
    ReLU6, an Activation...), else None: a convolution with a fused activation has no separate
    pre-activation tensor, and neither has a layer that mixes channels (softmax)."""
    step = view.graph.by_path.get(layer)
    if step is None or len(step.inputs) != 1 or hasattr(step.op, "kernel"):
        return None
    kind = activation_kind(step.op)
    if kind is None or kind == "softmax" or tuple(step.inputs[0].shape) != tuple(step.outputs[0].shape):
        return None
    return step.inputs[0]


def _search_for(model: Any, layer: Any, decay: float) -> _Search:
    """Cached on the layer's compiled features (themselves cached per Keras model), so the
    loop is traced once per model, layer and decay, and freed with the model."""
    feats = _features(model, layer)
    cache = feats.__dict__.setdefault("searches", {})
    if decay not in cache:
        cache[decay] = _Search(model, layer, decay)
    return cache[decay]


def filter_patterns(
    model: Any,
    layer: Any = None,
    filters: Sequence[int] = (0,),
    *,
    photos: np.ndarray | None = None,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    jitter: float = 0.1,
    decay: float = 1.0,
    seed: int = 0,
) -> FilterPatterns:
    """Search, for each of ``filters`` of ``layer``, the image that maximises that filter's mean
    activation (see the module docstring for how the search is shaped).

    ``photos`` (model-sized 0..255 RGB, optional) only set the colour statistics of the
    search; they are not a starting point. ``steps`` trades time for contrast: the activation
    reached usually levels off within a few hundred. Same ``seed``, same images.
    """
    search = _search_for(model, layer, decay)
    filters = [int(f) for f in filters]
    bad = [f for f in filters if not 0 <= f < search.n_filters]
    if bad:
        raise ValueError(
            f"filters {bad} out of range: layer {search.feats.layer!r} has {search.n_filters} filters"
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    mix, mean = colour_transform(photos)
    c = search.canvas
    rng = np.random.default_rng(seed)
    images, starts = [], []
    for lo in range(0, len(filters), CHUNK):
        chunk = filters[lo : lo + CHUNK]
        spec = tf.constant(0.01 * rng.standard_normal((len(chunk), 3, c, c // 2 + 1, 2)), tf.float32)
        onehot = tf.one_hot(chunk, search.n_filters)
        args = (tf.constant(mix), tf.constant(mean))
        starts.append(np.asarray(search.render(spec, *args)))
        out = search.search(
            spec,
            onehot,
            *args,
            tf.constant(steps),
            tf.constant(seed, tf.int64),
            tf.constant(lr),
            tf.constant(jitter),
        )
        images.append(np.asarray(out))
    crop = slice(search.pad, search.pad + search.size)
    as_uint8 = [np.clip(np.rint(a[:, crop, crop]), 0, 255).astype(np.uint8) for a in images]
    final = np.concatenate(as_uint8) if as_uint8 else np.zeros((0, search.size, search.size, 3), np.uint8)
    start = np.concatenate([np.clip(np.rint(a[:, crop, crop]), 0, 255) for a in starts]) if starts else final
    return FilterPatterns(
        layer=search.feats.layer,
        filters=filters,
        images=final,
        activation=_own_means(search, final, filters),
        start_activation=_own_means(search, start, filters),
        settings=dict(
            steps=steps,
            lr=lr,
            jitter=jitter,
            decay=decay,
            seed=seed,
            colour_from_photos=photos is not None,
            pre_activation_leak=LEAK if search.leaky else 0.0,  # 0: the layer has no separate input
        ),
    )


def _own_means(search: _Search, images: np.ndarray, filters: list[int]) -> np.ndarray:
    """Each image's mean activation of its own filter (image i belongs to filters[i])."""
    if not len(filters):
        return np.zeros(0, np.float32)
    acts = search.feats(images)  # (k, h, w, K)
    return np.array([acts[i, ..., f].mean() for i, f in enumerate(filters)], np.float32)


@dataclass
class FilterAtlas:
    """For each chosen filter: its synthetic pattern and the photo patches that drive it most."""

    patterns: FilterPatterns
    top: list[list[TopActivation]]  # per filter, strongest first
    photo_mean: np.ndarray  # (k,) the filter's mean activation over all photos (how used it is)
    photo_best: np.ndarray  # (k,) its highest mean activation on any one photo
    chosen_by: str  # "named" or "most active on these photos"

    @property
    def layer(self) -> str:
        return self.patterns.layer

    @property
    def filters(self) -> list[int]:
        return self.patterns.filters


def filter_atlas(
    model: Any,
    photos: np.ndarray,
    layer: Any = None,
    filters: int | Sequence[int] = 8,
    *,
    top: int = 6,
    **search: Any,
) -> FilterAtlas:
    """What ``filters`` of ``layer`` look for, on ``photos`` (model-sized 0..255 RGB).

    ``filters``: a count picks that many filters (all, if the layer has fewer) with the highest
    mean activation over the photos (the ones these photos use most); a list names them. For
    each: the pattern :func:`filter_patterns` finds, and the ``top`` photos with the highest peak
    activation, cut to the filter's receptive field around the peak. ``search`` goes to
    :func:`filter_patterns` (steps, lr, jitter, decay, seed).
    """
    from agelens.explain.base import _as_batch

    feats = _features(model, layer)
    shape = np.shape(photos)
    if len(shape) != 4 or shape[0] == 0 or shape[1:] != (feats.size, feats.size, 3):
        raise ValueError(
            f"filter_atlas takes a non-empty batch of model-sized photos (N, {feats.size}, {feats.size}, 3) "
            f"in 0..255, got shape {shape}; resize_for_model(load_image(path), size) from "
            "agelens.data.images makes one"
        )
    if isinstance(filters, int | np.integer) and filters < 1:
        raise ValueError(f"filters: ask for at least 1, got {filters}")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    # the explain methods' door: 0..1 floats are scaled (with a warning), NaN pixels refused
    photos = np.clip(np.rint(np.asarray(_as_batch(photos, feats.size))), 0, 255).astype(np.uint8)
    acts = feats(photos)  # (N, h, w, K), computed once for ranking filters and photos
    means = acts.mean(axis=(1, 2))  # (N, K)
    if isinstance(filters, int | np.integer):
        chosen = [int(i) for i in np.argsort(-means.mean(axis=0), kind="stable")[: max(0, int(filters))]]
        chosen_by = "most active on these photos"
    else:  # filter_patterns refuses indices out of range, naming the layer
        chosen, chosen_by = [int(f) for f in filters], "named"
    patterns = filter_patterns(model, feats.layer, chosen, photos=photos, **search)
    rf = receptive_field(model, feats.layer)
    tops = [top_of(acts[..., f], photos, rf, feats.size, top) for f in chosen]
    return FilterAtlas(
        patterns=patterns,
        top=tops,
        photo_mean=np.array([means[:, f].mean() for f in chosen], np.float32),
        photo_best=np.array([means[:, f].max() for f in chosen], np.float32),
        chosen_by=chosen_by,
    )


def atlas_figure(atlas: FilterAtlas, names: Sequence[str] | None = None, tile: float = 1.5) -> Any:
    """A matplotlib Figure: one row per filter, its pattern first, then its top photo patches
    (each labelled with the photo and the peak activation), and a caption saying what is shown."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(atlas.filters)
    cols = 1 + max((len(t) for t in atlas.top), default=0)
    gap, title, head = 0.15, 0.42, 0.45
    width = cols * (tile + gap) + gap
    caption = (
        f"Each row is one filter (channel) of layer {atlas.layer}. First: the image the search found "
        "to drive that filter hardest (its mean activation over the image is given, and the highest "
        "any single photo reaches); it shows the kind of pattern the filter responds to, not a face. "
        "Then: the photos in which the filter's strongest response is highest, cut to the part of the "
        "photo that unit can see (its receptive field), with that peak activation. Filters are "
        + ("the ones asked for." if atlas.chosen_by == "named" else "the most active on these photos.")
    )
    lines = textwrap.wrap(caption, width=max(40, int(width / 0.065)))
    foot = 0.2 + 0.14 * len(lines)
    height = head + max(k, 1) * (title + tile) + foot
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    grid = tile_grid(width, height, tile=tile, gap=gap, title=title, head=head, foot=foot, side=gap)
    axes = np.asarray(fig.subplots(max(k, 1), cols, gridspec_kw=grid, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for row, f in enumerate(atlas.filters):
        ax = axes[row, 0]
        ax.imshow(atlas.patterns.images[row])
        reach = float(atlas.patterns.activation[row])
        ax.set_title(
            f"filter {f}: pattern {reach:.3g}\nbest photo {float(atlas.photo_best[row]):.3g}",
            fontsize=7,
            pad=3,
        )
        for col, t in enumerate(atlas.top[row], start=1):
            a = axes[row, col]
            a.imshow(t.patch)
            who = names[t.index] if names is not None else f"photo {t.index}"
            a.set_title(f"{_short(who)}\npeak {t.value:.3g}", fontsize=6.5, pad=3)
    fig.suptitle(f"layer {atlas.layer}: what {k} filters look for", fontsize=10, y=1 - 0.12 / height)
    fig.text(0.5, 0.08 / height, "\n".join(lines), ha="center", va="bottom", fontsize=7)
    return fig


def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1) :]


ATLAS_PNG = "atlas.png"
PATTERNS_NPY = "patterns.npy"


def save_atlas(
    atlas: FilterAtlas,
    directory: Any,
    *,
    names: Sequence[str] | None = None,
    model_path: str | None = None,
    force: bool = False,
    extra: dict | None = None,
) -> list[Any]:
    """Write ``atlas.png``, one ``filter_<f>_pattern.png`` per filter, ``patterns.npy`` and a
    ``manifest.json`` (versions, model fingerprint, settings, per filter its activations and
    top photos with their boxes) into ``directory``, atomically: all of it, or nothing (the
    folder rules of :meth:`agelens.Explanation.save`: an earlier run's folder is refused
    unless ``force``). ``names`` name the photos (their files); ``extra`` joins the manifest.
    Returns the paths written, the manifest last.
    """
    from pathlib import Path

    from agelens.explain.explanation import MANIFEST, _json_default, manifest_header, output_dir
    from agelens.explain.overlay import save_png

    with output_dir(directory, force) as tmp:
        files = []
        fig = atlas_figure(atlas, names)
        fig.savefig(tmp / ATLAS_PNG)
        files.append(ATLAS_PNG)
        for f, img in zip(atlas.filters, atlas.patterns.images, strict=True):
            name = f"filter_{f}_pattern.png"
            save_png(img, tmp / name)
            files.append(name)
        np.save(tmp / PATTERNS_NPY, atlas.patterns.images)
        files.append(PATTERNS_NPY)
        header = manifest_header(model_path)  # no overlay settings: nothing is laid over a photo
        manifest = header | {
            "kind": "filters",
            "layer": atlas.layer,
            "filters": atlas.filters,
            "chosen_by": atlas.chosen_by,
            "settings": atlas.patterns.settings | {"top": max((len(t) for t in atlas.top), default=0)},
            "n_photos": None if names is None else len(names),
            "per_filter": [
                {
                    "filter": f,
                    "pattern_file": f"filter_{f}_pattern.png",
                    "pattern_activation": float(atlas.patterns.activation[i]),
                    "start_activation": float(atlas.patterns.start_activation[i]),
                    "photo_mean_activation": float(atlas.photo_mean[i]),
                    "photo_best_activation": float(atlas.photo_best[i]),
                    "top": [
                        {
                            "photo": names[t.index] if names is not None else t.index,
                            "peak": t.value,
                            "box_tlbr": list(t.box),
                        }
                        for t in atlas.top[i]
                    ],
                }
                for i, f in enumerate(atlas.filters)
            ],
            "conventions": {
                "pattern_activation": "the filter's mean activation over its pattern image, measured on the "
                "saved uint8 image",
                "start_activation": "the same on the search's starting image (near-grey noise)",
                "photo_mean_activation": "the filter's mean activation averaged over all photos",
                "photo_best_activation": "the highest mean activation on any one photo",
                "box_tlbr": "the receptive field around the peak, (top, left, bottom, right) in model-input "
                "pixels of the photo resized to the model's input",
            },
        }
        extra = dict(extra or {})
        manifest["conventions"] |= extra.pop("conventions", {})  # the caller's add to ours
        manifest |= extra | {"files": [*files, MANIFEST]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))
    return [Path(directory) / f for f in [*files, MANIFEST]]
