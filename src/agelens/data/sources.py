"""Labelled datasets as users have them on disk: UTKFace-named files, class folders or a CSV.

Everything ends up as one :class:`Dataset`: a sorted list of :class:`Record` (path, class
index, exact age when known) plus every file that could not be used, as a :class:`Problem`
with a one-line reason. Bad files never stop loading, and each is reported exactly once.

Records are sorted by path so a dataset, and therefore its split, is a pure function of
the files on disk (see :mod:`agelens.data.split`).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from agelens.data.bins import MAX_AGE, MIN_AGE, AgeBins
from agelens.data.images import ImageError, Problem, load_image, thread_map
from agelens.data.split import SPLITS, stratified_split
from agelens.wording import counted

__all__ = [
    "IMAGE_EXTENSIONS",
    "Dataset",
    "DatasetError",
    "Problem",
    "Record",
    "detect_format",
    "load_dataset",
    "parse_utkface_age",
    "scan_images",
    "unresolvable_link",
]

Format = Literal["auto", "utkface", "folders", "csv"]
FORMATS: tuple[str, ...] = ("auto", "utkface", "folders", "csv")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
PATH_COLUMNS = ("path", "file", "filename", "image")
_AGE_FIELD = re.compile(r"\d{1,6}(\.\d+)?", re.ASCII)
# UTKFace's own names, AGE_GENDER_RACE_DATE or AGE_GENDER_DATE (a few lack a field): an age
# without leading zeros, then a one-digit field. "001_face.png" (a counter) does not match.
_UTKFACE_NAME = re.compile(r"(0|[1-9]\d{0,2})(\.\d+)?_\d_", re.ASCII)
# The folders UTKFace is released in: part1/ part2/ part3/ (in the wild), crop_part1/, UTKFace/.
_UTKFACE_PART_DIR = re.compile(r"(crop_)?part\d+|utk.*", re.ASCII | re.IGNORECASE)


class DatasetError(ValueError):
    """The path cannot be read as a dataset at all; ``str()`` is one line naming the path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = path
        self.reason = " ".join(reason.split())
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Record:
    """One usable labelled image. ``age`` is the exact age in years when the source has it."""

    path: Path
    label: int
    age: float | None = None


@dataclass
class Dataset:
    """Records (sorted by path) plus the files that were skipped and why.

    ``sizes`` holds each record's decoded ``(width, height)`` when images were checked,
    else ``None``; it comes for free from the check and feeds ``agelens data inspect``.
    """

    format: str
    root: Path
    records: list[Record]
    class_names: list[str]
    problems: list[Problem] = field(default_factory=list)
    sizes: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        """Class index per record (int64)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    @property
    def ages(self) -> np.ndarray:
        """Exact age per record (float64), NaN where the source has no age."""
        return np.array([np.nan if r.age is None else r.age for r in self.records], dtype=np.float64)

    @property
    def has_ages(self) -> bool:
        return bool(self.records) and all(r.age is not None for r in self.records)

    def in_class_order(self, class_names: list[str]) -> Dataset:
        """This data with labels indexing ``class_names`` (a model's output order), by name.

        Why: class folders are read in sorted order, a model's outputs are in its own; a label
        that meant "bright_left" here and "bright_right" to the model scored every photo
        against the wrong class without a word. Raises ``DatasetError`` when the names differ.
        """
        if list(class_names) == self.class_names:
            return self
        if sorted(class_names) != sorted(self.class_names):
            raise DatasetError(
                self.root, f"classes {self.class_names} do not match the model's {list(class_names)}"
            )
        to_model = {i: list(class_names).index(n) for i, n in enumerate(self.class_names)}
        records = [replace(r, label=to_model[r.label]) for r in self.records]
        return replace(self, records=records, class_names=list(class_names))

    def counts(self) -> dict[str, int]:
        """Records per class, in class order, zeros included."""
        n = (
            np.bincount(self.labels, minlength=len(self.class_names))
            if self.records
            else [0] * len(self.class_names)
        )
        return {name: int(n[i]) for i, name in enumerate(self.class_names)}

    def checked(self, workers: int | None = None) -> Dataset:
        """This data with every image decoded once: the ones that load, with their sizes, and
        the others added to ``problems`` (``load_dataset(check_images=True)`` is this)."""
        records, sizes, bad = _check_images(self.records, workers)
        problems = sorted([*self.problems, *bad], key=lambda p: str(p.path))
        return replace(self, records=records, problems=problems, sizes=sizes)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """A dataset with the given records (in the given order); problems are not carried over."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            records=[self.records[i] for i in idx],
            problems=[],
            sizes=None if self.sizes is None else self.sizes[idx],
        )

    def split_index(
        self, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    ) -> np.ndarray:
        """0/1/2 (train/val/test) per record, stratified by class; see :func:`stratified_split`."""
        return stratified_split(self.labels, fractions=fractions, seed=seed)

    def split(
        self, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    ) -> tuple[Dataset, Dataset, Dataset]:
        """``(train, val, test)`` datasets, stratified by class.

        Three datasets rather than an index because every caller wants to hand a part to
        :func:`agelens.data.pipeline.make_tf_dataset`; use :meth:`split_index` for the index.
        Records are sorted by path, so the split depends only on the files and the seed.
        """
        index = self.split_index(seed, fractions)
        train, val, test = (self.subset(np.flatnonzero(index == k)) for k in range(len(SPLITS)))
        return train, val, test


def parse_utkface_age(name: str) -> float:
    """Age from a UTKFace-style file name ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg``.

    Only the first ``_``-separated field matters (some UTKFace names lack the race field).
    Raises ``ValueError`` with a one-line reason for an unparsable field or an age
    outside ``MIN_AGE..MAX_AGE`` (0..120); never anything else for any string.
    """
    name = Path(name).name
    head, sep, _ = name.partition("_")
    if not sep:
        raise ValueError("no age field (name does not look like AGE_GENDER_RACE_DATE.jpg)")
    if not _AGE_FIELD.fullmatch(head):
        raise ValueError(f"unparsable age {head[:20]!r} in file name")
    age = float(head)
    if not MIN_AGE <= age <= MAX_AGE:
        raise ValueError(f"age {age:g} outside {MIN_AGE}-{MAX_AGE}")
    return age


def _looks_like_utkface(name: str) -> bool:
    head, sep, _ = name.partition("_")
    return bool(sep) and _AGE_FIELD.fullmatch(head) is not None


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _visible(p: Path) -> bool:
    """Whether no component of ``p`` is hidden (starts with '.'); give paths relative to a root."""
    return not any(part.startswith(".") for part in p.parts)


def unresolvable_link(p: Path) -> str | None:
    """Why the link ``p`` cannot be followed to a file, or ``None`` when it can (or is no link)."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (the link cannot be resolved)"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken link (its target does not exist)"
        return f"link cannot be resolved ({e.strerror or e})"
    return None


def scan_images(folder: str | Path, recursive: bool = False) -> tuple[list[Path], list[Problem]]:
    """Image files in (or under) ``folder``, and image-named links that lead nowhere, in one walk.

    Hidden files and everything under a hidden folder (any path component below ``folder``
    starting with '.', e.g. ``young/.thumbnails/x.jpg``) are skipped: they are caches and
    editor leftovers, not photos the user labelled. Links whose target is gone, or that loop,
    are reported where ``is_file()`` alone would skip them silently.
    """
    folder = Path(folder)
    ours = agelens_output_files(folder) or set()  # `explain x --out x`: its maps are no photos
    if recursive:
        candidates: list[Path] = []
        for top, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # prune: never walk a cache
            for d in [d for d in dirs if agelens_output_files(Path(top, d)) is not None]:
                dirs.remove(d)  # `explain .` twice: the first run's overlays are no photos
                warnings.warn(f"skipped {Path(top, d)}: agelens output (its manifest.json)", stacklevel=2)
            candidates += (Path(top, f) for f in files)
    else:
        candidates = list(folder.iterdir())
    images, bad = [], []
    for p in candidates:
        if not _is_image(p) or not _visible(p.relative_to(folder)) or p.name in ours and p.parent == folder:
            continue
        if p.is_file():
            images.append(p)
        elif p.is_symlink() and (reason := unresolvable_link(p)):
            bad.append(Problem(p, reason))
    return sorted(images), sorted(bad, key=lambda q: str(q.path))


def agelens_output_files(folder: Path) -> set[str] | None:
    """The files agelens wrote into ``folder``, when it is one of its output folders; else None.

    An output folder holds a ``manifest.json`` (or a ``scores.json``) that agelens signed with
    its version. Reading one's overlays and panels back as photos would explain last run's
    pictures, and a folder explained again and again would grow with every run.
    """
    for name in ("manifest.json", "scores.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        signed = [record.get("versions"), meta.get("versions")]
        if "agelens_version" in record or any(isinstance(v, dict) and "agelens" in v for v in signed):
            files = record.get("files")
            return {str(f) for f in files} if isinstance(files, list) else set()
    return None


def _image_files(folder: Path, recursive: bool = False) -> list[Path]:
    return scan_images(folder, recursive)[0]


def _class_dirs(folder: Path) -> list[Path]:
    dirs = (d for d in folder.iterdir() if d.is_dir() and _visible(d))
    return sorted(d for d in dirs if _image_files(d, recursive=True))


def detect_format(path: str | Path, bins: AgeBins | None = None) -> str:
    """``"csv"``, ``"utkface"`` or ``"folders"`` for ``path``; :class:`DatasetError` if none fits.

    In order: a ``.csv`` file is ``csv``; a folder whose top-level image names mostly (over
    half) start with an age field is ``utkface``; a folder holding exactly one CSV whose
    header has a path and an age/label column is ``csv`` (the CSV is the explicit labelling,
    its images may sit in sub-folders); a folder with image-holding sub-folders is ``folders``
    (the user's class folders), except where the sub-folders are UTKFace's own: a folder of
    only sub-folders, not all named after ``bins``' classes, whose images mostly carry UTKFace's
    full name pattern (``AGE_GENDER_...``, the age without leading zeros) and that are either
    UTKFace's part folders (``part1/``, ``crop_part1/``, ``UTKFace/``, ...: the folders are not
    classes) or a single sub-folder (one class is no classification). Several other sub-folders
    are classes, whatever their files are called: ``child/001_face.png`` is a child, not age 1.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise DatasetError(path, "not a folder or a .csv file")
    top = _image_files(path)
    if _mostly_utkface(top):
        return "utkface"
    csvs = _csv_files(path)
    if len(csvs) == 1 and _is_label_csv(csvs[0]):
        return "csv"
    dirs = _class_dirs(path)
    if dirs:
        names = {d.name for d in dirs}
        if (
            not top
            and not names <= set((bins or AgeBins()).names)
            and (len(dirs) == 1 or any(_UTKFACE_PART_DIR.fullmatch(n) for n in names))
            and _mostly_utkface(_image_files(path, True), strict=True)
        ):
            return "utkface"
        return "folders"
    if top:
        raise DatasetError(
            path,
            f"cannot tell the dataset format: {counted(len(top), 'image')} whose "
            f"{'name does' if len(top) == 1 else 'names do'} not start with an age "
            "(AGE_...) and no class sub-folders; use --format or a CSV",
        )
    raise DatasetError(path, "empty folder (no images, class sub-folders or CSV found)")


def _mostly_utkface(files: list[Path], strict: bool = False) -> bool:
    """Whether over half the names start with an age field (``strict``: UTKFace's full pattern)."""
    looks = _UTKFACE_NAME.match if strict else _looks_like_utkface
    return bool(files) and sum(bool(looks(p.name)) for p in files) * 2 > len(files)


def _csv_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() == ".csv")


def _is_label_csv(path: Path) -> bool:
    """Whether the CSV's header names a path column and an age or label column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = {c.strip().lower() for c in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return bool(header & set(PATH_COLUMNS)) and bool(header & {"age", "label"})


def load_dataset(
    path: str | Path,
    format: str = "auto",
    bins: AgeBins | None = None,
    check_images: bool = True,
    workers: int | None = None,
) -> Dataset:
    """Read a labelled dataset; bad entries become ``Dataset.problems``, never exceptions.

    ``bins`` turns exact ages into classes (UTKFace names, CSV ``age`` columns) and names
    the classes of CSV label indices. With ``check_images`` every image is fully decoded
    with :func:`agelens.data.images.load_image` on a thread pool, so every record is
    guaranteed to load later; bad images become problems. Raises :class:`DatasetError`
    (one line, naming the path) only when the path as a whole is unusable.
    """
    bins = bins or AgeBins()
    path = Path(path)
    if format not in FORMATS:
        raise DatasetError(path, f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    try:
        return _load(path, format, bins, check_images, workers)
    except OSError as e:  # e.g. a folder we may not list
        raise DatasetError(getattr(e, "filename", None) or path, f"cannot read ({e.strerror or e})") from None


def _load(path: Path, format: str, bins: AgeBins, check_images: bool, workers: int | None) -> Dataset:
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    fmt = detect_format(path, bins) if format == "auto" else format
    if fmt == "csv" and path.is_dir():
        csvs = _csv_files(path)
        if len(csvs) != 1:
            raise DatasetError(path, f"expected one .csv file in the folder, found {len(csvs)}")
        path = csvs[0]
    if fmt != "csv" and not path.is_dir():
        raise DatasetError(path, f"format {fmt!r} needs a folder")
    reader = {"utkface": _read_utkface, "folders": _read_folders, "csv": _read_csv}[fmt]
    records, class_names, problems = reader(path, bins)
    root = path.parent if fmt == "csv" else path
    records.sort(key=lambda r: r.path)
    problems.sort(key=lambda p: str(p.path))
    ds = Dataset(fmt, root, records, list(class_names), problems)
    return ds.checked(workers) if check_images else ds


def _read_utkface(folder: Path, bins: AgeBins) -> tuple[list[Record], list[str], list[Problem]]:
    """The folder's top-level images; with none there, every image below it (``part1/``, ...).

    Images in sub-folders of a folder that has its own are reported, not read: they are
    often copies or other outputs, and silently skipping them hid them from the user.
    """
    below, broken = scan_images(folder, recursive=True)  # one walk: a flat UTKFace folder has 20k+ files
    top = [p for p in below if p.parent == folder]
    files = top or below
    if not files:
        raise DatasetError(folder, "empty folder (no images found)")
    problems = [q for q in broken if Path(q.path).parent == folder] if top else broken
    if top:
        reason = "image in a sub-folder (not read: images sit at this dataset's top level)"
        problems += [Problem(p, reason) for p in below if p.parent != folder]
    records = []
    for p in files:
        try:
            age = parse_utkface_age(p.name)
        except ValueError as e:
            problems.append(Problem(p, str(e)))
            continue
        records.append(Record(p, int(bins.index(age)), age))
    return records, list(bins.names), problems


def _read_folders(folder: Path, bins: AgeBins) -> tuple[list[Record], list[str], list[Problem]]:
    dirs = _class_dirs(folder)
    if not dirs:
        raise DatasetError(folder, "no class sub-folders with images found")
    names = _order_classes([d.name for d in dirs], bins)
    loose, problems = scan_images(folder)
    problems += [Problem(p, "image outside any class sub-folder (ignored)") for p in loose]
    records = []
    for d in dirs:
        images, broken = scan_images(d, recursive=True)
        records += [Record(p, names.index(d.name)) for p in images]
        problems += broken
    return records, names, problems


def _order_classes(names: Sequence[str], bins: AgeBins) -> list[str]:
    """Sorted class names, except that names drawn from the age bins' names give the bins' names.

    Why: sorting ``young``/``middle-aged``/``old`` alphabetically would give labels that
    disagree with every model trained on those bins (young is class 0 there); a missing
    class then simply has a count of zero.
    """
    if set(names) <= set(bins.names):
        return list(bins.names)
    return sorted(names)


def _read_csv(csv_path: Path, bins: AgeBins) -> tuple[list[Record], list[str], list[Problem]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(csv_path, f"cannot read CSV ({type(e).__name__}: {e})") from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise DatasetError(csv_path, "empty CSV file (no header)")
    header = [c.strip().lower() for c in rows[0]]
    path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
    value_name = "age" if "age" in header else "label" if "label" in header else None
    if path_col is None or value_name is None:
        raise DatasetError(
            csv_path,
            f"CSV needs a path column ({', '.join(PATH_COLUMNS)}) and an age or label column; "
            f"found columns: {', '.join(header)}",
        )
    value_col = header.index(value_name)
    base = csv_path.parent
    entries: list[tuple[int, Path, str]] = []
    problems: list[Problem] = []
    seen: dict[Path, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{csv_path.name} line {line}"
        cell = row[path_col].strip() if path_col < len(row) else ""
        value = row[value_col].strip() if value_col < len(row) else ""
        if not cell:
            problems.append(Problem(f"{csv_path}:{line}", "empty path"))
            continue
        p = Path(cell) if Path(cell).is_absolute() else base / cell
        if p in seen:
            problems.append(Problem(p, f"listed again ({where}; first at line {seen[p]}), duplicate ignored"))
            continue
        seen[p] = line
        if not p.is_file():
            problems.append(Problem(p, f"file not found ({where})"))
            continue
        entries.append((line, p, value))
    if value_name == "age":
        records = _csv_ages(entries, bins, csv_path, problems)
        return records, list(bins.names), problems
    records, names = _csv_labels(entries, bins, csv_path, problems)
    return records, names, problems


def _csv_ages(
    entries: list[tuple[int, Path, str]], bins: AgeBins, csv_path: Path, problems: list[Problem]
) -> list[Record]:
    records = []
    for line, p, value in entries:
        try:
            age = float(value)
        except ValueError:
            problems.append(Problem(p, f"unparsable age {value[:20]!r} ({csv_path.name} line {line})"))
            continue
        if not MIN_AGE <= age <= MAX_AGE:  # also rejects NaN
            where = f"{csv_path.name} line {line}"
            problems.append(Problem(p, f"age {age:g} outside {MIN_AGE}-{MAX_AGE} ({where})"))
            continue
        records.append(Record(p, int(bins.index(age)), age))
    return records


def _csv_labels(
    entries: list[tuple[int, Path, str]], bins: AgeBins, csv_path: Path, problems: list[Problem]
) -> tuple[list[Record], list[str]]:
    """Labels are indices into ``bins.names`` when every value is an integer, else class names."""
    values = [v for _, _, v in entries if v]
    as_index = bool(values) and all(v.isascii() and v.isdigit() for v in values)
    names = list(bins.names) if as_index else _order_classes(set(values), bins)
    records = []
    for line, p, value in entries:
        where = f"({csv_path.name} line {line})"
        if not value:
            problems.append(Problem(p, f"empty label {where}"))
        elif as_index and int(value) >= len(names):
            problems.append(Problem(p, f"label index {value} out of range 0-{len(names) - 1} {where}"))
        else:
            records.append(Record(p, int(value) if as_index else names.index(value)))
    return records, names


def _check_images(
    records: list[Record], workers: int | None
) -> tuple[list[Record], np.ndarray, list[Problem]]:
    """Fully decode every image once; keep the good ones with their (width, height)."""

    def size_of(r: Record) -> tuple[int, int] | Problem:
        try:
            h, w = load_image(r.path).shape[:2]
        except ImageError as e:
            return Problem(r.path, e.reason)
        return w, h

    results = thread_map(size_of, records, workers)
    keep = [i for i, s in enumerate(results) if not isinstance(s, Problem)]
    sizes = np.array([results[i] for i in keep], dtype=np.int64).reshape(-1, 2)
    bad = [s for s in results if isinstance(s, Problem)]
    return [records[i] for i in keep], sizes, bad
