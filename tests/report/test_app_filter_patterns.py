"""The app's "What do these filters look for?" button: the grid's filters, their patterns, its notes."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agelens.report import app_logic
from agelens.report.app_logic import GRID_FILTERS, NO_PATTERN_PHOTO, build_engine

STEPS = 4  # the search's wiring is under test here, not its quality (tests/explain covers that)


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    from agelens.model.io import load_model

    return build_engine(load_model(tiny_model_path), tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from agelens.data.synthetic import generate

    return generate(1, size=96, seed=1).images[0]


@pytest.fixture(scope="module")
def searched(engine, photo: np.ndarray) -> SimpleNamespace:
    """One real (4-step) run of the button's logic, with what it passed to the search and drew."""
    from agelens.explain import feature_vis

    calls: list[dict] = []
    figures: list = []
    real_search, real_figure = feature_vis.filter_patterns, app_logic.patterns_figure

    def spy_search(model, layer, filters, **kw):
        calls.append(dict(layer=layer, filters=list(filters), **kw))
        return real_search(model, layer, filters, **kw)

    def spy_figure(*args, **kw):
        figures.append(real_figure(*args, **kw))
        return figures[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(feature_vis, "filter_patterns", spy_search)
        mp.setattr(app_logic, "patterns_figure", spy_figure)
        image, note = engine.filter_patterns_grid(photo, "out_relu", steps=STEPS)
    return SimpleNamespace(image=image, note=note, calls=calls, figures=figures)


def _grid_maps(engine, photo: np.ndarray):
    """The filters the app's filter grid shows for this photo and layer, in its order."""
    from agelens.data.images import resize_for_model
    from agelens.explain.filters import filter_maps

    return filter_maps(
        engine.model, resize_for_model(photo, engine.model.input_size), "out_relu", GRID_FILTERS
    )


def test_the_patterns_are_the_grids_filters_in_its_order(engine, photo, searched) -> None:

    fm = _grid_maps(engine, photo)
    assert len(searched.calls) == 1
    call = searched.calls[0]
    assert call["layer"] == fm.layer == "out_relu" and call["filters"] == fm.indices
    assert len(fm.indices) == GRID_FILTERS and call["steps"] == STEPS
    assert call["photos"] is None  # one photo's tint made every pattern its colour: neutral statistics
    assert searched.image.ndim == 3 and searched.image.shape[2] == 3 and searched.image.std() > 0


def test_each_tile_names_its_filter_and_compares_pattern_with_photo(engine, photo, searched) -> None:
    fm = _grid_maps(engine, photo)
    (fig,) = searched.figures
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [int(re.match(r"filter (\d+)\n", t).group(1)) for t in titles] == fm.indices
    for title, mean in zip(titles, fm.means, strict=True):
        assert re.search(r"\npattern \S+ · photo (\S+)$", title).group(1) == f"{mean:.3g}"
    assert "out_relu" in fig._suptitle.get_text()


def test_the_note_says_what_the_patterns_are_and_what_they_cost(searched) -> None:
    note = searched.note
    assert "\n" not in note and "not a reason for this prediction" in note and "drive" in note
    assert re.search(rf"{GRID_FILTERS} filters, {STEPS} steps, \d+\.\d s\.$", note)


def test_a_bad_layer_or_no_photo_is_a_note_not_a_crash(engine, photo) -> None:
    image, note = engine.try_filter_patterns_grid(photo, "no_such_layer", steps=STEPS)
    assert image is None and note.startswith("⚠️ Filter patterns not drawn:") and "no_such_layer" in note
    assert "\n" not in note and "agelens layers" not in note  # a CLI command web users cannot run
    assert engine.try_filter_patterns_grid(None, "out_relu", steps=STEPS) == (None, NO_PATTERN_PHOTO)


@pytest.fixture(scope="module")
def app_demo(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """One built (not launched) app, its temp folder in pytest's (as in test_app_logic)."""
    from agelens.report import app

    work = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(work / "gradio"))
        mp.setattr(app, "_workdir", lambda: work)
        yield app.build_app(tiny_model_path)


def _handlers(demo, name: str) -> list:
    return [f for f in demo.fns.values() if f.name == name]


def test_the_filter_accordion_has_the_button_and_it_reads_the_grids_inputs(
    app_demo, photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr

    blocks = {b.elem_id: b for b in app_demo.blocks.values() if getattr(b, "elem_id", None)}
    button, image, note = blocks["al-patterns-run"], blocks["al-patterns"], blocks["al-patterns-note"]
    assert isinstance(button, gr.Button) and button.value == "What do these filters look for?"
    assert isinstance(image, gr.Image) and isinstance(note, gr.Markdown)
    for block in (button, image, note):  # inside the per-filter accordion, beside the grid
        assert block.parent is blocks["al-filters"]
    (on_patterns,) = _handlers(app_demo, "on_patterns")
    assert on_patterns.targets == [(button._id, "click")]
    assert [b.elem_id for b in on_patterns.inputs[1:]] == [None, "al-flayer"]  # detect box, grid's layer
    assert [b.elem_id for b in on_patterns.outputs] == ["al-patterns", "al-patterns-note"]

    engine, seen = app_demo.agelens_engine, []
    monkeypatch.setattr(engine, "try_filter_patterns_grid", lambda p, fl: seen.append((p, fl)) or (p, fl))
    on_patterns.fn(photo, False, "out_relu")
    assert len(seen) == 1 and np.array_equal(seen[0][0], photo) and seen[0][1] == "out_relu"
    on_patterns.fn(None, False, "out_relu")
    assert seen[1] == (None, "out_relu")  # no photo: the engine's note, not a crash in prepare


def test_a_new_photo_layer_or_explain_blanks_the_patterns(app_demo, photo, tmp_path: Path) -> None:
    from PIL import Image

    face = tmp_path / "face.png"
    Image.fromarray(photo).save(face)
    for name, args in [
        ("on_upload", (str(face),)),
        ("on_sample", (SimpleNamespace(index=1),)),
        ("on_clear", ()),
    ]:
        (fn,) = _handlers(app_demo, name)
        out = dict(zip([b.elem_id for b in fn.outputs], fn.fn(*args), strict=True))
        assert out["al-patterns"] is None and out["al-patterns-note"] is None, name

    blocks = {b.elem_id: b for b in app_demo.blocks.values() if getattr(b, "elem_id", None)}
    stale = _handlers(app_demo, "on_patterns_stale")
    assert sorted(t for f in stale for t in f.targets) == sorted(
        [(blocks["al-flayer"]._id, "change"), (blocks["al-explain"]._id, "click")]
    )
    for f in stale:
        assert [b.elem_id for b in f.outputs] == ["al-patterns", "al-patterns-note"]
        assert f.fn() == (None, "")
