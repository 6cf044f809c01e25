"""The result of :func:`agelens.explain.explain`, and writing it to disk safely.

Output directories are written all-or-nothing: files go to a temporary sibling directory
first, which is renamed into place only when everything (manifest last) was written; on
any error it is removed, so a crash never leaves a half-written output. An existing
non-empty directory is refused unless ``force=True``; with force, our files are moved in
*over* it (same-named files replaced, the files an earlier explanation's manifest lists
removed, other files left alone): deleting a directory the user pointed us at is never
safe (think ``--out ~``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agelens.atomic import move_in
from agelens.data.bins import AgeBins
from agelens.explain.overlay import (
    DEFAULT_ALPHA,
    DEFAULT_CMAP,
    caption,
    check_cmap,
    overlay,
    panel_figure,
    save_figure,
    save_png,
)

MANIFEST = "manifest.json"
MAP_MAX_SIDE = 1024
"""Longest side of a saved ``_map.npy``. A map carries no more detail than the model's input
(a few hundred pixels at most), so a 4000x3000 phone photo's map is stored at 1024x768:
3 MB instead of 48 MB per method, with the scale in the manifest (``map_size``)."""


@dataclass
class Explanation:
    """Maps for N images, at each image's own size, with the model's predictions.

    ``maps`` is an ``(N, H, W)`` float32 array when all images share a size, else a list of
    ``(H_i, W_i)`` arrays, values in [0, 1] (per-image min-max; 0 outside the centred
    square the model saw). ``images`` are the RGB uint8 photos as given (the face crops with
    ``detect=True``); ``faces`` then says per photo whether a face was found, and where
    (``face_found``, ``face_box_xywh`` in the photo, ``photo_size``), as the CLI's manifest does.
    ``stand_ins`` lists the indices of ``images`` that :meth:`load` could not get back (a photo
    file gone or changed since): grey squares of the right size, whose maps and predictions are
    real but whose pixels are not, so the metrics warn rather than score them.

    ``a == b`` compares by value, as for any dataclass: every field equal, arrays by shape,
    dtype and every element (:func:`numpy.array_equal`; ``maps`` stacked or as a list alike).
    It is exact: a loaded explanation's probabilities were rounded to 6 decimals (ages to 2)
    in the manifest, so it equals another load of the same folder, not the explanation saved
    (compare those fields with :func:`numpy.allclose`). Explanations are mutable, so unhashable.
    """

    maps: np.ndarray | list[np.ndarray]
    probabilities: np.ndarray
    class_names: list[str]
    layer: str
    method: str
    target: str
    images: list[np.ndarray]
    ages: np.ndarray | None = None
    sources: list[str] = field(default_factory=list)
    model_path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    faces: list[dict[str, Any]] | None = None
    stand_ins: list[int] = field(default_factory=list)
    model_read_as: dict[str, Any] | None = None

    def __repr__(self) -> str:
        """One line for a notebook or ``print``: what ran, on how many images of what shape, and what
        the model said; never the arrays themselves (the dataclass default printed every pixel).

        ``Explanation(method='gradcam', layer='last_conv', target='old', images=2, maps=2x(48, 64),
        class_names=['young', 'old'], predicted=['old', 'young'], ages=no)``
        """
        shapes = [tuple(np.shape(m)) for m in self.maps]
        maps = f"{len(shapes)}x{shapes[0]}" if len(set(shapes)) == 1 else _first(shapes, 3)
        names = [str(n) for n in self.class_names]
        probs = np.asarray(self.probabilities)
        picked = [int(i) for i in probs.argmax(axis=-1).reshape(-1)] if probs.ndim == 2 and probs.size else []
        predicted = [names[i] if i < len(names) else i for i in picked]
        extra = (", signed=True" if self.signed else "") + (
            f", stand_ins={self.stand_ins}" if self.stand_ins else ""
        )
        return (
            f"Explanation(method={self.method!r}, layer={self.layer!r}, target={self.target!r}, "
            f"images={len(self.images)}, maps={maps}, class_names={_first(names, 8)}, "
            f"predicted={_first(predicted, 5)}, ages={'yes' if self.ages is not None else 'no'}{extra})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))

    @property
    def signed(self) -> bool:
        """Whether the maps are signed (-1..1: + for the target, - against it; ``signed=True``)."""
        return bool(self.settings.get("signed", False))

    @property
    def predicted(self) -> np.ndarray:
        """Predicted class index per image."""
        return np.argmax(self.probabilities, axis=1)

    def __len__(self) -> int:
        return len(self.images)

    def map(self, i: int) -> np.ndarray:
        return self.maps[i]

    @property
    def age_cut(self) -> AgeBins | None:
        """The bins of a model whose groups are its age cut there (``model_read_as`` says
        ``groups_from_age``, with its ``age_bins`` and ``class_names``); ``None`` for any other
        model, or a record whose bins cannot be read back."""
        read = self.model_read_as or {}
        if not read.get("groups_from_age"):
            return None
        try:
            edges, names = read.get("age_bins") or (), read.get("class_names") or self.class_names
            return AgeBins(tuple(edges), tuple(names))
        except (TypeError, ValueError):  # a hand-edited record: whole years, as before
            return None

    def caption(self, i: int) -> str:
        from agelens.model.predict import shown_age

        age = None if self.ages is None else float(self.ages[i])
        read = self.model_read_as or {}
        if read.get("groups_from_age") and age is not None:  # its percentages are no confidence
            edges = ", ".join(f"{e:g}" for e in read.get("age_bins") or [])
            group = self.class_names[int(np.argmax(self.probabilities[i]))]
            years = shown_age(age, self.age_cut, group)  # 29.96 y "young": "29.9", not "30"
            return f"{group} · age ≈ {years} (the groups: the age cut at {edges or 'its bins'})"
        return caption(self.probabilities[i], self.class_names, age)

    def prediction(self, i: int) -> dict[str, Any]:
        from agelens.model.predict import group_span

        p = self.probabilities[i]
        group = self.class_names[int(np.argmax(p))]
        out: dict[str, Any] = {
            "class": group,
            "probabilities": {n: round(float(v), 6) for n, v in zip(self.class_names, p, strict=True)},
        }
        if self.ages is not None:
            age = float(self.ages[i])
            short = round(age, 2) + 0.0
            span = group_span(self.age_cut, group, age)  # 29.996 y "young" stays below 30, not 30.0
            out["age"] = age if span is not None and not span[0] <= short < span[1] else short
        return out

    def target_of(self, i: int) -> str:
        """What image ``i``'s map explains, as its panel says it: the target, and for the predicted
        class which class that is ("predicted class (young)"), so one panel says it on its own."""
        if self.target == "predicted class":
            return f"{self.target} ({self.class_names[int(self.predicted[i])]})"
        return self.target

    def save(
        self,
        directory: str | Path,
        force: bool = False,
        alpha: float = DEFAULT_ALPHA,
        cmap: str = DEFAULT_CMAP,
    ) -> list[Path]:
        """Write per image ``<stem>_<method>_overlay.png``, ``_panel.png``, ``_map.npy`` and a manifest.

        The names carry the method, as the explain CLI's do, so files from several methods never
        look alike when gathered. A folder holds one saved run: save each method to its own
        folder (``agelens explain --method a,b`` writes several into one); ``force`` replaces
        the earlier run's files. Returns the final paths of every file written (the manifest last).
        """
        check_cmap(cmap)  # before any work, so a typo costs nothing
        with output_dir(directory, force) as tmp:
            records = [
                write_image_files(self, i, tmp, alpha=alpha, cmap=cmap, tag=self.method)
                for i in range(len(self))
            ]
            for record, face in zip(records, self.faces or [], strict=False):
                record.update(face)  # found or not, and where: as the CLI's manifest says it
            for i, record in enumerate(records):
                if not record.get("face_found"):  # nothing cropped: the map covers the photo as given
                    record.setdefault("crop_box_xywh", [0, 0, *record["size"]])
                if i not in self.stand_ins:  # a grey stand-in stays one: its source may come back
                    self._keep_image(i, record, tmp)
            files = [f for r in records for f in r["files"]]
            header = manifest_header(self.model_path, cmap=cmap, alpha=alpha)
            if self.model_read_as is not None:  # as the CLI's manifest has it
                header["model_read_as"] = self.model_read_as
            write_manifest(tmp, header, [self.describe()], records, files)
        return [Path(directory) / f for f in [*files, MANIFEST]]

    def _keep_image(self, i: int, record: dict[str, Any], directory: Path) -> None:
        """Make ``record`` give back image ``i`` exactly: its fingerprint, and where its source
        cannot (a photo given in memory, a file gone or changed since), a lossless PNG of it
        beside the maps (``image_file``). A photo file that still reads back as explained is not
        copied: photos can be large, and the folder already names them."""
        image = np.ascontiguousarray(self.images[i], np.uint8)
        record["image_sha256"] = image_fingerprint(image)
        photo, _ = _photo_file(record)
        if photo is not None and not explained_in(photo, record, photo=True)[1]:
            return
        stem = stems(self.sources or [""] * len(self))[i]
        record["image_file"] = f"{stem}_{safe_name(self.method)}_image.png"  # named as its maps are
        save_png(image, directory / record["image_file"])
        record["files"].append(record["image_file"])

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "layer": self.layer, "target": self.target, "settings": self.settings}

    @classmethod
    def load(cls, directory: str | Path, method: str | None = None) -> Explanation:
        """An explanation saved by :meth:`save` or ``agelens explain`` (``method`` picks one of
        several in a CLI folder), to re-draw or score it without running the model again.

        Maps come back at each image's size (a stored map shrunk to ``map_size`` is resized
        back); images come back exactly as explained: from the copy saved beside the maps
        (``image_file``: photos given in memory, or whose file had changed by the time of
        saving), else re-read from their photo file (the face re-cropped by its recorded box).
        A photo file that is gone, unreadable or changed since (its fingerprint,
        ``image_sha256``, differs) gets a grey stand-in of its size, listed in ``stand_ins``,
        and a warning saying which and why: the maps and predictions are still worth having.
        A folder saved before photos were kept (no ``image_file``) still loads; its in-memory
        photos were never written, and get the stand-in.
        """
        import warnings

        folder = Path(directory)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            runs = manifest["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{folder}: not a saved explanation (no readable {MANIFEST}: {e})") from None
        methods = [r["method"] for r in runs]
        if method is None and len(methods) != 1:
            raise ValueError(f"{folder}: holds {len(methods)} methods ({', '.join(methods)}); pass method=")
        run = next((r for r in runs if r["method"] == (method or methods[0])), None)
        if run is None:
            raise ValueError(f"{folder}: no {method!r} explanation (it holds {', '.join(methods)})")
        records = [r for r in manifest["images"] if r.get("method", run["method"]) == run["method"]]
        maps, images, probs, ages, sources, faces, stand_ins = [], [], [], [], [], [], []
        for i, r in enumerate(records):
            w, h = r["size"]
            m = np.load(folder / _map_file(r["files"], run["method"]))
            if m.shape != (h, w):
                import cv2

                m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
            maps.append(m.astype(np.float32))
            image, why = _saved_image(folder, r)
            if image is None:
                warnings.warn(
                    f"{r['source']}: {why}: grey stand-in of its size (its map and prediction are as "
                    "saved; metrics on it would score the grey)",
                    stacklevel=2,
                )
                image = np.full((h, w, 3), 128, np.uint8)
                stand_ins.append(i)
            images.append(image)
            pred = r["prediction"]
            probs.append(list(pred["probabilities"].values()))
            ages.append(pred.get("age"))
            sources.append(r["source"])
            faces.append({k: r[k] for k in FACE_KEYS if k in r})  # an older manifest lacks crop_box_xywh
        names = list(records[0]["prediction"]["probabilities"]) if records else []
        same = len({m.shape for m in maps}) == 1
        return cls(
            maps=np.stack(maps) if maps and same else maps,
            probabilities=np.asarray(probs, np.float32).reshape(len(records), len(names)),
            class_names=names,
            layer=run.get("layer", ""),
            method=run["method"],
            target=run.get("target", ""),
            images=images,
            ages=None if any(a is None for a in ages) or not ages else np.asarray(ages, np.float32),
            sources=sources,
            model_path=manifest.get("model"),
            settings=dict(run.get("settings") or {}),
            faces=faces if any(f.keys() - {"crop_box_xywh"} for f in faces) else None,
            stand_ins=stand_ins,
            model_read_as=manifest.get("model_read_as"),
        )


def _map_file(files: list[str], method: str) -> str:
    """The ``.npy`` map of ``method`` among an image's files: a CLI folder holds one per method
    (``<stem>_<method>_map.npy``), and the first ``_map.npy`` would be another method's."""
    maps = [f for f in files if f.endswith("_map.npy")]
    own = [f for f in maps if f.endswith(f"_{safe_name(method)}_map.npy")]
    return (own or maps)[0]


FACE_KEYS = ("photo_size", "face_found", "face_box_xywh", "crop_box_xywh")
"""A manifest record's fields on detection and cropping, kept in :attr:`Explanation.faces`. A
photo saved without detection has only ``crop_box_xywh`` (the whole photo): it gets no faces."""


def _saved_image(folder: Path, record: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """The image a saved record explained, or ``None`` and why not (for the stand-in's warning).

    Its copy in ``folder`` (``image_file``) first, then its photo file, as :func:`explained_in`
    checks them.
    """
    from agelens.data.images import load_image

    why = None
    kept = record.get("image_file")
    if isinstance(kept, str) and kept and kept == Path(kept).name:  # a plain name inside the folder only
        try:
            image = load_image(folder / kept)
        except Exception as e:  # noqa: BLE001 - a damaged copy: the photo file may still serve
            why = f"its copy saved with the explanation ({kept}) cannot be read ({e})"
        else:
            if not explained_in(image, record)[1]:
                return image, ""
            why = f"its copy saved with the explanation ({kept}) has changed"
    photo, reason = _photo_file(record)
    if photo is None:
        return None, why or reason
    image, changed = explained_in(photo, record, photo=True)
    return image, why or (f"photo file has changed since it was explained ({changed})" if changed else "")


def _photo_file(record: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """The photo a saved record came from, decoded (see :func:`~agelens.data.images.source_file`),
    or ``None`` and why it cannot be had."""
    from agelens.data.images import load_image, source_file

    path = source_file(record)
    if path is None:
        source = str(record.get("source", ""))
        if source.startswith("<"):
            return (
                None,
                "a photo given in memory, not saved with the explanation (older agelens did not keep them)",
            )
        path_was = record.get("source_path")
        return None, f"photo file is missing (not at {path_was})" if path_was else "photo file is missing"
    try:
        return load_image(path), ""
    except Exception as e:  # noqa: BLE001 - any unreadable source gets the stand-in, with a warning
        return None, f"photo file cannot be read ({e})"


def explained_in(
    found: np.ndarray, record: dict[str, Any], photo: bool = False, detect: bool = True
) -> tuple[np.ndarray | None, str]:
    """Whether ``found`` still holds the image a saved record explained: ``(image, "")`` where it
    does, ``(None, what differs)`` where it has changed since (e.g. ``"40x30, was 44x30"``,
    ``"other pixels"``), so no other picture is passed off as the one explained.

    ``found``: its copy saved with the explanation (``image_file``), or with ``photo`` its photo
    file, which must have the recorded ``photo_size`` and is cut as explained
    (:func:`cut_explained`). Either way the image must have the recorded ``size`` and, where
    the record has it (not an older one), the fingerprint ``image_sha256``
    (:func:`image_fingerprint`). With ``detect=False`` a face crop without a recorded box
    cannot be cut again: only the photo's size is checked, and the image is ``None`` with "".
    """
    image: np.ndarray | None = found
    if photo:
        shot = record.get("photo_size")
        if isinstance(shot, list) and shot != [found.shape[1], found.shape[0]]:
            return None, f"{found.shape[1]}x{found.shape[0]}, was {shot[0]}x{shot[1]}"
        if (image := cut_explained(found, record, detect)) is None:
            return None, ""
    size = record.get("size")
    if isinstance(size, list) and size != [image.shape[1], image.shape[0]]:
        return None, f"{image.shape[1]}x{image.shape[0]}, was {size[0]}x{size[1]}"
    want = record.get("image_sha256")
    if want is not None and image_fingerprint(image) != want:
        return None, "other pixels"
    return image, ""


def cut_explained(photo: np.ndarray, record: dict[str, Any], detect: bool = True) -> np.ndarray | None:
    """The part of ``photo`` a saved record explained: the photo, or the face crop where one was
    found, cut by the recorded ``crop_box_xywh``. An older record without a box asks the detector
    again (deterministic), or gets ``None`` with ``detect=False`` (the report's photo check)."""
    if not record.get("face_found"):
        return photo
    box = record.get("crop_box_xywh")
    if isinstance(box, list) and len(box) == 4:
        x, y, w, h = (int(v) for v in box)
        if [x, y, w, h] == [0, 0, photo.shape[1], photo.shape[0]]:
            return photo  # the face filled the photo: explained whole
        if w == h and w > 0:
            from agelens.model.faces import crop_box

            return crop_box(photo, x, y, w)
    if not detect:
        return None
    from agelens.model.faces import crop_largest_face

    return crop_largest_face(photo)[0]


def image_fingerprint(image: np.ndarray) -> str:
    """SHA-256 of an RGB uint8 image's pixels, row by row (a manifest's ``image_sha256``): tells a
    photo file changed since from the one explained."""
    return hashlib.sha256(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()


def _first(items: list[Any], k: int) -> str:
    """``items`` as a list's repr, cut after ``k`` of them (``[a, b, ...]``): a repr stays one short line."""
    shown = repr(list(items[:k]))
    return shown[:-1] + ", ...]" if len(items) > k else shown


def _same(a: Any, b: Any) -> bool:
    """``a == b`` for :class:`Explanation` fields: arrays by shape, dtype and values (NaN equal to
    NaN), lists and dicts item by item (a stacked array equals the list of its rows), else ``==``."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        same_kind = a.shape == b.shape and a.dtype == b.dtype
        return same_kind and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    rows = (list, np.ndarray)
    if isinstance(a, rows) and isinstance(b, rows):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (*rows, dict)) or isinstance(b, (*rows, dict)):
        return False  # one is a container, the other is not (maps against None, say)
    return bool(a == b)


def stems(sources: list[str]) -> list[str]:
    """File-name stems, unique and ordered: ``000_photo``, ``001_photo``..."""
    return [f"{i:03d}_{photo_stem(src) or 'image'}" for i, src in enumerate(sources)]


def photo_stem(source: str | None) -> str:
    """A photo's file name without its image extension, file-system safe, at most 60 characters;
    "" for no name (or a ``<image 0>`` placeholder).

    Letters and digits of any script are kept (``Ünïcødé fäce 写真`` -> ``Ünïcødé_fäce_写真``):
    an ASCII-only rule turned such names into ``_n_c_d_f_ce_``, which no one could match to
    their photo. Separators, punctuation and spaces still become ``_``.
    """
    if not source or source.startswith("<"):
        return ""
    base = re.sub(r"\.(jpe?g|png|bmp|gif|webp|tiff?)$", "", Path(source).name, flags=re.I)
    base = unicodedata.normalize("NFC", base.replace("+", "p"))
    return re.sub(r"[^\w.-]+", "_", base)[:60]


def safe_name(text: str) -> str:
    """``text`` with only letters, digits, ``.``, ``_`` and ``-`` (``+`` as ``p``): a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("+", "p"))


def write_image_files(
    expl: Explanation,
    i: int,
    directory: Path,
    stem: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    tag: str = "",
) -> dict[str, Any]:
    """Overlay PNG, panel PNG and raw ``.npy`` map for image ``i``; returns its manifest record.

    ``stem`` defaults to the image's own (see :func:`stems`); ``tag`` (e.g. the method name)
    is appended so several methods can share one directory.
    """
    from agelens.data.images import source_record

    name = (stem or stems(expl.sources or [""] * len(expl))[i]) + (f"_{safe_name(tag)}" if tag else "")
    img, m = expl.images[i], np.asarray(expl.maps[i], np.float32)
    files = [f"{name}_overlay.png", f"{name}_panel.png", f"{name}_map.npy"]
    signed = expl.signed
    save_png(overlay(img, m, alpha, cmap, signed=signed), directory / files[0])
    method = f"{expl.method} (signed)" if signed else expl.method
    title = f"{method} · {expl.layer} · target: {expl.target_of(i)}\n{expl.caption(i)}"
    save_figure(panel_figure(img, m, title, alpha, cmap, signed=signed), directory / files[1])
    stored = fit_map(m, MAP_MAX_SIDE, signed)
    np.save(directory / files[2], stored)
    return {
        **source_record(expl.sources[i] if expl.sources else f"<image {i}>"),
        "size": [int(img.shape[1]), int(img.shape[0])],
        "map_size": [int(stored.shape[1]), int(stored.shape[0])],
        "method": expl.method,
        "prediction": expl.prediction(i),
        "files": files,
    }


def fit_map(m: np.ndarray, max_side: int, signed: bool = False) -> np.ndarray:
    """``m`` shrunk (area-averaged) so its longest side is at most ``max_side``; as is when it fits.

    Resize it back with ``cv2.resize(stored, size)`` to lay it over the full photo.
    """
    from agelens.data.images import fit_longest_side

    if max(m.shape[:2]) <= max_side:
        return m
    return np.clip(fit_longest_side(m, max_side), -1.0 if signed else 0.0, 1.0).astype(np.float32)


def manifest_header(
    model_path: str | None, *, cmap: str | None = None, alpha: float | None = None
) -> dict[str, Any]:
    """Versions, when, the command, the model (its path and fingerprint), and how the pictures were
    drawn: a manifest records every option that ran, and a re-drawn overlay only matches the saved
    one with the same colormap and opacity (:func:`agelens.provenance.provenance`).

    The versions stay flat (``agelens_version``...), as every explain manifest has had them."""
    from agelens.explain.overlay import signed_cmap
    from agelens.provenance import provenance

    made = provenance(model_path)
    header: dict[str, Any] = {f"{k}_version": v for k, v in made["versions"].items()}
    header |= {k: made[k] for k in ("created", "command_line") if k in made}
    header["model"] = model_path
    if "model_file" in made:
        header["model_file"] = made["model_file"]
    if cmap is None:  # nothing laid over a photo (a filter atlas): no overlay settings to record
        return header
    drawn = {"cmap": cmap, "signed_cmap": signed_cmap(cmap), "alpha": float(alpha)}
    return header | {"overlay": drawn}


CONVENTIONS = {
    "model_file": "the model file explained with: its name, the SHA-256 and size in bytes of its contents "
    "(every file of a SavedModel folder), whether it is the model shipped with agelens, and for a .keras "
    "or .h5 file weights_sha256, the SHA-256 of its weight arrays alone: the same for two saves of the "
    "same weights, whose file bytes differ",
    "command_line": "the agelens command as typed, when it was run as one (absent from a notebook or script)",
    "size": "[width, height] of the image explained, in pixels: the face crop when a face was found, "
    "else the photo",
    "photo_size": "[width, height] of the photo as decoded (EXIF orientation applied)",
    "face_found": "whether the face detector found a face (absent with --no-detect)",
    "map_size": "[width, height] of the stored map; the .npy arrays are indexed [row, column], "
    "so their shape is (height, width)",
    "face_box_xywh": "[x, y, width, height] of the detected face in the original photo",
    "source": "the photo as it was named (relative to the folder the command ran in); source_path: its "
    "absolute path, which is read first (source where it is gone)",
    "crop_box_xywh": "[x, y, width, height] in the original photo's pixels of the image explained, "
    "which the map covers: the face crop (it may run past the photo's edge, where the edge pixels "
    "were repeated), or the whole photo when no face was cropped",
    "overlay": "colormap and opacity the overlays, panels and filter grids were drawn with (the maps "
    "do not depend on them); signed_cmap: the diverging colormap signed maps were drawn in",
    "settings": "per run, every option the method ran with; detect: whether each photo's largest face "
    "was looked for and cropped first (the CLI's --detect, on by default); guided_activations (guided "
    "backprop and Guided Grad-CAM): how many ReLU/ReLU6 activations were guided, and "
    "unguided_activations the others by kind, whose plain gradient passed (none guided: saliency's map)",
    "maps": "float32 in [0, 1] (in [-1, 1] for a run with signed: true: + for the target, - against "
    "it), scaled so the largest magnitude is 1; 0 outside the centred square the model saw",
    "model_read_as": "how the model was read, as given or guessed: input size, class names, which output "
    "holds the classes (and the age, if any), and the pixel range it was fed (the CLI's --input-size, "
    "--class-names, --class-output, --age-output, --input-range); for a one-unit output, how it was read "
    "(one_unit: age or probability; groups_from_age and age_bins: the age cut at those edges, --one-unit, "
    "--bins)",
    "image_file": "the image explained (the face crop where one was found), saved here as a lossless PNG "
    "where its source could not give it back: a photo given in memory, or a file gone or changed by the "
    "time of saving; absent for a photo file, which is read again (from source_path, then source)",
    "image_sha256": "SHA-256 of the image explained, as RGB uint8 pixels row by row: a photo file that "
    "no longer matches it has changed since, and is not passed off as the one explained",
    "notes": "why a photo's prediction, and so its maps, mean little (no face found, too small, a "
    "single flat colour), as the command printed them beside its prediction; absent when none",
}
"""What the manifest's fields mean: [width, height] and a NumPy shape are easy to confuse, and
a map's extent in the photo is not obvious once a face was cropped."""


def write_manifest(
    directory: Path, header: dict, runs: list[dict], images: list[dict], files: list[str], problems: Any = ()
) -> Path:
    data = dict(
        header,
        conventions=CONVENTIONS,
        runs=runs,
        images=images,
        problems=[str(p) for p in problems],
        files=[*files, MANIFEST],
    )
    path = directory / MANIFEST
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def check_output_dir(
    directory: str | Path, force: bool, hint: str = "pass force=True to write into it"
) -> Path:
    """Raise ``FileExistsError`` for a non-empty directory (or a file) unless ``force``.

    ``hint`` says how to overrule the refusal in the caller's terms (the CLI's ``--force``).
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise FileExistsError(f"{path}: directory is not empty ({hint})")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _previous_outputs(path: Path) -> set[str]:
    """Files an earlier explanation wrote into ``path``, as its manifest lists them (plain names only)."""
    try:
        files = json.loads((path / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str) and f == Path(f).name and f not in ("", ".", "..")}


@contextlib.contextmanager
def output_dir(directory: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``directory`` only if the block succeeds.

    With ``force`` into a folder holding an earlier explanation, that run's files
    (as its manifest lists them) are removed once the new ones are in, so the
    folder never mixes two runs; files the manifest does not list are left alone.
    """
    path = check_output_dir(directory, force).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes a private (0700) folder; give the result the mode the user's folder had, or the umask's.
    mode = (path.stat().st_mode & 0o7777) if path.is_dir() else (0o777 & ~_umask())
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(mode)
        if not path.exists():
            os.rename(tmp, path)
        elif not any(path.iterdir()):
            os.replace(tmp, path)  # rename(2) replaces an empty directory atomically
        else:
            stale = _previous_outputs(path)
            new = move_in(tmp, path, MANIFEST)
            for name in stale - {item.name for item in new}:
                (path / name).unlink(missing_ok=True)
            tmp.rmdir()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
