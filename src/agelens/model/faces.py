"""Find the face in a photo in the wild and crop it the way the training chips were cropped.

The model is trained on UTKFace's aligned chips. A holiday photo with a small face
in it would otherwise be squashed to the model's input as a whole, and a loose crop
shows the face smaller than any chip the model saw. OpenCV ships Haar cascades
inside its wheel, so detection works offline with no downloads.

The framing constants are measured, not guessed: run OpenCV's detector on the
UTKFace training chips and express each chip in units of the detected box
(``python benchmarks/face_crop_calibration.py ../shared/data/utkface-200 --split
benchmarks/results/shipped_split.json``; 3,491 of 7,048 chips had a detection).
A chip's side is a median 1.25 box widths (quartiles 1.21-1.30), its centre lies
0.10 box widths below the box's centre (more chin than forehead), and the box
covers 64% of the chip (10th percentile 55%). The 64 px copies agree (1.26, 0.11).
The chip's edges keep the box from growing, so the true ratio in a photo may be a
little larger; pasted into a canvas, boxes grow past the chip itself (0.885), an
artefact of the pasted edge. The on-chip figures are the smaller bias.

The ``alt2`` frontal cascade finds more faces than OpenCV's ``default`` one on
UTKFace chips pasted into larger canvases (92.7% vs 88.7% of 600 training photos)
and fires less often on small patches inside a face crop (1.4% vs 3.3% of chips).

The grey image is histogram-equalised before the search, and searched again as it is when
that finds nothing: on a canvas that is mostly one flat colour, equalising spends the
histogram on the backdrop and washes out the face. With that second look, held-out chips in
canvases are found in 97.4% of canvases instead of 93.9%, and detect-and-crop accuracy rises
from 0.819 to 0.830 (``python benchmarks/face_crop_eval.py``); a bare chip, where nothing was
found before and the whole chip was used, is now sometimes cropped (0.858 -> 0.855).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# A face box covering at least this share of the image is treated as already a chip
# (below the 10th percentile of UTKFace chips, 0.55): re-cropping would only cut hair and chin.
CROPPED_AREA_SHARE = 0.5
# A face crop often fills the frame too tightly for the cascade, which needs some background
# around a face: when nothing is found, look again with this much border (a share of the
# longest side, edges replicated). On 300 utkface-200 chips, faces found: 56.7% -> 98.3%.
CHIP_RETRY_BORDER = 0.3
# Photos are searched at most this size (longest side): cost grows with pixels, faces stay findable.
DETECT_MAX_SIDE = 1024
# The crop's side, in widths of the detected box (UTKFace chips: median 1.25).
SIDE_PER_WIDTH = 1.25
# Where the crop's centre lies relative to the box's centre, in box widths (+y is down).
CENTRE_SHIFT = (0.0, 0.10)


_local = threading.local()


def _cascade(name: str = "alt2") -> cv2.CascadeClassifier:
    """This thread's cascade: one shared across threads returns other images' faces."""
    cascades = _local.__dict__.setdefault("cascades", {})
    if name not in cascades:
        path = cv2.data.haarcascades + f"haarcascade_frontalface_{name}.xml"
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():  # pragma: no cover - broken OpenCV install
            raise RuntimeError(f"{path}: OpenCV's bundled face cascade did not load")
        cascades[name] = cascade
    return cascades[name]


def detect_faces(img: np.ndarray, cascade: str = "alt2") -> list[tuple[int, int, int, int]]:
    """Face boxes ``(x, y, w, h)``, largest first (``cascade``: which of OpenCV's frontal cascades)."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    scale = 1.0
    if max(grey.shape) > DETECT_MAX_SIDE:  # detection cost grows with pixels; faces stay findable
        scale = DETECT_MAX_SIDE / max(grey.shape)
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    min_side = max(20, int(0.08 * min(grey.shape)))

    def find(image: np.ndarray) -> Any:
        return _cascade(cascade).detectMultiScale(
            image, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )

    boxes = find(cv2.equalizeHist(grey))
    if len(boxes) == 0:  # a flat backdrop dominates the histogram and washes out the face: try as is
        boxes = find(grey)
    out = [tuple(int(round(v / scale)) for v in b) for b in boxes]
    return sorted(out, key=lambda b: b[2] * b[3], reverse=True)


def chip_box(
    box: tuple[int, int, int, int],
    side_per_width: float = SIDE_PER_WIDTH,
    centre_shift: tuple[float, float] = CENTRE_SHIFT,
) -> tuple[int, int, int]:
    """The square ``(x0, y0, side)`` a UTKFace-style chip would cover around a detected box."""
    x, y, w, h = box
    side = max(1, int(round(w * side_per_width)))
    cx = x + w / 2 + centre_shift[0] * w
    cy = y + h / 2 + centre_shift[1] * w
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_box(img: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Cut a square, replicating the edge where it runs past the image (faces near a border)."""
    H, W = img.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return img[y0 : y0 + side, x0 : x0 + side].copy()


def crop_largest_face(
    img: np.ndarray,
    side_per_width: float = SIDE_PER_WIDTH,
    centre_shift: tuple[float, float] = CENTRE_SHIFT,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Return ``(crop, box)``; the image itself and ``None`` when no face is found.

    An image whose largest face already fills most of it is returned unchanged
    (with its box): it is a face crop already, and re-cropping would cut off hair and chin.
    So is a face crop the cascade only finds with a border added (:data:`CHIP_RETRY_BORDER`):
    the retry changes no pixel, only that the face is reported found rather than missed.
    """
    boxes = detect_faces(img)
    if not boxes:
        box = _face_filling_the_frame(img)
        return img, box
    x, y, w, h = boxes[0]
    H, W = img.shape[:2]
    if w * h >= CROPPED_AREA_SHARE * H * W:
        return img, (x, y, w, h)
    return crop_box(img, *chip_box((x, y, w, h), side_per_width, centre_shift)), (x, y, w, h)


def _face_filling_the_frame(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """The face box (clipped to ``img``) when, seen with a border, a face covers most of ``img``.

    The border goes round a copy no larger than the detector searches anyway: padding a
    12-megapixel photo first cost 0.5 s (the search itself 0.14 s) for nothing more.
    """
    from agelens.data.images import fit_longest_side

    H, W = img.shape[:2]
    small = fit_longest_side(img, DETECT_MAX_SIDE)
    s = small.shape[1] / W  # 1 for anything up to DETECT_MAX_SIDE: the chips measured above
    pad = int(round(CHIP_RETRY_BORDER * max(small.shape[:2])))
    boxes = detect_faces(cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE))
    if not boxes:
        return None
    bx, by, bw, bh = boxes[0]  # in the bordered copy: back to the photo's pixels
    x, y, w, h = (bx - pad) / s, (by - pad) / s, bw / s, bh / s
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(W, round(x + w)), min(H, round(y + h))
    if (x1 - x0) * (y1 - y0) < CROPPED_AREA_SHARE * H * W:  # a small face: not a face crop
        return None
    return x0, y0, x1 - x0, y1 - y0


SQUARE_ENOUGH = 1.25
"""A photo whose long side is at least this many times its short side is not a face crop's shape.

Face-crop data sets come square or nearly: UTKFace's 200x200 and its 64x64 chips, FairFace's
224x224, LFW's 250x250, CelebA's aligned 178x218 (1.22:1). Cameras shoot 5:4, 4:3 or 3:2."""
MUCH_LARGER_THAN_INPUT = 4
"""A long side this many times the model's input: shrunk a lot, a face crop would not need it."""
MUCH_LARGER_THAN_MOST = 2
"""A long side this many times that of the size most of the sample shares."""


def not_face_crops(
    paths: list[Path], input_size: int, known: dict[Path, tuple[int, int]] | None = None
) -> list[tuple[Path, tuple[int, int]]]:
    """The photos (with their width x height) that look like photos in the wild, not face crops.

    The rule: a photo that is not square (long side >= :data:`SQUARE_ENOUGH` x the short one)
    and whose long side is at least :data:`MUCH_LARGER_THAN_INPUT` x the model's input, or at
    least :data:`MUCH_LARGER_THAN_MOST` x the long side of the size at least half the photos
    share. A square photo never counts, so a folder of face crops (UTKFace's 200x200, its 64x64
    chips) never warns, whatever the model's input size. Sizes are ``known`` ones (as
    :func:`agelens.data.images.load_batch` records them while decoding), else read from the file
    headers.
    """
    import warnings
    from collections import Counter

    from PIL import Image

    sizes: dict[Path, tuple[int, int]] = {}
    for p in paths:
        if known is not None and p in known:
            sizes[p] = known[p]
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a decompression-bomb warning: the photo loaded already
                with Image.open(p) as im:
                    sizes[p] = im.size
        except Exception:  # noqa: BLE001 - a format Pillow cannot open by itself: no size, no warning
            continue
    if not sizes:
        return []
    common, count = Counter(sizes.values()).most_common(1)[0]
    most = max(common) if 2 * count >= len(sizes) else None

    def wild(w: int, h: int) -> bool:
        long, short = max(w, h), min(w, h)
        if long < SQUARE_ENOUGH * short:
            return False
        return long >= MUCH_LARGER_THAN_INPUT * input_size or (
            most is not None and long >= MUCH_LARGER_THAN_MOST * most
        )

    return [(p, s) for p, s in sizes.items() if wild(*s)]
