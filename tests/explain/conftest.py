"""Shared fixtures for the explain tests: tiny models only (the CPU is shared)."""

from __future__ import annotations

import numpy as np
import pytest

from agelens.model.age_model import AgeModel
from agelens.model.builder import ModelConfig, build_age_model
from agelens.model.wrap import wrap_keras_model


@pytest.fixture(scope="session")
def age_model() -> AgeModel:
    """Our architecture at its smallest useful size: MobileNetV2 alpha 0.35, 64 px (out_relu is 2x2)."""
    return wrap_keras_model(build_age_model(ModelConfig(input_size=64, alpha=0.35), seed=0))


@pytest.fixture(scope="session")
def faces64() -> np.ndarray:
    """Four model-sized float images in 0..255 with some structure (not pure noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    base = np.stack([np.sin(6 * yy + k) * np.cos(5 * xx - k) for k in range(3)], -1)
    imgs = [np.clip(127 + 90 * base * (i + 1) / 4 + rng.normal(0, 10, base.shape), 0, 255) for i in range(4)]
    return np.stack(imgs).astype(np.float32)


@pytest.fixture(scope="session")
def small24() -> AgeModel:
    """A two-conv toy of 24 px (``small_convnet(seed=2)``), read as 0..1: for the input-rule tests."""
    from explain_models import small_convnet

    return wrap_keras_model(small_convnet(seed=2, size=24))
