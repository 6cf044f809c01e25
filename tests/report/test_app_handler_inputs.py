"""Every event handler of the web app, fed what it can really receive: a pick with no usable
index, a refused upload, no method, an opacity that is no number, a filter layer with no photo.

Each answers with a one-line status (or leaves its output as it is) and keeps the photo shown.
The Gradio paths (``process_api``) show that such inputs get past Gradio's own checks.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import test_app_logic
from PIL import Image
from test_app_logic import _by_output, _handler

app_demo = test_app_logic.app_demo  # the one built app of the handler tests, reused as a fixture

SKIP = {"__type__": "update"}
"""``gr.skip()``: the output keeps what it shows."""
PHOTO_OUTPUTS = ["state 1", "state 2", "al-face"]
"""The photo to explain, its Source and the image that shows it (keys of :func:`_by_output`)."""
RESULTS = ["al-map", "al-probs", "al-grid", "al-grid-note", "al-download", "map state"]


def _photo() -> np.ndarray:
    from agelens.data.synthetic import generate

    return generate(1, size=96, seed=1).images[0]


def _process(
    demo, name: str, inputs: list, event_data: object = None, photo: object = None
) -> tuple[dict, object]:
    """One event as the server runs it: Gradio's preprocess, event-data injection, the handler.

    Returns the outputs keyed as :func:`_by_output` keys them, and the session's state (Gradio
    keeps ``gr.State`` values there, not in the outputs sent back); ``photo`` is loaded first."""
    from gradio.events import EventData
    from gradio.state_holder import SessionState

    fn = _handler(demo, name)
    target, state = demo.blocks[fn.targets[0][0]], SessionState(demo)
    state[_photo_state(demo)._id] = photo
    result = asyncio.run(
        demo.process_api(block_fn=fn, inputs=inputs, state=state, event_data=EventData(target, event_data))
    )
    return _by_output(demo, name, tuple(result["data"])), state


def _photo_state(demo) -> object:
    """The ``gr.State`` that holds the photo Explain reads (its first input)."""
    return _handler(demo, "on_explain").inputs[0]


def _one_warning(status: object) -> None:
    assert isinstance(status, str) and status.startswith("⚠️") and "\n" not in status, status


BAD_PICKS = [None, {}, {"index": None}, {"index": 6}, {"index": 99}, {"index": -1}, {"index": [0, 1]}]
"""Event data a ``/on_sample`` call can carry: none at all, no index, past the six samples (a page
served before the samples changed), negative (which would count from the end), two-dimensional."""


@pytest.mark.parametrize("data", BAD_PICKS, ids=repr)
def test_a_sample_pick_with_no_usable_index_says_so_and_keeps_the_photo(app_demo, data) -> None:
    """It raised (TypeError, IndexError) or, at -1, loaded the last face as "sample 0"."""
    demo, _ = app_demo
    on_sample = _handler(demo, "on_sample")
    out = _by_output(demo, "on_sample", on_sample.fn(SimpleNamespace(**data) if data is not None else None))
    _one_warning(out["al-status"])
    others = {k: v for k, v in out.items() if k != "al-status"}  # the drop zone too: nothing was picked
    assert others == dict.fromkeys(others, SKIP)


@pytest.mark.parametrize("data", [None, {"index": 99, "value": None}], ids=repr)
def test_a_sample_pick_through_gradio_without_click_data_answers_with_a_status(app_demo, data) -> None:
    """With ``gr.SelectData`` Gradio itself raised before the handler ran (``None["index"]``)."""
    demo, _ = app_demo
    photo = _photo()
    out, state = _process(demo, "on_sample", [], data, photo=photo)
    _one_warning(out["al-status"])
    assert state[_photo_state(demo)._id] is photo and out["al-face"] == SKIP  # the photo shown stays


def test_a_real_sample_pick_through_gradio_still_loads_that_sample(app_demo) -> None:
    demo, _ = app_demo
    out, state = _process(demo, "on_sample", [], {"index": 2, "value": None})
    source = state[_handler(demo, "on_sample").outputs[2]._id]
    assert out["al-status"].startswith("Synthetic sample 3 (") and source.name.startswith("sample-3-")


def _refused_files(tmp_path: Path) -> list[Path]:
    """Not an image, a PNG cut in half, over 50 megapixels, a folder: each refused by read_upload."""
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 6000)).save(huge)  # 54 megapixels in a small file
    folder = tmp_path / "folder"
    folder.mkdir()
    return [junk, cut, huge, folder]


def test_a_refused_upload_keeps_the_photo_shown_and_says_why(app_demo, tmp_path: Path) -> None:
    """A refused file blanked the photo already shown, and its results, though nothing replaced it."""
    demo, _ = app_demo
    on_upload = _handler(demo, "on_upload")
    for path in [*_refused_files(tmp_path), None]:
        out = _by_output(demo, "on_upload", on_upload.fn(str(path) if path else path))
        _one_warning(out["al-status"])
        if path:
            assert out["al-status"].startswith(f"⚠️ {path.name}: "), out["al-status"]
        assert out["al-upload"] is None  # the drop zone empties, ready for the next file
        assert {k: out[k] for k in PHOTO_OUTPUTS + RESULTS} == dict.fromkeys(PHOTO_OUTPUTS + RESULTS, SKIP)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_greyscale_alpha_palette_16_bit_and_cmyk_uploads_load_as_rgb(app_demo, tmp_path: Path, mode) -> None:
    demo, _ = app_demo
    grey = np.tile(np.linspace(0, 65535 if mode == "I;16" else 255, 48), (40, 1))
    img = Image.fromarray(grey.astype(np.uint16 if mode == "I;16" else np.uint8)).convert(mode)
    path = tmp_path / f"photo.{'jpg' if mode == 'CMYK' else 'png'}"
    img.save(path)
    out = _by_output(demo, "on_upload", _handler(demo, "on_upload").fn(str(path)))
    photo = out["state 1"]
    assert out["al-status"].startswith(f"Photo loaded: {path.name}")
    assert photo.shape == (40, 48, 3) and photo.dtype == np.uint8 and photo.max() - photo.min() > 200


def _explain(demo, photo: object, method: object = "gradcam", opacity: object = 0.45) -> dict:
    args = (photo, None, False, method, "last-conv", "predicted class", "out_relu", opacity)
    return _by_output(demo, "on_explain", _handler(demo, "on_explain").fn(*args))


def test_explain_with_no_method_says_to_pick_one_and_keeps_the_photo(app_demo) -> None:
    """It said "method must be one name (str)... call explain once per method": the Python API's words."""
    demo, _ = app_demo
    out = _explain(demo, _photo(), method=None)
    assert out["al-status"] == "⚠️ No method chosen: pick one in the Method list."
    assert out["al-face"] == SKIP and out["al-map"] is None and out["al-download"] is None


def test_explain_with_no_photo_and_after_clear_asks_for_one(app_demo) -> None:
    from agelens.report import app

    demo, _ = app_demo
    cleared = _by_output(demo, "on_clear", _handler(demo, "on_clear").fn())
    out = _explain(demo, cleared["state 1"])
    assert out["al-status"] == app.NO_PHOTO and all(out[k] is None for k in RESULTS)


def test_an_opacity_that_is_no_number_keeps_the_map_and_explain_uses_the_default(app_demo) -> None:
    """NaN passes the slider's bounds check (``nan < 0`` is False): the re-blend raised
    "alpha must be in [0, 1]" and Explain refused the photo with "Could not explain: alpha..."."""
    demo, _ = app_demo
    slider = _handler(demo, "on_opacity").inputs[1]
    assert math.isnan(slider.preprocess(math.nan))  # it does reach the handlers

    explained = _explain(demo, _photo(), opacity=math.nan)
    assert explained["al-status"].startswith("**") and isinstance(explained["al-map"], np.ndarray)
    default = _explain(demo, _photo(), opacity=None)
    np.testing.assert_array_equal(explained["al-map"], default["al-map"])

    on_opacity = _handler(demo, "on_opacity").fn
    assert on_opacity(explained["map state"], math.nan) == SKIP
    assert on_opacity(explained["map state"], math.inf) == SKIP
    assert on_opacity(None, 0.3) == SKIP  # no map shown yet: nothing to redraw
    assert isinstance(on_opacity(explained["map state"], 0.3), np.ndarray)


def test_a_filter_layer_change_without_a_photo_says_a_photo_is_needed(app_demo) -> None:
    """It drew nothing and said nothing: the grid just stayed empty."""
    from agelens.report import app

    demo, _ = app_demo
    grid, note = _handler(demo, "on_filter").fn(None, True, "out_relu")
    assert grid is None and note == app.NO_PHOTO
    grid, note = _handler(demo, "on_filter").fn(_photo(), False, "no_such_layer")
    assert grid is None and note.startswith("⚠️ Filter grid not drawn: no layer named 'no_such_layer'")
