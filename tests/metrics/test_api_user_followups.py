"""Follow-ups from a user test of the metrics API (scripts s09, s10, s13).

4. ``predict_fn=keras_model`` refused ``targets="old"`` (and ``"old-young"``) that ``explain``
   took on the same model, and for a plain callable the error pointed at ``model.class_names``.
8. ``explanation_inputs(exp, other_model)`` silently cut inputs for a model the maps were not
   made with.
Minor: ``print(explanation)`` dumped every map and image array.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, quadrant_maps, tiny_convnet

import agelens
from agelens.metrics import AverageDrop, Deletion, explanation_inputs, predict_fn_of

N = 3


@pytest.fixture(scope="module")
def three_class():
    """A 3-class tiny convnet (read as young / middle-aged / old, as explain reads it), images, maps."""
    return tiny_convnet(classes=3, seed=1), checker_images(N), quadrant_maps(N)


# ----------------------------------------------------------------------------- 4. predict_fn=keras.Model


def test_a_bare_keras_model_takes_class_names_and_contrasts_as_explain_does(three_class) -> None:
    km, x, maps = three_class
    wrapped = agelens.wrap_keras_model(km)
    old = wrapped.class_names.index("old")
    contrast = f"old-{wrapped.class_names[0]}"
    for metric in (Deletion(), AverageDrop()):
        want = metric(x, maps, old, predict_fn=wrapped)
        np.testing.assert_allclose(metric(x, maps, "old", predict_fn=km), want, atol=1e-6)
        np.testing.assert_allclose(metric(x, maps, ["old"] * N, predict_fn=km), want, atol=1e-6)
        np.testing.assert_allclose(
            metric(x, maps, contrast, predict_fn=km), metric(x, maps, contrast, predict_fn=wrapped), atol=1e-6
        )
    assert Deletion().score(x, maps, "old", predict_fn=km).n == N


def test_model_given_beside_a_plain_callable_names_the_classes(three_class) -> None:
    """``model=keras_model`` beside a callable ``predict_fn``: the model names the classes, read as
    explain reads it."""
    km, x, maps = three_class
    predict = predict_fn_of(km)
    want = Deletion()(x, maps, 2, predict_fn=predict)
    np.testing.assert_allclose(Deletion()(x, maps, "old", predict_fn=predict, model=km), want, atol=1e-6)


@pytest.mark.parametrize("target", ["old", "old-young"])
def test_a_plain_callable_says_to_wrap_the_model_for_names(three_class, target: str) -> None:
    km, x, maps = three_class
    predict = predict_fn_of(km)  # a plain callable: it names no classes
    with pytest.raises(ValueError) as err:
        Deletion()(x, maps, target, predict_fn=predict)
    said = str(err.value)
    assert f"got names such as {target!r}" in said
    assert "wrap the model with agelens.wrap_keras_model(model) to use class names or contrasts" in said
    assert "model.class_names" not in said  # a callable has none to look in


# ----------------------------------------------------------------------------- 8. explanation_inputs


@pytest.fixture(scope="module")
def explained():
    """An Explanation as ``explain`` returns it for a 32 px model read as taking 0..1 pixels, and that
    model (built here rather than by ``explain``: only what it records matters to these tests)."""
    from agelens.explain.explanation import Explanation

    model = agelens.wrap_keras_model(tiny_convnet(classes=3, seed=2), input_range="0-1")
    photos = list(checker_images(2).astype(np.uint8))
    probs = predict_fn_of(model)(np.stack(photos).astype(np.float32))
    exp = Explanation(
        maps=quadrant_maps(2),
        probabilities=probs,
        class_names=list(model.class_names),
        layer="last_conv",
        method="gradcam",
        target="old",
        images=photos,
        model_read_as=model.read_as,
    )
    return exp, model


def test_explanation_inputs_warn_naming_what_differs_on_another_model(explained) -> None:
    exp, _ = explained
    other = tiny_convnet(size=48, classes=3, seed=3)  # 48 px, read as 0..255, same 3 classes
    with pytest.warns(UserWarning, match="not the one the explanation was made with") as caught:
        x, maps = explanation_inputs(exp, other)
    assert x.shape == (2, 48, 48, 3) and maps.shape == (2, 48, 48)  # still given: a warning, not an error
    said = [str(w.message) for w in caught if "explanation was made with" in str(w.message)]
    assert len(said) == 1 and "\n" not in said[0]
    assert "input size 48 px (explained with 32)" in said[0]
    assert "input range 0-255 (explained with 0-1)" in said[0]
    assert "classes" not in said[0].split("explained with 0-1")[0]  # same names: not listed
    assert caught[0].filename == __file__  # points at the caller's line


def test_explanation_inputs_warn_on_other_class_names(explained) -> None:
    exp, _ = explained
    renamed = agelens.wrap_keras_model(
        tiny_convnet(classes=3, seed=2), input_range="0-1", class_names=["a", "b", "c"]
    )
    with pytest.warns(UserWarning, match=r"classes a, b, c \(explained with young, middle-aged, old\)"):
        explanation_inputs(exp, renamed)


def test_explanation_inputs_refuse_a_model_with_another_number_of_classes(explained) -> None:
    exp, _ = explained
    with pytest.raises(ValueError, match=r"2 classes .* a model of 3 .*size=model.input_size"):
        explanation_inputs(exp, tiny_convnet(classes=2))
    x, _ = explanation_inputs(exp, SIZE)  # a pixel count is a deliberate choice: not checked
    assert x.shape == (2, SIZE, SIZE, 3)


def test_explanation_inputs_are_quiet_for_the_model_explained(explained) -> None:
    exp, model = explained
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, maps = explanation_inputs(exp, model)
    assert x.shape == (2, SIZE, SIZE, 3) and maps.shape == (2, SIZE, SIZE)


# ----------------------------------------------------------------------------- repr


def test_an_explanation_prints_as_one_short_line(explained, tmp_path) -> None:
    exp, _ = explained
    many = dataclasses.replace(exp, images=exp.images * 4, maps=np.concatenate([exp.maps] * 4))
    many.probabilities = np.concatenate([exp.probabilities] * 4)
    for e in (exp, many):
        text = repr(e)
        assert str(e) == text and "\n" not in text and len(text) < 400 and "array(" not in text
        for part in ("method='gradcam'", f"layer={e.layer!r}", "target='old'", f"images={len(e)}"):
            assert part in text
        assert f"maps={len(e)}x({SIZE}, {SIZE})" in text
        assert "class_names=['young', 'middle-aged', 'old']" in text and "ages=no" in text
        shown = text.split("predicted=")[1]
        assert shown.startswith("[" + repr(e.class_names[int(e.predicted[0])]))
    assert repr(many).split("predicted=")[1].split("]")[0].endswith("...")  # first few only

    ragged = dataclasses.replace(exp, maps=[exp.maps[0], exp.maps[1][:, :20]])
    assert f"maps=[({SIZE}, {SIZE}), ({SIZE}, 20)]" in repr(ragged)


def test_the_short_repr_leaves_equality_and_save_load_alone(explained, tmp_path) -> None:
    exp, _ = explained
    twin = dataclasses.replace(exp)
    assert twin == exp
    twin.maps = exp.maps.copy()
    twin.maps[0, 0, 0] += 0.5
    assert twin != exp and repr(twin) == repr(exp)  # equality still reads the arrays, not the repr
    exp.save(tmp_path / "out")
    back = agelens.Explanation.load(tmp_path / "out")
    assert back == agelens.Explanation.load(tmp_path / "out")
    np.testing.assert_allclose(np.asarray(back.maps), np.asarray(exp.maps), atol=1e-6)
    assert repr(back).startswith("Explanation(method='gradcam'")
