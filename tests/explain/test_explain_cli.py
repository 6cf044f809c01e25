"""``agelens explain`` / ``agelens layers`` through Typer's CliRunner (registered on a local app)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.explain_cmd import explain_command, layers_command
from agelens.model.builder import ModelConfig, build_age_model
from agelens.model.io import SHIPPED_MODEL, save_model
from agelens.model.wrap import wrap_keras_model

app = typer.Typer()
app.command("explain")(explain_command)
app.command("layers")(layers_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(wrap_keras_model(build_age_model(ModelConfig(input_size=64, alpha=0.35), seed=1)), path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)).save(folder / "a face.jpg")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "b.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def test_explain_writes_overlays_maps_filters_and_a_complete_manifest(model_file, photos, tmp_path):
    out = tmp_path / "out"
    args = ["explain", str(photos), "--model", str(model_file), "--method", "gradcam,gradcam++",
            "--target", "old", "--filters", "3", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    skipped = [ln for ln in result.output.splitlines() if "broken.jpg" in ln]
    assert len(skipped) == 1 and "skipped" in skipped[0] and ": " in skipped[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir())
    assert [r["method"] for r in manifest["runs"]] == ["gradcam", "gradcam++"]
    assert manifest["runs"][0]["target"] == "old" and manifest["model"] == str(model_file)
    assert manifest["conventions"]["size"].startswith("[width, height]")  # the fields say their order
    read = manifest["model_read_as"]  # what a plain model's maps depend on, given or guessed
    assert read["input_size"] == 64 and read["class_names"] == ["young", "middle-aged", "old"]
    assert (
        read["input_range"] == "0-255"
        and "class_output" in read
        and "model_read_as" in manifest["conventions"]
    )
    assert "(height, width)" in manifest["conventions"]["map_size"]
    assert np.load(out / "000_a_face_gradcam_map.npy").shape == tuple(manifest["images"][0]["map_size"][::-1])
    assert len(manifest["images"]) == 2 and len(manifest["problems"]) == 1
    first = manifest["images"][0]
    assert first["size"] == first["map_size"] == [60, 80] and first["source"].endswith("a face.jpg")
    assert (
        "000_a_face_gradcam_map.npy" in first["files"]
        and "000_a_face_gradcampp_overlay.png" in first["files"]
    )
    assert "000_a_face_filters.png" in first["files"]
    assert manifest["filters"]["k"] == 3 and manifest["filters"]["layer"]  # which layer the grid shows
    assert np.load(out / "000_a_face_gradcam_map.npy").shape == (80, 60)


def test_a_tiny_photo_is_explained_with_a_note(model_file, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8) + np.eye(8, dtype=np.uint8)[..., None] * 50).save(tiny)
    result = runner.invoke(app, ["explain", str(tiny), "-m", str(model_file), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "tiny.png: image only 8 px: unreliable below 32" in result.output  # no face was found in it
    record = json.loads((tmp_path / "o" / "manifest.json").read_text())["images"][0]
    assert record["notes"][0].startswith("no face found")  # recorded, not only printed
    assert record["notes"][1] == "image only 8 px: unreliable below 32"
    answer = next(ln for ln in result.stdout.splitlines() if ln.startswith(str(tiny)))
    assert answer.endswith("(image only 8 px: unreliable below 32)")  # on the answer, as predict says it
    from agelens.report.html import render_report

    page = render_report(tmp_path / "o")
    assert 'class="photo-notes"' in page and "image only 8 px: unreliable below 32" in page


def test_globs_and_single_files(model_file, photos, tmp_path):
    out = tmp_path / "g"
    result = runner.invoke(app, ["explain", str(photos / "*.png"), str(photos / "a face.jpg"), "-m",
                                 str(model_file), "--method", "eigencam", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    sources = [i["source"] for i in json.loads((out / "manifest.json").read_text())["images"]]
    assert [Path(s).name for s in sources] == ["b.png", "a face.jpg"]


def test_non_empty_out_is_refused_without_force(model_file, photos, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    args = ["explain", str(photos / "b.png"), "--model", str(model_file), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "not empty" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "keep" and (out / "manifest.json").exists()
    # Forcing again with another method replaces the earlier run's files, not the user's.
    result = runner.invoke(app, [*args, "--force", "--method", "saliency"])
    assert result.exit_code == 0, result.output
    listed = set(json.loads((out / "manifest.json").read_text())["files"])
    assert {p.name for p in out.iterdir()} == listed | {"notes.txt"}
    assert all("saliency" in f for f in listed - {"manifest.json"})


def test_output_folder_gets_normal_permissions_not_mkdtemps_private_ones(model_file, photos, tmp_path):
    args = ["explain", str(photos / "b.png"), "--model", str(model_file), "--method", "saliency"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "new")]).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o777 & ~umask
    kept = tmp_path / "kept"
    kept.mkdir()
    kept.chmod(0o775)
    assert runner.invoke(app, [*args, "--out", str(kept)]).exit_code == 0
    assert kept.stat().st_mode & 0o777 == 0o775 and (kept / "manifest.json").exists()


def test_nothing_explainable_exits_non_zero(model_file, photos, tmp_path):
    result = runner.invoke(app, ["explain", str(photos / "broken.jpg"), str(photos / "missing.jpg"),
                                 "--model", str(model_file), "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1
    assert "missing.jpg: no such file or folder" in result.output and "nothing to explain" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--method", "magic"], "unknown method"), (["--target", "ancient"], "unknown target"),
     (["--layer", "nope"], "no layer named"), (["--cmap", "notacmap"], "unknown colormap")],
)  # fmt: skip
def test_bad_choices_are_usage_errors(model_file, photos, tmp_path, extra, words):
    result = runner.invoke(
        app, ["explain", str(photos), "--model", str(model_file), "-o", str(tmp_path / "o"), *extra]
    )
    assert result.exit_code == 2 and words in result.output


def test_bad_model_is_one_line(photos, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["explain", str(photos), "--model", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and str(bad) in result.output


def test_missing_shipped_model_says_so(photos, tmp_path):
    if SHIPPED_MODEL.exists():
        pytest.skip("the shipped model is installed")
    result = runner.invoke(app, ["explain", str(photos), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "shipped model is missing" in result.output


def test_layers_lists_shapes_and_keywords(model_file):
    result = runner.invoke(app, ["layers", "--model", str(model_file)])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if " out_relu " in ln)
    assert "*" in line and "(2, 2, 1280)" in line
    assert "last-conv -> out_relu" in result.output and "early -> block_3_expand_relu" in result.output


def test_detect_falls_back_to_the_whole_photo_when_no_face_is_found(model_file, photos, tmp_path):
    out = tmp_path / "d"
    result = runner.invoke(app, ["explain", str(photos / "b.png"), "--model", str(model_file), "--detect",
                                 "--method", "eigencam", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    (image,) = json.loads((out / "manifest.json").read_text())["images"]
    assert image["size"] == [64, 64] and "face_box_xywh" not in image  # noise has no face: photo as given
    assert image["face_found"] is False and image["photo_size"] == [64, 64]
    assert "b.png: no face found: whole image used" in result.output


def test_explain_crops_the_face_like_predict_by_default_and_prints_the_same_prediction(
    model_file, tmp_path, monkeypatch
):
    """A user ran predict and explain on one holiday photo and got opposite answers: predict cropped
    the face by default, explain read the whole canvas, and explain printed no prediction at all."""
    import agelens.model.faces as faces
    from agelens.cli.predict_cmd import predict_command

    photo = tmp_path / "holiday.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(photo)
    monkeypatch.setattr(faces, "detect_faces", lambda img, cascade="alt2": [(120, 60, 40, 40)])
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(photo), "--model", str(model_file), "-o", str(out)])
    assert result.exit_code == 0, result.output
    (image,) = json.loads((out / "manifest.json").read_text())["images"]
    assert image["face_box_xywh"] == [120, 60, 40, 40] and image["size"][0] < 100  # the crop, not 300 px
    assert image["face_found"] is True and image["photo_size"] == [300, 200]  # and the photo it came from
    said = [ln for ln in result.stdout.splitlines() if ln.startswith(f"{photo}: ")]

    predict_app = typer.Typer()
    predict_app.command("predict")(predict_command)
    predicted = runner.invoke(
        predict_app, ["predict", str(photo), "--model", str(model_file), "--engine", "keras"]
    )
    assert predicted.exit_code == 0, predicted.output
    assert said == [ln for ln in predicted.stdout.splitlines() if ln.startswith(f"{photo}: ")]
    assert len(said) == 1 and "[young " in said[0]

    whole = runner.invoke(app, ["explain", str(photo), "--model", str(model_file), "--no-detect",
                                "-o", str(tmp_path / "whole")])  # fmt: skip
    (image,) = json.loads((tmp_path / "whole" / "manifest.json").read_text())["images"]
    assert whole.exit_code == 0 and image["size"] == [300, 200] and "face_box_xywh" not in image
    assert "face_found" not in image  # no detector ran: neither found nor missed


def test_an_unknown_method_is_reported_before_a_full_output_folder(model_file, photos, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["explain", str(photos), "--model", str(model_file), "--method", "bogus",
                                 "-o", str(out)])  # fmt: skip
    assert result.exit_code != 0 and "bogus" in result.output and "not empty" not in result.output
    result = runner.invoke(app, ["explain", str(photos), "--model", str(model_file), "-o", str(out)])
    assert result.exit_code == 1 and "not empty (pass --force to write into it)" in result.output
    assert "force=True" not in result.output


def test_nothing_readable_is_one_clear_line_and_exit_1(model_file, photos, tmp_path):
    one = runner.invoke(app, ["explain", str(photos / "broken.jpg"), "--model", str(model_file),
                              "-o", str(tmp_path / "a")])  # fmt: skip
    said = f"error: nothing to explain: {photos / 'broken.jpg'}: "
    assert one.exit_code == 1 and one.output.startswith(said) and len(one.output.strip().splitlines()) == 1
    (photos / "also broken.png").write_bytes(b"nope")
    two = runner.invoke(app, ["explain", str(photos / "broken.jpg"), str(photos / "also broken.png"),
                              "--model", str(model_file), "-o", str(tmp_path / "b")])  # fmt: skip
    assert two.exit_code == 1 and "nothing to explain: all 2 photos were unreadable" in two.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_failed_run_announces_no_fresh_folder(model_file, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "outputs" / "explain"
    earlier.mkdir(parents=True)
    (earlier / "manifest.json").write_text("{}")
    result = runner.invoke(app, ["explain", str(photos / "broken.jpg"), "--model", str(model_file)])
    assert result.exit_code == 1 and "nothing to explain" in result.output
    assert "explain-2" not in result.output and not (tmp_path / "outputs" / "explain-2").exists()
    ok = runner.invoke(app, ["explain", str(photos / "b.png"), "--model", str(model_file)])
    assert ok.exit_code == 0, ok.output
    assert "writing to outputs/explain-2" in ok.output.replace("\\", "/")
    assert (tmp_path / "outputs" / "explain-2" / "manifest.json").is_file()


def test_signed_runs_the_methods_that_have_a_signed_form(model_file, photos, tmp_path):
    bad = runner.invoke(app, ["explain", str(photos / "b.png"), "--model", str(model_file), "--signed",
                              "--method", "gradcam,layercam", "-o", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code != 0 and "layercam: no signed form" in bad.output and not (tmp_path / "x").exists()
    out = tmp_path / "signed"
    res = runner.invoke(app, ["explain", str(photos / "b.png"), "--model", str(model_file), "--signed",
                              "--method", "all", "--target", "age", "-o", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    ran = [r["method"] for r in manifest["runs"]]
    assert set(ran) == {
        "gradcam",
        "xgradcam",
        "hirescam",
        "gradient-x-input",
        "integrated-gradients",
        "occlusion",
        "rise",
    }
    assert all(r["settings"]["signed"] is True for r in manifest["runs"])


def test_the_signed_help_names_exactly_the_methods_with_a_signed_form() -> None:
    """The help is written out (importing the method registry would start TensorFlow for --help);
    this keeps it true when a method gains or loses its signed form."""
    import re
    import typing

    from agelens.explain.api import signed_methods

    hints = typing.get_type_hints(explain_command, include_extras=True)
    option = next(m for m in typing.get_args(hints["signed"])[1:] if isinstance(m, typer.models.OptionInfo))
    listed = re.search(r"For ([a-z, -]+?) \(", option.help).group(1).split(", ")
    assert sorted(listed) == sorted(signed_methods())


def test_the_help_lists_every_method_explain_accepts() -> None:
    """The help's method list is written by hand; it must not fall behind the registry."""
    import re

    from agelens.cli.explain_cmd import explain_command
    from agelens.explain.api import list_methods

    listed = " ".join(explain_command.__doc__.split("Methods:", 1)[1].split("Examples:", 1)[0].split())
    names = set(re.findall(r"[a-z][a-z+-]*[a-z+]", listed)) - {"or"}
    assert set(list_methods()) <= names, set(list_methods()) - names


def test_a_folder_is_read_as_predict_reads_it(model_file, tmp_path):
    """Before: explain took a folder's own files only (hidden ones too); predict walks sub-folders."""
    from agelens.model.predict import collect_inputs

    folder = tmp_path / "holiday"
    (folder / "day2").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name in ("a.png", "day2/b.png", ".thumb.png"):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / name)
    res = runner.invoke(
        app, ["explain", str(folder), "-m", str(model_file), "--no-detect", "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    sources = [
        Path(i["source"]) for i in json.loads((tmp_path / "o" / "manifest.json").read_text())["images"]
    ]
    assert sources == collect_inputs([str(folder)])[0] == [folder / "a.png", folder / "day2" / "b.png"]
