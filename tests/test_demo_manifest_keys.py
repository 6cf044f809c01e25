"""The demo's manifest records the Python version once, under ``versions``.

Why: it had a top-level ``python`` key as well, a copy of ``versions.python`` that no reader
used; the report's Run section showed the same version twice. The real-photo demo's manifest
never had it.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from agelens.demo import QUICK, Steps, _manifest


def test_the_demo_manifest_names_python_only_under_versions(tmp_path: Path) -> None:
    model = tmp_path / "model" / "demo.keras"
    model.parent.mkdir()
    model.write_bytes(b"not a real model: only its bytes are fingerprinted")
    metrics = {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4, "n_images": 12}
    made = _manifest(
        tmp_path, True, 0, QUICK, model, metrics, Steps(lambda _: None), time.perf_counter(),
        second_times={}, control=None,
    )  # fmt: skip
    assert "python" not in made
    assert made["versions"]["python"] == platform.python_version()
    assert made["model"] == "model/demo.keras" and made["mode"] == "quick"
