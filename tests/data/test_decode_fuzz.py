"""Property tests: hostile bytes and names never escape as anything but the documented errors."""

from __future__ import annotations

import numpy as np
import pytest
from data_factory import encode, face_like
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from agelens.data.bins import MAX_AGE, MIN_AGE
from agelens.data.images import ImageError, load_image
from agelens.data.sources import parse_utkface_age

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SMALL = face_like(12, 10)
SEEDS = [
    encode(_SMALL, "JPEG"),
    encode(_SMALL, "PNG"),
    encode(_SMALL, "GIF"),
    encode(_SMALL, "BMP"),
    encode(_SMALL, "TIFF"),
    encode(_SMALL, "WEBP"),
    encode(Image.fromarray(_SMALL).convert("CMYK"), "JPEG"),
    encode(Image.fromarray(np.dstack([_SMALL, _SMALL[..., :1]])), "PNG"),
]


def _patched(seed: int, offset: int, value: int) -> bytes:
    data = bytearray(SEEDS[seed])
    data[offset] = value
    return bytes(data)


# One-byte corruptions found by fuzzing that make Pillow raise something other than OSError
# (TypeError in the TIFF reader, SyntaxError "broken PNG file", ValueError "Truncated IHDR").
NON_OSERROR_CASES = [_patched(4, 72, 2), _patched(1, 36, 18), _patched(7, 11, 6)]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with a few bytes overwritten and maybe cut short (reaches decoders)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


def _check_decode(data: bytes) -> None:
    try:
        out = load_image(data)
    except ImageError as e:
        assert "\n" not in str(e) and e.reason
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and out.size > 0


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_load_or_raise_image_error(data: bytes) -> None:
    _check_decode(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's TIFF reader warns about bad metadata
@FUZZ
@given(mutated_images())
@example(NON_OSERROR_CASES[0])
@example(NON_OSERROR_CASES[1])
@example(NON_OSERROR_CASES[2])
def test_mutated_images_load_or_raise_image_error(data: bytes) -> None:
    _check_decode(data)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"\A-?[0-9.e]{0,6}_[0-9]_[0-9]_[0-9]{0,17}\.jpg\.chip\.jpg\Z")))
def test_name_parser_returns_valid_age_or_value_error(name: str) -> None:
    try:
        age = parse_utkface_age(name)
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert MIN_AGE <= age <= MAX_AGE
