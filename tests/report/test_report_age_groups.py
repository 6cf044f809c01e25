"""The report on a one-output age regressor's explanations: its groups are its age cut by the bins.

``agelens explain`` records how it read the model as ``model_read_as``; for such a regressor
``groups_from_age`` and ``age_bins``. The page said "bin edges not recorded" and called the age a
"separate age estimate" that "can fall in another group": both false for it.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_factory import CLASSES, png, write_json
from typer.testing import CliRunner

from agelens.report.html import render_report
from agelens.report.tables import prediction_text

OLD_LEGEND_AGE = (
    " “age output” is the model's separate age estimate (its regression output), not the class:"
    " it can fall in another group than the predicted one."
)
OLD_AGE_TITLE = (
    "The model's separate age output (a regression head), not the class: it can fall in another age group."
)
NEW_AGE_TITLE = "The model's age output: the group is this age cut at the bin edges, so the two always agree."
PROBS_CAVEAT = "A softmax of how many years the age lies inside each group, not a classifier's confidence."

REGRESSOR = {
    "input_size": 16,
    "class_names": CLASSES,
    "class_output": "age_group",
    "age_output": "age",
    "input_range": "0-1",
    "one_unit": "age",
    "groups_from_age": True,
    "age_bins": [30.0, 60.0],
}
"""``AgeModel.read_as`` of a one-output regressor read with the default bins (as explain writes it)."""
SHIPPED = {
    "input_size": 224,
    "class_names": CLASSES,
    "class_output": "age_group",
    "age_output": "age",
    "input_range": "0-255",
}
"""``read_as`` of a 3-class model with a separate age head: no one-unit keys."""

# (UTKFace-style name, age, probabilities) as a regressor cut at 30, 60 gives them
PHOTOS = [
    ("22_0_0_20170109150557335.jpg", 22.4, {"young": 1.0, "middle-aged": 0.0, "old": 0.0}),
    ("45_1_0_20170109150557336.jpg", 45.0, {"young": 0.0, "middle-aged": 1.0, "old": 0.0}),
]


def _explain_folder(root: Path, read_as: dict | None, model: str | None = "my_age.keras") -> Path:
    """What ``agelens explain PHOTOS --model MODEL --method saliency --out root`` writes (maps as PNGs)."""
    images = []
    for i, (name, age, probs) in enumerate(PHOTOS):
        overlay = f"{i:03d}_{Path(name).stem}_saliency_overlay.png"
        png(root / overlay, i)
        top = max(probs, key=probs.__getitem__)
        images.append(
            {
                "source": f"photos/{name}",
                "size": [24, 24],
                "files": [overlay],
                "prediction": {"class": top, "probabilities": probs, "age": age},
            }
        )
    manifest = {"agelens_version": "0.1.0", "model": model}
    if read_as is not None:
        manifest["model_read_as"] = read_as
    manifest |= {
        "runs": [{"method": "saliency", "layer": "input", "target": "predicted class", "settings": {}}],
        "images": images,
        "files": [im["files"][0] for im in images] + ["manifest.json"],
    }
    write_json(root / "manifest.json", manifest)
    return root


def _legend(page: str) -> str:
    found = re.search(r'<p class="legend" id="age-groups">(.*?)</p>', page, re.S)
    assert found, "no age-group legend on the page"
    return html_lib.unescape(found.group(1))


def _age_titles(page: str) -> set[str]:
    return {html_lib.unescape(t) for t in re.findall(r'<span class="age" title="([^"]*)"', page)}


def _assert_regressor_page(page: str, ages: list[int]) -> None:
    text = html_lib.unescape(page)
    assert "bin edges not recorded" not in text
    assert "separate age" not in text and "can fall in another" not in text
    legend = _legend(page)
    assert legend.startswith("Age groups (years): young < 30 ≤ middle-aged < 60 ≤ old.")
    assert "The groups are the model's age output cut at 30, 60 y" in legend
    assert "always agree" in legend
    assert (
        "the group percentages are a softmax of how many years the age lies inside each group,"
        " not a classifier's confidence" in legend
    )
    assert _age_titles(page) == {NEW_AGE_TITLE}
    assert text.count(f'<div class="probs" title="{PROBS_CAVEAT}">') == len(ages)
    # the run table: the group and its age, not "middle-aged 100%" read as certainty
    assert "middle-aged 100%" not in text
    for age in ages:
        assert f", age output ≈ {age} y</td>" in text


def test_a_regressors_page_gives_its_bins_and_says_the_group_is_its_age_cut(tmp_path: Path) -> None:
    page = render_report(_explain_folder(tmp_path / "sg_age", REGRESSOR))
    _assert_regressor_page(page, [22, 45])
    assert "middle-aged, age output ≈ 45 y</td>" in html_lib.unescape(page)
    # the recorded bins also turn a UTKFace name's age into its true group
    assert 'true <b>middle-aged</b> <span class="muted">(age 45)</span>' in page


@pytest.mark.parametrize(
    ("read_as", "model"),
    [(SHIPPED, None), (SHIPPED, "missing.keras"), (None, None)],
    ids=["shipped-style", "model-file-gone", "older-manifest"],
)
def test_an_ordinary_three_class_page_is_unchanged(
    tmp_path: Path, read_as: dict | None, model: str | None
) -> None:
    page = render_report(_explain_folder(tmp_path / "run", read_as, model))
    assert _legend(page) == "Classes: young, middle-aged, old (bin edges not recorded)." + OLD_LEGEND_AGE
    assert _age_titles(page) == {OLD_AGE_TITLE}
    assert '<div class="probs">' in page and PROBS_CAVEAT not in html_lib.unescape(page)
    text = html_lib.unescape(page)
    assert "middle-aged 100% (young 0%, old 0%), age output ≈ 45 y</td>" in text
    assert "always agree" not in text and "softmax of how many years" not in text


def test_a_shipped_models_bins_still_come_from_its_file(tmp_path: Path) -> None:
    from agelens.model.io import SHIPPED_MODEL

    page = render_report(_explain_folder(tmp_path / "run", SHIPPED, str(SHIPPED_MODEL)))
    assert _legend(page) == "Age groups (years): young < 30 ≤ middle-aged < 60 ≤ old." + OLD_LEGEND_AGE
    assert _age_titles(page) == {OLD_AGE_TITLE}


def test_a_sigmoid_one_unit_model_keeps_its_plain_classes(tmp_path: Path) -> None:
    """``one_unit: probability``: two classes, no age, no bins; nothing about age groups changes."""
    read_as = {
        "input_size": 16,
        "class_names": ["young", "old"],
        "class_output": 0,
        "age_output": None,
        "input_range": "0-1",
        "one_unit": "probability",
        "groups_from_age": False,
    }
    folder = _explain_folder(tmp_path / "run", read_as)
    manifest = json.loads((folder / "manifest.json").read_text())
    for im in manifest["images"]:
        im["prediction"] = {"class": "old", "probabilities": {"young": 0.3, "old": 0.7}}
    write_json(folder / "manifest.json", manifest)
    page = render_report(folder)
    assert _legend(page) == "Classes: young, old (bin edges not recorded)."
    assert "old 70% (young 30%)</td>" in page and PROBS_CAVEAT not in html_lib.unescape(page)


def test_prediction_text_of_a_regressor_gives_the_group_and_its_age() -> None:
    pred = {
        "class": "middle-aged",
        "probabilities": {"young": 0.0, "middle-aged": 1.0, "old": 0.0},
        "age": 34.2,
    }
    assert prediction_text(pred, from_age=True) == "middle-aged, age output ≈ 34 y"
    assert prediction_text(pred) == "middle-aged 100% (young 0%, old 0%), age output ≈ 34 y"


def test_agelens_explain_on_a_regressor_then_report(tmp_path: Path) -> None:
    """The user's steps: ``agelens explain PHOTO --model my_age.keras --out sg_age``, then
    ``agelens report sg_age``."""
    import keras

    from agelens.cli.main import app

    inp = keras.Input((16, 16, 3))
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(keras.layers.GlobalAveragePooling2D()(inp)))
    dense.set_weights([np.full((3, 1), 100 / 3, np.float32), np.zeros(1, np.float32)])  # grey level: age
    model.save(tmp_path / "my_age.keras")
    photo = tmp_path / "45_0_0_20170109150557335.jpg.chip.png"
    Image.fromarray(np.full((16, 16, 3), round(45 * 255 / 100), np.uint8)).save(photo)
    out = tmp_path / "sg_age"
    args = ["explain", str(photo), "--model", str(tmp_path / "my_age.keras"), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--no-detect", "--method", "saliency"])
    assert res.exit_code == 0, res.output
    read_as = json.loads((out / "manifest.json").read_text())["model_read_as"]
    assert read_as["groups_from_age"] is True and read_as["age_bins"] == [30.0, 60.0]
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    _assert_regressor_page(page, [45])
    assert 'true <b>middle-aged</b> <span class="muted">(age 45)</span>' in page
