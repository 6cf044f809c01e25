"""Review findings on ``agelens explain``: the manifest says what ran (detection, the crop each map
covers, overlay options), the no-face line says what the model saw, and an unused --layer is said."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import typer
from explain_models import quadrant_model
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.explain_cmd import explain_command
from agelens.cli.predict_cmd import predict_command
from agelens.cli.score_cmd import score_command
from agelens.model.age_model import AgeModel
from agelens.model.io import save_model
from agelens.model.wrap import wrap_keras_model

app = typer.Typer()
app.command("explain")(explain_command)
app.command("predict")(predict_command)
app.command("score")(score_command)
runner = CliRunner()
BOX = (120, 60, 40, 40)  # the face the stubbed detector "finds" in a 300x200 photo


@pytest.fixture(scope="module")
def quadrant() -> AgeModel:
    """A hand-built 32 px model: the cheapest one there is."""
    return wrap_keras_model(quadrant_model())


@pytest.fixture(scope="module")
def model_file(quadrant, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "quadrant.keras"
    save_model(quadrant, path)
    return path


@pytest.fixture
def holiday(tmp_path) -> Path:
    """A 300x200 photo of noise: the detector finds nothing unless a test stubs it."""
    path = tmp_path / "holiday.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def found(monkeypatch) -> tuple[int, int, int, int]:
    import agelens.model.faces as faces

    monkeypatch.setattr(faces, "detect_faces", lambda img, cascade="alt2": [BOX])
    return BOX


def _explain(photo: Path, model: Path, out: Path, *extra: str) -> tuple[str, dict]:
    result = runner.invoke(app, ["explain", str(photo), "--model", str(model), "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output, json.loads((out / "manifest.json").read_text())


def test_settings_detect_says_whether_the_cli_cropped_faces(model_file, holiday, found, tmp_path):
    _, manifest = _explain(holiday, model_file, tmp_path / "on", "--method", "saliency")
    assert manifest["runs"][0]["settings"]["detect"] is True
    _, manifest = _explain(holiday, model_file, tmp_path / "off", "--method", "saliency", "--no-detect")
    assert manifest["runs"][0]["settings"]["detect"] is False


def test_the_manifest_says_which_crop_each_map_covers(model_file, holiday, found, tmp_path):
    from agelens.explain import Explanation
    from agelens.model.faces import chip_box

    _, manifest = _explain(holiday, model_file, tmp_path / "face", "--method", "saliency")
    (image,) = manifest["images"]
    x0, y0, side = chip_box(BOX)
    assert image["crop_box_xywh"] == [x0, y0, side, side] and image["size"] == [side, side]
    assert "crop_box_xywh" in manifest["conventions"]
    assert Explanation.load(tmp_path / "face").faces[0]["crop_box_xywh"] == [x0, y0, side, side]
    _, manifest = _explain(holiday, model_file, tmp_path / "whole", "--method", "saliency", "--no-detect")
    assert manifest["images"][0]["crop_box_xywh"] == [0, 0, 300, 200]
    # A manifest written before the field existed still loads.
    old = tmp_path / "whole" / "manifest.json"
    data = json.loads(old.read_text())
    del data["images"][0]["crop_box_xywh"], data["conventions"]["crop_box_xywh"]
    old.write_text(json.dumps(data))
    assert Explanation.load(tmp_path / "whole").maps.shape == (1, 200, 300)


def test_the_help_says_the_map_is_at_the_crops_size():
    result = runner.invoke(app, ["explain", "--help"], terminal_width=200)
    text = " ".join(result.output.split())
    assert "at the photo's size" not in text and "crop_box_xywh" in text


def test_the_api_crop_box_is_where_the_crop_came_from(quadrant, found):
    from agelens.explain.api import explain

    photo = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    e = explain(quadrant, photo, method="saliency", detect=True)
    x, y, w, h = e.faces[0]["crop_box_xywh"]
    np.testing.assert_array_equal(e.images[0], photo[y : y + h, x : x + w])
    assert e.settings["detect"] is True


def test_no_face_lines_say_the_model_sees_the_centred_square(quadrant, model_file, holiday, tmp_path):
    """The photo is 300x200: "whole image used" was false, the model saw the middle 200x200."""
    from agelens.explain.api import explain, no_face_note

    note = "no face found: the model sees the centred square (67% of the photo)"
    output, _ = _explain(holiday, model_file, tmp_path / "o", "--method", "saliency")
    assert f"holiday.png: {note}" in output and "whole image used" not in output
    answer = next(ln for ln in output.splitlines() if "[" in ln and "holiday.png" in ln)
    assert answer.endswith(f"({note})"), output  # on the prediction line too, as predict says it
    predicted = runner.invoke(app, ["predict", str(holiday), "--model", str(model_file), "--engine", "keras"])
    assert predicted.exit_code == 0 and f"({note})" in predicted.output, predicted.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explain(quadrant, str(holiday), method="saliency", detect=True)
    assert [str(w.message) for w in caught if "no face" in str(w.message)] == [f"{holiday}: {note}"]
    assert no_face_note(np.zeros((64, 64, 3), np.uint8)) == "no face found: whole image used"  # square: true


def test_the_cli_and_api_no_face_notes_agree():
    from agelens.cli.explain_cmd import no_face_note as cli_note
    from agelens.explain.api import no_face_note as api_note

    for h, w in [(64, 64), (100, 95), (200, 300), (400, 100)]:
        photo = np.zeros((h, w, 3), np.uint8)
        assert cli_note(photo) == api_note(photo)


def test_overlay_options_are_recorded(model_file, holiday, tmp_path):
    output, manifest = _explain(
        holiday, model_file, tmp_path / "o", "--method", "saliency", "--cmap", "viridis", "--alpha", "0.3"
    )
    assert "--layer ignored" not in output  # no --layer given: nothing to say about it
    drawn = {"cmap": "viridis", "signed_cmap": "viridis", "alpha": 0.3}
    assert manifest["overlay"] == drawn and "overlay" in manifest["conventions"]


def test_layer_given_to_a_pixel_method_is_said_to_be_ignored(model_file, holiday, tmp_path):
    output, _ = _explain(
        holiday, model_file, tmp_path / "a", "--method", "gradcam,saliency,occlusion", "--layer", "relu1"
    )
    ignored = [ln for ln in output.splitlines() if "--layer ignored" in ln]
    assert ignored == [
        "saliency explains the input pixels: --layer ignored",
        "occlusion explains the input pixels: --layer ignored",
    ]
    # the layer a manifest records for saliency is no error where it is ignored, but is where it is used
    output, _ = _explain(holiday, model_file, tmp_path / "b", "--method", "saliency", "--layer", "input")
    assert "saliency explains the input pixels: --layer ignored" in output
    used = runner.invoke(app, ["explain", str(holiday), "--model", str(model_file), "--method", "gradcam",
                               "--layer", "input", "-o", str(tmp_path / "c")])  # fmt: skip
    assert used.exit_code == 2 and "(InputLayer)" in used.output and not (tmp_path / "c").exists()


def test_force_drops_the_page_drawn_from_the_run_it_replaces(model_file, holiday, tmp_path):
    out = tmp_path / "ex"
    _explain(holiday, model_file, out)
    (out / "report.html").write_text("<html>the earlier photos</html>")
    said, _ = _explain(holiday, model_file, out, "--force", "--method", "saliency")
    assert not (out / "report.html").exists() and "it showed the earlier run" in " ".join(said.split())


def test_a_target_naming_no_class_is_refused_before_the_model_loads(holiday, tmp_path, monkeypatch):
    import agelens.cli.explain_cmd as cmd

    monkeypatch.setattr(cmd, "load_cli_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "never"
    result = runner.invoke(
        app, ["explain", str(holiday), "--target", "olde", "-o", str(out)]
    )  # the shipped one
    assert result.exit_code == 2 and "unknown target 'olde'" in " ".join(result.output.split())
    assert not out.exists()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["old", "Young", "middle-aged", "middle", "aged", "-", " ", "0", "2", "3",
                                 "age", "x", "predicted"]), max_size=5).map("".join))  # fmt: skip
def test_the_early_target_check_never_refuses_what_explain_accepts(text):
    from types import SimpleNamespace

    from agelens.cli.explain_cmd import could_be_target
    from agelens.explain.targets import resolve_target

    names = ["young", "middle-aged", "old"]
    if not could_be_target(text, names):
        with pytest.raises(ValueError):
            resolve_target(text, SimpleNamespace(class_names=names, age_output="age"))


@pytest.mark.parametrize("command", ["explain", "score"])
def test_a_layer_naming_no_layer_is_refused_before_the_model_loads(holiday, tmp_path, monkeypatch, command):
    import agelens.cli.explain_cmd as cmd
    import agelens.cli.score_cmd as score_cmd

    for mod in (cmd, score_cmd):
        monkeypatch.setattr(mod, "load_cli_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "never"
    result = runner.invoke(
        app, [command, str(holiday), "--layer", "late,blok_13_expand_relu", "-o", str(out)]
    )
    said = " ".join(result.output.replace("│", " ").split())  # the words without the error box
    assert result.exit_code == 2 and "no layer named 'blok_13_expand_relu'" in said
    assert "did you mean block_13_expand_relu" in said and not out.exists()


def test_the_early_layer_check_never_refuses_a_layer_the_model_has(model_file) -> None:
    """Every name ``agelens layers`` lists (bare or with its nested model's prefix), each keyword and
    index passes; so does any name of a file the check cannot read (an .h5)."""
    from agelens.explain.layer_spec import KEYWORDS, layer_names_in_file, unknown_layers
    from agelens.explain.layers import list_layers
    from agelens.model.io import SHIPPED_MODEL, load_model

    for path in (model_file, SHIPPED_MODEL):
        names = layer_names_in_file(path)
        listed = [info.name for info in list_layers(load_model(path))]
        assert names and listed
        for spec in [
            *listed,
            *(f"outer/{n}" for n in listed if n != "input"),
            *KEYWORDS,
            "0",
            "-1",
            ",".join(listed[:3]),
        ]:
            assert unknown_layers(spec, names) == [], spec
        assert unknown_layers("mid, no_such_layer", names) == ["no_such_layer"]
    assert layer_names_in_file(Path(__file__)) is None  # not a .keras zip: left to the check after loading


def test_an_unknown_target_is_answered_in_the_models_own_classes() -> None:
    """A custom model's hint must not offer the shipped model's 'old-young'."""
    from types import SimpleNamespace

    from agelens.explain.targets import resolve_target
    from agelens.wording import target_choices

    assert "'dog-cat'" in target_choices(["cat", "dog"]) and "old-young" not in target_choices(["cat", "dog"])
    with pytest.raises(ValueError, match=r"unknown target 'bird': use a class \(cat, dog\).*'dog-cat'"):
        resolve_target("bird", SimpleNamespace(class_names=["cat", "dog"]))


def test_an_empty_method_list_is_a_usage_error(model_file, holiday, tmp_path) -> None:
    """`--method ""` ran no method and crashed (KeyError) leaving a manifest of no runs."""
    for spec in ("", " ", ","):
        out = tmp_path / f"x{len(spec)}{spec.strip()}"
        res = runner.invoke(app, ["explain", str(holiday), "--model", str(model_file), "--method", spec,
                                  "--out", str(out)])  # fmt: skip
        assert res.exit_code == 2 and "no method given" in res.output, res.output
        assert not out.exists()


def test_an_unwritable_out_fails_in_one_line_before_any_map(
    model_file, holiday, tmp_path, monkeypatch
) -> None:
    """A read-only disk or a locked folder ended in a traceback, after every map was made."""
    import tempfile

    locked = tmp_path / "locked"
    real = tempfile.TemporaryFile

    def refuse(*args, dir=None, **kw):  # noqa: A002, ANN001, ANN202 - tempfile's own keyword
        if dir is not None and Path(dir) == locked:
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    for out in (locked, locked / "run"):  # the folder itself, or the folder that would hold it
        locked.mkdir(exist_ok=True)
        res = runner.invoke(app, ["explain", str(holiday), "--model", str(model_file), "--no-detect",
                                  "--out", str(out)])  # fmt: skip
        assert res.exit_code == 1, res.output
        assert res.output.strip().splitlines() == [
            f"error: {out}: cannot write --out there: " + ("" if out == locked else f"{locked}: ")
            + "Read-only file system"
        ]  # fmt: skip
        assert "done" not in res.output
