"""Which detection rule finds faces in photos and leaves face crops alone?

Two jobs pull against each other. In a photo with a small face the detector must
find it (a miss means the whole photo is squashed to the model's input). On an
input that is already a face crop it must change nothing: the cascade often misses
a face that fills the whole frame, and a small false box inside it would then be
"cropped", showing the model an eye and a cheek.

Rules compared, on TRAINING-split chips only (so the choice never looks at the
test photos that ``face_crop_eval.py`` reports):

- ``alt2`` (shipped): OpenCV's alt2 cascade, largest box; a box covering half the
  image means a face crop already;
- ``alt2, else default``: OpenCV's ``default`` cascade when alt2 finds nothing;
- ``alt2 + margin check``: before cropping, search the image padded with its own
  replicated edge for a face that fills it (a tight crop gives the cascade no
  margin, so half the chips have no box of the whole face).

Result (800 chips, seed 1): the margin check keeps every chip as it is but also
finds an image-sized "face" in 139 of 300 faceless-background canvases: at that
scale the cascade fires on the frame of the image (its boxes are ~1.03 image
widths on chips too, not the face's ~0.8), so it is not shipped. The ``default``
fallback finds 1.7 points more faces in canvases and cuts 2.5 points more chips;
not shipped either. alt2 alone stays.

Each chip is scored twice: alone (is it left as it is?) and pasted into a faceless
480x640 canvas (is it found, and does the crop overlap the chip's true square?).

    python benchmarks/face_detector_choice.py ../shared/data/utkface-200 \\
        --split benchmarks/results/shipped_split.json --out benchmarks/results/face_detector_choice.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_crop_eval import canvas, iou  # noqa: E402

from agelens.data.images import load_image, thread_map  # noqa: E402
from agelens.model import faces  # noqa: E402

Box = tuple[int, int, int, int]


def covered(box: Box, shape: tuple[int, ...]) -> float:
    """The share of the image that the part of a box inside it covers."""
    x, y, w, h = box
    H, W = shape[:2]
    return max(0, min(x + w, W) - max(x, 0)) * max(0, min(y + h, H) - max(y, 0)) / (H * W)


def fills_image(img: np.ndarray) -> bool:
    """Is there a face covering half the image, searched with a margin of replicated edge?"""
    grey = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    pad = int(round(0.25 * max(grey.shape)))
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    side = max(20, int(np.sqrt(faces.CROPPED_AREA_SHARE * grey.size)))
    boxes = faces._cascade().detectMultiScale(padded, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    return any(
        covered((x - pad, y - pad, w, h), img.shape) >= faces.CROPPED_AREA_SHARE for x, y, w, h in boxes
    )


def decide(img: np.ndarray, boxes: list[Box], margin_check: bool) -> tuple[str, Box | None]:
    """``("crop", box)``, ``("as is", None)`` for a face crop, or ``("none", None)``."""
    if boxes and covered(boxes[0], img.shape) >= faces.CROPPED_AREA_SHARE:
        return "as is", None
    if margin_check and fills_image(img):
        return "as is", None
    return ("crop", boxes[0]) if boxes else ("none", None)


RULES: dict[str, Callable[[np.ndarray], tuple[str, Box | None]]] = {
    "alt2 (shipped)": lambda im: decide(im, faces.detect_faces(im), False),
    "alt2, else default": lambda im: decide(
        im, faces.detect_faces(im) or faces.detect_faces(im, cascade="default"), False
    ),
    "alt2 + margin check": lambda im: decide(im, faces.detect_faces(im), True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", type=Path, required=True)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    split = json.loads(a.split.read_text())
    held = set(split["test"]) | set(split["val"])
    paths = sorted(p for p in a.folder.iterdir() if p.name not in held)
    rng = np.random.default_rng(a.seed)
    paths = [paths[i] for i in rng.choice(len(paths), min(a.n, len(paths)), replace=False)]
    chips = thread_map(load_image, paths)
    order = rng.permutation(len(chips))
    made = [
        canvas(c, chips[order[i] if order[i] != i else (i + 1) % len(chips)], rng)
        for i, c in enumerate(chips)
    ]

    rows = {}
    print(f"{len(chips)} training chips, alone and in canvases")
    print(f"{'rule':<32}{'found':>7}{'IoU>0.5':>9}{'median IoU':>12}{'chip as is':>12}{'chip cut':>10}")
    for name, rule in RULES.items():
        on_canvas = thread_map(lambda m, rule=rule: rule(m[0]), made)
        ious = [
            iou(faces.chip_box(box), sq) if kind == "crop" else 0.0
            for (kind, box), (_, sq) in zip(on_canvas, made, strict=True)
        ]
        found = [kind != "none" for kind, _ in on_canvas]
        alone = [kind for kind, _ in thread_map(rule, chips)]
        row = {
            "canvas_found": float(np.mean(found)),
            "canvas_iou_over_0.5": float(np.mean(np.array(ious) > 0.5)),
            "canvas_median_iou_of_found": float(
                np.median([v for v, f in zip(ious, found, strict=True) if f])
            ),
            "chip_as_is": float(np.mean([k != "crop" for k in alone])),
            "chip_cut": float(np.mean([k == "crop" for k in alone])),
        }
        rows[name] = row
        print(
            f"{name:<32}{row['canvas_found']:>7.1%}{row['canvas_iou_over_0.5']:>9.1%}"
            f"{row['canvas_median_iou_of_found']:>12.3f}{row['chip_as_is']:>12.1%}{row['chip_cut']:>10.1%}",
            flush=True,
        )
    if a.out:
        a.out.write_text(json.dumps({"n": len(chips), "seed": a.seed, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
