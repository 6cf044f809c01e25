"""Measure how UTKFace frames a face relative to the box OpenCV's detector draws on it.

The model is trained on UTKFace's aligned chips, so a photo in the wild should be
cropped the way those chips were. This runs the same detector agelens uses on the
training-split chips and reports, in units of the detected box's width, the chip's
side and the offset of the chip's centre from the box's centre (quantiles).

Twice, because each view is biased. On the chip alone the detector's box cannot
grow past the edges (half the chips give no box at all), so boxes come out small
and the chip's side looks large (median 1.25 box widths with OpenCV's alt2
cascade). In the middle of a larger canvas the same faces get boxes a third
larger, larger even than the chip itself (median side 0.885 box widths): the
pasted chip's sharp square edge, which real photos lack, reads as the face's
outline. A face cascade's box sits inside the head in a real photo, so the crop
constants in ``agelens.model.faces`` take the on-chip side and offset (the smaller
bias); ``face_crop_eval.py`` shows the cost on canvases (0.82 vs 0.85 at side 1.0).

    python benchmarks/face_crop_calibration.py ../shared/data/utkface-200 \
        --split benchmarks/results/shipped_split.json --out benchmarks/results/face_crop_calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_crop_eval import smooth_background  # noqa: E402

from agelens.data.images import load_image, thread_map  # noqa: E402
from agelens.model.faces import detect_faces  # noqa: E402


def measure(img: np.ndarray, chip: tuple[int, int, int]) -> tuple[float, float, float, float] | None:
    """(side / w, centre dx / w, centre dy / w, box area share) of the chip square ``(x0, y0, side)``."""
    boxes = detect_faces(img)
    if not boxes:
        return None
    x, y, w, h = boxes[0]
    x0, y0, side = chip
    H, W = img.shape[:2]
    cx, cy = x0 + side / 2, y0 + side / 2
    return (side / w, (cx - (x + w / 2)) / w, (cy - (y + h / 2)) / w, w * h / (H * W))


def on_chip(path: Path) -> tuple[float, float, float, float] | None:
    """The chip alone: the detector's box cannot grow past the chip's edges."""
    img = load_image(path)
    return measure(img, (0, 0, img.shape[0]))


def in_canvas(path: Path) -> tuple[float, float, float, float] | None:
    """The chip in the middle of a canvas three times its size, as a face in a photo has room
    around it. The canvas is the chip's own colours (8x6 pixels, smoothly enlarged), no face."""
    chip = load_image(path)
    side = chip.shape[0]
    canvas = smooth_background(chip, 3 * side, 3 * side)
    canvas[side : 2 * side, side : 2 * side] = chip
    return measure(canvas, (side, side, side))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument(
        "--split", type=Path, help="exclude this split's val and test names (calibrate on training photos)"
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    paths = sorted(p for p in a.folder.iterdir() if p.suffix.lower() == ".jpg")
    if a.split:
        split = json.loads(a.split.read_text())
        held = set(split["val"]) | set(split["test"])
        paths = [p for p in paths if p.name not in held]
    names = ["side_per_width", "centre_dx_per_width", "centre_dy_per_width", "box_area_share"]
    out: dict = {"n_photos": len(paths)}
    for where, fn in (("on_chip", on_chip), ("in_canvas", in_canvas)):
        rows = [r for r in thread_map(fn, paths) if r is not None]
        arr = np.array(rows)
        res: dict = {"n_detected": len(rows)}
        print(f"\n{where}: {len(rows)} of {len(paths)} chips have a detected face")
        print(f"{'quantity':<22}{'q10':>8}{'q25':>8}{'median':>8}{'q75':>8}{'q90':>8}")
        for k, n in enumerate(names):
            q = [round(float(v), 4) for v in np.percentile(arr[:, k], [10, 25, 50, 75, 90])]
            res[n] = dict(zip(["q10", "q25", "median", "q75", "q90"], q, strict=True))
            print(f"{n:<22}" + "".join(f"{v:>8.3f}" for v in q))
        out[where] = res
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
