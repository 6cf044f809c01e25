"""Checks against the real UTKFace copies beside the repo (../shared/data); skipped when absent."""

from __future__ import annotations

import pytest
from data_factory import SHARED_DATA

from agelens.data.sources import load_dataset

UTK200 = SHARED_DATA / "utkface-200"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not UTK200.is_dir(), reason=f"real data not found at {UTK200}"),
]


def test_utkface_200_counts() -> None:
    ds = load_dataset(UTK200)
    assert ds.format == "utkface"
    assert len(ds) == 8806 and ds.problems == []
    assert ds.counts() == {"young": 5094, "middle-aged": 2390, "old": 1322}
    assert ds.sizes is not None and (ds.sizes == 200).all()
    assert ds.ages.min() >= 0 and ds.ages.max() <= 120
