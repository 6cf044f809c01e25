"""Occlusion sensitivity against a plain NumPy reference: hide each patch, re-run the model, average the
logit drops over the patches that cover each pixel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from explain_models import small_convnet
from hypothesis import given
from hypothesis import strategies as st

from agelens.explain import make_method
from agelens.explain.occlusion import Occlusion, patch_starts

SIZE = 24


@pytest.fixture(scope="module")
def convnet() -> keras.Model:
    return small_convnet(seed=5, size=SIZE, softmax_in_dense=False)


def _reference(model: keras.Model, x: np.ndarray, cls: int, window: int, stride: int, fill: str | float):
    logits = keras.Model(model.input, model.get_layer("head_logits").output)
    starts = patch_starts(SIZE, window, stride)
    out = np.zeros((len(x), SIZE, SIZE))
    cover = np.zeros((SIZE, SIZE))
    base = logits.predict(x, verbose=0)[:, cls]
    for r in starts:
        for c in starts:
            hidden = x.copy()
            value = x.mean(axis=(1, 2)) if fill == "mean" else np.full((len(x), 3), fill)
            hidden[:, r : r + window, c : c + window] = value[:, None, None, :]
            drop = base - logits.predict(hidden, verbose=0)[:, cls]
            out[:, r : r + window, c : c + window] += drop[:, None, None]
            cover[r : r + window, c : c + window] += 1
    raw = np.maximum(out / cover, 0)
    lo, hi = raw.min(axis=(1, 2), keepdims=True), raw.max(axis=(1, 2), keepdims=True)
    return (raw - lo) / np.where(hi > lo, hi - lo, 1)


@pytest.mark.parametrize(("window", "stride", "fill", "max_batch"), [(6, 3, "mean", 64), (5, 4, 0.0, 7)])
def test_matches_the_numpy_reference(convnet, window, stride, fill, max_batch):
    """5 / 4 on 24 px leaves a remainder: the last patch is moved to end at the border. A max_batch
    of 7 splits the patches into uneven chunks; the maps must not change."""
    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    method = Occlusion(convnet, window=window, stride=stride, fill=fill, max_batch=max_batch)
    got = method.attribute(x, 1)
    np.testing.assert_allclose(got, _reference(convnet, x, 1, window, stride, fill), atol=2e-5)
    assert method.positions == len(patch_starts(SIZE, window, stride)) ** 2
    assert got.max() == pytest.approx(1.0) and np.ptp(got[0]) > 0.5  # a real map, not a flat one


def test_defaults_scale_with_the_input_and_bad_settings_are_refused(convnet):
    method = make_method(convnet, "occlusion-sensitivity")
    assert isinstance(method, Occlusion) and (method.window, method.stride) == (3, 1)  # 24 / 7, half of it
    bad_settings = (dict(window=0), dict(window=SIZE + 1), dict(stride=0), dict(window=4, stride=5))
    for bad in (*bad_settings, dict(fill="blur"), dict(fill=300)):
        with pytest.raises(ValueError, match="occlusion"):
            Occlusion(convnet, **bad)


@given(size=st.integers(1, 96), window=st.integers(1, 96), stride=st.integers(1, 96))
def test_patches_cover_every_pixel_and_stay_inside(size, window, stride):
    window = min(window, size)
    stride = min(stride, window)  # larger strides are refused (pixels between patches)
    starts = patch_starts(size, window, stride)
    covered = np.zeros(size, bool)
    for s in starts:
        assert 0 <= s <= size - window
        covered[s : s + window] = True
    assert covered.all() and starts == sorted(set(starts)) and starts[-1] == size - window
