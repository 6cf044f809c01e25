"""Shape ``explain/manifest.json`` into the switchable gallery of the HTML report.

The page carries every overlay once, in a JSON blob keyed by option indices
(``"method-layer-target"``), and a few lines of inline JS swap ``<img src>`` when a
select box changes. Index keys avoid any quoting differences between Python and JS.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agelens.data.bins import AgeBins
from agelens.data.images import source_file
from agelens.report.assets import (
    Notes,
    array_uri,
    encoded_photo_uri,
    image_uri,
    inside,
    photo_uri,
    read_image,
)

MAX_IMAGES = 48
"""Beyond this the page gets heavy; the rest stay in the explain folder."""
PHOTO_SIDE = 384
"""Longest side of an embedded photo or overlay: a card shows them ~150 px wide (300 on a sharp screen)."""
PREDICTED = "(predicted class)"
NOT_FOUND = "photo not found"
CHANGED = "photo changed since it was explained"
NOT_KEPT = "photo given in memory, not saved with the explanation"
"""What a card says in place of its photo: gone, changed (the file no longer holds the pixels explained,
so showing it would pass another picture off as the one explained), or never written (an in-memory
photo saved by an agelens that did not keep them)."""
Bins = tuple[list[float], list[str]]
"""Age-bin edges in years and the class names between them (``AgeBins`` as plain lists)."""


@dataclass
class GalleryItem:
    title: str
    photo: str | None
    predicted: str
    probabilities: list[tuple[str, float]]
    age: float | None
    maps: dict[str, str] = field(default_factory=dict)  # "mi-li-ti" -> data URI
    filters: dict[str, str] = field(default_factory=dict)  # "fi" -> data URI
    truth: str = ""  # the true class (or "age 10" without bins) where the file name gives it
    truth_note: str = ""  # how it was read, e.g. "age 10" from a UTKFace name
    correct: bool | None = None
    folder: str = ""  # the photo's folder as explain recorded its source: a class sub-folder gives the truth
    signed: set[str] = field(default_factory=set)  # keys of the maps that are signed (-1..1: for/against)
    notes: list[str] = field(default_factory=list)  # why its prediction means little (explain's)
    photo_gap: str = NOT_FOUND  # what the card says where ``photo`` is None
    shown_age: str = ""  # the age as the card prints it: on its group's side of an edge for an age cut
    photo_label: str = "photo"  # the photo pane's caption: "face crop" where a face was cut from the photo


@dataclass
class Gallery:
    methods: list[str]
    layers: list[str]
    targets: list[str]
    filter_layers: list[str]
    items: list[GalleryItem]
    default: str  # key of the first selection that has a map
    n_total: int
    legend: str = ""  # the age groups, said once: class names and, where known, their bin edges
    colormap: str = ""  # the colormap the overlays were drawn with (explain's --cmap, default jet)
    colorbar: str = ""  # that colormap as a CSS gradient, low (left) to high (right)
    signed: str = ""  # "all" when every map is signed, "some" when signed and plain maps mix, "" for none
    signed_colormap: str = ""  # the diverging colormap signed overlays were drawn with
    signed_colorbar: str = ""  # that colormap as a CSS gradient, against (left) to for (right)
    signed_words: tuple[str, str] = ("Red", "blue")  # how to name its "for" and "against" ends
    class_targets: bool = True  # every target is a class: the page may call it "the target class"
    age_target: bool = False  # some target is the expected age: the signed legend says what red means then
    from_age: bool = False  # the groups are the model's age cut by its bins (see :func:`groups_from_age`)

    def js_data(self) -> dict[str, Any]:
        """What the page's script needs; each item's signed keys only where some map is signed,
        so a run without signed maps gets the same page as before signed maps were shown."""
        return {
            "items": [
                {"maps": it.maps, "filters": it.filters}
                | ({"signed": sorted(it.signed)} if self.signed else {})
                for it in self.items
            ],
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


def _safe(text: Any) -> str:
    """A method's file-name tag, as the explain CLI writes it (``gradcam++`` -> ``gradcampp``)."""
    from agelens.explain.explanation import safe_name  # the rule the files were named by

    return safe_name(str(text))


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
        "signed": is_signed(run),
    }


def is_signed(record: Any) -> bool:
    """Whether a run, a map or a manifest says its maps are signed (-1..1: + for the target, - against).

    The explain CLI records it in each run's ``settings``; a hand-made or per-map manifest may say
    ``signed`` directly or under ``options``. A signed map read on the plain low-to-high scale says
    "blue: unimportant" where it means "against the target", so any of these counts.
    """
    if not isinstance(record, dict):
        return False
    if record.get("signed") is True:
        return True
    return any(
        isinstance(record.get(k), dict) and record[k].get("signed") is True for k in ("settings", "options")
    )


def _signed_runs(manifest: Any) -> set[tuple[str, str, str]]:
    """(method, layer, target) labels of the manifest's signed runs, to mark maps listed per image."""
    runs = manifest.get("runs") if isinstance(manifest, dict) else None
    return {
        (_label(r.get("method")), _label(r.get("layer")), _label(r.get("target")))
        for r in (runs if isinstance(runs, list) else [])
        if is_signed(r)
    }


def build_gallery(
    explain_dir: Path, manifest: Any, root: Path, notes: Notes, bins: Bins | None = None
) -> Gallery | None:
    """The gallery model, or None (with a note) when the manifest has nothing to show.

    ``bins`` (edges, names) turn ages read from file names into classes; see :func:`age_bins`.
    """
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
    signed_runs = _signed_runs(manifest)
    all_signed = is_signed(manifest)
    items = [
        _item(explain_dir, root, im, methods, layers, targets, filter_layers, signed_runs, all_signed)
        for im in images[:MAX_IMAGES]
    ]
    if len(images) > MAX_IMAGES:
        notes.add(f"Explanations: showing the first {MAX_IMAGES} of {len(images)} images.")
    missing = sum(1 for it in items for m in it.maps.values() if m == "")
    if missing:
        were = (
            "overlay file listed in the manifest was"
            if missing == 1
            else "overlay files listed in the manifest were"
        )
        notes.add(f"Explanations: {missing} {were} not found.")
    changed = sum(1 for it in items if it.photo is None and it.photo_gap == CHANGED)
    if changed:
        files = "photo file has" if changed == 1 else "photo files have"
        notes.add(
            f"Explanations: {changed} {files} changed since explained; the card shows no photo"
            " rather than a different picture."
        )
    keys = [k for it in items for k, v in it.maps.items() if v]
    default = min(keys, key=lambda k: tuple(int(x) for x in k.split("-"))) if keys else "0-0-0"
    classes = list(bins[1]) if bins else list(dict.fromkeys(n for it in items for n, _ in it.probabilities))
    for it in items:
        _mark_truth(it, classes, bins)
    from_age = groups_from_age(manifest)
    if (cut := age_cut(manifest)) is not None:
        from agelens.model.predict import shown_age

        for it in items:  # "young 29.9", not "young 30": the card's group and age agree
            it.shown_age = shown_age(it.age, cut, it.predicted) if it.age is not None else ""
    legend = _legend(classes, bins, any(it.age is not None for it in items), from_age)
    cmap, bar = colour_scale(manifest)
    gallery = Gallery(methods, layers, targets, filter_layers, items, default, len(images), legend, cmap, bar)
    gallery.from_age = from_age
    gallery.signed = _signed_share(items)
    if gallery.signed:
        gallery.signed_colormap, gallery.signed_colorbar = signed_colour_scale(manifest)
        gallery.signed_words = _signed_words(gallery.signed_colormap)
    gallery.class_targets = all(_is_class_target(t, classes) for t in targets)
    gallery.age_target = AGE_TARGET in targets
    return gallery


AGE_TARGET = "expected age"
"""How explain records ``--target age`` (``AgeTarget.describe``)."""


def _is_class_target(target: str, classes: list[str]) -> bool:
    """Whether a target label names a class (the predicted one, a class, one class per image).

    The expected age and a contrast ("old minus young") are not classes: calling them "the
    target class" on the page would send a reader looking for a class that is not there.
    """
    return (
        target in (PREDICTED, "predicted class")
        or target in classes
        or target.startswith("per-image classes")
    )


def _signed_share(items: list[GalleryItem]) -> str:
    """Which legend the maps need: "all" signed, "some" (signed and plain maps mix) or "" (none signed)."""
    keys = [(k in it.signed) for it in items for k in it.maps]
    if not any(keys):
        return ""
    return "all" if all(keys) else "some"


COLORBAR_STOPS = 11


def _recorded_cmap(manifest: Any) -> str:
    """The colormap the overlays were drawn with: a ``cmap`` the manifest records (explain writes it
    under ``overlay``), else explain's default; an unknown name falls back to the default too."""
    import matplotlib

    from agelens.explain.overlay import DEFAULT_CMAP

    recorded = manifest.get("cmap") if isinstance(manifest, dict) else None
    if recorded is None and isinstance(manifest, dict) and isinstance(manifest.get("overlay"), dict):
        recorded = manifest["overlay"].get("cmap")
    return recorded if isinstance(recorded, str) and recorded in matplotlib.colormaps else DEFAULT_CMAP


def colour_scale(manifest: Any) -> tuple[str, str]:
    """(colormap name, CSS gradient of it): the key a reader needs to turn a colour into "more" or "less".

    The colormap is the one the manifest records (see :func:`_recorded_cmap`); the gradient is
    sampled from matplotlib's own table, so the bar matches the overlays' colours exactly.
    """
    name = _recorded_cmap(manifest)
    return name, _gradient(name)


def signed_colour_scale(manifest: Any) -> tuple[str, str]:
    """(colormap name, CSS gradient) of the signed overlays: -1 (against) left, 0 mid, +1 (for) right.

    Explain draws a signed map in ``SIGNED_CMAP`` when the colormap is left at its default, else
    in the colormap given (:func:`agelens.explain.overlay.signed_cmap`), and records the one it
    drew as ``overlay.signed_cmap``; the bar follows the same rule for a manifest without it.
    """
    import matplotlib

    from agelens.explain.overlay import signed_cmap

    drawn = manifest.get("overlay") if isinstance(manifest, dict) else None
    drawn = drawn.get("signed_cmap") if isinstance(drawn, dict) else None
    name = (
        drawn
        if isinstance(drawn, str) and drawn in matplotlib.colormaps
        else signed_cmap(_recorded_cmap(manifest))
    )
    return name, _gradient(name)


def _signed_words(cmap: str) -> tuple[str, str]:
    """("Red", "blue") for a blue-to-red colormap; otherwise the ends of the bar, which always hold."""
    from agelens.explain.overlay import RED_HIGH

    if cmap in RED_HIGH:
        return "Red", "blue"
    return "The right-hand end of the bar", "its left-hand end"


def _gradient(name: str) -> str:
    """``name`` as a CSS left-to-right gradient, sampled from matplotlib at :data:`COLORBAR_STOPS` points."""
    import matplotlib

    cm = matplotlib.colormaps[name]
    stops = []
    for i in range(COLORBAR_STOPS):
        t = i / (COLORBAR_STOPS - 1)
        r, g, b = (round(255 * c) for c in cm(t)[:3])
        stops.append(f"rgb({r}, {g}, {b}) {t:.0%}")
    return f"linear-gradient(to right, {', '.join(stops)})"


_UTKFACE = re.compile(r"^(\d{1,3})_[01]_\d+_\d{8,}")
"""UTKFace file names: ``age_gender_race_datetime``; the age is the ground truth."""


def age_bins(*places: tuple[Any, Path]) -> Bins | None:
    """(edges, names) from a manifest's ``bins``, the bins explain read its model with
    (``model_read_as``: ``age_bins`` and ``class_names``) or its model file's metadata, first found wins.

    The legend and the true class of a UTKFace photo need the bins the model was trained
    with; guessing the defaults could call a right answer wrong. A one-output age regressor's
    file records none: its bins are those explain cut its age by, which only ``model_read_as`` says.
    """
    for manifest, base in places:
        if not isinstance(manifest, dict):
            continue
        for meta in (manifest, _read_as_bins(manifest), _model_meta(manifest.get("model"), base)):
            if (found := _bins(meta.get("bins"))) is not None:
                return found
    return None


def _read_as_bins(manifest: dict) -> dict:
    """``model_read_as``'s bins shaped as a manifest's ``bins`` ({} when it records none)."""
    read = manifest.get("model_read_as")
    if not isinstance(read, dict) or "age_bins" not in read:
        return {}
    return {"bins": {"edges": read.get("age_bins"), "names": read.get("class_names")}}


def age_cut(manifest: Any) -> Any:
    """The :class:`~agelens.data.bins.AgeBins` an age regressor's groups were cut by, from
    ``model_read_as`` (None for any other model, or bins that make none): an age near an edge is
    printed on its group's side of it (:func:`agelens.model.predict.shown_age`)."""
    from agelens.report.tables import age_bins_of

    if not groups_from_age(manifest):
        return None
    return age_bins_of(_bins(_read_as_bins(manifest).get("bins")))


def groups_from_age(manifest: Any) -> bool:
    """Whether the model explained is an age regressor whose groups are its age cut by the bins.

    Explain records it as ``model_read_as.groups_from_age`` (:attr:`AgeModel.read_as`). Its group
    can never disagree with its age, and its group "probabilities" are a softmax of how many
    years the age lies inside each group (:mod:`agelens.model.age_head`), not a classifier's confidence.
    """
    read = manifest.get("model_read_as") if isinstance(manifest, dict) else None
    return isinstance(read, dict) and read.get("groups_from_age") is True


def _model_meta(model: Any, base: Path) -> dict:
    """The ``agelens.json`` inside a ``.keras`` file (only bins are read from it); {} when absent."""
    if not isinstance(model, str) or not model.endswith(".keras"):
        return {}
    path = Path(model) if Path(model).is_absolute() else base / model
    if not path.is_file():
        return {}
    from agelens.model.io import read_metadata

    return read_metadata(path)


def _bins(b: Any) -> Bins | None:
    """``AgeBins.to_dict()`` read back, checked by ``AgeBins`` itself (None when it refuses)."""
    if (
        not isinstance(b, dict)
        or not isinstance(b.get("edges"), list)
        or not isinstance(b.get("names"), list)
    ):
        return None
    if any(isinstance(e, bool) or not isinstance(e, int | float) for e in b["edges"]):
        return None
    try:
        bins = AgeBins(tuple(b["edges"]), tuple(b["names"]))
    except ValueError:
        return None
    return list(bins.edges), list(bins.names)


def _legend(classes: list[str], bins: Bins | None, ages: bool, from_age: bool = False) -> str:
    """One line saying what the classes mean, so a card's class and age output can be read together.

    ``from_age``: the classes are the model's age cut at the bins (:func:`groups_from_age`), so the
    two always agree, and the percentages are no confidence: said once here, for every card.
    """
    if bins:
        edges, names = bins
        parts = [names[0]] + [f"< {e:g} ≤ {n}" for e, n in zip(edges, names[1:], strict=True)]
        text = "Age groups (years): " + " ".join(parts) + "."
    elif classes:
        text = "Classes: " + ", ".join(classes) + " (bin edges not recorded)."
    else:
        return ""
    if from_age:
        cuts = f"{', '.join(f'{e:g}' for e in bins[0])} y" if bins else "its bin edges"
        text += (
            f" The groups are the model's age output cut at {cuts}, so a card's group and its age"
            " always agree; the group percentages are a softmax of how many years the age lies"
            " inside each group, not a classifier's confidence."
        )
    elif ages:
        text += (
            " “age output” is the model's separate age estimate (its regression output), not the class:"
            " it can fall in another group than the predicted one."
        )
    return text


_DEMO_FACE = re.compile(r"^face_\d{3,}_(.+)\.png$")
"""The demo's sample faces, ``face_{i:03d}_{class}.png``; ``data synth`` writes UTKFace names."""


def true_label(
    name: str, classes: list[str], bins: Bins | None, folder: str | None = None
) -> tuple[str, str] | None:
    """(true class, how it was read) from a name that carries a label, or None where it does not.

    Only names written to carry one count: UTKFace names start with the age (as ``agelens data
    synth`` writes them too), the demo's faces end in their class (``face_001_middle-aged.png``),
    and a photo in a class sub-folder (``folder``, the layout ``--format folders`` reads) has it.
    Any word of a name is no label: ``young_at_heart.jpg`` says nothing of its subject's age.
    Without bins a UTKFace age stays an age.
    """
    if m := _UTKFACE.match(name):
        age = int(m.group(1))
        if bins:
            return bins[1][int(AgeBins(tuple(bins[0]), tuple(bins[1])).index(age))], f"age {age}"
        return f"age {age}", ""
    if (m := _DEMO_FACE.match(name)) and (cls := _class_named(m.group(1), classes)):
        return cls, ""
    if folder and (cls := _class_named(folder, classes)):
        return cls, f"folder {folder}/"
    return None


def _class_named(text: str, classes: list[str]) -> str | None:
    """The class ``text`` spells, ignoring case and space/underscore/hyphen differences; None if none."""
    key = re.sub(r"[\s_-]+", "-", text.strip().lower())
    return next((c for c in classes if re.sub(r"[\s_-]+", "-", c.lower()) == key), None)


def _mark_truth(item: GalleryItem, classes: list[str], bins: Bins | None) -> None:
    found = true_label(item.title, classes, bins, item.folder)
    if found is None:
        return
    item.truth, item.truth_note = found
    if item.truth in classes and item.predicted:
        item.correct = item.truth == item.predicted


def _item(
    explain_dir: Path,
    root: Path,
    im: dict,
    methods: list[str],
    layers: list[str],
    targets: list[str],
    filter_layers: list[str],
    signed_runs: Collection[tuple[str, str, str]] = (),
    all_signed: bool = False,
) -> GalleryItem:
    """One card; ``signed_runs`` and ``all_signed`` mark maps whose own record does not say "signed"."""
    photo, gap = _photo(explain_dir, root, im)
    cropped = _is_face_crop(im)
    probs = im.get("probabilities")
    probs = probs if isinstance(probs, dict) else {}
    age = im.get("age")
    item = GalleryItem(
        title=Path(str(im.get("file") or im.get("source") or "image")).name,
        photo=photo,
        photo_gap=gap,
        photo_label="face crop" if cropped else "photo",
        predicted=str(im.get("predicted", "")),
        probabilities=[(str(k), float(v)) for k, v in probs.items() if isinstance(v, int | float)],
        age=float(age) if isinstance(age, int | float) else None,
        folder=_source_folder(im.get("source")),
        notes=[n for n in im["notes"] if isinstance(n, str)] if isinstance(im.get("notes"), list) else [],
    )
    for m in im.get("maps") or []:
        if not isinstance(m, dict):
            continue
        key = "-".join(
            str(opts.index(_label(m.get(k))))
            for opts, k in ((methods, "method"), (layers, "layer"), (targets, "target"))
        )
        item.maps[key] = photo_uri(inside(explain_dir, m.get("overlay")), max_side=PHOTO_SIDE) or ""
        labels = (_label(m.get("method")), _label(m.get("layer")), _label(m.get("target")))
        if all_signed or is_signed(m) or labels in signed_runs:
            item.signed.add(key)
    for f in im.get("filters") or []:
        if isinstance(f, dict) and (uri := image_uri(inside(explain_dir, f.get("grid")))):
            item.filters[str(filter_layers.index(_label(f.get("layer"))))] = uri
    return item


def _source_folder(source: Any) -> str:
    """The name of the folder the explained photo was read from ("" when not recorded as a path)."""
    if not isinstance(source, str) or not source or source.startswith("<"):
        return ""
    return Path(source).parent.name


def _photo(explain_dir: Path, root: Path, im: dict) -> tuple[str | None, str]:
    """The card's photo as a data URI ("" beside it), or None and what the card says instead.

    The copy explain saved beside the maps (``image_file``: a photo given in memory, or a file
    gone or changed by the time of saving) is the image explained, exactly, so it comes first.
    Else the photo file: ``file`` in the folder, else its source (:func:`source_file`); where the
    record has the fingerprint of the image explained (``image_sha256``), a file that no longer
    gives those pixels back has changed since, and is not shown as if it were the one explained.
    A record without a fingerprint (an older manifest, the CLI's) shows its photo file as before.
    Both are checked as :meth:`Explanation.load` checks them (:func:`explained_in`), except that
    a face crop without a recorded box is not looked for again: the detector is not run here.
    """
    from agelens.explain.explanation import explained_in

    kept = im.get("image_file")
    changed = False  # a copy or photo file is there, but no longer holds the image explained
    if isinstance(kept, str) and kept == Path(kept).name:  # a plain name inside the folder only
        found = read_image(inside(explain_dir, kept))
        if found is not None and not explained_in(found[1], im)[1]:
            return encoded_photo_uri(*found, max_side=PHOTO_SIDE), ""
        changed = found is not None
    path = inside(explain_dir, im.get("file")) or inside(root, im.get("file"))
    if path is None:  # the original may live outside the run folder: decode it, never copy raw bytes
        path = source_file(im)
    if (found := read_image(path)) is not None:
        unchecked = im.get("image_sha256") is None and not changed  # nothing to check it against
        if unchecked:
            return _explained_part(found, _cut_or_none(found[1], im)), ""
        image, differs = explained_in(found[1], im, photo=True, detect=False)
        if not differs:
            return _explained_part(found, image), ""
        changed = True
    if changed:
        return None, CHANGED
    in_memory = str(im.get("source", "")).startswith("<") and not im.get("file")
    return None, NOT_KEPT if in_memory else NOT_FOUND


def _is_face_crop(im: dict) -> bool:
    """Whether the image explained is a face cut from a bigger photo (its box is not the whole photo)."""
    box, shot = im.get("crop_box_xywh"), im.get("photo_size")
    if not im.get("face_found") or not (isinstance(box, list) and len(box) == 4):
        return False
    return not (isinstance(shot, list) and len(shot) == 2 and list(box) == [0, 0, *shot])


def _cut_or_none(photo: Any, im: dict) -> Any:
    """The part of ``photo`` explained (:func:`cut_explained`, the detector not run), or None."""
    from agelens.explain.explanation import cut_explained

    try:
        return cut_explained(photo, im, detect=False)
    except (TypeError, ValueError):
        return None


def _explained_part(found: tuple[bytes, Any], image: Any) -> str:
    """The card's photo: the image explained, as the map pane shows it (the face crop cut from a
    photo in the wild, not the whole photo with the face a small part of it); the file as read
    where it was explained whole (or no crop could be cut: the detector is not run here)."""
    data, photo = found
    if image is None or image is photo or getattr(image, "shape", None) == photo.shape:
        return encoded_photo_uri(data, photo, max_side=PHOTO_SIDE)
    return array_uri(image, PHOTO_SIDE, jpeg=True)
