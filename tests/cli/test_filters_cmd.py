"""``agelens filters``: what each filter looks for, run as the console script runs it (tiny model,
tiny synthetic faces, a few search steps)."""

from __future__ import annotations

import json
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agelens.cli import main
from agelens.data.synthetic import generate

SIZE = 32
C1, C2 = 6, 10  # filters of the model's two conv layers
FAST = ("--steps", "8")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two small conv layers at 32 px; the file declares c1 as its explain layer (c2 is last-conv)."""
    import keras

    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inp)
    x = keras.layers.Conv2D(C1, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(C2, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(wrap_keras_model(keras.Model(inp, out), metadata={"explain_layer": "c1"}), path)
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic faces (the detector finds some of them) and one file that is no image."""
    folder = tmp_path_factory.mktemp("photos")
    for i, img in enumerate(generate(3, size=64, seed=1).images):
        Image.fromarray(img).save(folder / f"face{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


@pytest.fixture
def agelens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """Run ``agelens filters ARGS`` through the console script (its one-line errors and exit codes); returns
    (exit status, stdout, stderr). The signal handlers and warning hook it installs are put back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["agelens", "filters", *map(str, args)])
        code = 0
        try:
            main.run()
        except SystemExit as e:
            code = e.code or 0
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    for s, handler in saved.items():
        signal.signal(s, handler)


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_writes_the_atlas_patterns_and_a_manifest_naming_the_photos(agelens, model_file, photos, tmp_path):
    out = tmp_path / "atlas"
    good = [str(photos / f"face{i}.png") for i in range(3)]
    code, said, err = agelens(*good, "--model", model_file, "--filters", "3", "--top", "2", "-o", out, *FAST)
    assert code == 0, err
    m = _manifest(out)
    assert sorted(m["files"]) == sorted(p.name for p in out.iterdir())  # every file listed, nothing else
    assert m["kind"] == "filters" and m["layer"] == "c1"  # the model's declared layer, not last-conv (c2)
    assert len(m["filters"]) == 3 and m["chosen_by"] == "most active on these photos"
    assert {f"filter_{f}_pattern.png" for f in m["filters"]} <= set(m["files"]) and "atlas.png" in m["files"]
    patterns = np.load(out / "patterns.npy")
    assert patterns.shape == (3, SIZE, SIZE, 3) and patterns.dtype == np.uint8  # the model's input size
    assert m["settings"]["steps"] == 8 and m["settings"]["seed"] == 0 and m["settings"]["top"] == 2
    assert m["model"] == model_file and m["n_photos"] == 3 and m["problems"] == []
    assert [p["source"] for p in m["photos"]] == good and "crop_box_xywh" in m["photo_conventions"]
    for row in m["per_filter"]:
        assert len(row["top"]) == 2 and {t["photo"] for t in row["top"]} <= set(good)  # named as typed
        assert row["photo_best_activation"] >= row["photo_mean_activation"]
    # stdout: one line per filter with its activations and top photo, then where the files went
    lines = said.splitlines()
    for f, row in zip(m["filters"], m["per_filter"], strict=True):
        line = next(ln for ln in lines if ln.startswith(f"filter {f}: "))
        assert f"pattern {row['pattern_activation']:.3g}" in line and row["top"][0]["photo"] in line
    assert str(out) in lines[-1] and "3 photos" in lines[-1]


@pytest.mark.parametrize(
    ("given", "layer", "filters", "chosen_by"),
    [
        ("2", "last-conv", None, "most active on these photos"),
        ("5,1", None, [5, 1], "named"),
        ("4,", "c2", [4], "named"),  # one filter by its index: the trailing comma
    ],
)
def test_a_count_picks_the_most_active_filters_and_a_list_names_them(
    agelens, model_file, photos, tmp_path, given, layer, filters, chosen_by
):
    out = tmp_path / "o"
    opts = ["--layer", layer] if layer else []
    code, _, err = agelens(
        photos / "face0.png", "-m", model_file, "--filters", given, *opts, "-o", out, *FAST
    )
    assert code == 0, err
    m = _manifest(out)
    assert m["chosen_by"] == chosen_by and m["layer"] == ("c2" if layer else "c1")
    if filters is None:  # a count: that many, the ones with the highest mean activation on the photo
        from agelens.data.images import load_image, resize_for_model
        from agelens.explain.filters import filter_maps
        from agelens.model.faces import crop_largest_face
        from agelens.model.io import load_model

        am = load_model(
            model_file
        )  # the photo read again as the CLI reads it: the face, then the model's size
        face = crop_largest_face(load_image(photos / "face0.png"))[0]
        expected = filter_maps(am, resize_for_model(face, SIZE), "c2", k=2).indices
        assert m["filters"] == expected
    else:
        assert m["filters"] == filters
        assert sorted(p.name for p in out.glob("filter_*_pattern.png")) == sorted(
            f"filter_{f}_pattern.png" for f in filters
        )


def test_a_count_above_the_layers_filters_draws_them_all_and_says_so(agelens, model_file, photos, tmp_path):
    out = tmp_path / "o"
    code, _, err = agelens(
        photos / "face1.png", "-m", model_file, "--filters", "20", "-o", out, "--steps", "0"
    )
    assert code == 0, err
    assert f"layer c1 has {C1} filters: drawing all of them" in err
    assert sorted(_manifest(out)["filters"]) == list(range(C1))


def test_a_broken_photo_among_good_ones_is_reported_once_and_skipped(agelens, model_file, photos, tmp_path):
    out = tmp_path / "o"
    code, said, err = agelens(photos, "-m", model_file, "--filters", "2", "-o", out, *FAST)
    assert code == 0, err
    told = [ln for ln in err.splitlines() if "broken.jpg" in ln]
    assert len(told) == 1 and told[0].startswith("skipped ") and told[0].split("broken.jpg: ")[1]  # and why
    m = _manifest(out)
    assert len(m["problems"]) == 1 and "broken.jpg" in m["problems"][0]
    assert m["n_photos"] == 3 and all("broken" not in p["source"] for p in m["photos"])
    assert "(1 skipped)" in said


def test_when_no_photo_can_be_read_it_fails_in_one_line(agelens, model_file, photos, tmp_path):
    out = tmp_path / "o"
    code, _, err = agelens(photos / "broken.jpg", "-m", model_file, "-o", out, *FAST)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: nothing to explain: ") and "broken.jpg: cannot read" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.png", "b.jpg"):
        (bad / name).write_bytes(b"no image here")
    code, _, err = agelens(bad, "-m", model_file, "-o", out, *FAST)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 1 and errors == ["error: nothing to explain: all 2 photos were unreadable"], err
    assert not out.exists()  # nothing written for a run that failed


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--filters", "3,99"], f"99 out of range: layer c1 has {C1} filters"),
        (["--filters", "2,12", "--layer", "c2"], f"12 out of range: layer c2 has {C2} filters"),
        (["--filters", "abc"], "give a count (e.g. 8) or filter indices"),
        (["--filters", "0"], "at least 1 filter"),
        (["--filters", "65"], "at most 64 filters"),
        (["--layer", "c1,c2"], "one layer only"),
        (["--layer", "nosuch"], "no layer named 'nosuch'"),
        (["--steps", "-1"], "--steps"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2_before_any_output(
    agelens, model_file, photos, tmp_path, args, said
):
    out = tmp_path / "o"
    code, _, err = agelens(photos, "-m", model_file, "-o", out, *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and said in err, err
    assert "skipped" not in err and not out.exists()  # refused before the photos are read


def test_the_default_folder_gets_a_suffix_when_it_holds_a_run(
    agelens, model_file, photos, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = (photos / "face2.png", "-m", model_file, "--filters", "1", "--steps", "0")
    assert agelens(*args)[0] == 0
    code, said, err = agelens(*args)
    assert code == 0, err
    first, second = Path("outputs/filters"), Path("outputs/filters-2")
    assert (first / "manifest.json").is_file() and (second / "manifest.json").is_file()
    assert "outputs/filters holds an earlier run: writing to outputs/filters-2" in err
    assert "outputs/filters-2" in said.splitlines()[-1]


def test_a_non_empty_out_is_refused_without_force(agelens, model_file, photos, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    args = (photos / "face0.png", "-m", model_file, "--filters", "1", "--steps", "0", "-o", out)
    code, _, err = agelens(*args)
    assert code == 1 and err.count("\n") == 1 and "not empty" in err and "--force" in err, err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    code, _, err = agelens(*args, "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "keep" and (out / "manifest.json").is_file()


def test_detection_is_recorded_on_and_off(agelens, model_file, photos, tmp_path):
    good = [photos / f"face{i}.png" for i in range(3)]
    on, off = tmp_path / "on", tmp_path / "off"
    assert agelens(*good, "-m", model_file, "--filters", "1", "--steps", "0", "-o", on)[0] == 0
    assert (
        agelens(*good, "-m", model_file, "--filters", "1", "--steps", "0", "-o", off, "--no-detect")[0] == 0
    )
    m_on, m_off = _manifest(on), _manifest(off)
    found = [p["face_found"] for p in m_on["photos"]]
    assert m_on["detect"] is True and m_on["faces_found"] == sum(found) >= 1
    assert any(p["crop_box_xywh"] != [0, 0, 64, 64] for p in m_on["photos"])  # a face was cropped
    assert m_off["detect"] is False and m_off["faces_found"] is None
    assert all("face_found" not in p and p["crop_box_xywh"] == [0, 0, 64, 64] for p in m_off["photos"])


def test_the_documented_example_parses_with_the_commands_options(tmp_path):
    """docs/explain.md's example is what a user pastes: every option it uses must exist and take its value."""
    import re
    import shlex

    import typer

    doc = (Path(__file__).resolve().parents[2] / "docs" / "explain.md").read_text()
    section = doc.split("## What a filter looks for (`agelens filters`)")[1].split("\n## ")[0]
    example = re.search(r"^ {4}(agelens filters .+)$", section, re.M)
    assert example, "the section lost its example command"
    argv = shlex.split(example.group(1))[2:]
    command = typer.main.get_command(main.app).commands["filters"]
    ctx = command.make_context("filters", argv)  # parses and checks every option; runs nothing
    assert ctx.params["photos"] and ctx.params["layer"] and ctx.params["filters"]
