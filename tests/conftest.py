"""Suite-wide settings: keep what the suite writes inside pytest's temporary folders."""

from __future__ import annotations

import pytest

# The files that take longest (whole-pipeline runs, module fixtures that train), started first so
# the two workers (pyproject's -n 2 --dist loadfile) finish together instead of one waiting on the last.
_LONGEST_FIRST = (
    "tests/test_demo.py",
    "tests/cli/test_model_cli.py",
    "tests/model/test_model.py",
    "tests/metrics/test_score_cli.py",
    "tests/explain/test_explain_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first; the order within each file is kept (some files rely on it)."""
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda it: rank.get(it.path.relative_to(root).as_posix(), len(rank)))


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Converted TFLite models go to a temporary cache, not the user's ``~/.cache/agelens``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AGELENS_CACHE", str(tmp_path_factory.mktemp("agelens-cache")))
    yield
    mp.undo()
