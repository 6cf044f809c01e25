"""A local web app: drop in a photo, see the class probabilities and where the model looks.

Safety and privacy by default: it binds to 127.0.0.1, loads the model once, checks every
upload's size and type before decoding, and keeps every file it (and Gradio) writes in
one ``TemporaryDirectory`` that is removed when the process exits. No fonts or scripts
come from the network, so it works offline.
"""

# No ``from __future__ import annotations`` here: Gradio reads the handlers' annotations
# at runtime to inject event data (``gr.SelectData``), and strings would hide them.
import atexit
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from agelens.report.app_logic import (
    HOW_TO_READ,
    MAP_KEY,
    MAX_UPLOAD_BYTES,
    Engine,
    Prepared,
    Source,
    UploadError,
    blend,
    build_engine,
    method_note,
    probabilities_label,
    read_upload,
    shrink,
    square,
    status_line,
    web_message,
)

N_SAMPLES = 6
CACHE_MAX_AGE_S = 6 * 3600
PREVIEW_SIDE = 512
"""Longest side of the uncropped preview shown right after an upload or a sample pick."""
PREVIEW_LABEL = "Photo as uploaded"
MODEL_INPUT_LABEL = "Model input"
"""The left image's labels: it shows the upload uncropped until Explain replaces it with the
square the model sees; both were labelled "Model input". Short, so the label clears the
image's buttons."""
LAYER_INFO = (
    "CAM methods only. early / mid / late / last-conv pick a depth; "
    "the list also names this model's layers, to pick one exactly"
)
READY = "Upload a photo or pick a sample."
NO_PHOTO = "⚠️ No photo yet: upload one or pick a sample."
IMAGE_BUTTONS = ["download", "fullscreen"]
"""Gradio's default "share" button only works on Hugging Face Spaces; locally it is a dead button."""
TITLE = "agelens · what does the age model look at?"
CSS = """
.gradio-container { max-width: 1240px !important; margin: 0 auto; }
#al-head h1 { font-size: 1.6rem; margin-bottom: 0; }
#al-head p { color: var(--body-text-color-subdued); margin-top: 4px; }
#al-status { min-height: 1.6em; }
#al-status p { margin: 0; }
#al-explain { margin-top: 4px; }
"""

_TEMP: tempfile.TemporaryDirectory[str] | None = None
_LOCK = threading.Lock()


def _workdir() -> Path:
    """The app's one temp folder; Gradio's upload/cache folder is pointed inside it too."""
    global _TEMP
    with _LOCK:
        if _TEMP is None:
            _TEMP = tempfile.TemporaryDirectory(prefix="agelens-app-")
            atexit.register(_cleanup)
        path = Path(_TEMP.name)
    os.environ["GRADIO_TEMP_DIR"] = str(path / "gradio")  # read when Blocks/App are created
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return path


def _cleanup() -> None:
    global _TEMP
    if _TEMP is not None:
        _TEMP.cleanup()
        _TEMP = None


def theme() -> Any:
    """Gradio's Soft theme with system fonts only (the default would fetch web fonts)."""
    import gradio as gr

    sans = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=sans, font_mono=mono).set(
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_text_color="white",
    )


def build_app(model_path: Any = None) -> Any:
    """Load the model once (or take an AgeModel) and lay out the app; returns an unlaunched ``gradio.Blocks``.

    Launch it with :func:`launch` (or ``.launch(theme=theme(), css=CSS)`` for the same look).
    """
    workdir = _workdir()
    import gradio as gr

    from agelens.data.synthetic import generate
    from agelens.explain.api import signed_methods
    from agelens.explain.overlay import DEFAULT_ALPHA
    from agelens.model.io import load_model

    model = model_path if hasattr(model_path, "keras_model") else load_model(model_path)
    engine = build_engine(model, workdir)
    sample_images, labels = _samples(generate, max(96, engine.model.input_size))

    # Gradio keeps a copy of every image and zip it serves; a long session would fill the
    # temp folder, so its cache is swept hourly of files older than CACHE_MAX_AGE_S.
    with gr.Blocks(title="agelens", analytics_enabled=False, delete_cache=(3600, CACHE_MAX_AGE_S)) as demo:
        gr.Markdown(
            f"# {TITLE}\nUpload a face photo (or pick a synthetic face), then **Explain**. "
            f"Model: `{getattr(engine.model.path, 'name', 'in memory')}`, classes: "
            f"{', '.join(engine.model.class_names)}.",
            elem_id="al-head",
        )
        photo = gr.State(None)
        source = gr.State(None)  # the photo's Source: its name (for the zip) and a read note
        shown_map = gr.State(None)  # (model view, its map, the Explanation) of the last Explain
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=320):
                upload = gr.File(
                    label=f"Photo (drag and drop; images up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                    type="filepath",
                    elem_id="al-upload",
                    height=140,
                )
                gallery = gr.Gallery(
                    value=list(zip(sample_images, labels, strict=True)),
                    label="…or pick a synthetic face",
                    columns=3,
                    height=300,
                    allow_preview=False,
                    object_fit="cover",
                    buttons=[],
                    elem_id="al-samples",
                )
                detect = gr.Checkbox(label="Detect and crop the largest face first", value=True)
                signed = gr.Checkbox(
                    label="For and against (signed map)",
                    info="Red: speaks for the target, blue: against it (with Target 'age': older / younger). "
                    f"{', '.join(signed_methods())}.",
                    value=False,
                    elem_id="al-signed",
                )
                with gr.Row():
                    method = gr.Dropdown(
                        engine.methods, value=engine.methods[0], label="Method", elem_id="al-method"
                    )
                    target = gr.Dropdown(
                        engine.targets, value=engine.targets[0], label="Target", elem_id="al-target"
                    )
                method_info = gr.Markdown(method_note(engine.methods[0]), elem_id="al-method-info")
                layer = gr.Dropdown(
                    engine.layers,
                    value=engine.default_layer,
                    label="Layer",
                    info=LAYER_INFO,
                    allow_custom_value=True,
                    elem_id="al-layer",
                )
                run = gr.Button("Explain", variant="primary", elem_id="al-explain")
                status = gr.Markdown(READY, elem_id="al-status")
            with gr.Column(scale=6, min_width=420):
                with gr.Row():
                    face = gr.Image(
                        label=MODEL_INPUT_LABEL,
                        elem_id="al-face",
                        interactive=False,
                        height=280,
                        buttons=IMAGE_BUTTONS,
                    )
                    heat = gr.Image(
                        label="Where it looks",
                        elem_id="al-map",
                        interactive=False,
                        height=280,
                        buttons=IMAGE_BUTTONS,
                    )
                opacity = gr.Slider(
                    0.0,
                    1.0,
                    value=DEFAULT_ALPHA,
                    step=0.05,
                    label="Map opacity (0: photo only, 1: map only)",
                    elem_id="al-opacity",
                )
                gr.Markdown(MAP_KEY, elem_id="al-map-key")
                with gr.Accordion("How to read this", open=False, elem_id="al-howto"):
                    gr.Markdown(HOW_TO_READ)
                probs = gr.Label(label=probabilities_label(engine.model), elem_id="al-probs")
                with gr.Accordion("Per-filter activations", open=False, elem_id="al-filters") as filters:
                    filter_layer = gr.Dropdown(
                        engine.layers,
                        value=engine.default_layer,
                        allow_custom_value=True,
                        label="Layer for the filter grid",
                        elem_id="al-flayer",
                    )
                    grid_note = gr.Markdown("", elem_id="al-grid-note")
                    grid = gr.Image(
                        label="Strongest filters",
                        show_label=False,
                        elem_id="al-grid",
                        interactive=False,
                        buttons=IMAGE_BUTTONS,
                    )
                download = gr.File(
                    label="Download outputs (.zip; overlays at the opacity of the last Explain)",
                    elem_id="al-download",
                    interactive=False,
                )
        # Every result of an Explain, and the stored map the opacity slider re-blends: all of
        # them go blank whenever the photo changes, so no panel shows the previous photo's map.
        results = [heat, probs, grid, grid_note, download, shown_map]
        cleared = (None,) * len(results)

        def on_upload(path: str | None) -> tuple[Any, ...]:
            """A refused file is cleared from the drop zone, so the next one can be dropped right away."""
            if not path:
                return None, None, None, _face_view(None), READY, *cleared
            try:
                img, src = read_upload(path)
            except UploadError as exc:
                return None, None, None, _face_view(None), f"⚠️ {exc}", *cleared
            preview = _face_view(shrink(img, PREVIEW_SIDE), PREVIEW_LABEL)
            return gr.skip(), img, src, preview, _loaded(src), *cleared

        def on_clear() -> tuple[Any, ...]:
            return None, None, _face_view(None), READY, *cleared

        def on_sample(evt: gr.SelectData) -> tuple[Any, ...]:
            img, i = sample_images[evt.index], evt.index
            src = Source(f"sample-{i + 1}-{labels[i]}")
            return (
                None,  # the drop zone empties so it is clear which picture will be explained
                img,
                src,
                _face_view(shrink(img, PREVIEW_SIDE), PREVIEW_LABEL),
                f"Synthetic sample {i + 1} ({labels[i]}). Press **Explain**.",
                *cleared,
            )

        def on_explain(
            img: Any, src: Any, det: bool, m: str, ly: str, t: str, fl: str, a: float, sg: bool = False
        ) -> tuple[Any, ...]:
            if img is None:
                return _face_view(None), *cleared[:-1], NO_PHOTO, None, gr.skip()
            shown, *rest = _explain(engine, np.asarray(img), det, m, ly, t, fl, a, src, sg)
            # the grid's warning sits beside it, in an accordion usually closed: open it then
            return _face_view(shown), *rest, gr.update(open=True) if rest[3] else gr.skip()

        def on_opacity(last: Any, a: float) -> Any:
            return _reblend(last, a) if last is not None else gr.skip()

        def on_filter(img: Any, det: bool, fl: str) -> tuple[Any, str]:
            if img is None:
                return None, ""
            return engine.try_filter_grid(engine.prepare(np.asarray(img), det).photo, fl)

        upload.upload(on_upload, upload, [upload, photo, source, face, status, *results])
        upload.clear(on_clear, None, [photo, source, face, status, *results])
        gallery.select(on_sample, None, [upload, photo, source, face, status, *results])
        method.change(method_note, method, method_info)
        inputs = [photo, source, detect, method, layer, target, filter_layer, opacity, signed]
        outputs = [face, heat, probs, grid, grid_note, download, status, shown_map, filters]
        run.click(on_explain, inputs, outputs)
        # change, not release: typing a value in the slider's box fires no release event;
        # always_last drops the intermediate values of a drag
        opacity.change(on_opacity, [shown_map, opacity], heat, trigger_mode="always_last")
        filter_layer.change(on_filter, [photo, detect, filter_layer], [grid, grid_note])
    demo.agelens_engine = engine  # for tests and callers that want the loaded model
    return demo


def _samples(generate: Any, size: int) -> tuple[list[np.ndarray], list[str]]:
    """Synthetic faces with every age group represented, in class order (same faces every run)."""
    pool = generate(6 * N_SAMPLES, size=size, seed=0)
    per_class = -(-N_SAMPLES // len(pool.class_names))
    picked = [i for k in range(len(pool.class_names)) for i in np.flatnonzero(pool.labels == k)[:per_class]]
    picked = picked[:N_SAMPLES]
    return [pool.images[i] for i in picked], [pool.class_names[pool.labels[i]] for i in picked]


def _explain(
    engine: Engine,
    img: np.ndarray,
    det: bool,
    m: str,
    ly: str,
    t: str,
    fl: str,
    alpha: float | None = None,
    source: Source | None = None,
    signed: bool = False,
) -> tuple[Any, ...]:
    """One click: prepare, explain, render, zip; a bad choice becomes a status line, not a crash.

    Returns the values of (model view, map, probabilities, filter grid, its warning, zip,
    status) and, last, ``(model view, its map, Explanation)`` for the opacity slider to
    re-blend without explaining again. The filter grid has its own layer box, so its failure
    is its own: the map and probabilities still show, with a warning beside the grid.
    """
    try:
        prep = engine.prepare(img, det)
        shown, heat_sq, exp = _map(engine, prep, m, ly, t, source, signed)
        archive = engine.save_zip(exp, alpha=alpha)
    except (ValueError, TypeError, KeyError) as exc:
        return None, None, None, None, None, None, f"⚠️ Could not explain: {web_message(exc)}", None
    grid, grid_warning = engine.try_filter_grid(prep.photo, fl)
    probs = engine.probabilities(exp)
    note = "; ".join(n for n in (source.note if source else "", prep.note) if n)
    from_age = engine.model.bins if getattr(engine.model, "groups_from_age", False) else None
    msg = status_line(exp, probs, note, prep.no_face, from_age=from_age)
    heat = blend(shown, heat_sq, alpha, signed=exp.signed)
    return shown, heat, probs, grid, grid_warning, str(archive), msg, (shown, heat_sq, exp)


def _map(
    engine: Engine, prep: Prepared, m: str, ly: str, t: str, source: Source | None, signed: bool = False
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The model's view of the prepared photo, its map on the same square, and the Explanation
    (named after the photo and carrying what face detection found, for the zip)."""
    name = source.name if source else None
    exp = engine.explain(prep.photo, m, ly, t, source=name, face=prep.face, signed=signed)
    return square(prep.photo), square(np.asarray(exp.maps[0], np.float32)), exp


def _face_view(image: np.ndarray | None, label: str = MODEL_INPUT_LABEL) -> Any:
    """The left image with a label that says what it is: the upload as is, or what the model saw."""
    import gradio as gr

    return gr.update(value=image, label=label)


def _loaded(source: Source) -> str:
    """The status after an upload: its name, and how it was read when that matters (a GIF)."""
    extra = f" ({source.note})" if source.note else ""
    return f"Photo loaded: {source.name}{extra}. Press **Explain** to see what the model sees."


def _reblend(last: tuple[np.ndarray, np.ndarray, Any], alpha: float) -> np.ndarray:
    """The last Explain's map over its photo at a new opacity: the slider's whole job.

    Nothing is explained or written again: re-zipping on every slider step left one more
    archive in the temp folder per step (and Gradio a cached copy of each), without bound.
    The download keeps the overlays at the opacity the Explain click used.
    """
    shown, heat_sq, exp = last
    return blend(shown, heat_sq, alpha, signed=exp.signed)


def launch(model: Any = None, port: int = 7860, host: str = "127.0.0.1") -> None:
    """Build and serve the app (blocking) on ``host:port``; the temp folder goes when the process ends.

    The port is tried first: a busy one fails here, before the app is built and before its URL
    is printed (Gradio would print the URL's failure in its own words after ours).
    """
    check_port(host, port)
    demo = build_app(model)
    _exit_on_sigterm()
    print(f"agelens app on http://{host}:{port}  (Ctrl+C to stop)", flush=True)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=True,
        max_file_size=MAX_UPLOAD_BYTES,
        ssr_mode=False,
        quiet=True,
        theme=theme(),
        css=CSS,
        footer_links=[],
    )


def check_port(host: str, port: int) -> None:
    """Raise ``OSError`` (with ``strerror``) when ``host:port`` cannot be bound right now."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no clash
        s.bind((host, port))


def _exit_on_sigterm() -> None:
    """SIGTERM (kill, systemd, CI) runs atexit handlers too, so the temp folder is always removed."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # Gradio's serve loop closes the server on it; then atexit runs
