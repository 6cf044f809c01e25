"""What is in a dataset folder: format, classes, splits, image sizes and every bad file.

Kept apart from the CLI so the same facts can be shown in a notebook or a report, and
so ``agelens data inspect --json`` and the table view can never disagree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agelens.data.bins import AgeBins
from agelens.data.images import Problem
from agelens.data.sources import _is_image, agelens_output_files, load_dataset
from agelens.data.split import SPLITS


@dataclass
class InspectReport:
    """The facts ``agelens data inspect`` prints; ``to_dict()`` is its ``--json`` output."""

    path: Path
    format: str
    root: Path
    class_names: list[str]
    counts: dict[str, int]
    split_counts: dict[str, dict[str, int]]
    size_stats: dict[str, dict[str, float]] | None
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0
    ignored: list[Path] = field(default_factory=list)  # files in the folder that are no images (notes.txt)
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict)  # each usable image's width, height

    @property
    def n_usable(self) -> int:
        return sum(self.counts.values())

    def display_path(self, path: Path | str) -> str:
        """``path`` relative to the dataset root when it lies inside it (shorter, still unique)."""
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "root": str(self.root),
            "class_names": list(self.class_names),
            "n_usable": self.n_usable,
            "counts": dict(self.counts),
            "split_seed": self.seed,
            "split_counts": {k: dict(v) for k, v in self.split_counts.items()},
            "size_stats": self.size_stats,
            "problems": [{"path": str(p.path), "reason": p.reason} for p in self.problems],
            "n_problems": len(self.problems),
            "ignored_files": [str(p) for p in self.ignored],
            "n_ignored": len(self.ignored),
            "class_gaps": class_gaps(self.split_counts),
            "too_small": [str(p) for p, _ in too_small(self.sizes)],
            "not_face_crops": [str(p) for p, _ in wild_photos(self.sizes)],
            "seconds": round(self.seconds, 3),
        }


def inspect_dataset(
    path: str | Path,
    format: str = "auto",
    bins: AgeBins | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> InspectReport:
    """Load ``path`` with every image checked, and summarise it.

    Raises :class:`agelens.data.sources.DatasetError` when the path is not a dataset at all.
    """
    t0 = time.perf_counter()
    # ``train`` splits the files as listed (decoding each image once, when it loads it), so a
    # broken file takes its place in a split and is then dropped: count the usable ones of that split.
    listed = load_dataset(path, format=format, bins=bins, check_images=False)
    ds = listed.checked(workers)
    usable = {r.path for r in ds.records}
    parts = listed.split(seed=seed) if len(listed) else (listed, listed.subset([]), listed.subset([]))
    parts = tuple(p.subset([i for i, r in enumerate(p.records) if r.path in usable]) for p in parts)
    stats = None
    if ds.sizes is not None and len(ds.sizes):
        stats = {
            axis: {
                "min": int(ds.sizes[:, i].min()),
                "median": float(np.median(ds.sizes[:, i])),
                "max": int(ds.sizes[:, i].max()),
            }
            for i, axis in enumerate(("width", "height"))
        }
    return InspectReport(
        path=Path(path),
        format=ds.format,
        root=ds.root,
        class_names=list(ds.class_names),
        counts=ds.counts(),
        split_counts={name: part.counts() for name, part in zip(SPLITS, parts, strict=True)},
        size_stats=stats,
        problems=list(ds.problems),
        seconds=time.perf_counter() - t0,
        seed=seed,
        ignored=non_image_files(Path(path), ds.format),
        sizes=_sizes(ds),
    )


def _sizes(ds) -> dict[Path, tuple[int, int]]:
    """Each checked image's (width, height), by path."""
    if ds.sizes is None:
        return {}
    return {r.path: (int(w), int(h)) for r, (w, h) in zip(ds.records, ds.sizes, strict=True)}


def non_image_files(folder: Path, format: str = "") -> list[Path]:
    """Files in (or under) ``folder`` that are no images, so no dataset reads them (``notes.txt``).

    Skipped as the image scan skips them (:func:`agelens.data.sources.scan_images`): hidden files
    and folders, and agelens output folders. The labels file of a CSV dataset is read, not ignored.
    """
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and agelens_output_files(Path(top, d)) is None
        )
        ours = agelens_output_files(Path(top)) or set()
        for name in files:
            p = Path(top, name)
            if name.startswith(".") or name in ours or _is_image(p):
                continue
            if format == "csv" and p.suffix.lower() == ".csv":
                continue
            found.append(p)
    return sorted(found)


PARTS = {"train": "training", "val": "validation", "test": "test"}
"""How a split part is named in a sentence."""


def split_counts_of(class_names: list[str], labels: Sequence[Sequence[int]]) -> dict[str, dict[str, int]]:
    """Photos per class in each part, from the labels of the photos each part loaded (train's view)."""
    counts = (np.bincount(np.asarray(ys, int), minlength=len(class_names)) for ys in labels)
    return {
        part: {name: int(n[i]) for i, name in enumerate(class_names)}
        for part, n in zip(SPLITS, counts, strict=True)
    }


def loaded_counts(class_names: list[str], labels: Sequence[Sequence[int]]) -> dict[str, int]:
    """Usable photos per class over every part: what ``train`` should record as ``data.counts``.

    Why: the listed files include any that fail to decode (a truncated JPEG, an empty file), so
    counting the listing said 311 where 308 photos were trained, validated and tested on.
    """
    per_part = split_counts_of(class_names, labels)
    return {name: sum(part[name] for part in per_part.values()) for name in class_names}


def too_few_classes(split_counts: dict[str, dict[str, int]]) -> str:
    """Why ``train`` cannot train on this split ("" when it can): fewer than two classes have
    training photos.

    Why refuse: a softmax over one class (or a head whose other classes never appear) always
    answers that class; Keras trains it without complaint and the test split scores 1.000.
    """
    train = split_counts.get("train", {})
    present = [name for name, n in train.items() if n > 0]
    if len(present) >= 2:
        return ""
    if not train:
        return "no classes to train on"
    have = f"only {present[0]} has training photos" if present else "no class has training photos"
    return (
        f"{have} ({', '.join(f'{k} {n}' for k, n in train.items())}); a classifier needs training photos "
        "of at least two classes"
    )


def class_gaps(split_counts: dict[str, dict[str, int]]) -> str:
    """One phrase naming the classes with no photos, or none in a part of the split ("" when every
    class has photos in every part).

    Why: a class without training photos is never predicted, one without validation or test
    photos is never scored; both used to pass with a 0 in a table and no word.
    """
    names = list(split_counts.get("train", {}))
    total = {name: sum(part.get(name, 0) for part in split_counts.values()) for name in names}
    empty = [name for name in names if total[name] == 0]
    said = [f"no photos of {', '.join(empty)}"] if empty else []
    for name in names:
        missing = [PARTS[k] for k, part in split_counts.items() if total[name] and not part.get(name)]
        if missing:
            said.append(f"no {name} photos in the {' or '.join(missing)} part")
    return "; ".join(said)


def too_small(sizes: dict[Path, tuple[int, int]]) -> list[tuple[Path, tuple[int, int]]]:
    """Images whose short side is below what predict and explain call unreliable
    (:data:`agelens.model.predict.MIN_FACE_PX`), with their width and height."""
    from agelens.model.predict import MIN_FACE_PX

    return [(p, (w, h)) for p, (w, h) in sizes.items() if min(w, h) < MIN_FACE_PX]


TRAIN_SIZE = 64
"""``agelens train``'s default ``--size``: the input the not-face-crop rule measures against."""


def wild_photos(sizes: dict[Path, tuple[int, int]]) -> list[tuple[Path, tuple[int, int]]]:
    """Images that look like photos in the wild, not face crops, by the rule ``evaluate`` warns
    with (:func:`agelens.model.faces.not_face_crops`), against train's default input size."""
    if not sizes:
        return []
    from agelens.model.faces import not_face_crops

    return not_face_crops(list(sizes), TRAIN_SIZE, sizes)


SHOWN = 3
"""How many images a summary line names; the rest are counted."""


def named(found: list[tuple[Path, tuple[int, int]]], display: Callable[[Path], str] = str) -> str:
    """``a.jpg 8x8, b.jpg 600x300 and 2 more``: the first few with their size."""
    shown = ", ".join(f"{display(p)} {w}x{h}" for p, (w, h) in found[:SHOWN])
    return shown + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
