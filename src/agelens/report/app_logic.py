"""Everything the web app does, minus the widgets: checks, explaining, rendering, zipping.

Kept apart from :mod:`agelens.report.app` so it is testable without a browser or a
server, and so the Gradio wiring stays a thin, readable layout file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agelens.data.images import ImageError, load_image, resize_for_model

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Uploads above 20 MB are refused before decoding: no face photo needs more."""
DISPLAY_SIDE = 320
MAX_WORK_SIDE = 1024
"""Photos (or face crops) are shrunk to this longest side before explaining. The model sees
112 px, so nothing it uses is lost; at full size a 6000 px photo took over 30 s per click
and its download (full-size overlays and a float32 ``.npy`` map) was over 100 MB."""


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

    def prepare(self, photo: np.ndarray, detect: bool) -> tuple[np.ndarray, str]:
        """The photo (or its largest face), at most :data:`MAX_WORK_SIDE` px, and a one-line note.

        The note says what was done and what to doubt (judged at the crop's own size).
        """
        from agelens.model.predict import quality_notes

        crop, note = photo, ""
        if detect:
            try:
                from agelens.model.faces import crop_largest_face

                crop, box = crop_largest_face(photo)
                note = "no face found; using the whole photo" if box is None else "face detected and cropped"
            except Exception as exc:  # the detector is optional: a broken OpenCV must not block explaining
                note = f"face detection unavailable ({type(exc).__name__}); using the whole photo"
        notes = [n for n in (note, *quality_notes(crop)) if n]
        return shrink(crop), "; ".join(notes)

    def explain(self, photo: np.ndarray, method: str, layer: str, target: str) -> Any:
        """``agelens.explain`` on one photo; the layer is passed only to methods that take one."""
        from agelens.explain.api import explain, takes_layer

        ly = layer or None if takes_layer(method) else None
        return explain(self.model, photo, method=method, layer=ly, target=_target(target))

    def probabilities(self, exp: Any) -> dict[str, float]:
        probs = np.asarray(exp.probabilities)[0]
        return {str(n): float(p) for n, p in zip(exp.class_names, probs, strict=True)}

    def filter_grid(self, photo: np.ndarray, layer: str, k: int = 7) -> np.ndarray:
        """The ``k`` most active filters of ``layer`` on the model input, as one labelled image."""
        from agelens.explain.filters import filter_grid, filter_maps

        x = resize_for_model(photo, self.model.input_size)
        fm = filter_maps(self.model, x, layer or None, k=k)
        return figure_to_array(filter_grid(x, fm, cols=4))

    def save_zip(self, exp: Any, stem: str = "agelens-explanation", alpha: float | None = None) -> Path:
        """``Explanation.save`` into a fresh folder under the app's temp dir, zipped (folder then removed)."""
        run = self.workdir / "outputs" / uuid.uuid4().hex[:12]
        folder = run / stem
        run.mkdir(parents=True)
        exp.save(folder, alpha=_alpha(alpha))
        archive = shutil.make_archive(str(run / stem), "zip", root_dir=run, base_dir=stem)
        shutil.rmtree(folder, ignore_errors=True)
        return Path(archive)


def blend(shown: np.ndarray, heat: np.ndarray, alpha: float | None = None) -> np.ndarray:
    """The map over the photo at opacity ``alpha`` (0: photo only, 1: map only; default 0.45)."""
    from agelens.explain.overlay import overlay

    return overlay(shown, heat, _alpha(alpha))


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
