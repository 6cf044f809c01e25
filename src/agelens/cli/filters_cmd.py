"""``agelens filters``: what each filter of a layer looks for, as a synthetic pattern beside the photo
patches that drive it most (:func:`agelens.explain.feature_vis.filter_atlas`).

Registered on the main app next to ``explain``; it reads photos, detects faces and loads models
exactly as ``explain`` does (the helpers are shared), so the same photo gives the same model input
in both. Heavy imports happen inside the command so ``--help`` and a typo stay fast.
"""

from __future__ import annotations

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
    fail,
    fresh_out,
    load_cli_model,
    load_options,
    say_fresh_out,
)
from agelens.cli.explain_cmd import ForceOpt, PhotosArg, _photo_paths, _readable_photos

if TYPE_CHECKING:
    import numpy as np

DEFAULT_OUT = Path("outputs/filters")
MAX_FILTERS = 64
"""Most filters one atlas draws: a row each, and beyond this the figure outgrows what a PNG holds."""

PHOTO_FIELDS = ("source", "photo_size", "face_found", "face_box_xywh", "crop_box_xywh")
"""The fields of each ``photos`` record, worded in the manifest as explain's manifest words them."""

LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer",
        help="One layer: a name, an index, or last-conv / early / mid / late (default: the model's "
        "declared layer, else last-conv).",
    ),
]
FiltersOpt = Annotated[
    str,
    typer.Option(
        "--filters",
        help=f"A count (the filters most active on these photos) or a comma list of filter indices, "
        f"e.g. 3,17,40 (one filter: 17, with the comma); at most {MAX_FILTERS}.",
    ),
]
TopOpt = Annotated[int, typer.Option("--top", min=0, max=32, help="Photo patches shown per filter.")]
StepsOpt = Annotated[
    int, typer.Option("--steps", min=0, help="Optimisation steps per pattern (more: stronger, slower).")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, help="Seed of the pattern search (same seed, same patterns).")
]
DetectOpt = Annotated[
    bool,
    typer.Option(
        "--detect/--no-detect",
        help="Crop the largest face first, as explain and predict do (a photo whose face box covers "
        "half of it or more is kept whole); --no-detect uses each photo as given.",
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


def filters_command(
    photos: PhotosArg,
    model: ModelOpt = None,
    input_size: InputSizeOpt = None,
    class_names: ClassNamesOpt = None,
    input_range: InputRangeOpt = None,
    class_output: ClassOutputOpt = None,
    age_output: AgeOutputOpt = None,
    one_unit: OneUnitOpt = None,
    bins: ModelBinsOpt = None,
    layer: LayerOpt = None,
    filters: FiltersOpt = "8",
    top: TopOpt = 6,
    steps: StepsOpt = 256,
    seed: SeedOpt = 0,
    out: OutOpt = None,
    force: ForceOpt = False,
    detect: DetectOpt = True,
) -> None:
    """What each filter of a layer looks for: the pattern and the photo patches that drive it most.

    Per filter, the pattern is a synthetic image searched for to drive it hardest (activation
    maximisation); the patches are the photos where it fires most, cut to what it can see.

    Writes atlas.png (one row per filter: its pattern, then its top photo patches cut to the
    filter's receptive field), filter_<f>_pattern.png, patterns.npy and manifest.json (per filter
    the activations and the top photos with their boxes; the photos read, the ones skipped and
    why, and the faces found). Photos are read as explain reads them: the largest face cropped
    first (--no-detect: as given), then fitted to the model's input. A pattern shows what drives a
    filter, not why the model predicts a class. Unreadable photos are reported (one line each) and
    skipped. Exit code 2 for a malformed option (a filter index out of range, an unknown layer); 1
    for another error or when no photo could be read.

    Examples:

      agelens filters photos/

      agelens filters face.jpg other.jpg --layer mid --filters 3,17,40 --top 4

      agelens filters "holiday/*.jpg" --filters 16 --steps 512 --out outputs/filters-late
    """
    paths = _photo_paths(photos)  # cheap checks first: TensorFlow takes seconds to load
    check_model_path(model)
    chosen = parse_filters(filters)
    _check_one_layer(layer)
    check_layer_early(model, layer)
    from agelens.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    given, out = out, _ready_out(out, force)
    am = load_cli_model(
        model, load_options(input_size, class_names, input_range, class_output, age_output, one_unit, bins)
    )
    name, chosen, n = _checked_filters(am, layer, chosen)
    images, sources, faces, problems, _notes = _readable_photos(paths, detect)
    if chosen == n and not isinstance(chosen, list):  # said once the photos proved usable
        typer.echo(f"layer {name} has {counted(n, 'filter')}: drawing all of them", err=True)
    say_fresh_out(given, out, DEFAULT_OUT)
    atlas = _draw(am, images, sources, faces, problems, name, chosen, top, steps, seed, detect, out, force)
    _say_atlas(atlas, sources, out, len(problems))


def parse_filters(text: str) -> int | list[int]:
    """``--filters`` as a count (``"8"``) or a list of indices (``"3,17,40"``, or ``"17,"`` for one).

    Why a trailing comma for one filter: a bare number is a count, the common case, and the two
    must not be guessed between. Refused here, before TensorFlow loads: anything but non-negative
    integers, a count of 0, or more than :data:`MAX_FILTERS`.
    """
    parts = [p.strip() for p in text.split(",")]
    named = len(parts) > 1
    parts = [p for p in parts if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise typer.BadParameter(
            f"{text!r}: give a count (e.g. 8) or filter indices, comma-separated (e.g. 3,17,40)",
            param_hint="--filters",
        )
    values = list(dict.fromkeys(int(p) for p in parts))
    if not named and values[0] < 1:
        raise typer.BadParameter(f"{text!r}: ask for at least 1 filter", param_hint="--filters")
    if (values[0] if not named else len(values)) > MAX_FILTERS:
        raise typer.BadParameter(
            f"{text!r}: at most {MAX_FILTERS} filters in one atlas (one row each)", param_hint="--filters"
        )
    return values if named else values[0]


def _check_one_layer(layer: str | None) -> None:
    """An atlas shows one layer's filters: a comma list (which explain fuses) is refused, not cut."""
    if layer is not None and "," in layer:
        raise typer.BadParameter(
            f"{layer!r}: one layer only (the filters of several layers are not one list)",
            param_hint="--layer",
        )


def _ready_out(out: Path | None, force: bool) -> Path:
    """The run's folder (``--out``, or the next free default), refused now when it holds an earlier
    run without ``--force`` or cannot be written: not after the patterns are searched."""
    from agelens.explain.explanation import check_output_dir

    out = fresh_out(out, DEFAULT_OUT, force)
    try:
        check_output_dir(out, force, hint="pass --force to write into it")
    except FileExistsError as e:
        fail(str(e))
    check_parent_folder(out, "--out")
    return out


def _checked_filters(am: Any, layer: str | None, chosen: int | list[int]) -> tuple[str, int | list[int], int]:
    """The layer's name, the filters to draw and how many the layer has, checked against the model
    before any photo is read: an unknown or non-spatial layer and an index past the layer's last
    filter are usage errors (exit 2); a count above the layer's filters becomes all of them."""
    from agelens.explain.layers import list_layers, resolve_layer

    try:
        name = resolve_layer(am, layer)[0]
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--layer") from None
    shape = next((info.shape for info in list_layers(am) if info.name == name), None)
    if shape is None or len(shape) != 3 or not shape[-1]:  # (height, width, filters), no batch axis
        raise typer.BadParameter(
            f"{name!r} has no filters to draw (output shape {shape}); pick a convolutional layer "
            "(`agelens layers` marks them with *)",
            param_hint="--layer",
        )
    n = int(shape[-1])
    if isinstance(chosen, list):
        if bad := [f for f in chosen if f >= n]:
            raise typer.BadParameter(
                f"{', '.join(map(str, bad))} out of range: layer {name} has {n} filters (0 to {n - 1})",
                param_hint="--filters",
            )
    elif chosen > n:
        chosen = n
    return name, chosen, n


def _draw(
    am: Any,
    images: list[np.ndarray],
    sources: list[str],
    faces: list[dict[str, Any]],
    problems: list[Any],
    layer: str,
    chosen: int | list[int],
    top: int,
    steps: int,
    seed: int,
    detect: bool,
    out: Path,
    force: bool,
) -> Any:
    """Search the patterns, rank the photos and write the atlas atomically; returns the atlas."""
    import numpy as np

    from agelens.data.images import resize_for_model, source_record
    from agelens.explain.explanation import CONVENTIONS
    from agelens.explain.feature_vis import filter_atlas, save_atlas

    x = np.stack([resize_for_model(img, am.input_size) for img in images])  # explain's model input
    atlas = filter_atlas(am, x, layer=layer, filters=chosen, top=top, steps=steps, seed=seed)
    extra = {
        "model_read_as": am.read_as,
        "detect": detect,
        "faces_found": sum(bool(f.get("face_found")) for f in faces) if detect else None,
        "photos": [source_record(s) | f for s, f in zip(sources, faces, strict=True)],
        "problems": [str(p) for p in problems],
        "photo_conventions": {k: CONVENTIONS[k] for k in PHOTO_FIELDS},
    }
    try:
        model_path = str(am.path) if am.path else None  # as explain's manifest names it
        save_atlas(atlas, out, names=sources, model_path=model_path, force=force, extra=extra)
    except OSError as e:  # the disk filled or the folder was locked mid-run: nothing half-written stays
        fail(f"{out}: could not write the atlas: {e.strerror or e}")
    if force:
        drop_stale_report(out)
    return atlas


def _say_atlas(atlas: Any, sources: list[str], out: Path, skipped: int) -> None:
    """One line per filter (its pattern's activation, the best any photo reaches, the top photo), then
    where the files went: enough to see at a glance whether the search found more than the photos."""
    for i, f in enumerate(atlas.filters):
        best = atlas.top[i][0] if atlas.top[i] else None
        shown = f", top photo {sources[best.index]} (peak {best.value:.3g})" if best else ""
        typer.echo(
            f"filter {f}: pattern {float(atlas.patterns.activation[i]):.3g}, "
            f"best photo {float(atlas.photo_best[i]):.3g}{shown}"
        )
    typer.echo(
        f"drew {counted(len(atlas.filters), 'filter')} of {atlas.layer} ({atlas.chosen_by}) from "
        f"{counted(len(sources), 'photo')}: atlas.png and the patterns in {out}"
        + (f" ({skipped} skipped)" if skipped else "")
    )
