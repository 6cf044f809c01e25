"""The walkthrough notebook runs top to bottom (so it cannot rot) and is stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "walkthrough.ipynb"


def _load() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_stored_without_outputs() -> None:
    nb = _load()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_executes_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # A non-interactive MPLBACKEND (e.g. Agg from a CI script) would stop the kernel's
    # inline backend from emitting figures; the notebook is meant to show them.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = _load()
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    assert "gradcam on layer" in text and "maps (3, 128, 128)" in text
    assert "manifest.json" in text
    assert sum(o.output_type == "display_data" for c in nb.cells for o in c.get("outputs", [])) >= 3
    assert not os.listdir(tmp_path), "the notebook must not leave files behind"
