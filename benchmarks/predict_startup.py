"""How long ``agelens predict one.jpg`` takes from the shell: Keras vs the TensorFlow-free second run.

Each run is a fresh ``agelens predict`` process (what a user waits for, imports included),
timed by wall clock, with its peak memory from ``wait4``. Three ways, interleaved over
``--repeat`` rounds so machine noise hits each alike:

- ``keras``: ``--engine keras``, TensorFlow imported and the model rebuilt (the old default);
- ``tflite (first)``: a cold cache, so TensorFlow loads, converts and records (once per file);
- ``tflite (later)``: the record found, TensorFlow never imported (``agelens.model.light``).

    python benchmarks/predict_startup.py --out benchmarks/results/predict_startup.json

The photo is a synthetic face (``--photo`` for your own); the shipped model unless ``--model``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout of one ``agelens`` process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agelens.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"agelens {' '.join(args)} failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photo = a.photo or Path(tmp) / "face.png"
        if a.photo is None:
            from PIL import Image

            from agelens.data.synthetic import generate

            Image.fromarray(generate(1, size=200, seed=0).images[0]).save(photo)
        base = ["predict", str(photo), "--json", *(["--model", str(a.model)] if a.model else [])]
        times: dict[str, list[tuple[float, float]]] = {
            "keras": [],
            "tflite (first)": [],
            "tflite (later)": [],
        }
        outputs = {}
        for r in range(a.repeat):
            cache = Path(tmp) / f"cache{r}"
            env = dict(os.environ, AGELENS_CACHE=str(cache))
            for name, extra in (
                ("keras", ["--engine", "keras"]),
                ("tflite (first)", []),
                ("tflite (later)", []),
            ):
                wall, mb, out = run([*base, *extra], env)
                times[name].append((wall, mb))
                outputs[name] = json.loads(out.strip().splitlines()[-1])
    keras_s = statistics.median(t for t, _ in times["keras"])
    rows = []
    for name, runs in times.items():
        wall = statistics.median(t for t, _ in runs)
        mb = statistics.median(m for _, m in runs)
        rows.append(
            {
                "way": name,
                "median_s": round(wall, 2),
                "peak_rss_mb": round(mb),
                "vs_keras": round(wall / keras_s, 3),
            }
        )
    same = outputs["keras"]["predicted"] == outputs["tflite (later)"]["predicted"]
    diff = max(
        abs(outputs["keras"]["probabilities"][k] - outputs["tflite (later)"]["probabilities"][k])
        for k in outputs["keras"]["probabilities"]
    )
    print(f"{'way':16s} {'median s':>9s} {'peak MB':>8s} {'vs keras':>9s}")
    for row in rows:
        print(f"{row['way']:16s} {row['median_s']:9.2f} {row['peak_rss_mb']:8d} {row['vs_keras']:9.3f}")
    print(f"same class: {same}; largest probability difference {diff:.4f} (4-decimal JSON)")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"rows": rows, "repeat": a.repeat, "same_class": same, "max_probability_diff": diff,
                  "cpus": os.cpu_count(), "photo": str(a.photo or "synthetic face, 200 px")}  # fmt: skip
        a.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
