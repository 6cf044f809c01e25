"""Rebuild a float32 model from ``train_shipped.py``'s best-epoch weights and save it as .keras.

Used when a training run is stopped at a deadline before its own final save:
    python benchmarks/finalize_weights.py /tmp/train64/S64.best.weights.h5 /tmp/train64/S64.keras \
        --alpha 1.0 --size 64 --bn-momentum 0.99
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from agelens.model.builder import ModelConfig, build_age_model  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("weights")
ap.add_argument("out")
ap.add_argument("--alpha", type=float, default=1.0)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--dropout", type=float, default=0.2)
ap.add_argument("--bn-momentum", type=float, default=0.99)
a = ap.parse_args()
m = build_age_model(ModelConfig(a.size, a.alpha, a.dropout, 3, True, a.bn_momentum))
m.load_weights(a.weights)
m.save(a.out)
print(f"saved {a.out}")
