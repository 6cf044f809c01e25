"""``agelens explain`` and ``agelens layers``: activation maps for photos from the command line.

The lead registers the two functions on the main app::

    app.command("explain")(explain_command)
    app.command("layers")(layers_command)

Heavy imports (TensorFlow, the explain engine) happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import glob
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agelens.cli.common import (
    AgeOutputOpt,
    ClassNamesOpt,
    ClassOutputOpt,
    InputRangeOpt,
    InputSizeOpt,
    ModelBinsOpt,
    ModelOpt,
    OneUnitOpt,
    check_layer_early,
    check_model_path,
    check_parent_folder,
    counted,
    drop_stale_report,
    fresh_out,
    load_cli_model,
    load_options,
    prediction_line,
    say_fresh_out,
)
from agelens.report.app_logic import no_face_note

if TYPE_CHECKING:
    import numpy as np

DEFAULT_OUT = Path("outputs/explain")
CHUNK = 16  # photos explained per call: bounds memory for big folders, keeps batches efficient

# explain's own options. The model's are shared (agelens.cli.common); score's --methods, --layer,
# --target, --out and --force, and predict's --detect, say what they do there in other words.
PhotosArg = Annotated[list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)]
MethodOpt = Annotated[
    str, typer.Option("--method", "--methods", help="Comma-separated methods (listed above), or 'all'.")
]
LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer",
        help="Layer name, index, or last-conv / early / mid / late (comma list fuses); "
        "default: the model's declared layer, else last-conv.",
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target", help="Class name or index, 'predicted' (default), a contrast 'old-young', or 'age'."
    ),
]
FiltersOpt = Annotated[
    int,
    typer.Option(
        "--filters", min=0, max=64, help="Also draw the K most active filters (a grid; at most 64)."
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help=f"Output folder, empty or new (default: {DEFAULT_OUT}, or {DEFAULT_OUT}-2, -3... "
        "when it holds an earlier run).",
        show_default=False,
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Write into a non-empty --out folder (the earlier run's files go).")
]
DetectOpt = Annotated[
    bool,
    typer.Option(
        "--detect/--no-detect",
        help="Crop the largest face first, as predict does (a photo whose face box covers half "
        "of it or more is kept whole); --no-detect explains the image as given.",
    ),
]
CmapOpt = Annotated[str, typer.Option("--cmap", help="Matplotlib colormap for heatmaps.")]
AlphaOpt = Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Heatmap opacity.")]
SignedOpt = Annotated[
    bool,
    typer.Option(
        "--signed",
        help="Signed maps: red for the target, blue against it (e.g. --target age: what looks older, "
        "what younger). For gradcam, xgradcam, hirescam, gradient-x-input, integrated-gradients, "
        "occlusion, rise (with --method all: those).",
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


def layers_command(
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
) -> None:
    """List the model's layers with output shapes; * marks layers a CAM can explain.

    Layers inside nested models are shown as outer/inner. Keywords accepted by
    --layer: last-conv, early, mid, late, or a name; default: the model's declared layer
    (the shipped model's is block_13_expand_relu), else last-conv.

    Examples:

      agelens layers

      agelens layers --model my_model.keras
    """
    from agelens.quiet import import_tensorflow_quietly

    check_model_path(model)
    import_tensorflow_quietly()
    from agelens.explain.layers import KEYWORDS, list_layers, resolve_layer

    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    am = load_cli_model(model, options)
    typer.echo(f"{'idx':>4}   {'name':40s} {'type':24s} output shape")
    for info in list_layers(am):
        typer.echo(str(info))
    for kw in KEYWORDS:
        try:
            typer.echo(f"{kw:>9} -> {resolve_layer(am, kw)[0]}")
        except ValueError as e:
            typer.echo(f"{kw:>9} -> ({e})")
    try:
        typer.echo(f"{'default':>9} -> {resolve_layer(am, None)[0]}")
    except ValueError as e:
        typer.echo(f"{'default':>9} -> ({e})")


def explain_command(
    photos: PhotosArg,
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    method: MethodOpt = "gradcam",
    layer: LayerOpt = None,
    target: TargetOpt = None,
    filters: FiltersOpt = 0,
    out: OutOpt = None,
    force: ForceOpt = False,
    detect: DetectOpt = True,
    cmap: CmapOpt = "jet",
    alpha: AlphaOpt = 0.45,
    signed: SignedOpt = False,
) -> None:
    """Explain what the model looks at in each photo; write overlays, panels, raw maps and a manifest.

    Per photo and method: NNN_<name>_<method>_overlay.png (gradcam++ is written gradcampp),
    _panel.png (image | heatmap | overlay with the top-3 probabilities) and _map.npy (float32
    in [0, 1], in [-1, 1] with --signed, at the size of the
    image explained: the face crop, or the photo when no face was found or with --no-detect;
    the manifest's crop_box_xywh says where it lies in the photo; above 1024 px, shrunk to 1024
    on its longest side, its size in map_size); with --filters K, NNN_<name>_filters.png.
    manifest.json lists every file, each method's options, the overlay settings and, per
    photo, its prediction and notes. Unreadable photos are reported (one line each) and
    skipped. Exit code 2 for a malformed option (an unknown method, target or layer, a value
    out of range); 1 for another error (a missing model, model options that do not fit it,
    a non-empty --out without --force) or when no photo could be read.

    Methods: gradcam, gradcam++, xgradcam, hirescam, layercam, scorecam, ablationcam,
    eigencam, saliency, smoothgrad, gradient-x-input, integrated-gradients, guided-backprop,
    guided-gradcam, occlusion, rise, or smooth-<method>.

    Examples:

      agelens explain face.jpg

      agelens explain photos/ --method gradcam,scorecam --target old-young --out outputs/run1

      agelens explain "holiday/*.jpg" --detect --filters 8 --layer mid
    """
    paths = _photo_paths(photos)  # cheap checks first: TensorFlow takes seconds to load
    check_model_path(model)
    _check_target_early(model, target, class_names)
    check_layer_early(model, layer)
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # the cheap checks passed: now TensorFlow, without its start-up lines
    methods = _chosen_methods(method, signed)  # a typo in an option: said before the output folder's state
    _check_cmap(cmap)
    given, out = out, _ready_out(out, force)
    options = load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    am = load_cli_model(model, options)
    _explain_loaded(
        am, paths, methods, given, out, layer, target, filters, force, detect, cmap, alpha, signed
    )


def explain_model(
    am: Any,
    photos: list[str],
    *,
    method: str,
    layer: str | None,
    target: str | None,
    filters: int,
    out: Path,
    force: bool,
    detect: bool,
    cmap: str,
    alpha: float,
    signed: bool = False,
) -> None:
    """``agelens explain`` for a model already in memory (``am``, an AgeModel): the same checks,
    files, manifest and lines, without reading the model back from its file.

    Why: the demo explains the model it has just trained and saved. Read back, it was a second
    Keras model, so every explain step was traced for it and again for the model the demo then
    scores (the traced steps are cached per Keras model), and the file was read for nothing.
    """
    paths = _photo_paths(photos)
    methods = _chosen_methods(method, signed)
    _check_cmap(cmap)
    out = _ready_out(out, force)
    _explain_loaded(am, paths, methods, out, out, layer, target, filters, force, detect, cmap, alpha, signed)


def _explain_loaded(
    am: Any,
    paths: list[Path],
    methods: list[str],
    given: Path | None,
    out: Path,
    layer: str | None,
    target: str | None,
    filters: int,
    force: bool,
    detect: bool,
    cmap: str,
    alpha: float,
    signed: bool,
) -> None:
    """What ``explain`` does once its model is loaded and ``out`` is ready: check the layer and
    target against the model, read the photos, write the run, print the predictions and a summary."""
    _check_choices(am, methods, layer, target, filters)
    _warn_ignored_layer(methods, layer, filters)
    images, sources, faces, problems, notes = _readable_photos(paths, detect)
    say_fresh_out(given, out, DEFAULT_OUT)
    try:
        files, predictions = _run(
            am, images, sources, faces, problems, methods, layer, target, filters, out, force,
            cmap, alpha, signed, detect=detect, notes=notes,
        )  # fmt: skip
    except OSError as e:  # the disk filled or the folder was locked mid-run: nothing half-written stays
        raise _fail(f"{out}: could not write the run: {e.strerror or e}") from None
    if force:
        drop_stale_report(out)  # a page drawn from the explanations just replaced
    _say_predictions(am, sources, predictions, notes, out)
    typer.echo(
        f"explained {counted(len(images), 'photo')} with {', '.join(methods)}: "
        f"{counted(len(files), 'file')} in {out}" + (f" ({len(problems)} skipped)" if problems else "")
    )


def _photo_paths(photos: list[str]) -> list[Path]:
    """The photos the arguments name, refused in one line when none is there: found before
    TensorFlow loads, a typo in a path costs a second."""
    paths = expand_photos(photos)
    if not paths:
        raise _fail("no images found in " + ", ".join(photos))
    if not any(p.exists() for p in paths):
        which = (
            f"{paths[0]}: no such file or folder"
            if len(paths) == 1
            else f"none of the {len(paths)} files exist"
        )
        raise _fail(f"nothing to explain: {which}")
    return paths


def _chosen_methods(method: str, signed: bool) -> list[str]:
    """--method's list, kept to the signed methods with --signed (all of them for 'all')."""
    methods = _methods(method)
    if signed:
        methods = _signed_methods(methods, every=method.strip().lower() == "all")
    return methods


def _ready_out(out: Path | None, force: bool) -> Path:
    """The run's folder (--out, or the next free default), refused now when it holds an earlier run
    without --force or cannot be written: not after every map is made."""
    from agelens.explain.explanation import check_output_dir

    out = fresh_out(out, DEFAULT_OUT, force)
    try:
        check_output_dir(out, force, hint="pass --force to write into it")
    except FileExistsError as e:
        raise _fail(str(e)) from None
    check_parent_folder(out, "--out")
    return out


def _readable_photos(
    paths: list[Path], detect: bool
) -> tuple[list[np.ndarray], list[str], list[dict[str, Any]], list[Any], list[list[str]]]:
    """Read (and with --detect crop) the photos; say each one skipped and each photo's notes.

    Returns images, sources, faces, problems and notes; fails when no photo could be read (naming
    it and why when it was the only one).
    """
    crop = _face_cropper() if detect else None
    images, sources, faces, problems = _read_photos(paths, crop)
    if not images and len(problems) == 1:  # one photo, unreadable: one line that names it and why
        raise _fail(f"nothing to explain: {problems[0]}")
    for p in problems:
        typer.echo(f"skipped {p}", err=True)
    notes = _photo_notes(images, sources, faces, detect)
    for src, said in zip(sources, notes, strict=True):  # explained all the same, but said (and recorded)
        for note in said:
            typer.echo(f"{src}: {note}", err=True)
    if not images:
        raise _fail(f"nothing to explain: all {len(paths)} photos were unreadable")
    return images, sources, faces, problems, notes


def _say_predictions(
    am: Any, sources: list[str], predictions: list[dict[str, Any]], notes: list[list[str]], out: Path
) -> None:
    """One line a photo (the first SHOWN_PREDICTIONS; the rest are in the manifest), as predict prints it."""
    shown = list(zip(sources, predictions, notes, strict=True))[:SHOWN_PREDICTIONS]
    cut = am.bins if am.groups_from_age else None  # an age cut: its age printed on its group's side
    for src, pred, said in shown:  # the notes again, where predict puts them: on the answer
        note = "".join(f"  ({n})" for n in said)
        line = prediction_line(pred["class"], pred["probabilities"], pred.get("age"), bins=cut)
        typer.echo(f"{src}: {line}{note}")
    if len(sources) > SHOWN_PREDICTIONS:
        typer.echo(f"... {len(sources) - SHOWN_PREDICTIONS} more predictions in {out / 'manifest.json'}")


def _photo_notes(
    images: list[np.ndarray], sources: list[str], faces: list[dict[str, Any]], detect: bool
) -> list[list[str]]:
    """Per photo, what a reader of its map should know: no face found (with detection on), too
    small, a single flat colour: the words ``predict`` prints beside its answer."""
    from agelens.model.predict import quality_notes

    return [
        ([no_face_note(img)] if detect and not face["face_found"] else [])
        + quality_notes(img, face.get("face_found"), Path(src))
        for img, src, face in zip(images, sources, faces, strict=True)
    ]


def expand_photos(items: list[str]) -> list[Path]:
    """Files as given, images in and under folders, and glob matches.

    A folder is read as ``predict`` reads it (:func:`agelens.data.sources.scan_images`): sub-folders
    too, hidden files and folders skipped, and an image-named link that leads nowhere kept, so
    it is reported with its reason instead of vanishing. Otherwise ``predict holiday/`` answered
    for photos that ``explain holiday/`` never drew.
    """
    from agelens.data.sources import scan_images

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found, dangling = scan_images(p, recursive=True)
            out.extend(sorted([*found, *(Path(d.path) for d in dangling)]))
        elif any(ch in item for ch in "*?[") and not p.exists():
            out.extend(Path(m) for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file())
        else:
            out.append(p)  # a missing file is reported as a problem later, in one line
    return list(dict.fromkeys(out))


def _methods(spec: str) -> list[str]:
    from agelens.explain.api import canonical, list_methods

    names = list_methods() if spec.strip().lower() == "all" else [s for s in spec.split(",") if s.strip()]
    if not names:  # `--method ""` ran nothing and crashed writing a manifest of no runs
        raise typer.BadParameter(f"no method given in {spec!r}; e.g. --method gradcam", param_hint="--method")
    try:
        return list(dict.fromkeys(canonical(n) for n in names))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--method") from None


def _signed_methods(methods: list[str], every: bool) -> list[str]:
    """The methods ``--signed`` can run: all of them or an error naming the ones that cannot
    (``--method all``: just those with a signed form)."""
    from agelens.explain.api import has_signed_form, signed_methods

    if every:
        return [m for m in methods if has_signed_form(m)]
    if bad := [m for m in methods if not has_signed_form(m)]:
        raise typer.BadParameter(
            f"{', '.join(bad)}: no signed form; --signed works with {', '.join(signed_methods())}",
            param_hint="--method",
        )
    return methods


def _check_cmap(cmap: str) -> None:
    from agelens.explain.overlay import check_cmap

    try:
        check_cmap(cmap)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--cmap") from None


TARGET_WORDS = ("", "predicted", "pred", "top", "none", "age")
"""What ``--target`` takes besides classes and contrasts (``agelens.explain.targets.resolve_target``)."""


def _check_target_early(model: Path | None, target: str | None, class_names: str | None) -> None:
    """Refuse a ``--target`` that names no class, before TensorFlow starts and the model loads (~20 s).

    Only where the classes are known without loading (``--class-names``, or a model file whose
    metadata names them, the shipped one included) and only when certain: ``resolve_target`` still
    judges everything after loading (the age output, two equal sides of a contrast). A test checks
    this never refuses what ``resolve_target`` accepts.
    """
    from agelens.model.io import SHIPPED_MODEL, read_metadata

    if target is None:
        return
    names = [n.strip() for n in class_names.split(",")] if class_names else None
    names = names or read_metadata(model if model is not None else SHIPPED_MODEL).get("class_names")
    if not names or could_be_target(target, [str(n) for n in names]):
        return
    from agelens.wording import target_choices

    raise typer.BadParameter(f"unknown target {target!r}: {target_choices(names)}", param_hint="--target")


def could_be_target(text: str, names: list[str]) -> bool:
    """Whether ``text`` may be a target of a model with classes ``names``: a word, a class (any
    case) or its index, or a contrast of two of those (class names may hold hyphens)."""
    from agelens.metrics.readouts import class_of, contrast_pair

    text = text.strip()
    if text.lower() in TARGET_WORDS or class_of(text, names) is not None:
        return True
    return contrast_pair(text, names) is not None


def _check_choices(am: Any, methods: list[str], layer: str | None, target: str | None, filters: int) -> None:
    """Refuse a bad --layer or --target before any work. The layer is checked only where it is
    used (a CAM method or the filter grid): for pixel methods alone it is ignored, with a note
    (``--method saliency --layer input``, as a manifest records saliency's layer, is no error)."""
    from agelens.explain.api import takes_layer
    from agelens.explain.layers import resolve_layer
    from agelens.explain.targets import resolve_target

    try:
        if any(takes_layer(m) for m in methods) or (layer is not None and filters > 0):
            resolve_layer(am, layer)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--layer") from None
    try:
        resolve_target(target, am)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--target") from None


def _warn_ignored_layer(methods: list[str], layer: str | None, filters: int) -> None:
    """One line per method that explains input pixels when --layer was given: silently running
    occlusion on the pixels after the user asked for a layer looks like the layer was used."""
    from agelens.explain.api import takes_layer

    if layer is None:
        return
    still = " (the filter grid still uses it)" if filters > 0 else ""
    for m in methods:
        if not takes_layer(m):
            typer.echo(f"{m} explains the input pixels: --layer ignored{still}", err=True)


def _face_cropper() -> Any:
    from agelens.model.faces import crop_largest_face  # OpenCV loads only when --detect asks for it

    return crop_largest_face


def _read_photos(
    paths: list[Path], crop: Any
) -> tuple[list[np.ndarray], list[str], list[dict[str, Any]], list[Any]]:
    """Decoded photos (face crops when ``crop`` is given), their sources, per photo what the
    manifest says of the photo and its face (size, found, box, the crop's box), and the
    unreadable files."""
    from agelens.data.images import Problem, read_photo
    from agelens.explain.api import crop_box_xywh

    images, sources, faces, problems = [], [], [], []
    for p in paths:
        img = read_photo(p)
        if isinstance(img, Problem):
            problems.append(img)
            continue
        face: dict[str, Any] = {"photo_size": [int(img.shape[1]), int(img.shape[0])]}
        photo, box = img, None
        if crop is not None:
            img, box = crop(photo)
            face["face_found"] = box is not None
            if box is not None:
                face["face_box_xywh"] = [int(v) for v in box]
        face["crop_box_xywh"] = crop_box_xywh(photo, img, box)
        images.append(img)
        sources.append(str(p))
        faces.append(face)
    return images, sources, faces, problems


def _run(
    am: Any,
    images: list[np.ndarray],
    sources: list[str],
    faces: list[dict[str, Any]],
    problems: list[Any],
    methods: list[str],
    layer: str | None,
    target: str | None,
    filters: int,
    out: Path,
    force: bool,
    cmap: str,
    alpha: float,
    signed: bool = False,
    detect: bool = True,
    notes: list[list[str]] | None = None,
) -> tuple[list[str], list[dict]]:
    """Explain in chunks and write everything through one all-or-nothing output directory.

    ``notes``: per photo, why its prediction means little (see :func:`_photo_notes`); recorded
    in its manifest record so the report can say it beside the map, not only the terminal.

    ``detect``: whether the faces were cropped (by :func:`_read_photos`, before ``explain`` ran
    with ``detect=False`` on the crops), so each run's settings record what happened.
    Returns the files written and, per photo, the model's prediction: as the manifest has it,
    but with the raw age (the Explanation's ``ages``), not the manifest's age rounded to 0.01,
    which printed rounded again read "~58 y" for 57.4999 y where predict and the panels say 57.
    """
    from agelens.explain.explanation import manifest_header, output_dir, stems, write_manifest

    names, records = stems(sources), _records(sources, images, faces, notes)
    with output_dir(out, force) as tmp:
        written = _Written(tmp, names, records, cmap, alpha)
        runs = [_explain_method(am, images, m, layer, target, signed, detect, written) for m in methods]
        header = manifest_header(str(am.path) if am.path else None, cmap=cmap, alpha=alpha)
        header["model_read_as"] = am.read_as
        if filters > 0:
            header["filters"] = _filter_grids(am, images, layer, filters, written)
        files = [f for r in written.records for f in r["files"]]
        write_manifest(tmp, header, runs, written.records, files, problems)
    return [*files, "manifest.json"], written.shown()


def _records(
    sources: list[str], images: list[np.ndarray], faces: list[dict[str, Any]], notes: list[list[str]] | None
) -> list[dict[str, Any]]:
    """Each photo's manifest record before any map is drawn: its source (as typed and absolute), its
    size (width, height), its face crop and the notes on its prediction.

    Why the notes go in the record: the report can then say them beside the map, not only the terminal.
    """
    from agelens.data.images import source_record

    records = [
        {**source_record(s), "size": [int(i.shape[1]), int(i.shape[0])], "files": []}
        for s, i in zip(sources, images, strict=True)
    ]
    for r, face, said in zip(records, faces, notes or [[]] * len(records), strict=True):
        r.update(face)
        if said:
            r["notes"] = said
    return records


class _Written:
    """Per photo, what :func:`_run` has written into the output folder ``tmp`` so far: its manifest
    record (files, prediction, map size) and the raw age.

    Why one object: every method's chunks and the filter grids add to the same records, under the
    same file stems, with the same colour map and opacity.
    """

    def __init__(
        self, tmp: Path, names: list[str], records: list[dict[str, Any]], cmap: str, alpha: float
    ) -> None:
        self.tmp, self.names, self.records, self.cmap, self.alpha = tmp, names, records, cmap, alpha
        self.raw_ages: list[float | None] = [None] * len(records)

    def add_maps(self, e: Any, lo: int, tag: str) -> None:
        """Write the overlays of Explanation ``e``, whose photos start at photo ``lo``."""
        from agelens.explain.explanation import write_image_files

        for j in range(len(e)):
            rec = write_image_files(
                e, j, self.tmp, stem=self.names[lo + j], alpha=self.alpha, cmap=self.cmap, tag=tag
            )
            self.records[lo + j]["files"] += rec["files"]
            self.records[lo + j].setdefault("prediction", rec["prediction"])
            self.records[lo + j].setdefault("map_size", rec["map_size"])  # every method's map: same size
            if e.ages is not None and self.raw_ages[lo + j] is None:
                self.raw_ages[lo + j] = float(e.ages[j])

    def shown(self) -> list[dict]:
        """Per photo, the prediction as the manifest has it but with the raw age (see :func:`_run`)."""
        return [
            {**r["prediction"], "age": age}
            if age is not None and "age" in r["prediction"]
            else r["prediction"]
            for r, age in zip(self.records, self.raw_ages, strict=True)
        ]


def _explain_method(
    am: Any,
    images: list[np.ndarray],
    method: str,
    layer: str | None,
    target: str | None,
    signed: bool,
    detect: bool,
    written: _Written,
) -> dict[str, Any]:
    """Explain every photo with one method, CHUNK photos a call, and write the overlays; returns the
    run's description for the manifest (the last chunk's: every chunk ran with the same settings).

    Why per method, not per chunk: blank maps are counted over every chunk and said in one line.
    """
    from agelens.explain.api import BlankMapsWarning, count_blank, explain, takes_layer

    ly = layer if takes_layer(method) else None
    blank = 0
    for lo in range(0, len(images), CHUNK):
        opts = {"signed": True} if signed else {}
        with warnings.catch_warnings():  # counted below and said once per method
            warnings.simplefilter("ignore", BlankMapsWarning)
            e = explain(am, images[lo : lo + CHUNK], method=method, layer=ly, target=target, **opts)
        e.settings["detect"] = detect  # these images are the crops: explain saw no detection
        blank += count_blank(e.maps)
        written.add_maps(e, lo, method)
    run = e.describe()
    typer.echo(f"{method}: done ({e.layer}, target: {e.target})", err=True)
    if blank:  # e.g. Grad-CAM where no channel's gradient is positive: say so, don't ship a blank
        advice = (
            " at this layer; try another --layer or method" if takes_layer(method) else "; try another method"
        )
        typer.echo(
            f"{method}: warning: {blank} of {len(images)} maps are all zero "
            f"(no positive evidence for the target{advice})",
            err=True,
        )
    return run


def _filter_grids(
    am: Any, images: list[np.ndarray], layer: str | None, filters: int, written: _Written
) -> dict[str, Any]:
    """Draw each photo's grid of its ``filters`` most active filters; returns the manifest's
    ``filters`` entry. A fused ``--layer a,b`` draws the first layer's filters, and says so."""
    first = layer.split(",")[0] if layer else None  # a fused --layer: one layer's filters
    for i, img in enumerate(images):
        name, filter_layer = _filter_grid(
            am, img, first, filters, written.tmp, written.names[i], written.cmap, written.alpha
        )
        written.records[i]["files"].append(name)
    if layer and "," in layer:
        typer.echo(f"filters: drawn for {filter_layer}, the first layer of --layer {layer}", err=True)
    return {"layer": filter_layer, "k": filters}


SHOWN_PREDICTIONS = 20
"""Photos whose prediction is printed; the manifest has every one."""


def _filter_grid(
    am: Any, img: np.ndarray, layer: str | None, k: int, tmp: Path, stem: str, cmap: str, alpha: float
) -> tuple[str, str]:
    """Draw the ``k`` most active filters of ``layer`` for one photo; returns (file name, layer name)."""
    from agelens.data.images import resize_for_model
    from agelens.explain.filters import filter_grid, filter_maps
    from agelens.explain.overlay import save_figure

    x = resize_for_model(img, am.input_size)
    fm = filter_maps(am, x, layer, k=k)
    name = f"{stem}_filters.png"
    save_figure(filter_grid(x, fm, cols=4, alpha=alpha, cmap=cmap), tmp / name)
    return name, fm.layer
