"""Human-facing outputs: a self-contained HTML report of a run folder, and a local web app.

Imports stay lazy here so ``agelens report`` does not pay for TensorFlow or Gradio.
"""

from __future__ import annotations

from typing import Any

__all__ = ["write_report", "build_app", "launch"]


def __getattr__(name: str) -> Any:  # PEP 562: gradio and TF load only when the app is wanted
    if name == "write_report":
        from agelens.report.html import write_report

        return write_report
    if name in ("build_app", "launch"):
        from agelens.report import app

        return getattr(app, name)
    raise AttributeError(f"module 'agelens.report' has no attribute {name!r}")
