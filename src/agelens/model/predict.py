"""Predict age groups for photos given as files, folders or globs."""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agelens.data.bins import AgeBins
from agelens.data.images import (
    Problem,
    animation_note,
    read_photo,
    resize_for_model,
    thread_map,
)
from agelens.data.sources import scan_images, unresolvable_link
from agelens.model.age_model import AgeModel

# The shipped model learned from faces of 64 px and up; below half that a prediction is a guess.
MIN_FACE_PX = 32


def quality_notes(img: np.ndarray, face_found: bool | None = None, path: Path | None = None) -> list[str]:
    """Why a prediction on this (cropped) photo means little, or on what, if it needs saying: too
    small, blank, or one frame of an animation (``path``, the file it came from).

    ``face_found=False`` (the detector looked and found none) says "image", not "face": after
    "no face found", "face only 1 px" would contradict the line before it. Blank is judged per
    colour channel: a flat blue has no face to judge either, though its channels differ.
    """
    notes = [note] if path is not None and (note := animation_note(path)) else []
    side = int(min(img.shape[:2]))
    if side < MIN_FACE_PX:
        what = "image" if face_found is False else "face"
        notes.append(f"{what} only {side} px: unreliable below {MIN_FACE_PX}")
    spread = np.ptp(img.reshape(-1, img.shape[-1] if img.ndim == 3 else 1), axis=0)
    if int(spread.max()) < 8:  # e.g. a fully transparent PNG, composited on white
        notes.append("a single flat colour: there is no face to judge")
    return notes


def collect_inputs(specs: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Expand files, folders (recursively, images only) and glob patterns, in a stable order.

    Folders are read as the dataset loader reads them (:func:`agelens.data.sources.scan_images`):
    hidden files and hidden sub-folders are skipped, and a link that leads nowhere is a problem
    naming the file, not a silent gap. A file named outright is taken as given, hidden or not.
    """
    found: list[Path] = []
    problems: list[Problem] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            images, bad = scan_images(p, recursive=True)
            found += images
            problems += bad
        elif p.exists():
            found.append(p)
        elif p.is_symlink():
            problems.append(Problem(p, _link_problem(p)))
        elif any(c in str(spec) for c in "*?["):
            hits = sorted(Path(h) for h in glob.glob(str(spec), recursive=True))
            files = [h for h in hits if h.is_file()]
            links = [h for h in hits if not h.exists() and h.is_symlink()]
            found += files
            problems += [Problem(h, _link_problem(h)) for h in links]
            if not files and not links:
                problems.append(Problem(p, "pattern matched no files"))
        else:
            problems.append(Problem(p, "no such file or folder"))
    seen: set[Path] = set()
    unique = [f for f in found if not (f in seen or seen.add(f))]
    return unique, problems


def _link_problem(p: Path) -> str:
    """The one-line reason a link that ``exists()`` calls missing cannot be read."""
    return unresolvable_link(p) or "link cannot be resolved"


@dataclass
class PreparedImages:
    """Model-sized inputs plus what the user gave, for captions and overlays."""

    paths: list[Path]
    originals: list[np.ndarray]
    crops: list[np.ndarray]
    batch: np.ndarray
    face_found: list[bool | None] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def prepare(paths: list[Path], size: int, detect: bool = False, keep_photos: bool = True) -> PreparedImages:
    """Decode, optionally crop the largest face, and resize; bad files become problems.

    ``keep_photos=False`` leaves ``originals`` and ``crops`` empty: scoring a folder of
    thousands of photos needs only the model-sized batch, not every decoded photo in memory.
    """

    def one(p: Path):
        img = read_photo(p)
        if isinstance(img, Problem):
            return img
        found: bool | None = None
        crop = img
        if detect:
            from agelens.model.faces import crop_largest_face

            crop, box = crop_largest_face(img)
            found = box is not None
        small = resize_for_model(crop, size)
        return (img, crop, small, found) if keep_photos else (None, None, small, found)

    results = thread_map(one, paths)
    ok = [(p, r) for p, r in zip(paths, results, strict=True) if not isinstance(r, Problem)]
    batch = np.stack([r[2] for _, r in ok]) if ok else np.zeros((0, size, size, 3), np.uint8)
    return PreparedImages(
        [p for p, _ in ok],
        [r[0] for _, r in ok] if keep_photos else [],
        [r[1] for _, r in ok] if keep_photos else [],
        batch,
        [r[3] for _, r in ok],
        [r for r in results if isinstance(r, Problem)],
    )


def predict_images(
    model: AgeModel, prepared: PreparedImages, flip: bool | None = None, fast: bool = False
) -> list[dict]:
    """One result dict per image: predicted class, probabilities, and age where the model has it.

    ``flip`` averages each image with its mirror (``None``: the model's metadata decides);
    ``fast`` runs the same weights through TensorFlow Lite (see :meth:`AgeModel.predict`).
    Numbers are kept unrounded, so a printed line rounds once, as explain's does (rounding to
    0.1 y first turned 56.54 into 56.5 and then "~56 y", where explain said "~57 y");
    :func:`rounded_row` rounds them for JSON.
    """
    if not len(prepared.batch):
        return []
    out = model.predict(prepared.batch, flip=flip, fast=fast)
    rows = []
    for i, path in enumerate(prepared.paths):
        probs = out["probabilities"][i]
        row = {
            "file": str(path),
            "predicted": model.class_names[int(probs.argmax())],
            "probabilities": {n: float(p) for n, p in zip(model.class_names, probs, strict=True)},
        }
        if "age" in out:
            row["age"] = float(out["age"][i])
        if prepared.face_found[i] is not None:
            row["face_found"] = prepared.face_found[i]
        row["face_px"] = int(min(prepared.crops[i].shape[:2]))  # the side the model's input came from
        if notes := quality_notes(prepared.crops[i], prepared.face_found[i], path):
            row["notes"] = notes
        rows.append(row)
    return rows


def rounded_row(row: dict, bins: AgeBins | None = None) -> dict:
    """``row`` as ``predict --json`` prints it: probabilities to 4 decimals, the age to 0.1 y.

    More digits would be noise (the TFLite and Keras engines differ in the 5th), and short
    numbers keep JSON lines readable. ``bins``: those of a model whose groups are its age cut
    there (``groups_from_age``); an age whose 0.1 y would cross into another group than the
    row's (29.96 y, "young" below 30) is kept unrounded, so the JSON never contradicts itself.
    """
    out = dict(row, probabilities={k: round(v, 4) for k, v in row["probabilities"].items()})
    if "age" in row:
        age = float(row["age"])
        short = round(age, 1) + 0.0  # + 0.0: -0.04 y is 0.0, not -0.0
        span = group_span(bins, row.get("predicted"), age)
        out["age"] = age if span is not None and not span[0] <= short < span[1] else short
    return out


def group_span(bins: AgeBins | None, group: str | None, age: float) -> tuple[float, float] | None:
    """The ages ``[lower, upper)`` of age group ``group`` of ``bins``, where ``age`` lies in them
    (``None`` otherwise: no bins, another group's name, or an age outside its own group, as a
    flipped view's averaged age may be)."""
    if bins is None or group not in bins.names:
        return None
    i = list(bins.names).index(group)
    edges = (-math.inf, *bins.edges, math.inf)
    lower, upper = edges[i], edges[i + 1]
    return (lower, upper) if lower <= age < upper else None


def shown_age(age: float, bins: AgeBins | None = None, group: str | None = None) -> str:
    """An age as a line prints it beside its group: whole years ("29"), or, where those would fall
    in another group of ``bins`` than ``group`` (29.96 y rounds to 30, but is "young" below 30),
    one decimal cut towards the group ("29.9"): the group and the age printed beside it agree.

    For a model whose groups are its age cut by ``bins`` (``groups_from_age``); without ``bins``
    (a classifier with a separate age head, whose group may differ from its age) whole years.
    """
    whole = round(age) + 0  # an int: never "-0"
    span = group_span(bins, group, age)
    if span is None or span[0] <= whole < span[1]:
        return str(whole)
    lower, upper = span
    tenths = round(age, 1)
    if not lower <= tenths < upper:  # cut towards the group: it holds the age, so the cut stays in
        tenths = math.floor(age * 10) / 10 if tenths >= upper else math.ceil(age * 10) / 10
    return f"{tenths + 0.0:.1f}"
