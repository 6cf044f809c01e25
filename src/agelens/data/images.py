"""Safe image decoding: the single entry point every part of agelens uses to read pixels.

Why one entry point: training, evaluation, the CLI and the explain views must all see the
same pixels for the same file, and a bad file must fail the same, clear way everywhere.

Conventions (all inputs end up as ``H x W x 3`` ``uint8`` RGB):

- Transparency (RGBA, LA, palette with a transparent colour) is composited on **white**.
  Dropping alpha would expose whatever RGB happens to sit under transparent pixels (often
  black or garbage); white is what an image viewer shows, so it is what a person labelled.
- 16-bit image *files* keep their high byte (``v >> 8``), the libpng ``strip_16`` rule. Pillow
  already reads 16-bit RGB/RGBA PNGs that way, so grey and colour 16-bit files scale alike:
  0 -> 0, 32768 -> 128, 65535 -> 255. 32-bit integer files (mode ``I``) are taken as
  16-bit data clipped to 0..65535. The file declares its depth, so it is honoured whatever the
  values. Floating-point image *files* are rejected.
- In-memory pixels (arrays, and PIL images made in memory, whose mode is no declared depth:
  ``Image.convert("I;16")`` keeps 8-bit values as they are) follow :func:`_to_uint8`: uint8 is
  never rescaled; wider integers all in 0..255 are 8-bit values, kept as they are, and ones
  above 255 are read as 16-bit (the same high byte), with a warning; floats are 0..255 (or
  0..1, scaled with a warning), rounded, and clipped with a warning above 255. Negative pixels
  are refused: no photo has them, they mean network preprocessing (-1..1, mean-subtracted),
  and clipping them to 0 would silently give the model another image.
- EXIF orientation is applied, so a phone photo is upright as it was shot.
- CMYK (including Adobe's inverted CMYK JPEGs) is converted by Pillow.
- Bad input raises :class:`ImageError` (one line, ``"<path>: <reason>"``): missing or
  unreadable files, empty files, non-image bytes, truncated or corrupt data (a full decode is
  forced and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never turned on), and images over
  :data:`MAX_PIXELS`, which are refused from the header size *before* any pixel is decoded.
  Pillow's own ``DecompressionBombError`` (and its warning, when a caller's warning filters
  make it an error) become ``ImageError`` too. Our limit is below Pillow's warning threshold,
  so anything Pillow would warn about is refused here anyway.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image, ImageOps

MAX_PIXELS = 50_000_000
"""Largest image (width x height) we agree to decode: 50 MP is ~150 MB of RGB."""

ImageSource = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray

_BYTES_NAME = "<bytes>"
_ARRAY_NAME = "<array>"
_PIL_NAME = "<PIL.Image>"

T = TypeVar("T")
R = TypeVar("R")


class ImageError(ValueError):
    """An input that cannot be turned into an RGB image; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = path
        self.reason = _one_line(reason)
        super().__init__(path, reason)  # both in args, so the error pickles and copies

    def __str__(self) -> str:
        return _one_line(f"{self.path}: {self.reason}")


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, and why (used by batch loading and datasets alike)."""

    path: Path | str
    reason: str

    def __str__(self) -> str:
        return _one_line(f"{self.path}: {self.reason}")


def read_photo(path: Path) -> np.ndarray | Problem:
    """The decoded photo at ``path``, or the :class:`Problem` that names why it cannot be used.

    A name that does not exist says "no such file or folder" (the user may have meant a
    folder), the words every command uses for a missing path on its command line.
    """
    if not path.exists() and not path.is_symlink():
        return Problem(path, "no such file or folder")
    try:
        return load_image(path)
    except ImageError as e:
        return Problem(path, e.reason)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_image(src: ImageSource, name: str | None = None) -> np.ndarray:
    """Decode ``src`` (path, encoded bytes, PIL image or array) to ``H x W x 3`` uint8 RGB.

    Raises :class:`ImageError` for every bad input (see the module docstring), and
    ``TypeError`` only when ``src`` is not one of the supported Python types. ``name`` is what
    errors and warnings call an in-memory ``src`` (array, bytes, PIL image; by default
    ``<array>``, ``<bytes>``, or a PIL image's file name or ``<PIL.Image>``), so a caller
    holding a list can say which image (``<image 3>``); a path always names itself.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src, name or _ARRAY_NAME)
    if isinstance(src, Image.Image):
        return _decode(src, name or getattr(src, "filename", "") or _PIL_NAME)
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
        if not data:
            raise ImageError(name or _BYTES_NAME, "empty data (0 bytes)")
        return _open_and_decode(data, name or _BYTES_NAME)
    if isinstance(src, str | os.PathLike):
        path = Path(src)
        return _open_and_decode(_read_file(path), str(path))
    raise TypeError(f"load_image() takes a path, bytes, PIL image or numpy array, not {type(src).__name__}")


def _read_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageError(path, f"cannot read file ({e.strerror or type(e).__name__})") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise ImageError(repr(str(path)), f"invalid path ({e})") from None
    if not data:
        raise ImageError(path, "empty file (0 bytes)")
    return data


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_FILLERS = (b"\xaa" * 64, bytes(range(64)), bytes(range(254, 126, -2)))
"""Filler runs a scan cut short would read as image data (a constant run, two ramps; no 0xFF)."""


def _open_and_decode(data: bytes, name: str) -> np.ndarray:
    """Open lazily (header only), refuse huge sizes, then force a full decode.

    A JPEG that lacks only its end marker (some cameras, cut downloads) reads as truncated to
    Pillow although every pixel is there. It is accepted when it decodes to the same pixels
    with the marker appended straight after its data and after each of the filler runs in
    :data:`_FILLERS`: a scan that really stops short reads the filler as image data and the
    decodes differ, so a truly truncated photo is still refused. One constant filler was not
    enough: a baseline scan cut 40 bytes short decoded alike after 64 bytes of 0x00, 0x55 or
    0xAA (and 0xFF runs are padding before a marker), and was passed off as the whole photo.
    """
    try:
        return _decode_bytes(data, name)
    except ImageError as e:
        if not (data.startswith(_JPEG_START) and not data.endswith(_JPEG_END) and "truncated" in e.reason):
            raise
        if _progressive(data) and not _all_scans_there(data):
            raise e from None  # later scans are missing: a coarser photo than the file holds
        try:
            closed = _decode_bytes(data + _JPEG_END, name)
            filled = [_decode_bytes(data + filler + _JPEG_END, name) for filler in _FILLERS]
        except ImageError:
            raise e from None
        if any(f.shape != closed.shape or not np.array_equal(closed, f) for f in filled):
            raise e from None
        return closed


_PROGRESSIVE_FRAMES = (0xC2, 0xC6, 0xCA, 0xCE)


def _segments(data: bytes):
    """``(marker, body)`` for each marker segment of a JPEG up to its data's end, the entropy-coded
    data after each scan header skipped; stops at the end marker or where the data runs out."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xD9:
            return
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > len(data):
            return
        yield marker, data[i + 4 : i + 2 + length]
        i += 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RSTn
            while (i := data.find(b"\xff", i)) >= 0 and i + 1 < len(data) and data[i + 1] in _IN_SCAN:
                i += 1  # a stuffed 0xFF00 or RSTn: the scan goes on (find jumps over the data between)
            if i < 0:
                return


_IN_SCAN = frozenset([0x00, 0xFF, *range(0xD0, 0xD8)])


def _progressive(data: bytes) -> bool:
    return any(marker in _PROGRESSIVE_FRAMES for marker, _ in _segments(data))


def _all_scans_there(data: bytes) -> bool:
    """Whether a progressive JPEG's scans bring every coefficient of every component to full
    precision (a scan with successive-approximation bit ``Al`` 0 covers it).

    A progressive file cut at a scan boundary decodes without error to a coarser photo, and
    filler after its end changes nothing (it is read as no scan), so the filler test cannot tell
    it from a file that lacks only its end marker; the scan headers can.
    """
    components: list[int] = []
    done: set[tuple[int, int]] = set()
    for marker, body in _segments(data):
        if marker in _PROGRESSIVE_FRAMES and len(body) >= 6:
            components = [body[6 + 3 * k] for k in range(body[5]) if 6 + 3 * k < len(body)]
        elif marker == 0xDA and body:
            n = body[0]
            if len(body) < 1 + 2 * n + 3:
                return False
            ids = [body[1 + 2 * k] for k in range(n)]
            start, end, approx = body[1 + 2 * n], body[2 + 2 * n], body[3 + 2 * n]
            if approx & 0x0F == 0:
                done.update((c, k) for c in ids for k in range(start, min(end, 63) + 1))
    return bool(components) and all((c, k) in done for c in components for k in range(64))


def _decode_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(name, _too_large(str(e))) from None
    except Image.UnidentifiedImageError:
        raise ImageError(name, "not an image (unrecognised or unsupported format)") from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes: any decoder failure is a bad file
        raise ImageError(name, f"cannot read image header ({type(e).__name__}: {e})") from None
    with im:
        return _decode(im, name)


def _too_large(pillow_message: str) -> str:
    """Pillow's bomb-guard text ("Image size (900000000 pixels) exceeds limit of ... DOS attack.")
    in our own words, as :func:`_check_size` says it: size and limit in megapixels."""
    found = re.search(r"\((\d+) pixels\)", pillow_message)
    size = f"{int(found.group(1)) / 1e6:.1f} megapixels" if found else "over Pillow's safety limit"
    return f"image too large: {size} (limit {MAX_PIXELS / 1e6:g})"


def _check_size(width: int, height: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            name,
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} megapixels "
            f"(limit {MAX_PIXELS / 1e6:g})",
        )


def _decode(im: Image.Image, name: str) -> np.ndarray:
    _check_size(*im.size, name)
    from_file = im.format is not None  # set by Pillow's file readers only; a derived image has None
    try:
        im.load()  # full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES stays False)
        im = ImageOps.exif_transpose(im)
        arr = _pil_to_array(im, name, from_file)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(name, _too_large(str(e))) from None
    except Exception as e:  # noqa: BLE001 - untrusted data: any decoder failure is a bad file
        raise ImageError(name, f"corrupt or truncated image data ({type(e).__name__}: {e})") from None
    return _from_array(arr, name)


def _pil_to_array(im: Image.Image, name: str, from_file: bool = False) -> np.ndarray:
    """Bring any Pillow mode to an array :func:`_from_array` understands (L/LA/RGB/RGBA; uint8, or
    for integer modes the values as they are).

    Integer modes (``I``, ``I;16``...): an image read from a file declares 16-bit data, so its
    high byte is kept (the module docstring's rule), whatever its values. One made in memory
    declares nothing (``Image.convert("I;16")`` keeps 8-bit values as they are), so its values go
    to :func:`_to_uint8`'s integer rule: 0..255 kept, above that read as 16-bit, with a warning.
    """
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return np.asarray(im)
    if mode == "I" or mode.startswith("I;"):
        arr = np.asarray(im if mode.startswith("I;16") else im.convert("I")).astype(np.int64)  # native order
        if from_file:
            return (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
        return arr
    if mode == "F":
        raise ImageError(name, "floating-point images are not supported")
    if mode == "1":
        return np.asarray(im.convert("L"))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("RGBa", "La"):  # premultiplied alpha
        return np.asarray(im.convert("RGBA" if mode == "RGBa" else "LA"))
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV...


def _from_array(arr: np.ndarray, name: str) -> np.ndarray:
    """Normalise an array (grey, grey+alpha, RGB, RGBA; any numeric dtype) to RGB uint8.

    Pixel values follow :func:`_to_uint8`: float arrays are taken as 0..255 (the project's one
    pixel convention, also what :func:`agelens.data.pipeline.make_tf_dataset` yields) and
    rounded; a float array whose values all lie in 0..1 is scaled by 255, with a warning.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(name, f"array of shape {arr.shape} is not an image (want HxW, HxWx1/2/3/4)")
    _check_size(arr.shape[1], arr.shape[0], name)
    arr = _to_uint8(arr, name)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if arr.shape[2] == 2:  # grey + alpha
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    if arr.shape[2] == 4:
        return _composite_on_white(arr)
    return np.ascontiguousarray(arr)


UNDO_PREPROCESSING = (
    "agelens reads float images as 0..255 (or 0..1); undo the preprocessing, e.g. (x + 1) * 127.5 "
    "for -1..1 (keras.applications' preprocess_input), or add the mean back, and load the model with "
    "input_range='-1-1', 'caffe' or 'torch' (--input-range) so agelens applies it"
)
"""The fix said when pixels below 0 are refused (:func:`_to_uint8`) or warned about (``attribute``):
the photo in raw pixels, and the model told which preprocessing it takes (the maps are then over
the raw pixels a user sees, and the conversion is Keras' own)."""


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """In-memory pixels as uint8, each decision made on the caller's values as given.

    - uint8 is never rescaled, whatever its values (a dark photo may hold only 0s and 1s).
    - bool: ``True`` is 255.
    - Other integers (uint16, int32, a Pillow ``I``/``I;16`` image made in memory): all in
      0..255 they are 8-bit values in a wider type (``astype(np.uint16)``,
      ``Image.convert("I;16")``) and are kept as they are; above 255 they are read as 16-bit
      (0..65535, values above clipped) and keep their high byte, as 16-bit files do
      (65535 -> 255), with a warning naming the image and the span, since a wider type holding
      8-bit values that overflowed reads the same way.
    - Floats are 0..255, or all in 0..1 scaled by 255 (:func:`scale_unit_floats`, with its
      warning), then rounded. Values rounding above 255 are clipped to 255 with a warning
      naming the image and the span (as the metrics say it): an overshoot from resampling,
      sharpening or a brightness change is common and clipping is what any viewer or encoder
      does, so it is not worth refusing a photo for, but a gross one (a 0..65535 float image,
      ``x * 2``) gives a washed-out image the user must hear about.
    - Negative values (float or integer) are refused with :class:`ImageError`
      (:data:`UNDO_PREPROCESSING`): no photo holds them; they mean network preprocessing
      (-1..1, mean-subtracted), which agelens will not guess how to undo. Clipped to 0 (as
      before) a -1..1 image became a two-level 0/1 image, later scaled by 255 as if it were 0..1.
    """
    from agelens.user_warnings import caller_stacklevel

    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise ImageError(
                name,
                f"integer pixels span [{lo}, {hi}], below 0; agelens reads pixels as 0..255: undo the "
                "preprocessing (e.g. add the mean back)",
            )
        if hi <= 255:
            return arr.astype(np.uint8)
        clipped = ", values above 65535 clipped" if hi > 65535 else ""
        warnings.warn(
            f"{name}: integer pixels span [{lo}, {hi}], above 0..255: read as 16-bit (0..65535) and "
            f"scaled to 0..255 (65535 -> 255{clipped}); give uint8 for 8-bit pixels",
            stacklevel=caller_stacklevel(),
        )
        return (np.minimum(arr, 65535).astype(np.uint32) >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ImageError(name, "array holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0:
            raise ImageError(name, f"float pixels span [{lo:.3g}, {hi:.3g}], below 0; {UNDO_PREPROCESSING}")
        scaled = scale_unit_floats(arr, name, stacklevel=caller_stacklevel())
        if scaled is arr and hi > 255.5:  # rounds above 255
            warnings.warn(
                f"{name}: values span [{lo:.3g}, {hi:.3g}], outside 0..255: clipped to 255 "
                "(agelens reads float images as 0..255, or 0..1)",
                stacklevel=caller_stacklevel(),
            )
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    raise ImageError(name, f"unsupported array dtype {arr.dtype}")


def scale_unit_floats(arr: np.ndarray, name: str = "x", stacklevel: int = 2) -> np.ndarray:
    """The one "0..1 or 0..255?" rule: a float array whose values all lie in 0..1 (not all 0) times 255.

    agelens reads float pixels as 0..255 (:func:`load_image`, ``explain.attribute``, the
    metrics all call this). A float array all in 0..1 is the other common convention
    (captum, Quantus, ``tf.image``); read as 0..255 it is an almost black image, so it is
    scaled, with a warning naming ``name``. Anything else (integers, floats reaching above
    1 or below 0, all zeros, empty) comes back unchanged. ``stacklevel`` is the caller's,
    as for :func:`warnings.warn`.
    """
    if arr.dtype.kind != "f" or arr.size == 0:
        return arr
    if is_unit_range(float(arr.min()), float(arr.max())):
        warnings.warn(unit_floats_note(name), stacklevel=stacklevel + 1)
        return arr * arr.dtype.type(255.0)
    return arr


def is_unit_range(lo: float, hi: float) -> bool:
    """Float pixels spanning ``lo..hi`` are 0..1 ones (not all 0): the test behind
    :func:`scale_unit_floats`, shared with the explain engine's check of tensors."""
    return lo >= 0 and 0 < hi <= 1.0


def unit_floats_note(name: str) -> str:
    """The warning said when 0..1 floats are scaled, worded once."""
    return f"{name}: float images with values in 0..1 scaled to 0..255 (agelens reads floats as 0..255)"


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:].astype(np.uint16)
    # out = rgb * a/255 + 255 * (1 - a/255), rounded, in exact integer arithmetic
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def animation_note(path: str | os.PathLike[str]) -> str:
    """ "animated image: first frame used" for a GIF/WebP/APNG with several frames, else "".

    ``load_image`` decodes the first frame only, as every caller wants; the answer must say so,
    so a user who gives a GIF knows which frame was judged.
    """
    try:
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - the photo was decoded once already; a note is not worth failing for
        return ""
    return "animated image: first frame used" if frames > 1 else ""


def resize_for_model(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``img`` to its largest centred square, then resize it to ``size x size``.

    Why crop rather than pad or squash: faces are centred in every source we support, and
    squashing would distort face proportions the model learns age cues from. ``INTER_AREA``
    is used when shrinking (it averages, so no aliasing), ``INTER_LINEAR`` when enlarging.
    Accepts anything :func:`load_image` accepts as an array; returns contiguous uint8 RGB.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        img = load_image(img)
    return fit_square(img, size)


def fit_square(a: np.ndarray, size: int) -> np.ndarray:
    """The centred square of ``a`` (H x W or H x W x C, any dtype) resized to ``size x size``.

    The geometry :func:`resize_for_model` gives photos, for anything that must stay
    aligned with them pixel for pixel (maps, ground-truth masks).
    """
    h, w = a.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(a[top : top + side, left : left + side])
    if side == size:
        return square
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp)


def fit_longest_side(a: np.ndarray, max_side: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """``a`` (H x W or H x W x C) resized so its longest side is at most ``max_side``; as is when it fits.

    The one rule for "small enough to draw, store or search": panels, stored maps, the app's
    working copy and the face detector's retry all shrink this way (area-averaged by default).
    """
    h, w = a.shape[:2]
    if max(h, w) <= max_side:
        return a
    s = max_side / max(h, w)
    return cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interpolation)


def source_file(record: object) -> Path | None:
    """The photo a saved explanation record came from, or None where it is gone.

    ``source_path`` (absolute, recorded when the photo was explained) is tried first: ``source``
    is the path as the user typed it, relative to where that command ran, so from another folder
    it can name a different photo of the same name. An older manifest has only ``source``.
    """
    if not isinstance(record, dict):
        return None
    for key in ("source_path", "source"):
        value = record.get(key)
        if isinstance(value, str) and value and Path(value).is_file():
            return Path(value)
    return None


def source_record(source: object) -> dict[str, str]:
    """``source`` as an explanation record stores it: as typed, and absolute when it is a file
    (see :func:`source_file`); an in-memory image's label stays as it is."""
    text = str(source)
    path = Path(text)
    return {"source": text, **({"source_path": str(path.resolve())} if path.is_file() else {})}


def load_batch(
    paths: Iterable[str | Path],
    size: int,
    workers: int | None = None,
    sizes: dict[Path, tuple[int, int]] | None = None,
) -> tuple[np.ndarray, list[Path], list[Problem]]:
    """Load and resize many files; bad ones are skipped and reported, never raised.

    Returns ``(images N x size x size x 3 uint8, ok_paths, problems)`` with ``images[i]``
    read from ``ok_paths[i]``, in input order. ``sizes``, where given, is filled with each
    decoded photo's (width, height) before resizing, so a caller that judges photos by their
    size (:func:`agelens.model.faces.not_face_crops`) need not open every file again.
    """
    paths = [Path(p) for p in paths]

    def one(p: Path) -> np.ndarray | Problem:
        try:
            photo = load_image(p)
            if sizes is not None:
                sizes[p] = (photo.shape[1], photo.shape[0])
            return resize_for_model(photo, size)
        except ImageError as e:
            return Problem(p, e.reason)

    results = thread_map(one, paths, workers)
    ok = [(p, r) for p, r in zip(paths, results, strict=True) if isinstance(r, np.ndarray)]
    problems = [r for r in results if isinstance(r, Problem)]
    images = np.stack([r for _, r in ok]) if ok else np.zeros((0, size, size, 3), np.uint8)
    return images, [p for p, _ in ok], problems


def thread_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool, in order.

    Threads (not processes) because Pillow and OpenCV release the GIL while decoding and
    resizing, and file reads release it too; results need no pickling.
    """
    if workers is None:
        workers = min(8, 2 * (os.cpu_count() or 1))
    if len(items) < 2 * workers or workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))
