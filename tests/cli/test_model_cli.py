"""``agelens evaluate`` and ``agelens predict`` end to end on a tiny model and a UTKFace-style folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _convert_each_model_once() -> Iterator[None]:
    """Each distinct model is converted to TFLite once in this module (about 10 s of CPU each).

    Tests here point ``AGELENS_CACHE`` at empty folders to see what a command does before any
    conversion, and rebuild the fixture's model: that converted the same weights three more
    times. Only the converter's output is kept, under fast's own cache key (weights,
    architecture, outputs, TensorFlow version); an empty cache still finds nothing, calls
    ``_convert``, prints its note and writes its copy, so every choice the commands make
    is made as before.
    """
    from agelens.model import fast

    converted: dict[str, bytes] = {}
    real = fast._convert

    def once(model):
        key = fast._key(model)
        if key not in converted:
            converted[key] = real(model)
        return converted[key]

    patch = pytest.MonkeyPatch()
    patch.setattr(fast, "_convert", once)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def folder_and_model(tmp_path_factory) -> tuple[Path, Path]:
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    root = tmp_path_factory.mktemp("cli")
    data = write_utk_folder(root / "utk", 9, seed=2)
    (data / "40_1_0_20170109999.jpg.chip.jpg").write_bytes(b"not a jpeg")  # one broken photo
    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=0)
    path = save_model(wrap_keras_model(km), root / "tiny.keras")
    return data, path


def test_evaluate_json_has_the_promised_fields_and_counts_the_broken_photo(folder_and_model) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json"])
    assert res.exit_code == 0, res.output
    (line,) = res.stdout.strip().splitlines()  # one JSON object: the TFLite conversion prints nothing
    m = json.loads(line)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names"):
        assert key in m, key
    assert m["n_images"] == 9 and m["n_skipped"] == 1 and m["test_time_flip"] is False
    assert m["engine"] == "tflite"
    keras = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json", "--engine", "keras"])
    by_keras = json.loads(keras.stdout)
    assert by_keras["age_mae"] == pytest.approx(m["age_mae"], abs=1e-3)  # the engines differ in the 5th digit
    assert {k: v for k, v in by_keras.items() if k not in ("engine", "age_mae")} == {
        k: v for k, v in m.items() if k not in ("engine", "age_mae")
    }
    (skipped,) = m["skipped"]  # the broken photo, named with its reason
    assert (
        skipped.startswith(f"{data / '40_1_0_20170109999.jpg.chip.jpg'}: ")
        and len(skipped) > len(str(data)) + 40
    )
    out = data.parent / "ev_flip"
    args = ["evaluate", str(data), "--model", str(model), "--json", "--flip", "--out", str(out)]
    flipped = runner.invoke(app, args)
    assert json.loads(flipped.stdout.strip().splitlines()[-1])["test_time_flip"] is True
    manifest = json.loads((out / "manifest.json").read_text())  # what made the numbers, and what was lost
    assert manifest["files"] == ["confusion_matrix.png", "metrics.json", "metrics.md"]
    assert manifest["settings"]["flip"] is True and manifest["settings"]["data"] == str(data)
    assert manifest["versions"]["agelens"] and manifest["skipped"] == m["skipped"]
    read = manifest["settings"]["model_read_as"]  # guessed, not given: written all the same
    assert read["input_range"] == "0-255" and read["class_names"] == m["class_names"]
    assert "input_range" not in manifest["settings"]  # the given options only, as before
    (out / "report.html").write_text("<html>the earlier numbers</html>")
    again = runner.invoke(app, [*args, "--force"])
    assert again.exit_code == 0 and not (out / "report.html").exists()  # it showed the replaced run


def test_predict_folder_and_glob_give_one_row_per_readable_photo(folder_and_model) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, ["predict", str(data), "--model", str(model), "--json", "--no-detect"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 9
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 and "age" in r for r in rows)
    assert "40_1_0_20170109999.jpg.chip.jpg" in res.output  # the broken photo is named, not fatal
    glob = runner.invoke(
        app, ["predict", str(data / "1*.jpg"), "--model", str(model), "--json", "--no-detect"]
    )
    assert glob.exit_code == 0
    n = len(list(data.glob("1*.jpg")))
    assert n == sum(line.startswith("{") for line in glob.stdout.splitlines())


def test_predict_names_the_folder_it_found_empty(tmp_path, folder_and_model) -> None:
    _, model = folder_and_model
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["predict", str(tmp_path / "empty"), "--model", str(model)])
    assert res.exit_code == 1 and f"no images found in {tmp_path / 'empty'}" in res.output


def test_predict_of_only_unreadable_photos_fails_in_one_line_naming_the_file(
    tmp_path, folder_and_model
) -> None:
    _, model = folder_and_model
    (tmp_path / "broken.jpg").write_text("junk")
    res = runner.invoke(app, ["predict", str(tmp_path / "broken.jpg"), "--model", str(model)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"error: {tmp_path / 'broken.jpg'}: not an image (unrecognised or unsupported format)"
    ]
    (tmp_path / "also.png").write_bytes(b"\x89PNG junk")
    res = runner.invoke(app, ["predict", str(tmp_path), "--model", str(model)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 3 and lines[-1].startswith("error: none of the 2 inputs")
    assert all(line.startswith("skipped ") for line in lines[:2])


def test_predict_engines_agree_and_the_default_uses_tflite_once_converted(
    folder_and_model, tmp_path, monkeypatch
) -> None:
    from agelens.model.age_model import AgeModel

    data, model = folder_and_model
    monkeypatch.setenv("AGELENS_CACHE", str(tmp_path / "cache"))  # nothing converted yet
    seen: list[bool] = []
    real = AgeModel.predict

    def spy(self, images, *args, fast=False, **kw):
        seen.append(fast)
        return real(self, images, *args, fast=fast, **kw)

    monkeypatch.setattr(AgeModel, "predict", spy)

    def rows(*extra: str) -> list[dict]:
        res = runner.invoke(
            app, ["predict", str(data), "--model", str(model), "--json", "--no-detect", *extra]
        )
        assert res.exit_code == 0, res.output
        return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]

    by_keras, by_tflite = rows("--engine", "keras"), rows("--engine", "tflite")
    assert seen == [False, True]
    assert [r["predicted"] for r in by_keras] == [r["predicted"] for r in by_tflite]
    for a, b in zip(by_keras, by_tflite, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-4)
        assert a["age"] == pytest.approx(b["age"], abs=0.11)
    rows()  # 9 photos, but the model is converted (cached) now: no reason to take the slow path
    assert seen[-1] is True
    from agelens.model import light

    monkeypatch.setenv("AGELENS_CACHE", str(tmp_path / "empty"))
    if light.litert_installed():
        rows()  # LiteRT: converting now lets every later run skip TensorFlow (test_light.py)
        assert seen[-1] is True
        monkeypatch.setenv("AGELENS_CACHE", str(tmp_path / "empty-too"))
    monkeypatch.setattr(light, "_litert_interpreter", lambda: None)
    rows()  # a few photos, no converted copy and no LiteRT: Keras, no conversion wait
    assert seen[-1] is False


def test_a_corrupt_model_file_is_one_clear_line_and_exit_1(tmp_path, folder_and_model) -> None:
    data, _ = folder_and_model
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 truncated")
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(bad)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken.keras" in lines[0]


def test_predict_detects_and_crops_a_face_and_says_when_there_is_none(tmp_path, folder_and_model) -> None:
    from agelens.data.synthetic import generate
    from agelens.model.faces import detect_faces

    _, model = folder_and_model
    rng = np.random.default_rng(4)
    # A synthetic face the cascade finds, pasted into a larger canvas; and a photo of noise.
    face = next(im for im in generate(12, size=96, seed=5).images if detect_faces(im))
    canvas = rng.integers(110, 130, (300, 400, 3)).astype(np.uint8)
    canvas[60:156, 200:296] = face
    Image.fromarray(canvas).save(tmp_path / "holiday.png")
    Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    res = runner.invoke(app, ["predict", str(tmp_path / "holiday.png"), str(tmp_path / "noise.png"),
                              "--model", str(model), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.startswith("{")]
    rows = {Path(r["file"]).name: r for r in lines}
    assert rows["holiday.png"]["face_found"] is True and rows["noise.png"]["face_found"] is False
    assert rows["noise.png"]["notes"] == ["no face found: whole image used"]  # JSON says what text says
    assert "notes" not in rows["holiday.png"]
    plain = runner.invoke(app, ["predict", str(tmp_path / "noise.png"), "--model", str(model)])
    assert "no face found: whole image used" in plain.output


def test_evaluate_names_every_skipped_input_and_says_what_it_evaluated(tmp_path, folder_and_model) -> None:
    data, model = folder_and_model
    csv = tmp_path / "labels.csv"
    first = sorted(data.glob("*.jpg"))[0]
    csv.write_text(f"path,age\n{first},25\n{tmp_path / 'gone.jpg'},30\n{first},abc\n")
    res = runner.invoke(app, ["evaluate", str(csv), "--model", str(model), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert m["n_images"] == 1 and m["n_skipped"] == 2
    skipped = [line for line in res.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and any("gone.jpg" in s for s in skipped)  # each one named
    assert "every labelled photo" in m["evaluated_on"]  # not called held out
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": [first.name]}))
    held = runner.invoke(
        app, ["evaluate", str(data), "--model", str(model), "--json", "--holdout", str(split)]
    )
    assert json.loads(held.stdout.strip().splitlines()[-1])["evaluated_on"].endswith(f"listed in {split}")
    text = runner.invoke(app, ["evaluate", str(csv), "--model", str(model)])
    assert text.exit_code == 0, text.output
    both = text.stdout + text.stderr  # each file once with its reason, the count once (the summary)
    assert both.count("gone.jpg") == 1 and "2 inputs skipped" not in both
    assert text.stdout.rstrip().splitlines()[-1].startswith("1 image evaluated, 2 skipped")
    assert "(1 photo with an age)" in text.stdout  # not "1 photos"


def test_evaluate_detect_crops_the_face_as_predict_does_and_counts_the_faces(
    tmp_path, folder_and_model, monkeypatch
) -> None:
    """Labelled photos in the wild: --detect feeds the model predict's face crop, and says in how
    many photos a face was found; without it the photos are scored whole, as before."""
    from agelens.data.synthetic import generate
    from agelens.model.age_model import AgeModel
    from agelens.model.faces import detect_faces
    from agelens.model.predict import prepare

    _, model = folder_and_model
    rng = np.random.default_rng(7)
    face = next(im for im in generate(12, size=96, seed=5).images if detect_faces(im))
    data = tmp_path / "wild"
    data.mkdir()
    for i, age in enumerate((8, 35, 70)):  # UTKFace names carry the labels; PNG keeps the face findable
        canvas = rng.integers(110, 130, (300, 400, 3)).astype(np.uint8)
        canvas[60:156, 200:296] = face  # where the cascade finds it on these backgrounds
        assert detect_faces(canvas), "the check needs a face the cascade finds"
        Image.fromarray(canvas).save(data / f"{age}_0_0_2017010100000{i}.jpg.chip.jpg", format="PNG")
    noise = data / "45_1_0_20170101000009.jpg.chip.jpg"
    Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(noise, format="PNG")

    fed = []
    original = AgeModel.predict
    monkeypatch.setattr(AgeModel, "predict", lambda self, x, **kw: fed.append(x) or original(self, x, **kw))
    base = ["evaluate", str(data), "--model", str(model), "--engine", "keras"]
    res = runner.invoke(app, [*base, "--detect", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert m["detect"] is True and m["n_images"] == 4 and m["n_faces_found"] == 3
    assert m["no_face"] == [str(noise)]
    found = "the largest face cropped first (found in 3 of 4; the others scored whole)"
    assert m["evaluated_on"].endswith(found)
    expected = prepare(sorted(data.iterdir()), 32, detect=True).batch
    np.testing.assert_array_equal(fed[-1], expected)  # predict's crops, in the same order

    whole = runner.invoke(app, [*base, "--json"])
    m = json.loads(whole.stdout.strip().splitlines()[-1])
    assert m["detect"] is False and "n_faces_found" not in m and "face" not in m["evaluated_on"]
    assert not np.array_equal(fed[-1], expected)  # the canvases, scored whole
    text = runner.invoke(app, [*base, "--detect"])
    assert text.exit_code == 0 and text.output.rstrip().endswith(f"4 images evaluated, 0 skipped; {found}")


def test_evaluate_refuses_bad_options_before_the_work(tmp_path, folder_and_model) -> None:
    data, model = folder_and_model
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--out", str(afile)])
    assert res.exit_code == 1 and "exists and is not a directory" in res.output
    assert (
        runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--batch-size", "-3"]).exit_code
        == 2
    )
    # The format can be named (the auto-detection error tells users to).
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--format", "folders", "--json"])
    assert res.exit_code == 1 and "error:" in res.output
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--format", "utkface", "--json"])
    assert res.exit_code == 0, res.output


def test_predict_flags_a_face_too_small_to_trust(tmp_path, folder_and_model) -> None:
    _, model = folder_and_model
    Image.fromarray(np.full((10, 10, 3), 128, np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "fine.png")
    res = runner.invoke(app, ["predict", str(tmp_path), "--model", str(model), "--no-detect"])
    assert res.exit_code == 0, res.output
    lines = {line.split(":")[0].rsplit("/", 1)[-1]: line for line in res.stdout.splitlines() if ": " in line}
    assert "face only 10 px: unreliable" in lines["tiny.png"] and "unreliable" not in lines["fine.png"]
    looked = runner.invoke(app, ["predict", str(tmp_path / "tiny.png"), "--model", str(model)])
    line = looked.stdout.strip()  # the detector found no face: the note must not call the image one
    assert "no face found" in line and "image only 10 px: unreliable" in line and "face only" not in line


def test_predict_notes_a_flat_colour_of_any_hue_and_an_animation(tmp_path, folder_and_model) -> None:
    """A flat blue passed as a photo (only grey, black and white were caught); a GIF's first
    frame was judged without a word, where the app said so."""
    _, model = folder_and_model
    Image.fromarray(np.full((64, 64, 3), (30, 90, 200), np.uint8)).save(tmp_path / "blue.png")
    face = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.gif")
    res = runner.invoke(app, ["predict", str(tmp_path), "--model", str(model), "--no-detect", "--json"])
    assert res.exit_code == 0, res.output
    notes = {Path(r["file"]).name: r.get("notes", []) for r in map(json.loads, res.stdout.splitlines())}
    assert notes == {
        "anim.gif": ["animated image: first frame used"],
        "blue.png": ["a single flat colour: there is no face to judge"],
        "still.gif": [],
    }


def test_the_package_lists_its_lazy_api() -> None:
    import agelens

    assert {"explain", "load_model", "wrap_keras_model", "Explanation"} <= set(dir(agelens))
    assert all(getattr(agelens, name) is not None for name in agelens.__all__)
    assert agelens.Explanation.load.__qualname__ == "Explanation.load"


@pytest.fixture(scope="module")
def trained_cli(tmp_path_factory) -> tuple[Path, Path, str]:
    """``agelens train`` for one epoch on 40 synthetic faces at 32 px."""
    root = tmp_path_factory.mktemp("train")
    data = write_utk_folder(root / "utk", 40, seed=4)
    out = root / "m.keras"
    args = ["train", str(data), "--out", str(out), "--epochs", "1", "--size", "32", "--batch-size", "16"]
    res = runner.invoke(app, [*args, "--alpha", "0.35", "--patience", "0"])
    assert res.exit_code == 0, res.output
    return data, out, res.output


def test_train_writes_its_split_so_the_test_score_can_be_reproduced(trained_cli) -> None:
    data, out, output = trained_cli
    split = out.with_name("m_split.json")
    names = json.loads(split.read_text())
    assert {"train", "val", "test"} <= set(names) and not set(names["test"]) & set(names["train"])
    assert str(split) in output
    saved = json.loads((out.with_name("m_eval") / "metrics.json").read_text())
    # Keras, as train scored its test photos: the split is checked here, the engines' agreement in
    # test_evaluate_json_... (a TFLite conversion of this trained model cost 10 s of CPU).
    holdout = ["--holdout", str(split), "--engine", "keras"]
    res = runner.invoke(app, ["evaluate", str(data), "--model", str(out), "--json", *holdout])
    again = json.loads(res.stdout)
    assert again["n_images"] == saved["n_images"] == len(names["test"])
    assert again["accuracy"] == pytest.approx(saved["accuracy"])


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [(["--epochs", "0"], 2, "--epochs"), (["--lr", "-1"], 2, "'--lr': must be positive"),
     (["--class-weights", "-1"], 2, "--class-weights"), (["--augment", "5"], 2, "--augment"),
     (["--schedule", "linear"], 2, "--schedule"), (["--size", "8"], 2, "--size")],
)  # fmt: skip
def test_train_refuses_bad_values_before_any_work(tmp_path, trained_cli, extra, code, words) -> None:
    data, _, _ = trained_cli
    res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "x.keras"), *extra])
    assert res.exit_code == code and words in res.output, res.output
    assert not (tmp_path / "x.keras").exists()


def test_resume_and_tensorboard_problems_are_one_line(tmp_path, trained_cli, monkeypatch) -> None:
    data, out, _ = trained_cli
    base = ["train", str(data), "--out", str(tmp_path / "r.keras"), "--size", "32", "--resume", str(out)]
    res = runner.invoke(app, [*base, "--epochs", "1", "--alpha", "0.35"])  # it already has 1 epoch
    assert res.exit_code == 1 and "already trained 1 epoch(s)" in res.output
    res = runner.invoke(app, [*base, "--epochs", "2", "--alpha", "1.0"])  # another width
    assert res.exit_code == 1 and "cannot resume" in res.output and "Traceback" not in res.output
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    res = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "t.keras"), "--tensorboard", "tb"])
    assert res.exit_code == 1 and 'pip install "agelens[tensorboard]"' in res.output


def test_train_and_evaluate_never_overwrite_outputs_without_force(tmp_path, trained_cli, folder_and_model):
    data, out, _ = trained_cli
    before = out.read_bytes()
    res = runner.invoke(app, ["train", str(data), "--out", str(out), "--epochs", "1", "--size", "32"])
    assert res.exit_code == 1 and f"{out} exists; use --force" in res.output, res.output
    assert out.read_bytes() == before  # refused before any training
    data, model = folder_and_model
    args = ["evaluate", str(data), "--model", str(model), "--out", str(tmp_path / "ev"), "--engine", "keras"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "metrics.json exists; use --force" in res.output, res.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_evaluate_holdout_counts_only_the_held_out_photos_as_skipped(tmp_path, folder_and_model) -> None:
    import shutil

    data, model = folder_and_model
    copy = shutil.copytree(data, tmp_path / "utk")
    (copy / "no_age_here.jpg").write_bytes((copy / sorted(p.name for p in data.glob("1*"))[0]).read_bytes())
    test = sorted(p.name for p in data.glob("*.jpg") if not p.name.startswith("40_1_0"))[:3]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": test}))
    args = ["evaluate", str(copy), "--model", str(model), "--json", "--engine", "keras"]
    res = runner.invoke(app, [*args, "--holdout", str(split)])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["n_images"] == 3 and m["n_skipped"] == 0  # the badly named photo is not in the holdout


def test_train_on_csv_labels_sizes_the_head_to_its_own_classes(tmp_path, trained_cli, monkeypatch) -> None:
    from agelens.cli import train_cmd
    from agelens.model.io import read_metadata

    data, _, _ = trained_cli
    ages = {p: int(p.name.split("_")[0]) for p in sorted(data.glob("*.jpg"))}
    rows = [f"{p},{'child' if age < 40 else 'adult'}" for p, age in ages.items()]
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(train_cmd, "_progress_bar", lambda: True)  # as in a terminal
    out = tmp_path / "csv.keras"
    args = ["train", str(csv), "--out", str(out), "--epochs", "1", "--size", "32", "--alpha", "0.35"]
    res = runner.invoke(app, [*args, "--batch-size", "16"])
    assert res.exit_code == 0, res.output  # used to fail: a 3-class head for 2 labels
    meta = read_metadata(out)
    assert meta["class_names"] == ["adult", "child"] and meta["bins"] is None
    assert "loss:" in res.output  # Keras' progress bar, with the running loss


def test_a_plain_model_with_an_open_input_size_is_usable_from_every_command(
    folder_and_model, tmp_path
) -> None:
    """``--input-size`` / ``--class-names`` give what a plain Keras model cannot say; before, such a
    model could only be loaded from Python."""
    import keras

    data, _ = folder_and_model
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(keras.layers.Rescaling(1 / 255)(inp))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "open.keras"
    keras.Model(inp, out).save(path)
    photo = str(next(p for p in sorted(data.iterdir()) if p.name.startswith("2")))

    res = runner.invoke(app, ["predict", photo, "--model", str(path), "--no-detect"])
    assert res.exit_code == 1 and "--input-size" in res.output and len(res.output.strip().splitlines()) == 1
    opts = ["--model", str(path), "--input-size", "40", "--class-names", "kid, adult, senior"]
    res = runner.invoke(app, ["predict", photo, *opts, "--no-detect", "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout.strip().splitlines()[-1])["probabilities"]) == {"kid", "adult", "senior"}
    res = runner.invoke(app, ["layers", *opts])
    assert res.exit_code == 0 and "conv" in res.output
    res = runner.invoke(app, ["explain", photo, *opts, "--out", str(tmp_path / "ex")])
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["predict", photo, *opts[:4], "--class-names", "a,b", "--no-detect"])
    assert bad.exit_code == 1 and "2 class names given for 3 outputs" in bad.output


def test_evaluate_holdout_says_how_many_photos_it_left_out(tmp_path, folder_and_model) -> None:
    """A split from other data used to give "no usable images" (false: none was in its list), and a
    partial overlap evaluated a few photos without a word about the rest."""
    data, model = folder_and_model
    labelled = len(list(data.glob("*.jpg")))  # the broken photo is labelled too: its name has an age
    other = tmp_path / "other_split.json"
    other.write_text(json.dumps({"test": ["somewhere_else.jpg"]}))
    args = ["evaluate", str(data), "--model", str(model), "--engine", "keras"]
    res = runner.invoke(app, [*args, "--holdout", str(other)])
    assert res.exit_code == 1 and "no usable images" not in res.output
    assert f"{data}: none of its {labelled} labelled photos is in the test list of {other}" in res.output
    some = tmp_path / "split.json"
    test = sorted(p.name for p in data.glob("*.jpg") if not p.name.startswith("40_1_0"))[:3]
    some.write_text(json.dumps({"test": test}))
    res = runner.invoke(app, [*args, "--holdout", str(some), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_outside_holdout"] == labelled - 3
    assert f"{labelled - 3} of the {labelled} labelled files in {data} are not in the test list" in res.stderr
    res = runner.invoke(app, [*args, "--holdout", str(some)])
    assert f"3 images evaluated, 0 skipped, {labelled - 3} not in the holdout list" in res.stdout
    assert "n_outside_holdout" not in runner.invoke(app, [*args, "--json"]).stdout  # no holdout, no count


def test_predict_prints_the_age_rounded_once_as_explain_does(folder_and_model, monkeypatch) -> None:
    """56.54 y was rounded to 56.5 and then, half to even, printed as ~56 y; explain printed ~57 y."""
    from agelens.model.age_model import AgeModel

    data, model = folder_and_model

    def fixed(self, images, *args, **kw):
        n = len(images)
        return {"probabilities": np.tile([[0.1, 0.3, 0.6]], (n, 1)), "age": np.full(n, 56.54)}

    monkeypatch.setattr(AgeModel, "predict", fixed)
    photo = str(sorted(data.glob("1*.jpg"))[0])
    base = ["predict", photo, "--model", str(model), "--no-detect", "--engine", "keras"]
    res = runner.invoke(app, base)
    assert res.exit_code == 0 and "~57 y" in res.stdout, res.output
    row = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert row["age"] == 56.5 and row["probabilities"] == {"young": 0.1, "middle-aged": 0.3, "old": 0.6}


def test_train_names_the_classes_of_its_bins_as_data_inspect_does(tmp_path, monkeypatch) -> None:
    """``--bins 20,40,60`` alone used to fail (after TensorFlow's start) for want of four --names."""
    import agelens.model.train as train_module

    data = write_utk_folder(tmp_path / "utk", 20, seed=6, size=32)
    seen: dict = {}

    def stop(*args, class_names, bins, **kw):
        seen.update(class_names=class_names, bins=bins)
        raise ValueError("stopped before training")

    monkeypatch.setattr(train_module, "train", stop)
    args = ["train", str(data), "--out", str(tmp_path / "m.keras"), "--size", "32", "--bins", "20,40,60"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "stopped before training" in res.output, res.output
    assert seen["bins"].names == ("0-20", "20-40", "40-60", "60+")
    res = runner.invoke(app, [*args, "--names", "kid,adult,senior"])
    assert res.exit_code == 2  # a usage error, as in data inspect
    assert "(--bins 20,40,60 makes 4)" in res.output  # the one-line wording: test_fast_failures.py


def test_train_and_evaluate_help_explain_every_option() -> None:
    """Each option says what it does (--dropout, --seed, ... had no help text at all)."""
    import typer.main

    commands = typer.main.get_command(app).commands
    for name in ("train", "evaluate", "predict"):
        bare = [p.name for p in commands[name].params if p.param_type_name == "option" and not p.help]
        assert not bare, (name, bare)


def _light_and_dark(root: Path) -> tuple[Path, Path]:
    """Class folders dark/ and light/ (read in that order) and a model whose output 0 means light."""
    import keras

    rng = np.random.default_rng(0)
    for name, level in (("dark", 30), ("light", 220)):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(level - 20, level + 20, (24, 24, 3)).astype(np.uint8)).save(
                root / name / f"{i}.png"
            )
    inp = keras.Input((24, 24, 3))
    brightness = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    head = keras.layers.Dense(2, activation="softmax")
    km = keras.Model(inp, head(brightness))
    head.set_weights([np.array([[10.0, -10.0]] * 3) / 3, np.array([-5.0, 5.0])])
    km.save(root / "bright.keras")
    return root, root / "bright.keras"


def test_folder_classes_are_matched_to_the_models_by_name(tmp_path) -> None:
    """Folders are read as [dark, light]; the model says [light, dark]. evaluate refused before,
    and score scored every photo against the other class."""
    data, model = _light_and_dark(tmp_path / "ld")
    args = ["evaluate", str(data), "--model", str(model), "--class-names", "light,dark", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert m["accuracy"] == 1.0 and m["class_names"] == ["light", "dark"]
    odd = runner.invoke(app, [*args[:4], "--class-names", "light,grey", "--json"])
    assert odd.exit_code == 1 and "do not match the model's ['light', 'grey']" in odd.output
    score = runner.invoke(app, ["score", str(data), "--model", str(model), "--class-names", "light,grey",
                                "--n", "4", "--out", str(tmp_path / "s")])  # fmt: skip
    assert score.exit_code == 1 and "do not match the model's" in score.output  # not an IndexError later


def test_class_output_and_input_range_options_reach_the_model(tmp_path) -> None:
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inp)
    out = {"years": keras.layers.Dense(1)(x), "group": keras.layers.Dense(4, activation="softmax")(x)}
    keras.Model(inp, out).save(tmp_path / "two.keras")
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "p.png")
    base = [
        "predict",
        str(tmp_path / "p.png"),
        "--model",
        str(tmp_path / "two.keras"),
        "--no-detect",
        "--json",
    ]
    res = runner.invoke(app, [*base, "--class-output", "group", "--input-range", "0-1"])
    assert res.exit_code == 0, res.output
    (row,) = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(row["probabilities"]) == 4
    bad = runner.invoke(app, [*base, "--class-output", "nope"])
    assert bad.exit_code == 1 and "no output 'nope' to read classes from; outputs: years, group" in bad.output
    bad = runner.invoke(app, [*base, "--input-range", "0-100"])
    assert bad.exit_code == 2 and "'0-100': use one of 0-255, 0-1" in bad.output  # a typo: usage error


def test_overruling_the_input_range_an_agelens_model_records_is_warned_about(
    tmp_path, folder_and_model
) -> None:
    """--input-range is for plain Keras models: on an agelens file it changes every answer silently."""
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    data, _ = folder_and_model
    photo = str(sorted(data.glob("1*.jpg"))[0])
    # The fixture's architecture and seed: the same weights, so its TFLite copy is converted already.
    am = wrap_keras_model(build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=0))
    am.metadata["rescales_input"] = True  # as agelens train records it
    model = save_model(am, tmp_path / "records.keras")
    recorded, other = "0-255", "0-1"
    args = ["predict", photo, "--model", str(model), "--no-detect", "--input-range"]
    for engine in ("keras", "tflite", "tflite"):  # the last one reads the cached TFLite copy
        res = runner.invoke(app, [*args, other, "--engine", engine])
        assert res.exit_code == 0, res.output
        assert f"warning: --input-range {other} overrules the model's own record ({recorded})" in res.output
    same = runner.invoke(app, [*args, recorded])
    assert same.exit_code == 0 and "warning" not in same.output


def test_a_library_warning_during_a_command_prints_as_one_agelens_line(
    tmp_path, folder_and_model, monkeypatch
) -> None:
    """Warnings that point at the caller's line walked past agelens/cli into Typer's frame, and the
    CLI printed Score-CAM's note in Python's format ("typer/main.py:1445: UserWarning ...")."""
    import warnings

    from agelens.cli import main

    data, model = folder_and_model
    photo = sorted(data.glob("*.jpg"))[0]
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    main.one_line_warnings()
    args = ["explain", str(photo), "--model", str(model), "--method", "scorecam", "--target", "age"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        res = runner.invoke(app, [*args, "--no-detect", "--out", str(tmp_path / "ex")])
    assert res.exit_code == 0, res.output
    said = [line for line in res.output.splitlines() if "scorecam: a target other than a class" in line]
    assert said and all(line.startswith("warning: scorecam:") for line in said), res.output
    assert "UserWarning" not in res.output and "typer" not in res.output


def test_age_output_option_names_the_head_read_as_years(tmp_path) -> None:
    """Python had ``age_output=``; the commands had no way to say which output holds the age."""
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    x = keras.layers.Flatten()(x)
    out = {"years": keras.layers.Dense(1)(x), "group": keras.layers.Dense(3, activation="softmax")(x)}
    km = keras.Model(inp, out)
    km.save(tmp_path / "two.keras")
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    base = ["predict", str(tmp_path / "p.png"), "--model", str(tmp_path / "two.keras"), "--no-detect"]
    base += ["--json", "--class-output", "group", "--input-range", "0-1"]

    def row(*extra: str) -> dict:
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 0, res.output
        (line,) = [json.loads(s) for s in res.stdout.splitlines() if s.startswith("{")]
        return line

    years = float(km.predict(pixels[None] / 255.0, verbose=0)["years"][0, 0])
    assert row("--age-output", "years")["age"] == pytest.approx(years, abs=0.05)
    assert row().get("age") is None  # the same file without the option: a cached copy must not answer
    for bad, said in [("nope", "no output 'nope'"), ("group", "holds the classes")]:
        res = runner.invoke(app, [*base, "--age-output", bad])
        assert res.exit_code == 1 and said in res.output and "Traceback" not in res.output
    explain = ["explain", str(tmp_path / "p.png"), "--model", str(tmp_path / "two.keras"), "--no-detect",
               "--class-output", "group", "--input-range", "0-1", "--method", "saliency"]  # fmt: skip
    explain += ["--target", "age"]
    res = runner.invoke(app, explain)
    said = " ".join(res.output.replace("│", " ").split())  # the usage-error box wraps lines
    assert res.exit_code == 2 and "name it: age_output= (the CLI's --age-output)" in said
    res = runner.invoke(app, [*explain, "--age-output", "years", "--out", str(tmp_path / "ex")])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    assert manifest["model_read_as"]["age_output"] == "years"
    assert manifest["runs"][0]["target"] == "expected age"
