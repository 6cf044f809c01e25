"""What folding batch norms into their convolutions buys the explain engine, and what it costs.

Every method runs on agelens's own graph over the caller's layers; in that graph each
convolution followed by inference-mode batch norm is computed as one convolution whose kernel
and bias are derived from the live variables on every call (``agelens.explain._graph.FoldedConvBN``),
so TensorFlow's CPU backend can fuse conv + bias + ReLU6. This times Grad-CAM and saliency on
the shipped model (or ``--model``) with folding as shipped against the same graph unfolded, in
one process, in interleaved rounds (medians), and checks that the maps agree.

The two variants use two separately loaded copies of the model, so neither reuses the other's
cached graph; the unfolded one is built with the fold search switched off.

    python benchmarks/bn_folding.py                  # writes benchmarks/results/bn_folding.json
    python benchmarks/bn_folding.py --images 32 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from agelens.explain import _graph, make_method  # noqa: E402
from agelens.model.io import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bn_folding.json"
DATA = (ROOT / ".." / "shared" / "data" / "utkface-200").resolve()


def images(n: int, size: int) -> tuple[np.ndarray, str]:
    """The first ``n`` utkface-200 photos when the data is here, else synthetic faces."""
    from agelens.data.images import load_image, resize_for_model

    if DATA.is_dir():
        files = sorted(p for p in DATA.iterdir() if p.suffix.lower() == ".jpg")[:n]
        if len(files) == n:
            photos = [resize_for_model(load_image(p), size) for p in files]
            return np.stack(photos), f"utkface-200 (first {n})"
    from agelens.data.synthetic import generate

    return generate(n, size=size, seed=0).images, "synthetic faces (seed 0)"


def runner(model_path: str | None, method: str, fold: bool, x: np.ndarray, classes: list[int]):
    """A method on its own copy of the model; built (and traced once) with folding on or off."""
    am = load_model(model_path)
    if fold:
        m = make_method(am, method)
        m.attribute(x[:2], classes[:2])
    else:
        with mock.patch.object(_graph, "_foldable", lambda *a, **k: {}):
            m = make_method(am, method)
            m.attribute(x[:2], classes[:2])
    return lambda: m.attribute(x, classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="a .keras model (default: the shipped one)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default="gradcam,saliency")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    probe = load_model(args.model)
    x, source = images(args.images, probe.input_size)
    classes = [int(c) for c in probe.predict(x)["probabilities"].argmax(1)]
    rows = []
    for method in args.methods.split(","):
        folded = runner(args.model, method, True, x, classes)
        unfolded = runner(args.model, method, False, x, classes)
        diff = float(np.abs(np.asarray(folded()) - np.asarray(unfolded())).max())
        times: dict[str, list[float]] = {"folded": [], "unfolded": []}
        for _ in range(args.repeats):  # interleaved: a busy moment hits both
            for name, fn in (("folded", folded), ("unfolded", unfolded)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        rows.append(
            {
                "method": method,
                "folded_s": med["folded"],
                "unfolded_s": med["unfolded"],
                "speedup": med["unfolded"] / med["folded"],
                "max_map_difference": diff,
                "times": times,
            }
        )
    print(f"{len(x)} images ({source}), {probe.input_size} px, medians of {args.repeats} interleaved rounds")
    print(f"{'method':<12} {'folded s':>9} {'unfolded s':>11} {'speed-up':>9} {'max map diff':>13}")
    for r in rows:
        print(
            f"{r['method']:<12} {r['folded_s']:>9.3f} {r['unfolded_s']:>11.3f} "
            f"{r['speedup']:>8.2f}x {r['max_map_difference']:>13.1e}"
        )
    result = {
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "model": str(probe.path),
        "images": len(x),
        "source": source,
        "repeats": args.repeats,
        "rows": rows,
        "versions": {"tensorflow": tf.__version__, "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
