"""Suite-wide settings: keep what the suite writes inside pytest's temporary folders."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Converted TFLite models go to a temporary cache, not the user's ``~/.cache/agelens``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AGELENS_CACHE", str(tmp_path_factory.mktemp("agelens-cache")))
    yield
    mp.undo()
