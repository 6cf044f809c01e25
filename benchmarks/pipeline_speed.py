"""Is the input pipeline fast enough to keep a MobileNetV2 training step busy?

Measures ``make_tf_dataset`` throughput (images/s) for a cold first epoch (decode + cache +
augment) and a cached second epoch (augment only), against one training step of
``keras.applications.MobileNetV2(weights=None, alpha=1.0)`` on a batch of the same size.
Uses ../shared/data/utkface-64 when present, else synthetic random JPEGs in a temp dir.

    python benchmarks/pipeline_speed.py                 # writes benchmarks/results/pipeline_speed.json
    python benchmarks/pipeline_speed.py --limit 2000 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agelens.data.pipeline import make_tf_dataset  # noqa: E402
from agelens.data.sources import load_dataset  # noqa: E402

DEFAULT_DATA = (ROOT / ".." / "shared" / "data" / "utkface-64").resolve()


def write_synthetic(folder: Path, n: int, side: int = 64, seed: int = 0) -> None:
    """Random-noise JPEGs with UTKFace-style names (noise is the slowest content to decode)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        name = f"{int(rng.integers(1, 100))}_0_0_{i:08d}.jpg.chip.jpg"
        Image.fromarray(img).save(folder / name, quality=90)


def time_epoch(ds: tf.data.Dataset) -> tuple[float, int]:
    t0, n = time.perf_counter(), 0
    for images, _ in ds:
        n += int(images.shape[0])
    return time.perf_counter() - t0, n


def model_step_rate(size: int, batch: int, steps: int) -> float:
    model = keras.applications.MobileNetV2(weights=None, alpha=1.0, input_shape=(size, size, 3), classes=3)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 3, batch).astype("int32")
    for _ in range(2):  # trace + warm up
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed model training steps")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--synthetic", type=int, default=4096, help="images to synthesise when --data is absent")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline_speed.json")
    a = ap.parse_args()

    load_before = os.getloadavg()[0]  # the CPUs may be shared: record how busy they were
    with tempfile.TemporaryDirectory() as tmp:
        if a.data.is_dir():
            source = str(a.data)
        else:
            source = f"synthetic ({a.synthetic} random 64px JPEGs)"
            a.data = Path(tmp)
            write_synthetic(a.data, a.synthetic)
        t0 = time.perf_counter()
        dataset = load_dataset(a.data, check_images=True)
        check_s = time.perf_counter() - t0
        n_checked = len(dataset) + len(dataset.problems)
        if a.limit and a.limit < len(dataset):  # evenly spaced, so every age is represented
            dataset = dataset.subset(np.linspace(0, len(dataset) - 1, a.limit).astype(int))

        ds = make_tf_dataset(dataset, a.size, batch_size=a.batch, augment=1.0, shuffle=True, seed=0)
        cold_s, n = time_epoch(ds)
        warm_s, _ = time_epoch(ds)
        del ds  # free its in-memory cache before building the next one
        plain = make_tf_dataset(dataset, a.size, batch_size=a.batch, augment=0.0, shuffle=True, seed=0)
        time_epoch(plain)
        plain_s, _ = time_epoch(plain)
        del plain
        step_rate = model_step_rate(a.size, a.batch, a.steps)

    rows = [
        (f"dataset load + full check of {n_checked:,} files", n_checked / check_s, check_s),
        ("pipeline epoch 1 (decode+cache+augment=1)", n / cold_s, cold_s),
        ("pipeline epoch 2 (cached, augment=1)", n / warm_s, warm_s),
        ("pipeline epoch 2 (cached, augment=0)", n / plain_s, plain_s),
        (f"MobileNetV2 a=1.0 train step (batch {a.batch})", step_rate, n / step_rate),
    ]
    table = Table(title=f"{n:,} images at {a.size}px, batch {a.batch}, {os.cpu_count()} CPUs, {source}")
    for col in ("stage", "images/s", "seconds per epoch"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, rate, secs in rows:
        table.add_row(name, f"{rate:,.0f}", f"{secs:,.1f}")
    Console().print(table)
    print(f"1-minute load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"epoch-2 pipeline is {n / warm_s / step_rate:,.0f}x the model's training speed")

    result = {
        "source": source,
        "n_images": n,
        "size": a.size,
        "batch": a.batch,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "check_seconds": check_s,
        "n_checked": n_checked,
        "pipeline_epoch1_img_s": n / cold_s,
        "pipeline_epoch2_img_s": n / warm_s,
        "pipeline_epoch2_no_augment_img_s": n / plain_s,
        "model_train_step_img_s": step_rate,
        "model_steps_timed": a.steps,
        "pipeline_to_model_ratio_epoch2": n / warm_s / step_rate,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
