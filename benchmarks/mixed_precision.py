"""Does ``mixed_bfloat16`` speed up training of the age model on this CPU?

The brief asks us to measure before adopting it. Both policies train the same
MobileNetV2 (same input size, width and batch) on the same random uint8 batch for
the same number of steps, interleaved in one process; the table reports images/s
and the ratio bf16 / float32, and the JSON lands in ``benchmarks/results``.

    python benchmarks/mixed_precision.py --size 64 --steps 15 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import keras  # noqa: E402

from agelens.model.builder import GROUP_OUTPUT, ModelConfig, build_age_model  # noqa: E402


def make_trainer(policy: str, size: int, alpha: float) -> keras.Model:
    keras.mixed_precision.set_global_policy(policy)
    model = build_age_model(ModelConfig(input_size=size, alpha=alpha, age_head=False), seed=0)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss={GROUP_OUTPUT: "categorical_crossentropy"},
    )
    keras.mixed_precision.set_global_policy("float32")
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mixed_precision.json"))
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (a.batch * a.steps, a.size, a.size, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 3, len(x)), 3)
    models = {p: make_trainer(p, a.size, a.alpha) for p in ("float32", "mixed_bfloat16")}
    for m in models.values():  # compile + warm up outside the timing
        m.fit(x[: a.batch * 2], {GROUP_OUTPUT: y[: a.batch * 2]}, batch_size=a.batch, verbose=0)
    times: dict[str, list[float]] = {p: [] for p in models}
    for _ in range(a.rounds):
        for p, m in models.items():
            t = time.perf_counter()
            m.fit(x, {GROUP_OUTPUT: y}, batch_size=a.batch, epochs=1, verbose=0, shuffle=False)
            times[p].append(time.perf_counter() - t)
    rows = {p: len(x) / statistics.median(ts) for p, ts in times.items()}
    ratio = rows["mixed_bfloat16"] / rows["float32"]
    print(f"{'policy':<16}{'img/s':>10}")
    for p, v in rows.items():
        print(f"{p:<16}{v:>10.1f}")
    print(f"bf16 / float32 speed ratio: {ratio:.2f}x  (size {a.size}, alpha {a.alpha}, batch {a.batch})")
    result = {
        "images_per_s": rows,
        "ratio_bf16_over_fp32": ratio,
        "raw_seconds": times,
        "args": vars(a),
        "machine": platform.processor() or platform.machine(),
        "keras": keras.__version__,
    }
    Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
