"""What a filter looks for, two ways: agelens' filter_patterns beside tf-keras-vis' ActivationMaximization.

Both searches get the same model (the shipped one unless ``--model``), the same layer, the same
filters and the same number of steps, in one process. The filters are the ``--filters`` most
active ones (mean over space and over ``--faces`` synthetic faces) unless ``--ids`` names them;
the same faces give agelens its colour statistics (``photos=``), as ``filter_atlas`` does.

tf-keras-vis gets its own recipe: the model cut at the layer by its ``ExtractIntermediateLayer``
(with ``ReplaceToLinear``, as its filter-visualisation example does; a ReLU layer has no
activation to replace, so that changes nothing here), its default input modifiers, regularisers
and optimiser (written out below, equal to its defaults, only so that their random draws can be
seeded), ``input_range=(0, 255)`` (agelens models take raw 0..255 RGB: for the shipped model
``AgeModel.feed`` is the identity, and a model that wants another range is fed through it),
and all filters in one batch (``CategoricalScore`` takes one filter per sample) from a
uniform-noise start, as its default seed is.

Measured for each: seconds of a first call (tracing, and for the peer building its model cut) and
of a second call (the two methods interleaved: ours, peer, ours, peer), and quality: each
filter's mean activation over its final image, rounded to uint8, measured by one function for
both (``agelens.explain.filters._features``, the search's own), beside the same on the starting
image and on the faces (for scale). Ratios are ours / peer: time of the second call, and the
median over filters of the per-filter activation ratio. Images: a PNG of both, side by side.

    python benchmarks/activation_max.py --out benchmarks/results/activation_max.json
    python benchmarks/activation_max.py --layers block_13_expand_relu --steps 64 --out /tmp/am.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import agelens  # noqa: E402
from agelens.explain.feature_vis import filter_patterns  # noqa: E402
from agelens.explain.filters import _features  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
LAYERS = "block_13_expand_relu,block_6_expand_relu"  # 8 filters, 256 steps: ~5 + ~4 min on 2 cores


def choose_filters(feats: Any, faces: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    """The ``k`` filters with the highest mean activation over the faces (each face's spatial mean,
    averaged), and every filter's per-face means (N, K) for the scale columns."""
    means = feats(faces).mean(axis=(1, 2))
    return [int(i) for i in np.argsort(-means.mean(axis=0), kind="stable")[:k]], means


def own_means(feats: Any, images: np.ndarray, filters: list[int]) -> np.ndarray:
    """Image i's mean activation of filter ``filters[i]``, on the image rounded to uint8 (what a
    saved PNG would do): the one yardstick for both methods."""
    x = np.clip(np.rint(np.asarray(images, np.float64)), 0, 255).astype(np.uint8)
    acts = feats(x)
    return np.array([acts[i, ..., f].mean() for i, f in enumerate(filters)], np.float64)


class Peer:
    """tf-keras-vis ActivationMaximization on the model cut at ``layer``, its default recipe."""

    def __init__(self, model: Any, layer: str) -> None:
        from tf_keras_vis.activation_maximization import ActivationMaximization
        from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear

        mods = [ExtractIntermediateLayer(layer), ReplaceToLinear()]
        self.viz = ActivationMaximization(model.keras_model, model_modifier=mods, clone=True)
        self.model = model

    def start(self, k: int, seed: int) -> np.ndarray:
        """The starting images, raw 0..255 pixels: uniform noise, as its own default seed input."""
        size = int(self.model.input_size)
        return np.random.default_rng(seed).uniform(0, 255, (k, size, size, 3)).astype(np.float32)

    def __call__(self, filters: list[int], steps: int, seed: int) -> np.ndarray:
        """One search for all filters at once; its result as raw 0..255 pixels."""
        from tf_keras_vis.activation_maximization.input_modifiers import Jitter, Rotate2D
        from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D
        from tf_keras_vis.utils.scores import CategoricalScore

        np.random.seed(seed)  # its Jitter draws from NumPy's global generator
        rotate = Rotate2D(degree=1)
        rotate.random_generator = np.random.default_rng(seed)  # else unseeded
        seed_input = self.model.feed(self.start(len(filters), seed))
        out = self.viz(
            CategoricalScore(filters),
            seed_input=np.asarray(seed_input),
            input_range=self.input_range(),
            input_modifiers=[Jitter(jitter=4), rotate],
            regularizers=[TotalVariation2D(weight=1.0), Norm(weight=0.3, p=1)],
            steps=steps,
        )
        return self.unfeed(np.asarray(out))

    def input_range(self) -> tuple[float, float]:
        """The range the Keras model takes: what raw 0 and 255 become (0..255 for the shipped model)."""
        lo = float(np.asarray(self.model.feed(np.zeros((1, 1, 1, 3), np.float32))).min())
        hi = float(np.asarray(self.model.feed(np.full((1, 1, 1, 3), 255, np.float32))).max())
        return (0, 255) if (lo, hi) == (0.0, 255.0) else (lo, hi)

    def unfeed(self, x: np.ndarray) -> np.ndarray:
        """Back to raw 0..255 pixels; only a per-channel affine feed (no channel swap) can be undone."""
        zero = np.asarray(self.model.feed(np.zeros((1, 1, 1, 3), np.float32)))[0, 0, 0]
        one = np.asarray(self.model.feed(np.ones((1, 1, 1, 3), np.float32)))[0, 0, 0]
        probe = np.random.default_rng(0).uniform(0, 255, (1, 2, 2, 3)).astype(np.float32)
        if not np.allclose((np.asarray(self.model.feed(probe)) - zero) / (one - zero), probe, atol=1e-2):
            raise ValueError(f"input_range {self.model.input_range!r}: its feed cannot be undone here")
        return (x - zero) / (one - zero)


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def run_layer(model: Any, layer: str, faces: np.ndarray, a: argparse.Namespace) -> dict:
    """Both methods on one layer: images, times, activations, ratios."""
    feats = _features(model, layer)
    chosen, face_means = choose_filters(feats, faces, a.filters)
    filters = [int(f) for f in a.ids.split(",")] if a.ids else chosen

    def ours() -> Any:
        return filter_patterns(model, layer, filters, photos=faces, steps=a.steps, seed=a.seed)

    mine1, t_ours1 = timed(ours)
    peer, t_peer_setup = timed(Peer, model, feats.layer)
    theirs1, t_peer1 = timed(peer, filters, a.steps, a.seed)
    mine2, t_ours2 = timed(ours)
    theirs2, t_peer2 = timed(peer, filters, a.steps, a.seed)

    act_ours = own_means(feats, mine2.images, filters)
    act_peer = own_means(feats, theirs2, filters)
    start_peer = own_means(feats, peer.start(len(filters), a.seed), filters)
    peer_u8 = np.clip(np.rint(theirs2), 0, 255).astype(np.uint8)
    ratios = act_ours / np.where(np.abs(act_peer) > 1e-9, act_peer, np.nan)
    return {
        "layer": feats.layer,
        "filters": filters,
        "filters_chosen_by": "named (--ids)" if a.ids else f"the {a.filters} most active on the faces",
        "ours": {
            "first_call_s": round(t_ours1, 2),
            "second_call_s": round(t_ours2, 2),
            "activation": rounded(act_ours),
            "start_activation": rounded(mine2.start_activation),
            **pixel_stats(mine2.images),
            "reported_activation_matches": bool(
                np.allclose(mine2.activation, act_ours, rtol=1e-4, atol=1e-5)
            ),
            "same_images_on_second_call": bool(np.array_equal(mine1.images, mine2.images)),
            "settings": mine2.settings,
        },
        "peer": {
            "setup_s": round(t_peer_setup, 2),
            "first_call_s": round(t_peer1, 2),
            "second_call_s": round(t_peer2, 2),
            "activation": rounded(act_peer),
            "start_activation": rounded(start_peer),
            **pixel_stats(peer_u8),
            "same_images_on_second_call": bool(np.array_equal(np.rint(theirs1), np.rint(theirs2))),
            "settings": {
                "input_range": list(peer.input_range()),
                "input_modifiers": "Jitter(jitter=4), Rotate2D(degree=1) (its defaults)",
                "regularizers": "TotalVariation2D(weight=1.0), Norm(weight=0.3, p=1) (its defaults)",
                "optimizer": "RMSprop(learning_rate=1.0, rho=0.999) (its default)",
                "model_modifier": "ExtractIntermediateLayer, ReplaceToLinear, on a clone",
                "seed_input": "uniform 0..255 noise, one image per filter, one batch",
            },
        },
        "faces_mean_activation": rounded(face_means[:, filters].mean(axis=0)),
        "faces_best_activation": rounded(face_means[:, filters].max(axis=0)),
        "ratio_time_second_call_ours_over_peer": round(t_ours2 / t_peer2, 3),
        "ratio_time_first_call_ours_over_peer": round(t_ours1 / (t_peer1 + t_peer_setup), 3),
        "ratio_activation_ours_over_peer_median": round(float(np.nanmedian(ratios)), 3),
        "ratio_activation_ours_over_peer_per_filter": rounded(ratios),
        "filters_where_ours_is_higher": int(np.sum(act_ours > act_peer)),
        "_images": (mine2.images, peer_u8),
    }


def pixel_stats(images: np.ndarray) -> dict:
    """Per image: the share of channel values stuck at 0 or 255 (a saturated sigmoid or clip passes
    no gradient there) and the pixels' standard deviation (contrast), both on the uint8 image."""
    x = np.asarray(images).reshape(len(images), -1)
    return {
        "saturated_fraction": rounded(((x == 0) | (x == 255)).mean(axis=1)),
        "pixel_std": rounded(x.astype(np.float64).std(axis=1), 2),
    }


def rounded(v: Any, nd: int = 4) -> list[float]:
    return [round(float(x), nd) for x in np.asarray(v, np.float64)]


def save_figure(rows: list[dict], path: Path) -> None:
    """Per layer three rows of tiles, one column per filter: ours, the peer's, and the peer's again
    stretched to 0..255 for display only (its images are near-flat grey, pixel std ~2), each titled
    with the filter and the activation of the image as saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    cols = max(len(r["filters"]) for r in rows)
    tile, title, kinds = 1.1, 0.3, ("agelens", "tf-keras-vis", "tf-keras-vis\nstretched")
    n = len(kinds) * len(rows)
    fig = Figure(figsize=(cols * tile + 0.9, n * (tile + title) + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    for ax in axes.ravel():
        ax.axis("off")
    for i, r in enumerate(rows):
        ours, theirs = r["_images"]
        for j, (who, imgs) in enumerate(zip(kinds, (ours, theirs, stretched(theirs)), strict=True)):
            acts = r["peer" if j else "ours"]["activation"]
            for c, f in enumerate(r["filters"]):
                ax = axes[len(kinds) * i + j, c]
                ax.imshow(imgs[c])
                ax.set_title(f"{f}: {acts[c]:.3g}", fontsize=6.5, pad=2)
            first = axes[len(kinds) * i + j, 0]
            label = f"{who}\n{r['layer']}"
            first.text(
                -0.08, 0.5, label, fontsize=6, rotation=90, ha="right", va="center", transform=first.transAxes
            )
    fig.suptitle("filter: its mean activation (on the uint8 image, not the stretched one)", fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.5 / fig.get_figheight(), bottom=0.01, wspace=0.05)
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb.quantize(256).save(path, optimize=True)  # 256 colours: a third of the size, looks the same


def stretched(images: np.ndarray) -> np.ndarray:
    """Each image min-max scaled to 0..255 (display only)."""
    x = np.asarray(images, np.float64)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return np.rint(255 * (x - lo) / np.maximum(hi - lo, 1e-9)).astype(np.uint8)


def print_row(r: dict) -> None:
    o, p = r["ours"], r["peer"]
    print(
        f"{r['layer']:22s} first {o['first_call_s']:6.1f} / {p['setup_s'] + p['first_call_s']:6.1f} s  "
        f"second {o['second_call_s']:6.1f} / {p['second_call_s']:6.1f} s "
        f"(ours/peer {r['ratio_time_second_call_ours_over_peer']:.2f})  "
        f"activation median {np.median(o['activation']):.3g} / {np.median(p['activation']):.3g} "
        f"(per-filter ratio median {r['ratio_activation_ours_over_peer_median']:.2f}, "
        f"ours higher on {r['filters_where_ours_is_higher']}/{len(r['filters'])})",
        flush=True,
    )
    for k, f in enumerate(r["filters"]):
        print(
            f"    filter {f:4d}: ours {o['activation'][k]:7.3f} (start {o['start_activation'][k]:6.3f})  "
            f"peer {p['activation'][k]:7.3f} (start {p['start_activation'][k]:6.3f})  "
            f"faces mean {r['faces_mean_activation'][k]:6.3f} best {r['faces_best_activation'][k]:6.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a model file (default: the shipped model)")
    ap.add_argument("--layers", default=LAYERS, help="comma-separated layer names")
    ap.add_argument("--filters", type=int, default=8, help="this many most active filters per layer")
    ap.add_argument("--ids", help="comma-separated filter indices instead (the same for every layer)")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--faces", type=int, default=16, help="synthetic faces that choose the filters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "activation_max.json")
    ap.add_argument("--png", type=Path, help="the side-by-side images (default: --out as .png)")
    a = ap.parse_args()
    a.png = a.png or a.out.with_suffix(".png")
    if a.filters < 1 or a.steps < 1 or a.faces < 1:
        sys.exit("activation_max.py: --filters, --steps and --faces must be at least 1")
    from agelens.data.synthetic import generate

    model = agelens.load_model(a.model) if a.model else agelens.load_model()
    faces = generate(a.faces, size=int(model.input_size), seed=a.seed).images
    load_before = os.getloadavg()
    t_all = time.perf_counter()
    rows, failed = [], {}
    for layer in a.layers.split(","):
        try:
            row = run_layer(model, layer, faces, a)
        except (ValueError, KeyError) as exc:  # a layer the model lacks: reported, the rest still run
            failed[layer] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"{layer}: skipped: {failed[layer]}", file=sys.stderr)
            continue
        rows.append(row)
        print_row(row)
    if not rows:
        sys.exit(f"activation_max.py: no layer could be run ({'; '.join(failed.values())})")
    save_figure(rows, a.png)
    result = {
        "model": a.model or "shipped",
        "steps": a.steps,
        "faces": a.faces,
        "seed": a.seed,
        "total_s": round(time.perf_counter() - t_all, 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_at_end": [round(v, 2) for v in os.getloadavg()],
        "versions": versions(),
        "png": shown(a.png),
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "skipped_layers": failed,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {shown(a.out)} and {shown(a.png)} ({result['total_s']} s)")


def shown(path: Path) -> str:
    """A path as the JSON and the log give it: relative to the repository when inside it."""
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def versions() -> dict:
    from importlib.metadata import version

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf-keras-vis": version("tf-keras-vis"),
        "agelens": agelens.__version__,
    }


if __name__ == "__main__":
    main()
