"""The "What the filters look for" section, from a filter atlas folder
(:func:`agelens.explain.feature_vis.save_atlas`: ``manifest.json`` with ``"kind": "filters"``,
``atlas.png``, one pattern PNG per filter).

Why a section of its own, apart from the gallery: the gallery's maps answer "where on this photo
did the model look"; an atlas answers "what is this filter for", with no photo of its own. A reader
who takes one for the other reads a texture detector as a reason for an age, so the lead says
plainly what an atlas can and cannot tell. Like every section, a broken file becomes a note and
whatever else is readable is still shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agelens.report.assets import JsonFiles, Notes, image_uri, inside, read_image
from agelens.report.page import Figure, Section
from agelens.report.tables import Cell, Table, fmt, number, tables_from_json

KIND = "filters"
ATLAS_PNG = "atlas.png"  # as feature_vis writes it; spelled out so the report never loads TensorFlow
TITLE = "What the filters look for"
LABEL = "Filters"  # how notes name this section


def is_filters_manifest(manifest: Any) -> bool:
    """Whether a parsed manifest.json is a filter atlas's (``save_atlas`` marks it ``"kind": "filters"``)."""
    return isinstance(manifest, dict) and manifest.get("kind") == KIND


def is_filters_folder(folder: Path, reads: JsonFiles) -> bool:
    """Whether ``folder`` holds a filter atlas, known by its manifest (whatever the folder is named)."""
    return is_filters_manifest(reads.read(folder / "manifest.json", Notes(), folder.name))


def filters_section(folder: Path | None, run_dir: Path, notes: Notes, reads: JsonFiles) -> Section | None:
    """The atlas image, one table row per filter and how to read them; None when there is no atlas.

    ``folder``: the atlas folder :func:`agelens.report.html.part_folders` found (``run_dir`` itself
    when the report is of one atlas). An unreadable manifest is noted by :class:`JsonFiles` (and
    refused by ``write_report`` when nothing else makes a page); a missing or undecodable
    ``atlas.png`` is noted and the table is shown without it.
    """
    if folder is None:
        return None
    manifest = reads.read(folder / "manifest.json", notes, LABEL)
    if not is_filters_manifest(manifest):
        return None
    where = "" if folder == run_dir else f"{folder.name}/"
    rows = [r for r in manifest.get("per_filter") or [] if isinstance(r, dict)]
    uri = _atlas_uri(folder)
    if uri is None:
        notes.add(f"{LABEL}: {where}{ATLAS_PNG} is missing or not a readable image; only the table is shown.")
    if not rows:
        notes.add(f"{LABEL}: {where}manifest.json lists no filters (no per_filter entries).")
        if uri is None:
            return None
    sec = Section("filters", TITLE, reading_guide(manifest))
    sec.stats = _stats(manifest)
    if rows:
        sec.tables.append(filters_table(rows, manifest))
    if where and isinstance(manifest.get("settings"), dict):
        for t in tables_from_json(manifest["settings"], "Search settings"):
            t.fold = f"Search settings (recorded in {where}manifest.json)"
            sec.tables.append(t)
    if uri is not None:
        caption = f"Filter atlas, layer {manifest.get('layer')}: each filter's pattern, then its top patches"
        sec.figures.append(Figure(caption, uri))
    return sec


def _atlas_uri(folder: Path) -> str | None:
    """The atlas as a data URI (PNG kept byte for byte: it is lettered), or None when it is missing,
    outside the folder or does not decode (a truncated file would show as a broken image)."""
    path = inside(folder, ATLAS_PNG)
    if path is None or read_image(path) is None:
        return None
    return image_uri(path)


def reading_guide(manifest: dict) -> str:
    """One paragraph, in plain words, on what an atlas shows and what it does not."""
    layer = manifest.get("layer", "?")
    named = manifest.get("chosen_by") == "named"
    which = "the filters asked for" if named else "those these photos use most (highest mean activation)"
    return (
        f"Each row of the atlas is one filter (a channel) of layer {layer}, among {which}. "
        "The first image is a synthetic pattern, made by changing an image step by step until the filter "
        "responds as strongly as it can: it shows what drives that filter hardest, usually a texture, "
        "colour or edge, not a face. The patches beside it are the photos where the filter responds most, "
        "cut to the part of the photo it can see (its receptive field): where real photos drive it. "
        "Together they say what a filter detects; they do not say why the model predicts a class, since "
        "a filter can respond strongly and still weigh little in the answer; the maps of the explain "
        "methods (Grad-CAM and the others) are made for that question."
    )


def _stats(manifest: dict) -> list[tuple[str, str]]:
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    filters = manifest.get("filters")
    out = [
        ("Layer", manifest.get("layer")),
        ("Filters", len(filters) if isinstance(filters, list) else None),
        ("Photos", manifest.get("n_photos")),
        ("Search steps", settings.get("steps")),
    ]
    return [(label, fmt(v)) for label, v in out if isinstance(v, str | int) and not isinstance(v, bool)]


COLUMNS = ["filter", "pattern", "start (noise)", "best photo", "mean over photos", "top photos (peak)"]


def filters_table(rows: list[dict], manifest: dict) -> Table:
    """One row per filter: the activations the manifest records and its top photos by name."""
    body = []
    flat = []
    for r in rows:
        pattern, start = number(r.get("pattern_activation")), number(r.get("start_activation"))
        if pattern is not None and start is not None and pattern <= start:
            flat.append(fmt(r.get("filter")))
        body.append(
            [
                Cell(fmt(r.get("filter")), "rowhead"),
                *(_num(r.get(k)) for k in _VALUES),
                Cell(_top_text(r.get("top"))),
            ]
        )
    n = manifest.get("n_photos")
    over = f"all {fmt(n)} photos" if isinstance(n, int) and not isinstance(n, bool) else "all photos"
    note = (
        "Activations are the filter's mean output over an image: pattern, its synthetic pattern (as saved); "
        "start, the grey noise the search began from; best photo, the highest on any one photo; mean, "
        f"averaged over {over}. A top photo's number is its peak, the filter's strongest single position, "
        "so it runs higher than these means."
    )
    if flat:
        note += (
            f" Filter{'s' if len(flat) > 1 else ''} {', '.join(flat)}: the search did not raise the "
            "activation above its starting noise, so that pattern shows little (more steps may help)."
        )
    return Table("Filters", COLUMNS, body, note=note)


_VALUES = ("pattern_activation", "start_activation", "photo_best_activation", "photo_mean_activation")


def _num(value: Any) -> Cell:
    n = number(value)
    return Cell(fmt(n), "num") if n is not None else Cell("—")


def _top_text(top: Any) -> str:
    """ "face_003.png (2.41), face_001.png (1.98)": each top photo by name, an absolute path cut to its
    file name (a shared page does not say where the user keeps photos)."""
    if not isinstance(top, list):
        return "—"
    shown = []
    for t in top:
        if not isinstance(t, dict):
            continue
        photo = t.get("photo")
        name = f"photo {photo}" if isinstance(photo, int) and not isinstance(photo, bool) else str(photo)
        if isinstance(photo, str) and Path(photo).is_absolute():
            name = Path(photo).name or photo
        peak = number(t.get("peak"))
        shown.append(f"{name} ({fmt(peak)})" if peak is not None else name)
    return ", ".join(shown) or "—"
