"""Does every method work on models other than ours? keras.applications networks, saved and read back.

A user's own model is rarely a MobileNetV2: it is a ResNet, an EfficientNet, a ConvNeXt... Each
architecture below is built with ``weights=None`` (nothing is downloaded), three classes,
``--size`` px (75 for Xception and InceptionV3, their minimum), saved as ``.keras`` and read back
with ``agelens.load_model`` as a user's file is. Then, on ``--photos`` synthetic faces:

- every method (``--methods``; all by default) is run through ``agelens.explain``: did it
  finish, in how many seconds (first call, tracing included), is the map finite and not flat,
  and which warnings did it give (a guided backprop with no ReLU to guide says so);
- Grad-CAM is checked against the peer, tf-keras-vis, at the same layer and class
  (``ReplaceToLinear`` on a clone, so both differentiate the logits): Pearson r of the maps per
  photo (the peer upsamples with its own interpolation, so r, not equality), and the time of a
  second call of each (tracing done) as a ratio, ours / peer.

The weights are random, so the maps say nothing about faces; this measures that the machinery
(layer choice, pixel range guess, graph rebuilds, every method) works on each network.

    python benchmarks/model_zoo.py --out benchmarks/results/model_zoo.json
    python benchmarks/model_zoo.py --arch ResNet50,ConvNeXtTiny --methods gradcam,guided-backprop
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import agelens  # noqa: E402

ARCHS = (
    "ResNet50",
    "ResNet50V2",
    "VGG16",
    "DenseNet121",
    "MobileNetV2",
    "MobileNetV3Small",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "ConvNeXtTiny",
    "Xception",
    "InceptionV3",
    "NASNetMobile",
)
MIN_SIZE = {"Xception": 75, "InceptionV3": 75}


def build(arch: str, size: int, folder: Path) -> Path:
    """``keras.applications.<arch>`` at ``size`` px, three softmax classes, random weights, saved."""
    size = max(size, MIN_SIZE.get(arch, 0))
    kwargs = {"weights": None, "input_shape": (size, size, 3), "classes": 3}
    km = getattr(keras.applications, arch)(**kwargs)
    path = folder / f"{arch}.keras"
    km.save(path)
    return path


def run_method(model: object, photos: list[np.ndarray], method: str) -> dict:
    """One method on the photos: finished or the error, seconds, map checks, warnings raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        try:
            exp = agelens.explain(model, photos, method=method)
        except Exception as exc:  # noqa: BLE001 - the table records what failed, whatever it was
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        seconds = time.perf_counter() - t0
    maps = [np.asarray(m, np.float64) for m in exp.maps]
    noise = (DeprecationWarning, FutureWarning, PendingDeprecationWarning)
    said = sorted({str(w.message) for w in caught if not issubclass(w.category, noise)})
    return {
        "ok": True,
        "seconds": round(seconds, 2),
        "layer": str(exp.layer),
        "finite": bool(all(np.isfinite(m).all() for m in maps)),
        "flat": bool(any(float(m.std()) < 1e-6 for m in maps)),
        "warnings": said,
    }


def peer_gradcam(model: object, photos: np.ndarray, layer: str, classes: np.ndarray) -> tuple[list, float]:
    """tf-keras-vis Grad-CAM maps at ``layer`` for ``classes``, and the seconds of a second call."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    viz = Gradcam(model.keras_model, model_modifier=ReplaceToLinear(), clone=True)
    x = model_input(model, photos)
    kw = {"penultimate_layer": layer, "seek_penultimate_conv_layer": False}
    viz(CategoricalScore(list(classes)), x, **kw)  # traces
    t0 = time.perf_counter()
    maps = viz(CategoricalScore(list(classes)), x, **kw)
    return list(maps), time.perf_counter() - t0


def model_input(model: object, photos: np.ndarray) -> np.ndarray:
    """What the Keras model itself takes: the photos' raw pixels converted to its ``input_range``."""
    return np.asarray(model.feed(photos.astype(np.float32)))


def check_gradcam(model: object, photos: np.ndarray) -> dict:
    """Our Grad-CAM against tf-keras-vis' on the same photos, layer and (predicted) classes."""
    from agelens.explain import make_method

    classes = model.predict(photos)["probabilities"].argmax(1)
    ours = make_method(model, "gradcam")
    x = photos.astype(np.float32)
    ours.attribute(x, list(classes))  # traces
    t0 = time.perf_counter()
    mine = np.asarray(ours.attribute(x, list(classes)))
    t_ours = time.perf_counter() - t0
    layer = ours.layers[0]
    theirs, t_peer = peer_gradcam(model, photos, str(layer), classes)
    return {
        "layer": str(layer),
        **agreement(mine, theirs),
        "ratio_ours_over_peer": round(t_ours / t_peer, 3),
    }


def agreement(mine: np.ndarray, theirs: list) -> dict:
    """Pearson r per photo where both maps vary; a photo where both are flat (no positive evidence
    at the layer: all zero after the ReLU) agrees, one where only one is flat does not."""
    rs, both_flat, one_flat = [], 0, 0
    for a, b in zip(mine, theirs, strict=True):
        flat = (float(np.std(a)) < 1e-6, float(np.std(b)) < 1e-6)
        if all(flat):
            both_flat += 1
        elif any(flat):
            one_flat += 1
        else:
            rs.append(round(float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1]), 4))
    return {"pearson_r": rs, "both_flat": both_flat, "one_flat": one_flat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default=",".join(ARCHS), help="comma-separated keras.applications names")
    ap.add_argument("--methods", default="all", help="comma-separated agelens methods, or all")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--photos", type=int, default=2)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    from agelens.data.synthetic import generate

    methods = agelens.explain.list_methods() if a.methods == "all" else a.methods.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.arch.split(","):
            keras.backend.clear_session()
            path = build(arch, a.size, Path(tmp))
            model = agelens.load_model(path)
            photos = generate(a.photos, size=model.input_size, seed=1).images
            row = {
                "arch": arch,
                "input_size": int(model.input_size),
                "params": int(model.keras_model.count_params()),
                "input_range": model.input_range,
                "range_guessed_from": model.input_range_guessed,
                "methods": {m: run_method(model, list(photos), m) for m in methods},
            }
            row["gradcam_vs_tf_keras_vis"] = peer_check(model, photos)
            rows.append(row)
            print_row(row)
            if a.out:  # after each network: a crash later keeps the rows so far
                write(a, rows)


def peer_check(model: object, photos: np.ndarray) -> dict | None:
    """:func:`check_gradcam`, or what stopped the peer (None: tf-keras-vis is not installed)."""
    try:
        return check_gradcam(model, photos)
    except ImportError:
        return None
    except Exception as exc:  # noqa: BLE001 - the peer failing on a network is a result, recorded
        return {"peer_error": f"{type(exc).__name__}: {exc}"[:300]}


def write(a: argparse.Namespace, rows: list[dict]) -> None:
    machine = platform.processor() or platform.machine()
    result = {"size": a.size, "photos": a.photos, "machine": machine, "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")


def print_row(row: dict) -> None:
    """One architecture: failures, flat maps, warnings, the slowest method, the peer check."""
    ms = row["methods"]
    failed = [m for m, r in ms.items() if not r["ok"]]
    flat = [m for m, r in ms.items() if r.get("flat") or not r.get("finite", True)]
    slow = max((r["seconds"], m) for m, r in ms.items() if r["ok"]) if len(failed) < len(ms) else (0, "-")
    peer = row.get("gradcam_vs_tf_keras_vis") or {}
    if "peer_error" in peer:
        print(f"    tf-keras-vis Grad-CAM failed: {peer['peer_error']}")
    r = min(peer.get("pearson_r") or [float("nan")])
    ratio = peer.get("ratio_ours_over_peer", float("nan"))
    print(
        f"{row['arch']:17s} {row['input_size']:3d}px {row['params'] / 1e6:5.1f}M  "
        f"fed {row['input_range']:5s} ok {len(ms) - len(failed)}/{len(ms)}  "
        f"flat/non-finite {','.join(flat) or '-'}  slowest {slow[1]} {slow[0]:.0f}s  "
        f"gradcam r>={r:.3f} (flat: both {peer.get('both_flat', 0)}, one {peer.get('one_flat', 0)}) "
        f"ours/peer {ratio:.2f}",
        flush=True,
    )
    for m, res in ms.items():
        if not res["ok"]:
            print(f"    {m}: {res['error']}")
        for w in res.get("warnings", []):
            print(f"    {m}: warning: {w}")


if __name__ == "__main__":
    main()
