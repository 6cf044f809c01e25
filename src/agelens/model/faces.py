"""Find the face in a photo in the wild, so the model sees what it was trained on.

The model is trained on tight, aligned face crops. A holiday photo with a small
face in it would otherwise be squashed to 64 px as a whole. OpenCV ships Haar
cascades inside its wheel, so detection works offline with no downloads.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# A face filling at least this share of the image is treated as already cropped.
CROPPED_AREA_SHARE = 0.35
# UTKFace chips show the whole head: pad the detector's tight box by this share of its size.
MARGIN = 0.4


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - broken OpenCV install
        raise RuntimeError(f"{path}: OpenCV's bundled face cascade did not load")
    return cascade


def detect_faces(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes ``(x, y, w, h)``, largest first."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    scale = 1.0
    if max(grey.shape) > 1024:  # detection cost grows with pixels; faces stay findable
        scale = 1024 / max(grey.shape)
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(20, int(0.08 * min(grey.shape)))
    boxes = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
    out = [tuple(int(round(v / scale)) for v in b) for b in boxes]
    return sorted(out, key=lambda b: b[2] * b[3], reverse=True)


def crop_largest_face(
    img: np.ndarray, margin: float = MARGIN
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Return ``(crop, box)``; the image itself and ``None`` when no face is found.

    An image whose largest face already fills most of it is returned unchanged
    (with its box), since re-cropping a face crop would cut off hair and chin.
    """
    boxes = detect_faces(img)
    if not boxes:
        return img, None
    x, y, w, h = boxes[0]
    H, W = img.shape[:2]
    if w * h >= CROPPED_AREA_SHARE * H * W:
        return img, (x, y, w, h)
    side = int(max(w, h) * (1 + 2 * margin))
    cx, cy = x + w / 2, y + h / 2 - 0.05 * h  # shift up a little: hair matters for age
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return img[y0 : y0 + side, x0 : x0 + side].copy(), (x, y, w, h)
