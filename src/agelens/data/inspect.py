"""What is in a dataset folder: format, classes, splits, image sizes and every bad file.

Kept apart from the CLI so the same facts can be shown in a notebook or a report, and
so ``agelens data inspect --json`` and the table view can never disagree.
"""

from __future__ import annotations

import os
import time
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
    )


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
