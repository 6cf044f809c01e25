"""An age cut's age is printed on its group's side of an edge in explain too, and a panel names
the class its "predicted class" target is.

A model whose groups are its age cut by bins (``groups_from_age``) answering 29.96 y is "young"
(below 30); whole years said "young ~30 y". ``predict`` and the app print "29.9"
(:func:`agelens.model.predict.shown_age`); explain's lines, its panels' captions and the report
said 30 still.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.data.bins import AgeBins
from agelens.explain.explanation import Explanation

runner = CliRunner()
SIZE = 32
NAMES = ["young", "middle-aged", "old"]
READ_AS = {"groups_from_age": True, "age_bins": [30.0, 60.0], "class_names": NAMES}


def _explanation(age: float, read_as: dict | None = READ_AS, target: str = "predicted class") -> Explanation:
    """One image's explanation of an age cut answering ``age`` years ("young": its top class)."""
    return Explanation(
        maps=np.zeros((1, 8, 8), np.float32),
        probabilities=np.array([[0.5, 0.4, 0.1]]),
        class_names=list(NAMES),
        layer="conv",
        method="saliency",
        target=target,
        images=[np.zeros((8, 8, 3), np.uint8)],
        ages=np.array([age]),
        model_read_as=read_as,
    )


@pytest.fixture(scope="module")
def just_young(tmp_path_factory) -> tuple[Path, Path]:
    """A plain Keras regressor answering 29.96 y for every photo (a bias, no weight), and a photo."""
    import keras

    root = tmp_path_factory.mktemp("young")
    inp = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(inp))
    dense = keras.layers.Dense(1, name="years")
    km = keras.Model(inp, dense(h))
    dense.set_weights([np.zeros((2, 1), np.float32), np.array([29.96], np.float32)])
    km.save(root / "regressor.keras")
    pixels = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), np.uint8)
    Image.fromarray(pixels).save(root / "face.png")
    return root / "regressor.keras", root / "face.png"


# ------------------------------------------------------------------ 1. explain's prediction lines


def test_explain_prints_the_age_on_its_groups_side(just_young, tmp_path) -> None:
    """explain printed "young  ~30 y" for 29.96 y, where predict prints "young  ~29.9 y"."""
    model, photo = just_young
    out = tmp_path / "ex"
    args = ["explain", str(photo), "--model", str(model), "--no-detect", "--method", "saliency"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "young  ~29.9 y" in res.stdout and "~30 y" not in res.stdout, res.stdout


# ----------------------------------------------------- 2. its caption, and 3. the report's words


def test_an_age_cuts_caption_and_report_text_keep_the_age_in_its_group() -> None:
    from agelens.report.tables import prediction_text

    e = _explanation(29.96)
    assert e.caption(0) == "young · age ≈ 29.9 (the groups: the age cut at 30, 60)"
    assert _explanation(42.3).caption(0).startswith("young · age ≈ 42 (")  # whole years where they agree
    odd = dict(READ_AS, age_bins=[30.0])  # one edge for three names: no bins, whole years as before
    assert "age ≈ 30 (" in _explanation(29.96, odd).caption(0)
    # a recorded age rounded to 0.01 y across the edge (29.996 -> 30.0) keeps its digits instead
    assert e.prediction(0)["age"] == pytest.approx(29.96)
    assert _explanation(29.996).prediction(0)["age"] == pytest.approx(29.996)
    assert _explanation(41.2345).prediction(0)["age"] == 41.23

    pred = {"class": "young", "probabilities": {"young": 0.5, "middle-aged": 0.4, "old": 0.1}, "age": 29.96}
    assert prediction_text(pred, from_age=True, bins=AgeBins()) == "young, age output ≈ 29.9 y"
    assert prediction_text(pred, from_age=True, bins=([30, 60], NAMES)) == "young, age output ≈ 29.9 y"
    assert prediction_text(pred, from_age=True) == "young, age output ≈ 30 y"  # no bins: whole years
    assert prediction_text(pred, bins=AgeBins()).endswith("age output ≈ 30 y")  # an age head: as always


def test_the_report_card_prints_the_age_its_gallery_shows() -> None:
    """The card printed ``it.age|round|int``: 30 beside "young". It prints the item's
    ``shown_age`` where the gallery gives one, whole years otherwise."""
    from jinja2 import Environment, PackageLoader

    from agelens.report.gallery import Gallery, GalleryItem
    from agelens.report.html import TEMPLATE

    def card(**extra) -> str:
        item = GalleryItem("face.png", None, "young", [("young", 0.5), ("old", 0.5)], 29.96)
        for k, v in extra.items():
            setattr(item, k, v)
        g = Gallery(["saliency"], ["conv"], ["(predicted class)"], [], [item], "0-0-0", 1, from_age=True)
        env = Environment(loader=PackageLoader("agelens.report", "templates"), autoescape=True)
        return str(env.get_template(TEMPLATE).module.gallery(g))

    assert "age output ≈ 29.9 y" in card(shown_age="29.9") and "≈ 30 y" not in card(shown_age="29.9")
    assert "age output ≈ 30 y" in card()  # no shown age given: whole years, as before


# ------------------------------------------------------------- 4. the class a panel explains


def test_a_panels_title_names_the_predicted_class_it_explains(tmp_path, monkeypatch) -> None:
    """A panel said "target: predicted class" without saying which: one photo's panel now does."""
    from agelens.explain import explanation as module

    titles: list[str] = []

    def panel(img, m, title, *args, **kwargs) -> SimpleNamespace:
        titles.append(title)
        return SimpleNamespace()

    monkeypatch.setattr(module, "panel_figure", panel)
    monkeypatch.setattr(module, "save_figure", lambda fig, path: None)
    module.write_image_files(_explanation(29.96), 0, tmp_path)
    module.write_image_files(_explanation(29.96, target="old"), 0, tmp_path)
    assert titles[0].startswith("saliency · conv · target: predicted class (young)\n"), titles[0]
    assert titles[0].endswith("young · age ≈ 29.9 (the groups: the age cut at 30, 60)")
    assert titles[1].startswith("saliency · conv · target: old\n")  # a named class: said as it was
    assert _explanation(29.96).target_of(0) == "predicted class (young)"


def test_the_report_of_an_explain_run_prints_the_age_on_its_groups_side(just_young, tmp_path) -> None:
    """The page built from the folder: the card and the run table both say 29.9, never 30."""
    import re

    model, photo = just_young
    out = tmp_path / "ex"
    args = ["explain", str(photo), "--model", str(model), "--no-detect", "--method", "saliency"]
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "≈ 29.9 y" in text and "29.9" in text.split("Images", 1)[1], text[:3000]
    assert not re.search(r"young[^0-9]{0,40}\b30 y", text)
