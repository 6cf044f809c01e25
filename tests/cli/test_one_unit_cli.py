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
    dense = keras.layers.Dense(1, name="years")
    km = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(inp)))
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
