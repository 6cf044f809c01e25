"""An explanation of an age regressor says its groups are the age cut, in its panels and its folder."""

from __future__ import annotations

import numpy as np

import agelens
from agelens.explain.explanation import Explanation
from agelens.model.wrap import wrap_keras_model


def _regressor():
    import keras

    inp = keras.Input((16, 16, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="c")(inp))
    return wrap_keras_model(keras.Model(inp, keras.layers.Dense(1)(h)))


def test_an_age_cuts_caption_gives_the_age_not_a_confidence(tmp_path) -> None:
    """Panels titled "middle-aged 100%" read as certainty; the percentages are a softmax of margins."""
    photos = [np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in range(2)]
    e = agelens.explain(_regressor(), photos, method="saliency")
    assert e.model_read_as["groups_from_age"] is True and e.model_read_as["age_bins"] == [30.0, 60.0]
    text = e.caption(0)
    assert "%" not in text and text.endswith("(the groups: the age cut at 30, 60)")
    assert text.startswith(e.class_names[int(e.predicted[0])]) and f"age ≈ {round(float(e.ages[0]))}" in text
    e.save(tmp_path / "ex")
    again = Explanation.load(tmp_path / "ex")
    assert again.model_read_as == e.model_read_as and again.caption(0) == text  # kept in its manifest
    plain = Explanation.load(tmp_path / "ex")
    plain.model_read_as = None  # a folder saved before: the caption it always had
    assert "%" in plain.caption(0)
