"""Same data, options and seed: the same weights, bit for bit (docs/train.md, "Seeds and reproducibility").

Why a test: the promise rests on details that are easy to undo without any other test noticing (the
augmentation mapped one batch at a time, the seeded shuffle, dropout and BatchNorm recalibration), and a
run that differs only in its last digits still trains and scores as well.
"""

from __future__ import annotations

import numpy as np
from tiny_run import train_tiny_run

from agelens.provenance import model_fingerprint


def test_a_second_run_with_the_same_seed_saves_the_same_weights_bit_for_bit(trained, tmp_path) -> None:
    first, first_file, _ = trained
    again, again_file, _ = train_tiny_run(tmp_path)
    a, b = first.model.keras_model.get_weights(), again.model.keras_model.get_weights()
    assert len(a) == len(b)
    differing = [i for i, (u, v) in enumerate(zip(a, b, strict=True)) if not np.array_equal(u, v)]
    assert differing == [], f"{len(differing)} of {len(a)} weight arrays differ"
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in first.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in again.history
    ]
    assert first.best_epoch == again.best_epoch
    # what a researcher matching two reruns by their manifests compares (the files' own hashes differ)
    made = [model_fingerprint(f) for f in (first_file, again_file)]
    assert made[0]["weights_sha256"] == made[1]["weights_sha256"]
