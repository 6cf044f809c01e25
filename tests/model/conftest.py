"""Fixtures the model test files share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """:func:`tiny_run.train_tiny_run`, trained once for every file here that reads it (tests copy
    its files before changing them, and only predict with its model)."""
    from tiny_run import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("m"))
