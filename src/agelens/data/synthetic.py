"""Procedural face-like images whose age group is visible through *localised* cues.

Why synthetic faces: the real dataset (UTKFace) has no ground truth for *where* the
age evidence is, so saliency maps cannot be scored against it. Here every image comes
with masks of where its age cues were drawn (wrinkles, grey hair, eye bags, jowls),
a region map from the generator's own geometry, and, for the "Clever Hans" demo, the
mask of an optional corner stamp that leaks the label.

Design rules the tests check:
* Age only drives the cues; skin tone, pose, lighting, background, expression and
  noise are drawn from a separate random stream that never sees the age.
* Integer ages <= 29 are cue-free, so a young face's cue mask is exactly zero.
* Image ``i`` depends only on ``(seed, i)``: a prefix of a bigger set is identical
  to a smaller set, and turning the shortcut on changes nothing but the stamp.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from agelens.data._synth_render import CUE_SCHEDULE, REGION_NAMES, Cues, Person, render, sample_person
from agelens.data.bins import AgeBins

__all__ = [
    "REGION_NAMES",
    "CUE_SCHEDULE",
    "SynthFaces",
    "MaskSet",
    "generate",
    "age_series",
    "write_dataset",
    "load_masks",
]

MIN_SIZE, MAX_SIZE = 32, 256
AGE_RANGE = (1, 90)
VERSION = 1  # bump whenever the same (seed, index) would render different pixels
_STAMP_COLOURS = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 128, 0), (0, 64, 255))
_PERSON, _AGE = 0, 1  # random streams per image: nuisance vs age/cue jitter/stamp


@dataclass
class SynthFaces:
    """A batch of synthetic faces with their ground-truth masks (all arrays indexed by image)."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    ages: np.ndarray  # (N,) float32, whole years
    labels: np.ndarray  # (N,) int64 class index from AgeBins.index
    cue_masks: np.ndarray  # (N, S, S) float32 in [0, 1]; union of drawn age cues
    region_masks: np.ndarray  # (N, S, S) uint8 index into REGION_NAMES
    stamp_masks: np.ndarray  # (N, S, S) float32; 1 where a shortcut stamp was drawn
    class_names: tuple[str, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)  # nuisance values, for checks

    def __len__(self) -> int:
        return len(self.images)


class MaskSet(NamedTuple):
    """Masks of one written image, as read back by :func:`load_masks`."""

    cue: np.ndarray  # (S, S) float32 in [0, 1]
    region: np.ndarray  # (S, S) uint8
    stamp: np.ndarray  # (S, S) float32 in {0, 1}


@lru_cache(maxsize=32)
def _ages_by_class(bins: AgeBins) -> tuple[np.ndarray, ...]:
    ages = np.arange(AGE_RANGE[0], AGE_RANGE[1] + 1)
    idx = bins.index(ages)
    return tuple(ages[idx == c] for c in range(bins.num_classes))


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def _sample_age(rng: np.random.Generator, bins: AgeBins, class_balance: bool) -> int:
    if not class_balance:
        return int(rng.integers(AGE_RANGE[0], AGE_RANGE[1] + 1))
    groups = [g for g in _ages_by_class(bins) if len(g)]
    g = groups[int(rng.integers(len(groups)))]
    return int(g[int(rng.integers(len(g)))])


def _stamp(size: int, cls: int, shortcut_class: int | None) -> tuple[int, int, int, tuple[int, int, int]]:
    """(x, y, side, colour) of the shortcut stamp of class ``cls``: top-left corner and square side."""
    side = max(3, round(0.08 * size))
    m = max(1, round(0.03 * size))
    slot = 0 if shortcut_class is not None else cls
    corner = slot % 4
    x = m if corner in (0, 2) else size - m - side
    y = m if corner in (0, 1) else size - m - side
    return x, y, side, _STAMP_COLOURS[slot % len(_STAMP_COLOURS)]


def _check(n: int, size: int, seed: int, shortcut: float, shortcut_class: int | None, bins: AgeBins) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= shortcut <= 1.0:
        raise ValueError(f"shortcut is a probability in [0, 1], got {shortcut}")
    if shortcut_class is not None and not 0 <= shortcut_class < bins.num_classes:
        raise ValueError(f"shortcut_class must be in [0, {bins.num_classes}), got {shortcut_class}")


def _one(
    index: int,
    size: int,
    seed: int,
    bins: AgeBins,
    class_balance: bool,
    shortcut: float,
    shortcut_class: int | None,
    age: int | None = None,
) -> tuple:
    """Everything about image ``index``; depends only on its arguments (no shared state)."""
    person = sample_person(_rng(seed, index, _PERSON))
    arng = _rng(seed, index, _AGE)
    sampled = _sample_age(arng, bins, class_balance)
    age = sampled if age is None else age
    cues = Cues.from_age(age, arng.uniform(-1, 1, len(CUE_SCHEDULE)))
    stamp_draw = arng.random()  # drawn last and always, so the face never depends on the shortcut
    img, cue, region = render(person, age, cues, size)
    label = int(bins.index(age))
    stamp = np.zeros((size, size), np.float32)
    if shortcut > 0 and (shortcut_class is None or label == shortcut_class) and stamp_draw < shortcut:
        x, y, side, colour = _stamp(size, label, shortcut_class)
        img[y : y + side, x : x + side] = 0
        img[y + 1 : y + side - 1, x + 1 : x + side - 1] = colour
        stamp[y : y + side, x : x + side] = 1.0
        cue[y : y + side, x : x + side] = 0.0
    return img, float(age), label, cue, region, stamp, person


def _stack(rows: list[tuple], size: int, bins: AgeBins) -> SynthFaces:
    n = len(rows)
    persons: list[Person] = [r[6] for r in rows]
    lum = np.array((0.3, 0.59, 0.11), np.float32)
    params = {
        "skin_luminance": np.array([p.skin @ lum for p in persons], np.float32),
        "face_x": np.array([0.5 + p.dx for p in persons], np.float32),
        "face_y": np.array([0.5 + p.dy for p in persons], np.float32),
        "face_scale": np.array([p.scale for p in persons], np.float32),
        "tilt_deg": np.array([p.tilt for p in persons], np.float32),
        "light_amp": np.array([p.light_amp for p in persons], np.float32),
        "mouth_curve": np.array([p.mouth_curve for p in persons], np.float32),
        "gender": np.array([p.gender for p in persons], np.int64),
        "race": np.array([p.race for p in persons], np.int64),
    }

    def arr(k: int, shape: tuple, dtype) -> np.ndarray:
        return np.stack([r[k] for r in rows]) if n else np.zeros((0, *shape), dtype)

    return SynthFaces(
        images=arr(0, (size, size, 3), np.uint8),
        ages=np.array([r[1] for r in rows], np.float32),
        labels=np.array([r[2] for r in rows], np.int64),
        cue_masks=arr(3, (size, size), np.float32),
        region_masks=arr(4, (size, size), np.uint8),
        stamp_masks=arr(5, (size, size), np.float32),
        class_names=tuple(bins.names),
        params=params,
    )


def generate(
    n: int,
    size: int = 96,
    seed: int = 0,
    *,
    bins: AgeBins = AgeBins(),
    class_balance: bool = True,
    shortcut: float = 0.0,
    shortcut_class: int | None = None,
    start: int = 0,
) -> SynthFaces:
    """Generate images ``start .. start+n-1`` of the stream defined by ``seed``.

    ``class_balance`` picks the group uniformly, then an integer age uniformly inside it;
    otherwise ages are uniform over 1..90. ``shortcut`` is the probability that an image
    of ``shortcut_class`` (every class, each with its own stamp colour and corner, if None)
    gets a high-contrast corner stamp; other classes never get it.
    """
    _check(n, size, seed, shortcut, shortcut_class, bins)
    rows = [
        _one(i, size, seed, bins, class_balance, shortcut, shortcut_class) for i in range(start, start + n)
    ]
    return _stack(rows, size, bins)


def age_series(
    ages: Sequence[int], index: int = 0, size: int = 96, seed: int = 0, *, bins: AgeBins = AgeBins()
) -> SynthFaces:
    """The same person (image ``index`` of ``seed``) rendered at each of ``ages`` — for figures."""
    _check(len(ages), size, seed, 0.0, None, bins)
    rows = [_one(index, size, seed, bins, True, 0.0, None, age=int(a)) for a in ages]
    return _stack(rows, size, bins)


def _file_name(age: float, person: Person, seed: int, index: int) -> str:
    return f"{int(age)}_{person.gender}_{person.race}_{seed}{index:07d}.png"


def _encode(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"PNG encoding failed for {path.name}")
    path.write_bytes(buf.tobytes())


def write_dataset(
    out: str | Path,
    n: int,
    size: int = 96,
    seed: int = 0,
    *,
    shortcut: float = 0.0,
    shortcut_class: int | None = None,
    bins: AgeBins = AgeBins(),
    chunk: int = 256,
) -> dict:
    """Write a UTKFace-style folder of PNGs plus ``masks.npz`` and ``synth.json``, atomically.

    Files are named ``{age}_{gender}_{race}_{seed}{index:07d}.png`` so the UTKFace loader
    reads the age from the first field. Everything is written to a hidden temporary folder
    next to ``out`` and renamed into place, so a crash never leaves a half-written dataset.
    """
    t0 = time.perf_counter()
    out = Path(out)
    _check(n, size, seed, shortcut, shortcut_class, bins)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"refusing to write synthetic data into non-empty {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        names, ages, labels = [], np.zeros(n, np.float32), np.zeros(n, np.int64)
        cue = np.zeros((n, size, size), np.uint8)
        region = np.zeros((n, size, size), np.uint8)
        stamp = np.zeros((n, size, size), np.uint8)
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            jobs = []
            for i in range(n):
                img, age, label, c, r, s, person = _one(i, size, seed, bins, True, shortcut, shortcut_class)
                names.append(_file_name(age, person, seed, i))
                ages[i], labels[i] = age, label
                cue[i] = np.rint(c * 255)
                region[i], stamp[i] = r, np.rint(s * 255)
                jobs.append(pool.submit(_encode, tmp / names[-1], img))
                if len(jobs) >= chunk:  # bound the number of images waiting in memory
                    for j in jobs:
                        j.result()
                    jobs = []
            for j in jobs:
                j.result()
        np.savez_compressed(
            tmp / "masks.npz",
            files=np.array(names),
            ages=ages,
            labels=labels,
            cue=cue,
            region=region,
            stamp=stamp,
        )
        counts = {name: int((labels == k).sum()) for k, name in enumerate(bins.names)}
        settings = {
            "generator": "agelens.data.synthetic",
            "version": VERSION,
            "n": n,
            "size": size,
            "seed": seed,
            "class_balance": True,
            "shortcut": shortcut,
            "shortcut_class": shortcut_class,
            "bins": bins.to_dict(),
            "region_names": list(REGION_NAMES),
            "counts": counts,
            "masks": "masks.npz: files, ages, labels, cue/region/stamp (N,S,S) uint8; cue, stamp x255",
        }
        (tmp / "synth.json").write_text(json.dumps(settings, indent=2))
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace a directory everywhere
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "n": n, "size": size, "counts": counts, "seconds": time.perf_counter() - t0}


def load_masks(folder: str | Path) -> dict[str, MaskSet]:
    """Read ``masks.npz`` of a written dataset: file name -> (cue, region, stamp) masks."""
    with np.load(Path(folder) / "masks.npz") as z:
        files, cue, region, stamp = z["files"], z["cue"], z["region"], z["stamp"]
    scale = np.float32(1 / 255)
    return {str(f): MaskSet(cue[i] * scale, region[i], stamp[i] * scale) for i, f in enumerate(files)}
