"""Contact sheet of synthetic faces: one row per age group plus a row with cue masks overlaid.

Usage: python benchmarks/synth_grid.py [out.png] [--size 96] [--scale 1] [--full-colour]
With no arguments it regenerates docs/images/synthetic_faces.png (deterministic: seed 0).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from PIL import Image

from agelens.data.synthetic import generate


def contact_sheet(size: int = 96, cols: int = 8, seed: int = 0, scale: int = 2) -> np.ndarray:
    """RGB grid: rows young / middle-aged / old, then old-and-middle faces with cue masks in red."""
    faces = generate(12 * cols, size, seed)
    rows = []
    for cls in range(3):
        rows.append(faces.images[np.flatnonzero(faces.labels == cls)[:cols]])
    aged = np.flatnonzero(faces.labels >= 1)[:cols]
    img = faces.images[aged].astype(np.float32)
    m = faces.cue_masks[aged][..., None]
    rows.append((img * (1 - 0.7 * m) + np.array([255, 0, 0], np.float32) * 0.7 * m).astype(np.uint8))
    pad = 2
    sheet = np.full((4 * (size + pad) + pad, cols * (size + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, face in enumerate(row):
            y, x = pad + r * (size + pad), pad + c * (size + pad)
            sheet[y : y + size, x : x + size] = face
    return cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="docs/images/synthetic_faces.png")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--full-colour", action="store_true", help="skip the 256-colour palette (bigger file)")
    args = ap.parse_args()
    sheet = contact_sheet(args.size, scale=args.scale)
    img = Image.fromarray(sheet)
    if not args.full_colour:  # pixel noise makes a true-colour PNG ~4x larger; README images stay small
        img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} {sheet.shape[1]}x{sheet.shape[0]}")


if __name__ == "__main__":
    main()
