"""Shape ``explain/manifest.json`` into the switchable gallery of the HTML report.

The page carries every overlay once, in a JSON blob keyed by option indices
(``"method-layer-target"``), and a few lines of inline JS swap ``<img src>`` when a
select box changes. Index keys avoid any quoting differences between Python and JS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agelens.report.assets import Notes, image_uri, inside

MAX_IMAGES = 48
"""Beyond this the page gets heavy; the rest stay in the explain folder."""
PHOTO_SIDE = 384
PREDICTED = "(predicted class)"


@dataclass
class GalleryItem:
    title: str
    photo: str | None
    predicted: str
    probabilities: list[tuple[str, float]]
    age: float | None
    maps: dict[str, str] = field(default_factory=dict)  # "mi-li-ti" -> data URI
    filters: dict[str, str] = field(default_factory=dict)  # "fi" -> data URI


@dataclass
class Gallery:
    methods: list[str]
    layers: list[str]
    targets: list[str]
    filter_layers: list[str]
    items: list[GalleryItem]
    default: str  # key of the first selection that has a map
    n_total: int

    def js_data(self) -> dict[str, Any]:
        return {
            "items": [{"maps": it.maps, "filters": it.filters} for it in self.items],
            "default": self.default,
        }


def _label(value: Any) -> str:
    return PREDICTED if value is None or str(value).strip() == "" else str(value)


def _options(manifest: dict, images: list[dict], top: str, inner: str, sub: str = "maps") -> list[str]:
    """Option list: the manifest's own list first (its order), then any value only seen in maps."""
    out: list[str] = []
    declared = manifest.get(top)
    for v in declared if isinstance(declared, list) else []:
        if _label(v) not in out:
            out.append(_label(v))
    for img in images:
        for m in img.get(sub) or []:
            if isinstance(m, dict) and _label(m.get(inner)) not in out:
                out.append(_label(m.get(inner)))
    return out


def _safe(text: str) -> str:
    """A method's file-name tag, as the explain CLI writes it (``gradcam++`` -> ``gradcampp``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).replace("+", "p"))


def normalise(manifest: Any) -> Any:
    """Accept the explain CLI's file-list manifest as well as the per-map one the report was specified with.

    The CLI writes ``runs: [{method, layer, target}]`` and, per image, ``files`` named
    ``<stem>_<method>_overlay.png`` (no method tag for a single run) plus ``prediction``.
    Each overlay is matched to the run whose tag is its longest suffix.
    """
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), list):
        return manifest
    runs = [r for r in manifest.get("runs") or [] if isinstance(r, dict)]
    images = []
    for im in manifest["images"]:
        if not isinstance(im, dict):
            continue
        im = dict(im)
        pred = im.get("prediction") if isinstance(im.get("prediction"), dict) else {}
        im.setdefault("predicted", pred.get("class", ""))
        im.setdefault("probabilities", pred.get("probabilities", {}))
        if "age" in pred:
            im.setdefault("age", pred["age"])
        files = [f for f in im.get("files") or [] if isinstance(f, str)]
        if "maps" not in im and files and runs:
            im["maps"] = [m for f in files if f.endswith("_overlay.png") and (m := _match(f, runs))]
            im["filters"] = [
                {"layer": "most active filters", "grid": f} for f in files if f.endswith("_filters.png")
            ]
        images.append(im)
    out = dict(manifest, images=images)
    for key, field_ in (("methods", "method"), ("layers", "layer"), ("targets", "target")):
        if key not in out and runs:
            out[key] = list(dict.fromkeys(r.get(field_) for r in runs))
    return out


def _match(file: str, runs: list[dict]) -> dict | None:
    tagged = [r for r in runs if file.endswith(f"_{_safe(r.get('method', ''))}_overlay.png")]
    run = max(
        tagged, key=lambda r: len(_safe(r.get("method", ""))), default=runs[0] if len(runs) == 1 else None
    )
    if run is None:
        return None
    return {
        "method": run.get("method"),
        "layer": run.get("layer"),
        "target": run.get("target"),
        "overlay": file,
    }


def build_gallery(explain_dir: Path, manifest: Any, root: Path, notes: Notes) -> Gallery | None:
    """The gallery model, or None (with a note) when the manifest has nothing to show."""
    manifest = normalise(manifest)
    images = manifest.get("images") if isinstance(manifest, dict) else None
    if not isinstance(images, list) or not images:
        notes.add("Explanations: explain/manifest.json lists no images; gallery omitted.")
        return None
    images = [im for im in images if isinstance(im, dict)]
    methods = _options(manifest, images, "methods", "method")
    layers = _options(manifest, images, "layers", "layer")
    targets = _options(manifest, images, "targets", "target")
    filter_layers = _options({}, images, "", "layer", sub="filters")
    items = [
        _item(explain_dir, root, im, methods, layers, targets, filter_layers) for im in images[:MAX_IMAGES]
    ]
    if len(images) > MAX_IMAGES:
        notes.add(f"Explanations: showing the first {MAX_IMAGES} of {len(images)} images.")
    missing = sum(1 for it in items for m in it.maps.values() if m == "")
    if missing:
        notes.add(f"Explanations: {missing} overlay file(s) listed in the manifest were not found.")
    keys = [k for it in items for k, v in it.maps.items() if v]
    default = min(keys, key=lambda k: tuple(int(x) for x in k.split("-"))) if keys else "0-0-0"
    return Gallery(methods, layers, targets, filter_layers, items, default, len(images))


def _item(
    explain_dir: Path,
    root: Path,
    im: dict,
    methods: list[str],
    layers: list[str],
    targets: list[str],
    filter_layers: list[str],
) -> GalleryItem:
    photo_path = inside(explain_dir, im.get("file")) or inside(root, im.get("file"))
    if photo_path is None:  # the original may live outside the run folder: decode it, never copy raw bytes
        src = im.get("source")
        photo_path = Path(src) if isinstance(src, str) and Path(src).is_file() else None
    probs = im.get("probabilities")
    probs = probs if isinstance(probs, dict) else {}
    age = im.get("age")
    item = GalleryItem(
        title=Path(str(im.get("file") or im.get("source") or "image")).name,
        photo=image_uri(photo_path, max_side=PHOTO_SIDE),
        predicted=str(im.get("predicted", "")),
        probabilities=[(str(k), float(v)) for k, v in probs.items() if isinstance(v, int | float)],
        age=float(age) if isinstance(age, int | float) else None,
    )
    for m in im.get("maps") or []:
        if not isinstance(m, dict):
            continue
        key = "-".join(
            str(opts.index(_label(m.get(k))))
            for opts, k in ((methods, "method"), (layers, "layer"), (targets, "target"))
        )
        item.maps[key] = image_uri(inside(explain_dir, m.get("overlay"))) or ""
    for f in im.get("filters") or []:
        if isinstance(f, dict) and (uri := image_uri(inside(explain_dir, f.get("grid")))):
            item.filters[str(filter_layers.index(_label(f.get("layer"))))] = uri
    return item
