"""Keras ``predict`` vs the same weights through TensorFlow Lite (XNNPACK), in one process.

``agelens evaluate`` uses the TFLite path (``agelens.model.fast``); this checks it is
faster and gives the same answers: images/s for each engine (best of ``--repeat``),
the one-off conversion time, the largest probability difference, how many predicted
classes differ, and the accuracy / macro-F1 each engine gets.

    python benchmarks/predict_engines.py ../shared/data/utkface-200 \\
        --holdout benchmarks/results/shipped_split.json --out benchmarks/results/predict_engines.json

Without a folder it runs on synthetic faces (speed only means something on real ones).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agelens.data.images import load_batch  # noqa: E402
from agelens.data.sources import load_dataset  # noqa: E402
from agelens.model import fast  # noqa: E402
from agelens.model.evaluate import classification_metrics  # noqa: E402
from agelens.model.io import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--holdout", type=Path, help="split JSON: only its 'test' photos")
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    model = load_model(a.model)
    if a.folder:
        records = load_dataset(a.folder, bins=model.bins, check_images=False).records
        if a.holdout:
            names = set(json.loads(a.holdout.read_text())["test"])
            records = [r for r in records if r.path.name in names]
        x, ok, _ = load_batch([r.path for r in records], model.input_size)
        label = {r.path: r.label for r in records}
        y = np.array([label[p] for p in ok])
    else:
        from agelens.data.images import resize_for_model
        from agelens.data.synthetic import generate

        faces = generate(512, size=96, seed=0)
        x = np.stack([resize_for_model(im, model.input_size) for im in faces.images])
        y = faces.labels

    with tempfile.TemporaryDirectory() as cache:  # time a cold conversion, not a cached one
        fast.cache_dir = lambda: Path(cache)
        t = time.perf_counter()
        runner = fast.fast_predictor(model)
        convert_s = time.perf_counter() - t
    if runner is None:
        sys.exit("TensorFlow Lite is not available in this TensorFlow build")

    timings: dict[str, list[float]] = {"keras": [], "tflite": []}
    outs = {}
    model.predict(x[:256])  # warm both up
    model.predict(x[:256], fast=True)
    for _ in range(a.repeat):
        for engine in ("keras", "tflite"):
            t = time.perf_counter()
            outs[engine] = model.predict(x, flip=False, fast=engine == "tflite")
            timings[engine].append(time.perf_counter() - t)
    rate = {k: len(x) / min(v) for k, v in timings.items()}
    pk, pt = outs["keras"]["probabilities"], outs["tflite"]["probabilities"]
    rows = {
        k: {"images_per_s": round(rate[k], 1)}
        | {m: round(v, 4) for m, v in classification_metrics(y, outs[k]["probabilities"].argmax(1),
                                                             model.class_names).items()
           if m in ("accuracy", "macro_f1")}
        for k in rate
    }  # fmt: skip
    result = {
        "n_images": int(len(x)),
        "engines": rows,
        "speedup": round(rate["tflite"] / rate["keras"], 2),
        "convert_s": round(convert_s, 1),
        "max_abs_prob_diff": float(np.abs(pk - pt).max()),
        "predictions_differ": int((pk.argmax(1) != pt.argmax(1)).sum()),
        "max_abs_age_diff": float(np.abs(outs["keras"]["age"] - outs["tflite"]["age"]).max())
        if "age" in outs["keras"]
        else None,
    }
    print(f"{len(x)} images, best of {a.repeat}; TFLite conversion (once, then cached): {convert_s:.1f} s")
    print(f"{'engine':<8}{'images/s':>10}{'accuracy':>10}{'macro-F1':>10}")
    for k, r in rows.items():
        print(f"{k:<8}{r['images_per_s']:>10.1f}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}")
    print(
        f"tflite / keras speed: {result['speedup']:.2f}x; max |prob diff| {result['max_abs_prob_diff']:.2e}; "
        f"predicted classes that differ: {result['predictions_differ']}"
    )
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
