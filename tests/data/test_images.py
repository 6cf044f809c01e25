"""load_image / resize_for_model / load_batch: odd-but-valid images load right, bad ones fail clearly."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from data_factory import (
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    face_like,
    noise,
    png16_grey,
    png16_rgb,
    png_header_only,
    rgba_png,
    truncated_jpeg,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from agelens.data.images import (
    MAX_PIXELS,
    ImageError,
    Problem,
    load_batch,
    load_image,
    resize_for_model,
    scale_unit_floats,
)


def _reason(excinfo: pytest.ExceptionInfo[ImageError]) -> str:
    return excinfo.value.reason.lower()


# --- bad inputs: each kind has its own test ---------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "empty" in _reason(e)
    assert str(e.value) == f"{p}: {e.value.reason}"


def test_text_file_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "photo.jpg"
    p.write_text("definitely not a JPEG\n")
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "not an image" in _reason(e)


def test_truncated_jpeg_is_rejected_not_grey_filled(tmp_path: Path) -> None:
    p = tmp_path / "cut.jpg"
    p.write_bytes(truncated_jpeg())
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "truncated" in _reason(e)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_missing_only_its_end_marker_is_read_but_one_cut_short_is_not(progressive: bool) -> None:
    """Every pixel is there without the end marker, so the photo reads as the whole file does;
    a byte more gone and the last blocks are missing: refused, never grey-filled."""
    data = encode(noise(64, 64), "JPEG", quality=90, progressive=progressive)
    assert data.endswith(b"\xff\xd9")
    np.testing.assert_array_equal(load_image(data[:-2]), load_image(data))
    for cut in (3, 4, 10, len(data) // 2):
        with pytest.raises(ImageError, match="truncated"):
            load_image(data[:-cut])


def test_cuts_the_filler_check_once_passed_off_as_whole_photos_are_refused() -> None:
    """Found by the property test below: a baseline scan 40 bytes short decoded alike after 64
    bytes of 0xAA filler and was read as the whole photo (236 pixels wrong), and a progressive
    file cut between two scans always was (any filler is read as no scan at all)."""
    data = encode(noise(40, 56, 0), "JPEG", quality=85, progressive=False)
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[:-40])
    data = encode(noise(40, 56, 0), "JPEG", quality=85, progressive=True)
    scans = [i for i in range(len(data) - 1) if data[i : i + 2] in (b"\xff\xda", b"\xff\xc4")]
    later = [i for i in scans if i > scans[2]]  # each a cut that leaves whole scans and loses the rest
    assert len(later) >= 4
    for i in later:
        with pytest.raises(ImageError, match="truncated"):
            load_image(data[:i])
    np.testing.assert_array_equal(load_image(data[:-2]), load_image(data))  # only the end marker gone


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(2, 600), seed=st.integers(0, 7), progressive=st.booleans())
def test_a_cut_jpeg_is_refused_or_read_exactly_as_the_whole_file(
    cut: int, seed: int, progressive: bool
) -> None:
    data = encode(noise(40, 56, seed), "JPEG", quality=85, progressive=progressive)
    try:
        got = load_image(data[:-cut])
    except ImageError:
        return
    np.testing.assert_array_equal(got, load_image(data))  # never a grey-filled or half-decoded photo


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "nope.png")
    assert "not found" in _reason(e)


def test_invalid_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="invalid path"):
        load_image(str(tmp_path / "a\0b.jpg"))


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as e:
        load_image(tmp_path)
    assert "directory" in _reason(e)


def test_huge_header_rejected_before_decoding() -> None:
    # 8000 x 7000 = 56 MP: over our limit, under Pillow's own bomb threshold (89 MP), and the
    # file holds no pixel data: "too large" (not "truncated") shows the size check came first.
    data = png_header_only(8000, 7000)
    assert MAX_PIXELS < 8000 * 7000
    with pytest.raises(ImageError) as e:
        load_image(data)
    assert "too large" in _reason(e) and "56.0 megapixels" in _reason(e)


def test_pillow_decompression_bomb_error_becomes_image_error() -> None:
    with pytest.raises(ImageError) as e:
        load_image(png_header_only(20000, 20000))  # 400 MP: Pillow itself raises
    assert _reason(e) == "image too large: 400.0 megapixels (limit 50)"  # not Pillow's "dos attack" text


def test_pillow_decompression_bomb_warning_as_error_becomes_image_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError) as e:
            load_image(png_header_only(10000, 10000))  # 100 MP: Pillow warns
    assert "too large" in _reason(e)


def test_oversized_array_rejected() -> None:
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(8000, 7000), strides=(0, 0))
    with pytest.raises(ImageError, match="too large"):
        load_image(big)


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError):
        load_image(12345)  # type: ignore[arg-type]


def test_image_error_is_one_line_and_pickles() -> None:
    err = ImageError("a/b.jpg", "bad\nthings  happen")
    assert str(err) == "a/b.jpg: bad things happen"
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.reason) == ("a/b.jpg", "bad things happen")


# --- odd but valid ----------------------------------------------------------------------------


def test_plain_rgb_jpeg_file(tmp_path: Path) -> None:
    src = face_like(30, 20)
    p = tmp_path / "x.jpg"
    p.write_bytes(encode(src, "JPEG", quality=95))
    out = load_image(str(p))
    assert out.shape == (30, 20, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - src).mean() < 3


def test_greyscale_is_replicated() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    out = load_image(encode(Image.fromarray(grey, mode="L"), "PNG"))
    assert out.shape == (8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_one_bit_image() -> None:
    out = load_image(encode(Image.fromarray(np.eye(4, dtype=bool)), "PNG"))
    np.testing.assert_array_equal(out[..., 0], np.eye(4, dtype=np.uint8) * 255)


def test_rgba_is_composited_on_white() -> None:
    out = load_image(rgba_png(24, 24))
    np.testing.assert_array_equal(out[0, 0], [255, 127, 127])  # 50 % red over white
    np.testing.assert_array_equal(out[0, -1], [255, 255, 255])  # transparent black -> white


def test_grey_alpha_is_composited_on_white() -> None:
    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 1] = 0
    out = load_image(encode(Image.fromarray(la, mode="LA"), "PNG"))
    assert (out == 255).all()


def test_palette_with_transparency() -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    im.putpixel((0, 0), 0)
    out = load_image(encode(im, "PNG", transparency=0))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[1, 1], [10, 200, 30])


def test_16bit_grey_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 1000, 257 * 77, 32768, 65535]])
    out = load_image(png16_grey(values))
    # high byte: a clip to 255 would turn 1000 into 255 and 32768 into 255
    np.testing.assert_array_equal(out[0, :, 0], [0, 3, 77, 128, 255])


def test_16bit_rgb_png_keeps_channel_order_and_scale() -> None:
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[...] = (65535, 32768, 1000)
    out = load_image(png16_rgb(rgb))
    np.testing.assert_array_equal(out[0, 0], [255, 128, 3])


def test_cmyk_jpeg_colours_survive() -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:16, :16] = (220, 30, 30)
    rgb[:16, 16:] = (30, 200, 40)
    rgb[16:, :16] = (40, 40, 210)
    rgb[16:, 16:] = (128, 128, 128)
    data = cmyk_jpeg(rgb)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = load_image(data).astype(int)
    for rows in (slice(2, 14), slice(18, 30)):
        for cols in (slice(2, 14), slice(18, 30)):
            np.testing.assert_allclose(out[rows, cols].mean((0, 1)), rgb[rows, cols].mean((0, 1)), atol=12)


def test_exif_orientation_is_applied() -> None:
    src = np.full((20, 40, 3), 255, np.uint8)  # stored 40 wide x 20 high
    src[:10, :10] = (255, 0, 0)  # red block top-left as stored
    out = load_image(exif_rotated_jpeg(src, orientation=6))  # 6: rotate 90 degrees clockwise to view
    assert out.shape == (40, 20, 3)
    top_right, top_left = out[:10, 10:].mean((0, 1)), out[:10, :10].mean((0, 1))
    assert top_right[0] > 200 and top_right[1] < 60  # the red block moved to the top right
    assert top_left.min() > 200


def test_pil_image_input() -> None:
    out = load_image(Image.new("RGB", (5, 3), (1, 2, 3)))
    assert out.shape == (3, 5, 3) and (out == [1, 2, 3]).all()


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.full((2, 2), 7, np.uint8), [7, 7, 7]),
        (np.full((2, 2, 1), 7, np.uint8), [7, 7, 7]),
        (np.full((2, 2, 3), 7.4, np.float32), [7, 7, 7]),
        (np.full((2, 2, 3), 300.0), [255, 255, 255]),
        (np.full((2, 2, 3), 0x8000, np.uint16), [128, 128, 128]),
        (np.dstack([np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8)]), [255, 255, 255]),
    ],
)
def test_array_inputs(arr: np.ndarray, expected: list[int]) -> None:
    said = arr.dtype != np.uint8 and arr.max() > 255  # clipped or read as 16-bit: never silently
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_image(arr)
    assert bool(caught) == said, [str(w.message) for w in caught]
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert (out == expected).all()


def test_one_rule_reads_floats_in_0_1_as_0_255_for_loader_metrics_and_explain() -> None:
    from agelens.metrics.base import as_pixels

    unit = np.full((2, 2, 3), 0.5, np.float32)
    with pytest.warns(UserWarning, match=r"photo: float images with values in 0\.\.1 scaled to 0\.\.255"):
        scaled = scale_unit_floats(unit, "photo")
    assert scaled.dtype == np.float32 and (scaled == 127.5).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for same in (np.zeros((2, 2, 3), np.float32), np.full((2, 2, 3), 1.5), np.ones((2, 2, 3), np.uint8)):
            assert scale_unit_floats(same) is same  # all black, above 1, integers: already 0..255
    with pytest.warns(UserWarning, match="0..1 scaled"):
        assert (load_image(unit) == 128).all()
    with pytest.warns(UserWarning, match="0..1 scaled"):
        assert (as_pixels(unit[None]) == 127.5).all()


@pytest.mark.parametrize("arr", [np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 5)), np.full((2, 2), np.nan)])
def test_bad_arrays(arr: np.ndarray) -> None:
    with pytest.raises(ImageError):
        load_image(arr)


# --- resize_for_model and load_batch ----------------------------------------------------------


def test_resize_centre_crops_to_square() -> None:
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, 30:70] = 200  # the centred 40x40 square
    out = resize_for_model(img, 40)
    assert out.shape == (40, 40, 3) and (out == 200).all()


@pytest.mark.parametrize(("shape", "size"), [((64, 48, 3), 32), ((10, 30, 3), 64), ((32, 32, 3), 32)])
def test_resize_shapes_and_values(shape: tuple[int, int, int], size: int) -> None:
    img = np.full(shape, 77, np.uint8)
    out = resize_for_model(img, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8 and (out == 77).all()


def test_resize_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        resize_for_model(np.zeros((4, 4, 3), np.uint8), 0)


def test_load_batch_skips_and_reports_bad_files(tmp_path: Path) -> None:
    good = [tmp_path / f"g{i}.png" for i in range(3)]
    for i, p in enumerate(good):
        p.write_bytes(encode(face_like(20 + i, 30, seed=i), "PNG"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    images, ok, problems = load_batch([good[0], bad, good[1], str(good[2])], 16)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert ok == good
    assert problems == [Problem(bad, "empty file (0 bytes)")]
    np.testing.assert_array_equal(images[1], resize_for_model(load_image(good[1]), 16))
    assert str(problems[0]) == f"{bad}: empty file (0 bytes)"


def test_load_batch_of_nothing_usable(tmp_path: Path) -> None:
    images, ok, problems = load_batch([tmp_path / "missing.jpg"], 8)
    assert images.shape == (0, 8, 8, 3) and ok == [] and len(problems) == 1
