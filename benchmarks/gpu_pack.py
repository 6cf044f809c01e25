"""Pack the training and validation photos for a GPU run into one .npz under 64 MiB.

Why: the device machine receives only the working tree (at most 64 MiB) and has no
``../shared``. The held-out test photos are left out entirely, so the GPU machine never
sees them; validation photos travel at 64 px (selection happens at the resolution the
held-out split is scored at); training photos travel as the 200 px original shrunk to
``--hires-size`` where ``utkface-200`` has one, else as the 64 px JPEG bytes unchanged.

    python benchmarks/gpu_pack.py ../shared/data benchmarks/results/shipped_split.json .devdata/gpu/utk.npz
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", help="folder holding utkface-64/ and utkface-200/")
    ap.add_argument("split", help="held-out names (test/val), e.g. benchmarks/results/shipped_split.json")
    ap.add_argument("out")
    ap.add_argument("--hires-size", type=int, default=112)
    ap.add_argument("--quality", type=int, default=88)
    a = ap.parse_args()
    split = json.loads(Path(a.split).read_text())
    test, val = set(split["test"]), set(split["val"])
    lo, hi = Path(a.data) / "utkface-64", Path(a.data) / "utkface-200"
    names = sorted(p.name for p in lo.iterdir() if p.suffix.lower() == ".jpg" and p.name not in test)

    def one(name: str) -> tuple[bytes, int]:
        if name not in val and (hi / name).exists():
            img = cv2.imread(str(hi / name), cv2.IMREAD_COLOR)
            if img is not None:
                img = cv2.resize(img, (a.hires_size, a.hires_size), interpolation=cv2.INTER_AREA)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, a.quality])
                if ok:
                    return buf.tobytes(), 1
        return (lo / name).read_bytes(), 0

    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(one, names))
    blobs = [b for b, _ in got]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        a.out,
        data=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        names=np.array(names, dtype="S"),
        ages=np.array([int(n.split("_")[0]) for n in names], dtype=np.int32),
        part=np.array([1 if n in val else 0 for n in names], dtype=np.int8),
        hires=np.array([h for _, h in got], dtype=np.int8),
    )
    print(
        f"{len(names)} photos ({sum(h for _, h in got)} hires, {sum(n in val for n in names)} val), "
        f"{offsets[-1] / 2**20:.1f} MiB -> {a.out}"
    )


if __name__ == "__main__":
    main()
