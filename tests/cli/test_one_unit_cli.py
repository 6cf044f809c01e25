"""A user's one-unit model (an age regressor, a sigmoid) through the commands: --one-unit, --bins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app

runner = CliRunner()
AGES = (10, 25, 45, 70)  # none near an edge of 30,60 or 20,40,60


@pytest.fixture(scope="module")
def brightness_regressor(tmp_path_factory) -> tuple[Path, Path]:
    """A regressor reading a grey photo's level as its age (0..1 pixels: level 255 is 100 years),
    and a UTKFace-style folder whose photos' levels are their ages."""
    import keras

    root = tmp_path_factory.mktemp("regressor")
    inp = keras.Input((16, 16, 3))
    conv, dense = keras.layers.Conv2D(3, 1, name="same"), keras.layers.Dense(1, name="years")
    km = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(conv(inp))))
    conv.set_weights([np.eye(3, dtype=np.float32)[None, None], np.zeros(3, np.float32)])  # a layer to explain
    dense.set_weights([np.full((3, 1), 100 / 3, np.float32), np.zeros(1, np.float32)])
    km.save(root / "regressor.keras")
    data = root / "data"
    data.mkdir()
    for i, age in enumerate(AGES * 2):
        level = round(age * 255 / 100)
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(
            data / f"{age}_0_0_2017010{i}.jpg.chip.png"
        )
    return root / "regressor.keras", data


def _rows(res) -> list[dict]:
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_an_age_regressor_predicts_its_age_and_the_group_it_falls_in(brightness_regressor) -> None:
    """A one-unit model was refused ("agelens needs one probability per class")."""
    model, data = brightness_regressor
    base = ["predict", str(data), "--model", str(model), "--no-detect", "--json"]
    for _ in range(2):  # the second run may answer from the TFLite copy: the same reading, the same note
        res = runner.invoke(app, base)
        rows = sorted(_rows(res), key=lambda r: r["age"])
        assert "note: one output read as the age in years" in res.stderr and "cut at 30, 60 y" in res.stderr
        assert [round(r["age"]) for r in rows] == sorted(AGES * 2)
        assert [r["predicted"] for r in rows][::2] == ["young", "young", "middle-aged", "old"]
    rows = _rows(runner.invoke(app, [*base, "--bins", "20,40,60"]))
    assert sorted(r["predicted"] for r in rows)[::2] == ["0-20", "20-40", "40-60", "60+"]
    assert len(rows[0]["probabilities"]) == 4


def test_evaluate_groups_the_labels_by_the_bins_the_model_is_read_with(brightness_regressor) -> None:
    model, data = brightness_regressor
    for extra, names in [([], ["young", "middle-aged", "old"]), (["--bins", "20,40,60"], None)]:
        res = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json", *extra])
        (m,) = _rows(res)
        assert m["accuracy"] == 1.0 and m["n_images"] == len(AGES) * 2
        assert m["class_names"] == (names or ["0-20", "20-40", "40-60", "60+"])


def test_one_unit_overrules_the_guess_and_bad_values_are_usage_errors(brightness_regressor) -> None:
    model, data = brightness_regressor
    base = ["predict", str(data), "--model", str(model), "--no-detect", "--json"]
    res = runner.invoke(app, [*base, "--one-unit", "probability"])
    rows = _rows(res)
    assert len(rows[0]["probabilities"]) == 2 and "age" not in rows[0] and "note:" not in res.stderr
    for bad, said in [(["--one-unit", "years"], "'years': use one of age, probability"),
                      (["--bins", "60,30"], "the ages must increase")]:  # fmt: skip
        res = runner.invoke(app, [*base, *bad])
        assert res.exit_code == 2 and said in " ".join(res.output.replace("│", " ").split())


def test_explain_reads_an_age_regressor_old_with_the_age_young_against_it(
    brightness_regressor, tmp_path
) -> None:
    model, data = brightness_regressor
    photo = str(sorted(data.iterdir())[0])
    maps = {}
    for target in ("age", "old", "young"):
        args = ["explain", photo, "--model", str(model), "--no-detect", "--method", "gradient-x-input"]
        res = runner.invoke(app, [*args, "--signed", "--target", target, "--out", str(tmp_path / target)])
        assert res.exit_code == 0, res.output
        (npy,) = (tmp_path / target).glob("*_map.npy")
        maps[target] = np.load(npy)
    assert maps["age"].max() > 0.5
    np.testing.assert_allclose(maps["old"], maps["age"], atol=1e-5)
    np.testing.assert_allclose(maps["young"], -maps["age"], atol=1e-5)


def test_evaluate_reports_the_age_error_and_names_groups_by_position(brightness_regressor) -> None:
    """evaluate gave no age error for a model that learnt ages; --class-names on a regressor made
    its groups miss the data's ("classes [young, ...] do not match the model's [kid, ...]")."""
    model, data = brightness_regressor
    (m,) = _rows(runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--json"]))
    assert m["n_aged"] == len(AGES) * 2 and 0 <= m["age_mae"] < 0.3  # levels round to 0.4 y at most
    res = runner.invoke(
        app, ["evaluate", str(data), "--model", str(model), "--class-names", "kid,adult,senior"]
    )
    assert res.exit_code == 0, res.output
    assert "| kid | 1.000 | 1.000 | 1.000 | 4 |" in res.stdout and "Age MAE: 0." in res.stdout
    pair = runner.invoke(app, ["evaluate", str(data), "--model", str(model), "--one-unit", "probability"])
    said = " ".join(pair.output.split())
    assert (
        pair.exit_code == 1
        and "if the model's 2 classes are age groups, give their edges (e.g. --bins 60)" in said
    )


def test_ages_that_are_no_years_are_warned_about(brightness_regressor) -> None:
    """A model fed the wrong pixel range (or trained on age / 100) printed -628 y without a word."""
    from agelens.model.evaluate import implausible_ages

    model, data = brightness_regressor
    res = runner.invoke(
        app, ["predict", str(data), "--model", str(model), "--no-detect", "--input-range", "0-255"]
    )
    assert res.exit_code == 0 and "8 of 8 ages are outside 0-120 years" in res.stderr
    assert "--input-range" in res.stderr and len(res.stderr.splitlines()) <= 3
    fine = runner.invoke(app, ["predict", str(data), "--model", str(model), "--no-detect", "--json"])
    assert "warning" not in fine.stderr and all(r["groups_from_age"] for r in _rows(fine))
    assert implausible_ages(np.full(6, 0.31) + np.arange(6) * 0.01).startswith(
        "all 6 ages lie within one year"
    )
    assert implausible_ages(np.array([3.0, 97.0])) == "" and implausible_ages(np.array([-0.2])) == ""


def test_score_says_class_targets_of_an_age_cut_hardly_move(brightness_regressor, tmp_path) -> None:
    model, data = brightness_regressor
    base = ["score", str(data), "--model", str(model), "--n", "4", "--methods", "saliency"]
    base += ["--metrics", "deletion"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "a class target reads a softmax of how many years" in " ".join(res.stderr.split())
    res = runner.invoke(app, [*base, "--target", "age", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "a class target reads" not in " ".join(res.stderr.split())


def test_an_age_just_below_zero_is_printed_as_zero() -> None:
    from agelens.cli.common import prediction_line
    from agelens.model.predict import rounded_row

    assert "~0 y" in prediction_line("young", {"young": 1.0}, -0.3)
    assert str(rounded_row({"probabilities": {"young": 1.0}, "age": -0.04})["age"]) == "0.0"
