"""Measure how UTKFace frames a face relative to the box OpenCV's detector draws on it.

The model is trained on UTKFace's aligned chips, so a photo in the wild should be
cropped the way those chips were. This runs the same detector agelens uses on the
training-split 200 px chips and reports, in units of the detected box's width, the
chip's side and the offset of the chip's centre from the box's centre (medians and
quartiles), plus the share of the chip the box covers (for the "already a crop"
rule). The constants in ``agelens.model.faces`` come from this output.

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

from agelens.data.images import load_image, thread_map  # noqa: E402
from agelens.model.faces import detect_faces  # noqa: E402


def measure(path: Path) -> tuple[float, float, float, float] | None:
    """(side / w, centre dx / w, centre dy / w, box area share) for one chip, or None."""
    img = load_image(path)
    boxes = detect_faces(img)
    if not boxes:
        return None
    x, y, w, h = boxes[0]
    H, W = img.shape[:2]
    return (max(H, W) / w, (W / 2 - (x + w / 2)) / w, (H / 2 - (y + h / 2)) / w, w * h / (H * W))


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
    rows = [r for r in thread_map(measure, paths) if r is not None]
    arr = np.array(rows)
    names = ["side_per_width", "centre_dx_per_width", "centre_dy_per_width", "box_area_share"]
    out = {"n_photos": len(paths), "n_detected": len(rows)}
    print(f"{len(rows)} of {len(paths)} chips have a detected face")
    print(f"{'quantity':<22}{'q10':>8}{'q25':>8}{'median':>8}{'q75':>8}{'q90':>8}")
    for i, n in enumerate(names):
        q = np.percentile(arr[:, i], [10, 25, 50, 75, 90])
        out[n] = dict(
            zip(["q10", "q25", "median", "q75", "q90"], [round(float(v), 4) for v in q], strict=True)
        )
        print(f"{n:<22}" + "".join(f"{v:>8.3f}" for v in q))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
