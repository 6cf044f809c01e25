"""Pack a UTKFace folder's JPEG bytes into one .npz (for carrying to a GPU machine).

The archive stays out of git (UTKFace license): it is written to an ignored folder.

    python benchmarks/pack_utkface.py ../shared/data/utkface-64 .devdata/utk64.npz
"""

import argparse
from pathlib import Path

import numpy as np


def main(src: str, dst: str) -> None:
    files = sorted(
        p for p in Path(src).iterdir() if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    blobs = [p.read_bytes() for p in files]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        dst,
        data=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        names=np.array([p.name for p in files]),
    )
    print(f"packed {len(files)} files, {offsets[-1] / 1e6:.1f} MB -> {dst}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a folder of UTKFace photos")
    ap.add_argument("dst", help="the .npz to write (keep it in an ignored folder)")
    a = ap.parse_args()
    main(a.src, a.dst)
