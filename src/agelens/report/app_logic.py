"""Everything the web app does, minus the widgets: checks, explaining, rendering, zipping.

Kept apart from :mod:`agelens.report.app` so it is testable without a browser or a
server, and so the Gradio wiring stays a thin, readable layout file.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agelens.data.images import ImageError, animation_note, load_image, resize_for_model

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Uploads above 20 MB are refused before decoding: no face photo needs more."""
DISPLAY_SIDE = 320
MAX_WORK_SIDE = 1024
"""Photos (or face crops) are shrunk to this longest side before explaining. The model sees
112 px, so nothing it uses is lost; at full size a 6000 px photo took over 30 s per click
and its download (full-size overlays and a float32 ``.npy`` map) was over 100 MB."""
WHOLE_PHOTO_SHARE = 0.9
"""Below this share of the photo, "using the whole photo" would mislead: the model sees only
the centred square (a 3:2 photo loses a third), so the note says how much it sees."""
GRID_FILTERS = 7
"""Filters in the app's filter grid (with the layer mean: 8 tiles, two rows of four)."""
PATTERN_STEPS = 128
"""Search steps for the app's filter patterns: half the library's default, so a click answers in
seconds (shipped model, default layer, 7 filters, 2-core CPU: 8.7 s on the first click, which
traces the search, 5.2 s after). The patterns still reach 2-3x the filters' mean on a photo."""

MAP_KEY = (
    "**Red = most important for the chosen target in this photo.** Each map has its own scale: "
    "colours are not comparable across photos. See *How to read this* below."
)
"""One line under the map, always visible: the reading most often got wrong."""

HOW_TO_READ = """\
- **Red is a rank within this photo, not an amount.** Each map is scaled per photo to 0-1, so
  red means "most important for the chosen target *in this photo*". Two photos' reds are not
  comparable, and a photo where nothing matters much still has a red spot. The class
  probabilities say how sure the model is.
- **The target is the question the map answers.** "predicted class" asks "why this class?"; a
  class name asks "what here speaks for that class?"; "old-young" asks what separates the two.
- **CAM methods** (gradcam, gradcam++, xgradcam, hirescam, layercam, scorecam, ablationcam,
  eigencam) show *where the features the class relies on are* in the photo, on a coarse grid.
  That is not proof the model "reads" age there.
- **Cross-check before concluding:** run **occlusion** (hides patches and measures the change)
  and **hirescam** too. Where they agree with gradcam, the map is more trustworthy.
- **Outside the centred square the map is 0:** the model never saw that part of the photo.
"""
"""The app's "How to read this" panel: docs/explain.md's "Reading a map", for people, not the CLI."""

METHOD_INFO = {
    "gradcam": "Grad-CAM: weights each feature map of the layer by its average gradient; coarse regions.",
    "gradcam++": "Grad-CAM++: like Grad-CAM, weighting positive gradients more finely; "
    "better when a cue appears in several places.",
    "xgradcam": "XGrad-CAM: Grad-CAM with gradients weighted by the activations.",
    "hirescam": "HiResCAM: gradient x activation at each location (no averaging); "
    "shows what each place adds to the score.",
    "layercam": "Layer-CAM: positive gradient x activation at each location; "
    "sharper maps, also on early layers.",
    "scorecam": "Score-CAM: no gradients; masks the photo with each feature map and scores it (slow).",
    "ablationcam": "Ablation-CAM: no gradients; switches each feature map off and measures the drop (slow).",
    "eigencam": "Eigen-CAM: the main pattern in the layer's activations; the same map for every target.",
    "saliency": "Saliency: how much each pixel's change moves the target score; sharp but noisy.",
    "smoothgrad": "SmoothGrad: saliency averaged over noisy copies of the photo; less noise.",
    "gradient-x-input": "Gradient x input: each pixel's value times the score's gradient there; "
    "one pass, signed.",
    "integrated-gradients": "Integrated Gradients: gradients summed along a fade-in from a black image; "
    "per pixel.",
    "guided-backprop": "Guided backprop: gradients with negative signals blocked; "
    "edge-like, barely depends on the target.",
    "guided-gradcam": "Guided Grad-CAM: guided backprop times Grad-CAM; sharp and target-specific.",
    "occlusion": "Occlusion: hides one patch at a time and measures the drop in the score; "
    "a direct test (slow).",
    "rise": "RISE: shows the photo through 1,000 random masks and credits what stayed visible when the "
    "score was high; catches regions that matter only together (slow).",
}
"""One line per method for the app's Method dropdown (a test checks it covers ``list_methods()``)."""


class UploadError(ValueError):
    """A one-line, user-facing reason an upload was refused."""


def check_upload(path: str | os.PathLike[str], name: str | None = None) -> np.ndarray:
    """Decode an uploaded file to ``HxWx3`` uint8 RGB, or raise :class:`UploadError`.

    ``name`` is what the user called the file; Gradio's temp path is never shown.
    """
    shown = name or Path(path).name
    try:
        size = os.path.getsize(path)
    except OSError:
        raise UploadError(f"{shown}: the upload could not be read; please try again") from None
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{shown}: file is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB"
        )
    try:
        return load_image(path)
    except ImageError as exc:
        raise UploadError(f"{shown}: {exc.reason}") from None


@dataclass
class Source:
    """Where the photo being explained came from: its name (for the status, the zip and the
    manifest, which said ``<image 0>`` before) and what to know about how it was read."""

    name: str
    note: str = ""


def read_upload(path: str | os.PathLike[str], name: str | None = None) -> tuple[np.ndarray, Source]:
    """:func:`check_upload`, plus the upload's :class:`Source` (the name Gradio kept, an animation note)."""
    shown = name or Path(path).name
    return check_upload(path, shown), Source(shown, animation_note(path))


def square(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The centred square the model sees, at ``side`` px for the screen (crisp when enlarging tiny inputs)."""
    import cv2

    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = np.ascontiguousarray(image[top : top + s, left : left + s])
    if s == side:
        return sq
    interp = cv2.INTER_AREA if s > side else (cv2.INTER_NEAREST if s <= side // 3 else cv2.INTER_CUBIC)
    return cv2.resize(sq, (side, side), interpolation=interp)


def shrink(image: np.ndarray, side: int = MAX_WORK_SIDE) -> np.ndarray:
    """``image`` with its longest side at most ``side`` px (area-averaged); smaller ones untouched."""
    from agelens.data.images import fit_longest_side

    return fit_longest_side(image, side)


def figure_to_array(fig: Any) -> np.ndarray:
    """RGB pixels of a matplotlib Figure (Agg canvas), for an image component."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@dataclass
class Engine:
    """The loaded model plus the option lists the UI offers; built once per app."""

    model: Any
    methods: list[str]
    layers: list[str]
    targets: list[str]
    workdir: Path
    default_layer: str = "last-conv"

    def prepare(self, photo: np.ndarray, detect: bool) -> Prepared:
        """The photo (or its largest face), at most :data:`MAX_WORK_SIDE` px, with a one-line note
        and what face detection found.

        The note says what was done and what to doubt (judged at the crop's own size).
        """
        from agelens.model.predict import quality_notes

        crop, note = photo, ""
        face: dict[str, Any] = {"photo_size": [int(photo.shape[1]), int(photo.shape[0])]}
        if detect:
            try:
                from agelens.model.faces import crop_largest_face

                crop, box = crop_largest_face(photo)
            except Exception as exc:  # the detector is optional: a broken OpenCV must not block explaining
                note = f"face detection unavailable ({type(exc).__name__}); {whole_photo_note(photo)}"
            else:
                from agelens.explain.api import crop_box_xywh

                face["face_found"] = box is not None
                if box is not None:
                    face["face_box_xywh"] = [int(v) for v in box]
                face["crop_box_xywh"] = crop_box_xywh(photo, crop, box)  # where the map lies, as the CLI says
                note = face_note(photo, crop, box)
        elif whole_photo_note(photo) != WHOLE_PHOTO:  # no detection: still say how much the model sees
            note = whole_photo_note(photo)
        notes = [n for n in (note, *quality_notes(crop, face.get("face_found"))) if n]
        return Prepared(shrink(crop), "; ".join(notes), face)

    def explain(
        self,
        photo: np.ndarray,
        method: str,
        layer: str,
        target: str,
        source: str | None = None,
        face: dict[str, Any] | None = None,
        signed: bool = False,
    ) -> Any:
        """``agelens.explain`` on one photo; the layer is passed only to methods that take one.

        ``source`` and ``face`` go into the Explanation, so its saved files and manifest name the
        photo and say whether a face was found (the photo arrives here cropped already).
        ``signed``: evidence against the target kept as negative values (``signed_methods()``).
        """
        from agelens.explain.api import explain, takes_layer

        ly = layer or None if takes_layer(method) else None
        from agelens.explain.api import has_signed_form, signed_methods

        if signed and not has_signed_form(method):  # saliency's own error lists its options
            raise ValueError(  # which mean nothing in the app
                f"{method} has no signed form; untick 'For and against' or pick {', '.join(signed_methods())}"
            )
        opts = {"signed": True} if signed else {}
        exp = explain(self.model, photo, method=method, layer=ly, target=_target(target), **opts)
        if source:
            exp.sources = [source]
        if face is not None:
            exp.faces = [face]
        return exp

    def probabilities(self, exp: Any) -> dict[str, float]:
        probs = np.asarray(exp.probabilities)[0]
        return {str(n): float(p) for n, p in zip(exp.class_names, probs, strict=True)}

    def filter_grid(self, photo: np.ndarray, layer: str, k: int = GRID_FILTERS) -> np.ndarray:
        """The ``k`` most active filters of ``layer`` on the model input, as one labelled image."""
        from agelens.explain.filters import filter_grid, filter_maps

        x = resize_for_model(photo, self.model.input_size)
        fm = filter_maps(self.model, x, layer or None, k=k)
        return figure_to_array(filter_grid(x, fm, cols=4))

    def try_filter_grid(self, photo: np.ndarray, layer: str) -> tuple[np.ndarray | None, str]:
        """The grid and "", or None and a one-line warning: a typo in the grid's layer box
        must cost only the grid, never the map and probabilities of the same click."""
        try:
            return self.filter_grid(photo, layer), ""
        except (ValueError, TypeError, KeyError) as exc:
            return None, f"⚠️ Filter grid not drawn: {web_message(exc)}"

    def filter_patterns_grid(
        self, photo: np.ndarray, layer: str, k: int = GRID_FILTERS, steps: int = PATTERN_STEPS
    ) -> tuple[np.ndarray, str]:
        """What the grid's filters look for: the same ``k`` filters in the same order (ranked by
        :func:`~agelens.explain.filters.filter_maps` on the same model input), one synthetic
        pattern each, as one labelled image, and a one-line note with the time it took.

        The search keeps neutral colour statistics (``photos=None``): one photo's colours made
        every pattern take its tint and reached less (3.80 / 3.73 / 2.29 against 4.18 / 4.04 / 2.38
        on three filters of the shipped model). Each tile compares the filter's activation on its
        pattern with its mean on this photo, so the reader sees the scale.
        """
        from agelens.explain.feature_vis import filter_patterns
        from agelens.explain.filters import filter_maps

        x = resize_for_model(photo, self.model.input_size)
        fm = filter_maps(self.model, x, layer or None, k=k)
        start = time.perf_counter()
        fp = filter_patterns(self.model, fm.layer, fm.indices, photos=None, steps=steps)
        seconds = time.perf_counter() - start
        fig = patterns_figure(fp.layer, fp.filters, fp.images, fp.activation, fm.means)
        return figure_to_array(fig), patterns_note(fp.layer, len(fp.filters), steps, seconds)

    def try_filter_patterns_grid(
        self, photo: np.ndarray | None, layer: str, steps: int = PATTERN_STEPS
    ) -> tuple[np.ndarray | None, str]:
        """The patterns and their note, or None and a one-line warning (as :meth:`try_filter_grid`):
        a typo in the layer box or a click before any photo must not crash the page."""
        if photo is None:
            return None, NO_PATTERN_PHOTO
        try:
            return self.filter_patterns_grid(photo, layer, steps=steps)
        except (ValueError, TypeError, KeyError) as exc:
            return None, f"⚠️ Filter patterns not drawn: {web_message(exc)}"

    def save_zip(self, exp: Any, alpha: float | None = None) -> Path:
        """``Explanation.save`` into a fresh folder under the app's temp dir, zipped (folder then removed).

        The zip is named after the photo and method (``agelens-face-gradcam.zip``), so several
        downloads stay apart in the user's Downloads folder.
        """
        stem = zip_stem(exp.sources[0] if exp.sources else None, exp.method)
        run = self.workdir / "outputs" / uuid.uuid4().hex[:12]
        folder = run / stem
        run.mkdir(parents=True)
        exp.save(folder, alpha=_alpha(alpha))  # with exp.faces: the manifest says what detection found
        archive = shutil.make_archive(str(run / stem), "zip", root_dir=run, base_dir=stem)
        shutil.rmtree(folder, ignore_errors=True)
        return Path(archive)


NO_PATTERN_PHOTO = "⚠️ Filter patterns not drawn: no photo yet; upload one or pick a sample."


def patterns_note(layer: str, k: int, steps: int, seconds: float) -> str:
    """One line under the patterns: what they are (and are not) and what the search cost."""
    return (
        f"Each tile is a synthetic image found to drive that filter of `{layer}` hardest "
        f"(pattern: its mean activation there; photo: on this photo): what the filter responds to, "
        f"not a reason for this prediction. {k} filters, {steps} steps, {seconds:.1f} s."
    )


def patterns_figure(
    layer: str,
    filters: list[int],
    images: np.ndarray,
    reached: np.ndarray,
    on_photo: list[float],
    cols: int = 4,
) -> Any:
    """A matplotlib Figure: one tile per filter, labelled with its index and its activation on the
    pattern vs its mean on the photo (in the grid's order, so tile n here is tile n+1 there)."""
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from agelens.explain.filters import tile_grid

    n = max(len(filters), 1)
    rows = math.ceil(n / max(1, min(cols, n)))
    cols = math.ceil(n / rows)  # balanced rows, as the filter grid's
    tile, gap, title, head = 2.0, 0.2, 0.4, 0.45
    width, height = cols * (tile + gap), head + rows * (title + tile) + gap
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    grid = tile_grid(width, height, tile=tile, gap=gap, title=title, head=head, foot=gap, side=gap / 2)
    axes = np.asarray(fig.subplots(rows, cols, gridspec_kw=grid, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, f, img, a, m in zip(axes, filters, images, reached, on_photo, strict=False):
        ax.imshow(img)
        ax.set_title(f"filter {f}\npattern {float(a):.3g} · photo {float(m):.3g}", fontsize=8, pad=3)
    fig.suptitle(f"layer {layer}: what these filters look for", fontsize=10, y=1 - 0.12 / height)
    return fig


@dataclass
class Prepared:
    """A photo ready to explain: the face crop (or the photo), shrunk; a note; what detection found.

    ``face`` has the manifest's keys: ``photo_size``, and with detection ``face_found`` and
    ``face_box_xywh`` (in the photo's pixels).
    """

    photo: np.ndarray
    note: str
    face: dict[str, Any]

    @property
    def no_face(self) -> bool:
        """Detection ran and found nothing: the prediction is then not about a face."""
        return self.face.get("face_found") is False


WHOLE_PHOTO = "using the whole photo"


def whole_photo_note(photo: np.ndarray) -> str:
    """What the model sees of a photo used uncropped: the centred square, said plainly when it
    is clearly less than the whole (a panorama's "whole photo" was a third of it)."""
    h, w = photo.shape[:2]
    share = min(h, w) / max(h, w, 1)
    if share >= WHOLE_PHOTO_SHARE:
        return WHOLE_PHOTO
    return f"the model sees the centred square ({share:.0%} of the photo)"


def no_face_note(photo: np.ndarray) -> str:
    """The CLI's and API's line for a photo with no face found: "whole image used" only where
    the centred square the model sees is nearly all of it (numpy only: ``predict`` uses it
    without starting TensorFlow)."""
    note = whole_photo_note(photo)
    return "no face found: " + ("whole image used" if note == WHOLE_PHOTO else note)


def face_note(photo: np.ndarray, crop: np.ndarray, box: Any) -> str:
    """The detection note: no face, a photo that already is a face crop (nothing cut), or a crop."""
    if box is None:
        return f"no face found; {whole_photo_note(photo)}"
    if crop is photo:
        return "face found (the photo is already a face crop)"
    return "face detected and cropped"


def zip_stem(source: str | None, method: str) -> str:
    """``agelens-<photo>-<method>``: a download name that says what is inside (file-system safe,
    by the rules the files inside are named with)."""
    from agelens.explain.explanation import photo_stem, safe_name

    return f"agelens-{photo_stem(source) or 'explanation'}-{safe_name(method)}"


NO_FACE_WARNING = "⚠️ **No face found: this is not a judgement of a face**"


def web_message(exc: BaseException) -> str:
    """An error as one line for the web page: the library's hints name the CLI command
    ``agelens layers``, which a web user cannot run, so they point at the app's list instead."""
    text = re.sub(r" ?\(`agelens layers`[^)]*\)", "", " ".join(str(exc).split()))
    return text.replace("`agelens layers`", "the layer list")


def status_line(
    exp: Any, probs: dict[str, float], note: str = "", no_face: bool = False, from_age: Any = None
) -> str:
    """The one-line result: top class, its probability (and age), method, layer, target, notes.

    With ``no_face`` a warning follows the numbers at once: "old (48%)" on a faceless photo
    read as a confident judgement of a person. ``from_age``: the bins of a model whose groups
    are its age cut there (a one-unit regressor), whose "probability" is no confidence: the line
    gives the age and the cuts instead.
    """
    top = max(probs, key=probs.__getitem__)
    ages = getattr(exp, "ages", None)
    years = float(np.asarray(ages).reshape(-1)[0]) if ages is not None else None
    aim = f"{top} (predicted)" if is_predicted(exp.target) else exp.target
    if from_age is not None and years is not None:
        from agelens.model.predict import shown_age

        cuts = ", ".join(f"{e:g}" for e in from_age.edges)
        about = shown_age(years, from_age, top)  # 29.96 y is "young", so "29.9", not "30"
        parts = [f"**{top}** (about {about} years; the groups are that age cut at {cuts})"]
    else:
        age = f", about {years:.0f} years" if years is not None else ""
        parts = [f"**{top}** ({probs[top]:.0%}{age})"]
    if no_face:
        parts.append(NO_FACE_WARNING)
        note = note.removeprefix("no face found; ")  # the warning said it: once is enough
    parts.append(f"{exp.method} on `{exp.layer}` · target: {aim}")
    return " · ".join(parts) + (f" · {note}" if note else "")


PROBABILITIES_LABEL = "Class probabilities"


def probabilities_label(model: Any) -> str:
    """The caption of the app's probability bars: plain for a classifier; for a model whose groups
    are its age cut by its bins (a one-unit regressor), what its bars are instead: a softmax of how
    many years the age lies inside each group, which "young 100%" would otherwise pass off as a
    confidence. The status line says it for each photo; the bars need it where they stand."""
    if not getattr(model, "groups_from_age", False):
        return PROBABILITIES_LABEL
    bins = getattr(model, "bins", None)
    cuts = f" cut at {', '.join(f'{e:g}' for e in bins.edges)} y" if bins is not None else ""
    return (
        f"Age groups: the model's age{cuts}; the bars are a softmax of how many years the age lies "
        "inside each group, not a confidence"
    )


def method_note(method: str) -> str:
    """The one-line description shown beside the Method dropdown ("" for a name it does not know)."""
    return METHOD_INFO.get(method, "")


def blend(
    shown: np.ndarray, heat: np.ndarray, alpha: float | None = None, signed: bool = False
) -> np.ndarray:
    """The map over the photo at opacity ``alpha`` (0: photo only, 1: map only; default 0.45);
    a ``signed`` map in red (for the target) and blue (against it)."""
    from agelens.explain.overlay import overlay

    return overlay(shown, heat, _alpha(alpha), signed=signed)


def _alpha(alpha: float | None) -> float:
    """The overlay opacity, clipped to 0..1; ``None`` is the overlays' default everywhere else."""
    from agelens.explain.overlay import DEFAULT_ALPHA

    return DEFAULT_ALPHA if alpha is None else float(np.clip(alpha, 0.0, 1.0))


def is_predicted(target: Any) -> bool:
    """Whether a target means the predicted class: the dropdown's "predicted class" (or nothing
    chosen) going in, an ``Explanation.target`` of "predicted class" coming out."""
    return not target or str(target).startswith("predicted")


def _target(value: str) -> str | None:
    """The dropdown's choice as ``agelens.explain``'s ``target`` (None: the predicted class)."""
    return None if is_predicted(value) else value


def list_layer_choices(model: Any) -> list[str]:
    """Layer keywords first, then the CAM-able activation outputs by name (deepest first).

    Why activations only: MobileNetV2 has about 150 CAM-able layers, most of them
    BatchNorm or pre-activation outputs a user would not pick; its ~35 ReLU6 outputs are
    the block boundaries the keywords also choose from. Other names can still be typed
    (the dropdown accepts custom values). A model without separate activation layers
    (activations fused into its convolutions) lists every CAM-able layer.
    """
    from agelens.explain.layers import KEYWORDS, model_view

    view = model_view(model)
    infos = view.activation_layers() or [i for i in view.layers() if i.is_feature]
    return [*KEYWORDS, *reversed([info.name for info in infos])]


def build_engine(model: Any, workdir: Path) -> Engine:
    from agelens.explain.api import list_methods

    methods = sorted(list_methods(), key=lambda n: n != "gradcam")  # the default first, order kept
    targets = ["predicted class", *model.class_names]
    names = list(model.class_names)
    if len(names) >= 2:  # the contrast the CLI's --target old-young gives: what separates the extremes
        targets += [f"{names[-1]}-{names[0]}", f"{names[0]}-{names[-1]}"]
    if getattr(model, "has_age", False):
        targets.append("age")
    from agelens.explain.layers import default_layer_spec

    layers = list_layer_choices(model)
    default = default_layer_spec(model)
    return Engine(model, methods, layers, targets, workdir, default if default in layers else layers[0])
