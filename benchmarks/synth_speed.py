"""Synthetic-face generator speed on one core: images per second at 64, 96 and 128 px.

Usage: python benchmarks/synth_speed.py [--n 400] [--repeats 3] [--write-n 2000]
Prints a table and writes benchmarks/results/synth_speed.json. The target is >= 500 img/s
at 96 px on one core. The headline is the median over repeats of images per CPU-second of
this (single-threaded) process, which a shared machine barely disturbs; wall-clock rates
are reported beside it. ``--write-n`` also times ``write_dataset`` (PNG encoding uses
a small thread pool, so that row is not single-core).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from agelens.data.synthetic import generate, write_dataset  # noqa: E402

SIZES = (64, 96, 128)
OUT = Path(__file__).parent / "results" / "synth_speed.json"


def rate(n: int, size: int, repeats: int) -> tuple[list[float], list[float]]:
    """Images per second of ``generate`` per repeat, by CPU time and by wall time.

    CPU time (``process_time``, one thread) is the headline: on a shared machine the wall
    clock also counts time the scheduler gave to other people's jobs.
    """
    generate(8, size, seed=999)  # warm caches (grids, cv2 dispatch)
    cpu, wall = [], []
    for r in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        generate(n, size, seed=r)
        cpu.append(n / (time.process_time() - c0))
        wall.append(n / (time.perf_counter() - w0))
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="images per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write-n", type=int, default=2000, help="0 skips the write_dataset timing")
    args = ap.parse_args()
    cv2.setNumThreads(1)

    rows = []
    print(f"{'size':>5} {'img/s (CPU)':>12} {'ms/img':>7} {'img/s (wall, median)':>21}")
    for size in SIZES:
        cpu, wall = rate(args.n, size, args.repeats)
        med_cpu, med_wall = statistics.median(cpu), statistics.median(wall)
        rows.append(
            {
                "size": size,
                "n": args.n,
                "img_per_s_cpu_median": round(med_cpu, 1),
                "img_per_s_wall_median": round(med_wall, 1),
                "img_per_s_wall_best": round(max(wall), 1),
                "all_cpu": [round(x, 1) for x in cpu],
                "all_wall": [round(x, 1) for x in wall],
            }
        )
        print(f"{size:>5} {med_cpu:>12.0f} {1000 / med_cpu:>7.2f} {med_wall:>21.0f}")

    result = {
        "benchmark": "synthetic faces, generate(), one thread",
        "rows": rows,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if args.write_n:
        with tempfile.TemporaryDirectory() as tmp:
            summary = write_dataset(Path(tmp) / "synth", args.write_n, 96)
        result["write_dataset"] = {"n": args.write_n, "size": 96, "seconds": round(summary["seconds"], 2)}
        print(f"write_dataset n={args.write_n} @96 px: {summary['seconds']:.1f} s wall (PNG + masks.npz)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
