"""The demo writes its score table once: after the data-randomisation check (or its skip note).

Why: the score step wrote scores.json, scores.md and every plot, and the data-randomisation check
(or, with no control, the note that it was skipped) then wrote them all again; the first copy was
always replaced, so a quick demo drew its seven score plots twice (~3-4 s of its run).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agelens import demo
from agelens.data.synthetic import REGION_NAMES, generate


class _Table:
    """What ``score_methods`` returns, reduced to what the demo's steps touch; counts its writes."""

    def __init__(self) -> None:
        self.meta: dict = {}
        self.skipped: dict = {}
        self.writes: list[Path] = []

    def write(self, out_dir: Path, plots: bool = True) -> dict:
        self.writes.append(Path(out_dir))
        return {}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> _Table:
    """``score_methods`` and ``resolve_layer`` replaced: no model, no scoring, one fake table."""
    made = _Table()
    monkeypatch.setattr("agelens.metrics.report.score_methods", lambda *a, **k: made)
    monkeypatch.setattr("agelens.explain.layers.resolve_layer", lambda model, spec: [f"layer for {spec}"])
    return made


def test_score_and_the_skipped_control_write_the_table_once(tmp_path: Path, table: _Table) -> None:
    faces = generate(6, size=32, seed=0)
    settings = replace(demo.QUICK, control_epochs=0)
    scored = demo._score(None, faces, np.arange(6), settings, REGION_NAMES, 0)
    steps = demo.Steps(lambda _: None)
    demo._control_check(None, tmp_path, None, faces, np.arange(6), settings, scored, 0, steps, print)
    assert table.writes == [tmp_path / "scores"]
    assert "data_randomisation" in str(table.skipped)
