"""Pixel ranges at the doors photos and tensors come in by (user test h69): each decision is made on
the caller's values as given, uint8 is never rescaled, and out-of-range pixels are said, not
silently changed (a -1..1 image used to become a two-level 0/1 photo, then be scaled by 255)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import agelens
from agelens.data.images import ImageError, load_image
from agelens.explain import make_method

SIZE = 24


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A uint8 photo of the model's size, values across 0..255 (no resizing blurs the checks)."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _quiet(fn, *args, **kwargs):
    """``fn(...)``, failing on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# --- negative floats: refused, naming the image and the fix ----------------------------------------


def test_minus_one_to_one_floats_are_refused_with_the_fix(small24, photo) -> None:
    """keras.applications' preprocess_input gives -1..1: it was clipped and rounded to a 0/1 image,
    then scaled by 255 as if it were 0..1, and explained without a word."""
    neg = photo.astype(np.float32) / 127.5 - 1
    with pytest.raises(ImageError, match=r"^<image 1>: float pixels span \[-1, 1\], below 0;") as e:
        load_image(neg, name="<image 1>")
    assert "agelens reads float images as 0..255 (or 0..1)" in str(e.value)
    assert "(x + 1) * 127.5" in str(e.value)
    with pytest.raises(ValueError, match=r"below 0; .*undo the preprocessing, e\.g\. \(x \+ 1\) \* 127\.5"):
        agelens.explain(small24, [photo, neg])
    with pytest.raises(ValueError, match="below 0"):
        agelens.explain(small24, [photo.astype(np.float32) - 128.0])  # mean-subtracted
    with pytest.raises(ImageError, match=r"integer pixels span \[-128, .*below 0"):
        load_image(photo.astype(np.int16) - 128)


def test_explain_names_which_image_is_refused(small24, photo) -> None:
    neg = photo.astype(np.float32) / 127.5 - 1
    with pytest.raises(ValueError, match=r"^<image 1>: float pixels span"):
        agelens.explain(small24, [photo, neg])


# --- 0..1 floats: scaled once; uint8 never ------------------------------------------------------------


def test_unit_floats_are_scaled_once_and_the_image_kept_is_the_one_the_model_saw(small24, photo) -> None:
    ref = _quiet(agelens.explain, small24, [photo])
    with pytest.warns(UserWarning, match="0..1 scaled to 0..255") as said:
        e = agelens.explain(small24, [photo.astype(np.float32) / 255.0])
    assert len([w for w in said if "0..1 scaled" in str(w.message)]) == 1
    np.testing.assert_array_equal(e.images[0], photo)
    np.testing.assert_allclose(e.probabilities, ref.probabilities, atol=1e-6)


def test_a_uint8_image_of_zeros_and_ones_is_never_rescaled_by_the_loader_or_attribute(small24, photo) -> None:
    dark = (photo >= 128).astype(np.uint8)  # a dark photo: every pixel 0 or 1
    np.testing.assert_array_equal(_quiet(load_image, dark), dark)
    m = make_method(small24, "gradcam")
    seen = _quiet(m.run, dark[None]).probabilities
    bright = _quiet(m.run, dark[None] * np.uint8(255)).probabilities
    assert not np.allclose(seen, bright)  # so the explain() test below can see a rescale


def test_explain_never_rescales_a_uint8_image_of_zeros_and_ones(small24, photo) -> None:
    """explain() cast its uint8 crops to float32 before the door, so 0/1 photos read as 0..1 floats."""
    dark = (photo >= 128).astype(np.uint8)
    expected = _quiet(make_method(small24, "gradcam").run, dark[None]).probabilities
    e = _quiet(agelens.explain, small24, [dark])
    np.testing.assert_allclose(e.probabilities, expected, atol=1e-6)
    np.testing.assert_array_equal(e.images[0], dark)


# --- floats above 255: warned, naming the image and the span, then clipped ----------------------------


@pytest.mark.parametrize(("factor", "span"), [(2.0, r"\[0, 510\]"), (257.0, r"\[0, 6.55e\+04\]")])
def test_floats_above_255_warn_with_their_span_then_clip(small24, photo, factor, span) -> None:
    big = photo.astype(np.float32) * factor
    with pytest.warns(UserWarning, match=rf"^<image 0>: values span {span}, outside 0\.\.255: clipped"):
        out = load_image(big, name="<image 0>")
    np.testing.assert_array_equal(out, np.minimum(big, 255).astype(np.uint8))
    with pytest.warns(UserWarning, match=rf"values span {span}, outside 0\.\.255") as said:
        agelens.explain(small24, [big])
    assert said[0].filename == __file__  # the caller's line
    _quiet(load_image, np.full((2, 2, 3), 255.4, np.float32))  # rounds to 255: nothing to say


# --- wider integers and in-memory 16-bit PIL images ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, ">u2"])
def test_wide_integers_holding_8_bit_values_are_read_as_they_are(photo, dtype) -> None:
    """A uint16 array holding 8-bit values was shifted right by 8 bits: the model saw black."""
    np.testing.assert_array_equal(_quiet(load_image, photo.astype(dtype)), photo)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, ">u2"])
def test_wide_integers_using_the_16_bit_range_are_scaled_with_a_warning(photo, dtype) -> None:
    wide = (photo.astype(np.int64) * 257).astype(dtype)  # 65535 for 255
    with pytest.warns(
        UserWarning, match=r"^<array>: integer pixels span \[\d+, \d+\], above 0\.\.255: read as 16-bit"
    ):
        out = load_image(wide)
    np.testing.assert_array_equal(out, photo)


def test_in_memory_16_bit_pil_images_follow_the_array_rule(photo) -> None:
    grey = photo[..., 0]
    for mode in ("I;16", "I"):
        im = Image.fromarray(grey).convert(mode)  # Pillow keeps the 8-bit values as they are
        np.testing.assert_array_equal(_quiet(load_image, im)[..., 0], grey)
    wide = Image.fromarray(grey.astype(np.uint16) * 257)
    assert wide.mode == "I;16"
    with pytest.warns(UserWarning, match=r"<PIL\.Image>: integer pixels span .* read as 16-bit"):
        np.testing.assert_array_equal(load_image(wide)[..., 0], grey)


def test_16_bit_files_keep_their_declared_depth(photo) -> None:
    """A file says it is 16-bit: small24 values are a dark image (as any viewer shows it), read quietly."""
    grey = photo[..., 0].astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    data = buf.getvalue()
    opened = Image.open(io.BytesIO(data))
    assert opened.mode.startswith("I")
    for src in (data, opened):
        np.testing.assert_array_equal(_quiet(load_image, src)[..., 0], grey >> 8)


# --- attribute(): nothing converted, so out-of-range tensors are said, naming the images -------------


def test_attribute_warns_about_pixels_outside_0_255_naming_the_images(small24, photo) -> None:
    x = np.stack([photo, photo, photo]).astype(np.float32)
    m = make_method(small24, "gradcam")
    neg = x.copy()
    neg[1] = neg[1] / 127.5 - 1
    with pytest.warns(
        UserWarning, match=r"values span \[-1, 255\], outside 0\.\.255 \(image 1 of 3\).*\(x \+ 1\)"
    ):
        m.attribute(neg, 1)
    big = x.copy()
    big[2] *= 2
    with pytest.warns(
        UserWarning, match=r"outside 0\.\.255 \(image 2 of 3\); agelens models expect RGB 0\.\.255$"
    ):
        m.attribute(big, 1)
    _quiet(m.attribute, x, 1)
    _quiet(m.attribute, x.astype(np.uint8), 1)
