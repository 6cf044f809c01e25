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
from collections.abc import Callable
from dataclasses import dataclass
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
NO_FILE = "⚠️ No file came with the upload: drop an image file on the photo box."
NO_SAMPLE = "⚠️ That pick named none of the synthetic faces: click one of them."
NO_METHOD = "⚠️ No method chosen: pick one in the Method list."
"""Answers to events that carry nothing usable (Gradio's HTTP API takes any payload): each keeps
the photo shown, since nothing replaced it."""
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
    from agelens.model.io import load_model

    model = model_path if hasattr(model_path, "keras_model") else load_model(model_path)
    engine = build_engine(model, workdir)
    samples = _samples(generate, max(96, engine.model.input_size))

    # Gradio keeps a copy of every image and zip it serves; a long session would fill the
    # temp folder, so its cache is swept hourly of files older than CACHE_MAX_AGE_S.
    with gr.Blocks(title="agelens", analytics_enabled=False, delete_cache=(3600, CACHE_MAX_AGE_S)) as demo:
        ui = _layout(engine, samples)
        _wire_photo(ui, samples)
        _wire_explain(ui, engine)
    demo.agelens_engine = engine  # for tests and callers that want the loaded model
    return demo


@dataclass(frozen=True)
class _Inputs:
    """The left column: the photo, the options an Explain reads, its button and the status line."""

    upload: Any
    gallery: Any
    detect: Any
    signed: Any
    method: Any
    target: Any
    method_info: Any
    layer: Any
    run: Any
    status: Any


@dataclass(frozen=True)
class _Results:
    """The right column: what an Explain shows, the opacity slider and the filter grid's own layer box."""

    face: Any
    heat: Any
    opacity: Any
    probs: Any
    filters: Any
    filter_layer: Any
    grid_note: Any
    grid: Any
    download: Any
    patterns_run: Any
    patterns_note: Any
    patterns: Any


@dataclass(frozen=True)
class _Ui:
    """Every component an event reads or writes, so the layout and the wiring can be separate functions.

    ``photo``, ``source`` and ``shown_map`` are per-session states: the photo to explain, its
    :class:`Source` (name for the zip, a read note) and ``(model view, its map, Explanation)``
    of the last Explain, which the opacity slider re-blends.
    """

    photo: Any
    source: Any
    shown_map: Any
    inputs: _Inputs
    results: _Results

    @property
    def stale(self) -> list[Any]:
        """Every result of an Explain, and the stored map the opacity slider re-blends: all of
        them go blank whenever the photo changes, so no panel shows the previous photo's map (nor
        the filter patterns of its grid)."""
        r = self.results
        return [r.heat, r.probs, r.grid, r.grid_note, r.download, self.shown_map, r.patterns, r.patterns_note]


def _layout(engine: Engine, samples: tuple[list[np.ndarray], list[str]]) -> _Ui:
    """The page: a header, the session states, then the inputs left and the results right.

    Components are created in this order on purpose: Gradio numbers them as they come, and the
    page shows them in it.
    """
    import gradio as gr

    gr.Markdown(
        f"# {TITLE}\nUpload a face photo (or pick a synthetic face), then **Explain**. "
        f"Model: `{getattr(engine.model.path, 'name', 'in memory')}`, classes: "
        f"{', '.join(engine.model.class_names)}.",
        elem_id="al-head",
    )
    states = gr.State(None), gr.State(None), gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=320):
            inputs = _input_column(engine, samples)
        with gr.Column(scale=6, min_width=420):
            results = _results_column(engine)
    return _Ui(*states, inputs, results)


def _input_column(engine: Engine, samples: tuple[list[np.ndarray], list[str]]) -> _Inputs:
    """The photo (a drop zone or a synthetic sample), the explain options, Explain and the status."""
    import gradio as gr

    upload = gr.File(
        label=f"Photo (drag and drop; images up to {MAX_UPLOAD_BYTES // 2**20} MB)",
        type="filepath",
        elem_id="al-upload",
        height=140,
    )
    gallery = gr.Gallery(
        value=list(zip(*samples, strict=True)),
        label="…or pick a synthetic face",
        columns=3,
        height=300,
        allow_preview=False,
        object_fit="cover",
        buttons=[],
        elem_id="al-samples",
    )
    options = _explain_options(engine)
    run = gr.Button("Explain", variant="primary", elem_id="al-explain")
    status = gr.Markdown(READY, elem_id="al-status")
    return _Inputs(upload, gallery, *options, run, status)


def _explain_options(engine: Engine) -> tuple[Any, ...]:
    """Detect, signed, method, target, the method's one-line note and the CAM layer, in page order."""
    import gradio as gr

    from agelens.explain.api import signed_methods

    detect = gr.Checkbox(label="Detect and crop the largest face first", value=True)
    signed = gr.Checkbox(
        label="For and against (signed map)",
        info="Red: speaks for the target, blue: against it (with Target 'age': older / younger). "
        f"{', '.join(signed_methods())}.",
        value=False,
        elem_id="al-signed",
    )
    with gr.Row():
        method = gr.Dropdown(engine.methods, value=engine.methods[0], label="Method", elem_id="al-method")
        target = gr.Dropdown(engine.targets, value=engine.targets[0], label="Target", elem_id="al-target")
    method_info = gr.Markdown(method_note(engine.methods[0]), elem_id="al-method-info")
    layer = gr.Dropdown(
        engine.layers,
        value=engine.default_layer,
        label="Layer",
        info=LAYER_INFO,
        allow_custom_value=True,
        elem_id="al-layer",
    )
    return detect, signed, method, target, method_info, layer


def _results_column(engine: Engine) -> _Results:
    """The model input beside its map, the opacity slider and reading aids, the probabilities,
    the filter grid (closed: it is for the curious) and the download."""
    import gradio as gr

    face, heat, opacity = _map_panel()
    probs = gr.Label(label=probabilities_label(engine.model), elem_id="al-probs")
    filters, filter_layer, grid_note, grid, *patterns = _filter_panel(engine)
    download = gr.File(
        label="Download outputs (.zip; overlays at the opacity of the last Explain)",
        elem_id="al-download",
        interactive=False,
    )
    return _Results(face, heat, opacity, probs, filters, filter_layer, grid_note, grid, download, *patterns)


def _map_panel() -> tuple[Any, Any, Any]:
    """The photo beside its map, the opacity slider, and the key that says how (not) to read red."""
    import gradio as gr

    from agelens.explain.overlay import DEFAULT_ALPHA

    with gr.Row():
        face = _image(MODEL_INPUT_LABEL, "al-face", height=280)
        heat = _image("Where it looks", "al-map", height=280)
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
    return face, heat, opacity


def _filter_panel(engine: Engine) -> tuple[Any, ...]:
    """The per-filter accordion: its own layer box, so a typo there costs only the grid; then a
    button for what those filters look for (a search of seconds, so only on request)."""
    import gradio as gr

    with gr.Accordion("Per-filter activations", open=False, elem_id="al-filters") as filters:
        filter_layer = gr.Dropdown(
            engine.layers,
            value=engine.default_layer,
            allow_custom_value=True,
            label="Layer for the filter grid",
            elem_id="al-flayer",
        )
        grid_note = gr.Markdown("", elem_id="al-grid-note")
        grid = _image("Strongest filters", "al-grid", show_label=False)
        patterns_run = gr.Button("What do these filters look for?", elem_id="al-patterns-run")
        patterns_note = gr.Markdown("", elem_id="al-patterns-note")
        patterns = _image("What these filters look for", "al-patterns", show_label=False)
    return filters, filter_layer, grid_note, grid, patterns_run, patterns_note, patterns


def _image(label: str, elem_id: str, **extra: Any) -> Any:
    """An output-only image with download and fullscreen buttons (no dead "share" button)."""
    import gradio as gr

    return gr.Image(label=label, elem_id=elem_id, interactive=False, buttons=IMAGE_BUTTONS, **extra)


def _wire_photo(ui: _Ui, samples: tuple[list[np.ndarray], list[str]]) -> None:
    """A new photo (upload, clear or sample pick) replaces the preview and blanks every result."""
    on_upload, on_clear, on_sample = _photo_handlers(samples, len(ui.stale))
    i = ui.inputs
    shown = [ui.photo, ui.source, ui.results.face, i.status, *ui.stale]
    i.upload.upload(on_upload, i.upload, [i.upload, *shown])
    i.upload.clear(on_clear, None, shown)
    i.gallery.select(on_sample, None, [i.upload, *shown])


def _photo_handlers(
    samples: tuple[list[np.ndarray], list[str]], n_stale: int
) -> tuple[Callable[..., Any], ...]:
    """The upload, clear and sample-pick callbacks; each ends with ``n_stale`` Nones, for the
    results a new photo makes stale, or with as many skips where no new photo came."""
    import gradio as gr

    sample_images, labels = samples
    cleared = (None,) * n_stale

    def kept(status: str, drop_zone: Any = None) -> tuple[Any, ...]:
        """Only the drop zone and the status change: the photo shown, its source and results stay."""
        return drop_zone, *(gr.skip() for _ in range(3)), status, *(gr.skip() for _ in range(n_stale))

    def on_upload(path: str | None) -> tuple[Any, ...]:
        """A refused file is cleared from the drop zone, so the next one can be dropped right away;
        the photo shown before stays, with its results: nothing replaced it."""
        if not path:
            return kept(NO_FILE)
        try:
            img, src = read_upload(path)
        except UploadError as exc:
            return kept(f"⚠️ {exc}")
        preview = _face_view(shrink(img, PREVIEW_SIDE), PREVIEW_LABEL)
        return gr.skip(), img, src, preview, _loaded(src), *cleared

    def on_clear() -> tuple[Any, ...]:
        """Emptying the drop zone forgets the photo, so Explain cannot run on one no longer shown."""
        return None, None, _face_view(None), READY, *cleared

    # gr.EventData, not gr.SelectData: Gradio builds a SelectData by reading data["index"] before
    # the handler runs, so an API call with no click data failed inside Gradio, past any check here
    def on_sample(evt: gr.EventData) -> tuple[Any, ...]:
        """A sample becomes the photo under a name that says which one (for the status and the zip)."""
        i = _sample_index(evt, len(sample_images))
        if i is None:
            return kept(NO_SAMPLE, gr.skip())
        img = sample_images[i]
        src = Source(f"sample-{i + 1}-{labels[i]}")
        return (
            None,  # the drop zone empties so it is clear which picture will be explained
            img,
            src,
            _face_view(shrink(img, PREVIEW_SIDE), PREVIEW_LABEL),
            f"Synthetic sample {i + 1} ({labels[i]}). Press **Explain**.",
            *cleared,
        )

    return on_upload, on_clear, on_sample


def _wire_explain(ui: _Ui, engine: Engine) -> None:
    """Explain, and the two controls that redraw part of its result without explaining again."""
    on_explain, on_opacity, on_filter = _explain_handlers(engine)
    i, r, photo = ui.inputs, ui.results, ui.photo
    i.method.change(method_note, i.method, i.method_info)
    options = [i.detect, i.method, i.layer, i.target, r.filter_layer, r.opacity, i.signed]
    shown = [r.face, r.heat, r.probs, r.grid, r.grid_note, r.download, i.status, ui.shown_map, r.filters]
    i.run.click(on_explain, [photo, ui.source, *options], shown)
    # change, not release: typing a value in the slider's box fires no release event;
    # always_last drops the intermediate values of a drag
    r.opacity.change(on_opacity, [ui.shown_map, r.opacity], r.heat, trigger_mode="always_last")
    r.filter_layer.change(on_filter, [photo, i.detect, r.filter_layer], [r.grid, r.grid_note])
    _wire_patterns(ui, engine)


def _wire_patterns(ui: _Ui, engine: Engine) -> None:
    """The patterns button, and their blanking whenever the grid they belong to is redrawn (a new
    layer or an Explain; a new photo blanks them through :attr:`_Ui.stale`)."""
    i, r = ui.inputs, ui.results

    def on_patterns(img: Any, det: bool, fl: str) -> tuple[Any, str]:
        """The grid's filters (same photo, crop and layer box), one synthetic pattern each."""
        photo = None if img is None else engine.prepare(np.asarray(img), det).photo
        return engine.try_filter_patterns_grid(photo, fl)

    def on_patterns_stale() -> tuple[None, str]:
        """Patterns beside a redrawn grid may be another layer's or crop's filters: blank them."""
        return None, ""

    r.patterns_run.click(on_patterns, [ui.photo, i.detect, r.filter_layer], [r.patterns, r.patterns_note])
    for event in (r.filter_layer.change, i.run.click):
        event(on_patterns_stale, None, [r.patterns, r.patterns_note], api_visibility="private")


def _explain_handlers(engine: Engine) -> tuple[Callable[..., Any], ...]:
    """The Explain, opacity and filter-layer callbacks. Their names and parameters are the
    app's API endpoints and argument names, so they stay as they are."""
    import gradio as gr

    def on_explain(
        img: Any, src: Any, det: bool, m: str, ly: str, t: str, fl: str, a: float, sg: bool = False
    ) -> tuple[Any, ...]:
        """One click: every result at once, or a status line that says what is missing or wrong."""
        if img is None:
            return _face_view(None), *(None,) * 5, NO_PHOTO, None, gr.skip()
        if not m:  # explain's own words ("call explain once per method") are for Python callers
            return gr.skip(), *(None,) * 5, NO_METHOD, None, gr.skip()
        a = a if _is_opacity(a) else None  # NaN passes the slider's bounds check: the default then
        shown, *rest = _explain(engine, np.asarray(img), det, m, ly, t, fl, a, src, sg)
        # a failed Explain (a typo in the layer box) keeps the photo on screen: it is still loaded
        face = _face_view(shown) if shown is not None else gr.skip()
        # the grid's warning sits beside it, in an accordion usually closed: open it then
        return face, *rest, gr.update(open=True) if rest[3] else gr.skip()

    def on_opacity(last: Any, a: float) -> Any:
        """Re-blend the last map; before any Explain there is nothing to redraw, and at an
        opacity that is no number the map stays as drawn."""
        return _reblend(last, a) if last is not None and _is_opacity(a) else gr.skip()

    def on_filter(img: Any, det: bool, fl: str) -> tuple[Any, str]:
        """Only the grid follows its layer box: the map and probabilities stay as explained."""
        if img is None:  # said beside the grid: it stayed empty without a word
            return None, NO_PHOTO
        return engine.try_filter_grid(engine.prepare(np.asarray(img), det).photo, fl)

    return on_explain, on_opacity, on_filter


def _sample_index(evt: Any, n: int) -> int | None:
    """The gallery position a select event names, or None when it names none of the ``n`` samples.

    Through Gradio's HTTP API a pick may come with no click data, no index, or an index from a
    page served before the samples changed; a negative one would silently count from the end.
    """
    try:
        index = evt.index  # EventData reads its data dict: None data raises TypeError, no key AttributeError
    except (AttributeError, TypeError, KeyError):
        return None
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        return None
    return int(index) if 0 <= index < n else None


def _is_opacity(a: Any) -> bool:
    """Whether a slider value is a finite number (NaN passes Gradio's bounds check: ``nan < 0`` is False)."""
    return isinstance(a, int | float | np.number) and not isinstance(a, bool) and bool(np.isfinite(a))


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
