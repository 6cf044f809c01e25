"""Builders for small test images: every odd and bad file kind the loaders must handle.

A plain module (not conftest.py) so tests can import the builders by a unique name.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SHARED_DATA = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()


def encode(img: np.ndarray | Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def face_like(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth image (JPEG keeps it close) with a seed-dependent colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = rng.integers(40, 200, 3)
    img = base[None, None, :] + 30 * np.sin(x[..., None] / 7.0 + y[..., None] / 11.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def truncated_jpeg(seed: int = 0) -> bytes:
    data = encode(noise(64, 64, seed), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` but carries almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def png16_grey(values: np.ndarray) -> bytes:
    return encode(Image.fromarray(values.astype(np.uint16)), "PNG")


def png16_rgb(rgb: np.ndarray) -> bytes:
    """16-bit colour PNG (Pillow cannot write one; OpenCV can, in BGR order)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1].astype(np.uint16)))
    assert ok
    return buf.tobytes()


def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    im = Image.fromarray(rgb).convert("CMYK")
    return encode(im, "JPEG", quality=95)


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(rgb, "JPEG", quality=95, exif=exif.tobytes())


def rgba_png(h: int = 24, w: int = 24) -> bytes:
    a = np.zeros((h, w, 4), np.uint8)
    a[:, : w // 2] = (255, 0, 0, 128)  # half-transparent red -> pink on white
    a[:, w // 2 :] = (0, 0, 0, 0)  # fully transparent black -> white
    return encode(a, "PNG")


def odd_valid_files() -> dict[str, bytes]:
    """Unusual but valid images (UTKFace-style names), all of which must load."""
    grey = encode(Image.fromarray(face_like(30, 30, 1)[..., 0], mode="L"), "PNG")
    return {
        "21_0_0_grey.png": grey,
        "35_1_0_rgba.png": rgba_png(),
        "45_0_1_sixteen.png": png16_grey(np.full((20, 20), 40000)),
        "70_1_2_cmyk.jpg": cmyk_jpeg(face_like(32, 32, 2)),
        "15_0_3_exif.jpg": exif_rotated_jpeg(face_like(20, 40, 3)),
    }


def bad_files() -> dict[str, tuple[bytes, str]]:
    """Files that must be reported, with a word their reason must contain."""
    ok = encode(face_like(), "JPEG")
    return {
        "20_0_0_empty.jpg.chip.jpg": (b"", "empty"),
        "30_0_0_text.jpg.chip.jpg": (b"this is not a picture\n", "not an image"),
        "40_0_0_cut.jpg.chip.jpg": (truncated_jpeg(), "truncated"),
        "abc_0_0_badage.jpg.chip.jpg": (ok, "unparsable age"),
        "150_0_0_tooold.jpg.chip.jpg": (ok, "outside"),
    }
