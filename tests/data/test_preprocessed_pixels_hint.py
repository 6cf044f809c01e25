"""Preprocessed float photos (-1..1, mean-subtracted) are refused naming both halves of the fix: the
photo back in raw pixels, and the model loaded with the preprocessing it takes (``input_range``), so
agelens applies it. Before, the refusal said only the first half, and a user who undid the
preprocessing fed a -1..1 model raw pixels as 0..1."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.data.images import ImageError, load_image
from agelens.model.age_model import INPUT_RANGES


def test_the_refusal_names_the_input_range_the_model_needs() -> None:
    photo = np.random.default_rng(0).integers(0, 256, (24, 24, 3)).astype(np.float32)
    with pytest.raises(ImageError) as e:
        load_image(photo / 127.5 - 1, name="<image 1>")
    said = str(e.value)
    assert said.startswith("<image 1>: float pixels span") and "(x + 1) * 127.5" in said
    assert "input_range='-1-1', 'caffe' or 'torch' (--input-range)" in said
    assert {"-1-1", "caffe", "torch"} <= set(INPUT_RANGES)  # each range it names is one agelens takes
    assert "\n" not in said
