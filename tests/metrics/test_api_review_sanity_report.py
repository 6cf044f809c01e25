"""API review fixes: sanity checks randomise the head the target reads, targets by name, NaN for
constant maps, the options a caller's explainer ran with, and a bare keras.Model in score_methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metric_toys import gradcam, sobel_model_explainer, two_headed_convnet

from agelens.metrics import ModelRandomisation, randomisation_test, score_methods
from agelens.metrics.report import GIVEN_BY_CALLER
from agelens.metrics.sanity import RandomisationResult, randomisable_layers, spearman_rows, stage_spearman


@pytest.fixture(scope="module")
def two_heads():
    """The toy with both heads, wrapped (class and age outputs inferred), and 3 noise images."""
    from agelens.model.wrap import wrap_keras_model

    model = wrap_keras_model(two_headed_convnet(), class_names=["young", "middle-aged", "old"])
    assert (model.group_output, model.age_output) == ("age_group", "age")
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    return model, x


def _gradient_map(model, x: np.ndarray, read: str) -> np.ndarray:
    """|d output / d input| of the age, or of the class logit of image 0's class: a map that only
    the layers feeding ``read`` can change."""
    import tensorflow as tf

    km = model.keras_model
    xt = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = km(xt, training=False)
        score = tf.reduce_sum(out[model.age_output] if read == "age" else out[model.group_output][:, 0])
    g = np.abs(tape.gradient(score, xt).numpy()).mean(-1)
    return (g / g.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def age_saliency(model, x, targets):
    return _gradient_map(model, x, "age")


def class_saliency(model, x, targets):
    return _gradient_map(model, x, "class")


# 1. The cascade follows the output the explainer's target reads.


def test_each_head_has_its_own_layers(two_heads) -> None:
    model, _ = two_heads
    age, cls = randomisable_layers(model, "age"), randomisable_layers(model, "class")
    assert age == ["age_logits", "last_conv", "c1"]
    assert cls == ["age_group_logits", "last_conv", "c1"]
    assert set(randomisable_layers(model, ("class", "age"))) == set(age) | set(cls)
    with pytest.raises(ValueError, match="'class', 'age'"):
        randomisable_layers(model, "logits")


def test_age_maps_are_tested_on_the_age_head(two_heads) -> None:
    """Before: each stage began with age_group_logits (Spearman 1.0 for age maps); age_logits stayed."""
    model, x = two_heads
    res = randomisation_test(model, age_saliency, x, stages=2)
    assert res.output == ("age",) and res.summary()["output"] == ["age"]
    assert all(ls[0] == "age_logits" and "age_group_logits" not in ls for ls in res.layers)
    first = randomisation_test(model, age_saliency, x, layers=randomisable_layers(model, "age")[:1])
    assert first.final_spearman < 0.99  # the top stage is a test: it changes the map
    named = randomisation_test(model, age_saliency, x, stages=2, output="age")
    np.testing.assert_allclose(named.spearman, res.spearman)  # probing only chose the head


def test_class_maps_stay_on_the_class_head(two_heads) -> None:
    model, x = two_heads
    res = randomisation_test(model, class_saliency, x, stages=2)
    assert res.output == ("class",) and res.layers[0][0] == "age_group_logits"
    assert all("age_logits" not in ls for ls in res.layers)


def test_a_model_blind_map_keeps_the_class_head(two_heads) -> None:
    model, x = two_heads
    res = randomisation_test(model, sobel_model_explainer, x, stages=2)
    assert res.output == ("class",) and res.flagged


def test_the_metric_explains_classes_unless_told(two_heads) -> None:
    model, x = two_heads
    t = np.zeros(3, np.int64)
    maps = age_saliency(model, x, t)
    assert ModelRandomisation(stages=2).output == ("class",)
    res = ModelRandomisation(stages=2, output="age").evaluate(
        x, maps, t, model=model, model_explainer=age_saliency
    )
    assert res.extra["stage_spearman"].shape == (2, 3)
    with pytest.raises(ValueError, match="output must be"):
        ModelRandomisation(output="logits")


# 3. Targets by class name; constant maps have no Spearman.


def test_randomisation_targets_by_class_name(squares_model) -> None:
    model, x, _ = squares_model
    x = x[:4]
    by_index = randomisation_test(model, gradcam, x, np.array([1, 1, 1, 1]), stages=2)
    by_name = randomisation_test(model, gradcam, x, "red", stages=2)
    per_image = randomisation_test(model, gradcam, x, ["red"] * 4, stages=2)
    np.testing.assert_array_equal(by_name.spearman, by_index.spearman)
    np.testing.assert_array_equal(per_image.spearman, by_index.spearman)
    hint = r"'olde' is not a class.*\(blue, red\).*method_model_explainer\('gradcam', target='age'\)"
    with pytest.raises(ValueError, match=hint):
        randomisation_test(model, gradcam, x, "olde", stages=2)
    with pytest.raises(ValueError, match="'age': this model has no age output"):
        randomisation_test(model, gradcam, x, "age", stages=2)


def test_constant_original_map_has_no_spearman() -> None:
    a = np.random.default_rng(0).random((2, 8, 8))
    zero = np.zeros_like(a)
    assert np.isnan(spearman_rows(a, zero)).all() and np.isnan(spearman_rows(zero, a)).all()
    # A ranked map that randomisation flattened lost its ranking: the change the test looks for.
    assert stage_spearman(a, zero).tolist() == [0.0, 0.0]
    assert np.isnan(stage_spearman(zero, a)).all() and np.isnan(stage_spearman(zero, zero)).all()


def test_summaries_skip_and_count_unscored_images() -> None:
    sp = np.array([[0.2, np.nan, 0.9], [0.0, np.nan, np.nan]])
    res = RandomisationResult("cascading", [["a"], ["a", "b"]], sp, np.zeros_like(sp), 0.5)
    np.testing.assert_allclose(res.cascade_spearman, [0.1, np.nan, 0.9])
    assert res.final_spearman == 0.0 and not res.flagged
    summary = res.summary()
    assert [s["unscored"] for s in summary["stages"]] == [1, 2]
    assert summary["cascade_spearman"] == pytest.approx(0.5)
    empty = RandomisationResult("cascading", [["a"]], np.full((1, 2), np.nan), np.zeros((1, 2)), 0.5)
    assert np.isnan(empty.final_spearman) and not empty.flagged  # nothing to flag on


def test_an_all_zero_map_scores_nothing_not_a_pass(squares_model) -> None:
    """Before: an all-zero map kept correlation 0 at every stage, the best randomisation score."""
    model, x, y = squares_model
    x, y = x[:4], y[:4]

    def zero(m, xs, t):
        return np.zeros(xs.shape[:3], np.float32)

    res = ModelRandomisation(stages=2).evaluate(x, zero(model, x, y), y, model=model, model_explainer=zero)
    assert np.isnan(res.scores).all()
    assert (
        ModelRandomisation(stages=2).score(x, zero(model, x, y), y, model=model, model_explainer=zero).n == 0
    )


def test_score_methods_targets_by_class_name(squares_model) -> None:
    model, x, y = squares_model
    x, y = x[:4], y[:4]
    kw = dict(explainers={"cam": lambda xs, t: gradcam(model, xs, t)}, random_baseline=False, n_boot=50)
    by_index = score_methods(model, x, y, ["cam"], ["deletion"], targets=np.ones(4, int), **kw)
    by_name = score_methods(model, x, y, ["cam"], ["deletion"], targets="red", **kw)
    per_image = score_methods(model, x, y, ["cam"], ["deletion"], targets=["red"] * 4, **kw)
    for table in (by_name, per_image):
        assert table.scores["cam"]["deletion"] == by_index.scores["cam"]["deletion"]
    with pytest.raises(
        ValueError, match=r"'old' is not a class; give class indices or class names \(blue, red\)"
    ):
        score_methods(model, x, y, ["cam"], ["deletion"], targets="old", **kw)


# 2. The options recorded are those that ran.


def test_a_callers_explainer_is_not_recorded_with_default_options(squares_model, tmp_path) -> None:
    """Before: smoothgrad given as method_explainer(model, "smoothgrad", n=3) was recorded with n=25."""
    pytest.importorskip("agelens.explain")
    from agelens.metrics import method_explainer

    model, x, y = squares_model
    x, y = x[:3], y[:3]

    def carries(xs, t):
        return gradcam(model, xs, t)

    carries.method, carries.options = "occlusion", {"window": 8, "stride": 4}

    def bare(xs, t):  # a caller's own explainer that says nothing about its options
        return gradcam(model, xs, t)

    table = score_methods(
        model,
        x,
        y,
        ["smoothgrad", "occlusion", "gradcam", "hirescam"],
        ["deletion"],
        explainers={
            "smoothgrad": method_explainer(model, "smoothgrad", n=3),
            "occlusion": carries,
            "hirescam": bare,
        },
        random_baseline=False,
        n_boot=50,
        out_dir=tmp_path,
    )
    recorded = json.loads((tmp_path / "scores.json").read_text())["meta"]["method_options"]
    assert recorded["smoothgrad"]["n"] == 3  # method_explainer carries the options it was given
    assert recorded["occlusion"]["window"] == 8 and recorded["occlusion"]["stride"] == 4
    assert recorded["hirescam"] == GIVEN_BY_CALLER
    assert (
        recorded["gradcam"] == table.meta["method_options"]["gradcam"] and "batch_size" in recorded["gradcam"]
    )


def test_a_default_the_method_resolves_from_the_model_is_recorded_as_it_ran(squares_model, tmp_path) -> None:
    """Before: occlusion's window and stride (None: a seventh of the input side, half that) were
    dropped from scores.json, so a reader could not tell what patch size ran."""
    pytest.importorskip("agelens.explain")
    from agelens.explain.api import make_method

    model, x, y = squares_model
    score_methods(model, x[:3], y[:3], ["occlusion"], ["deletion"], random_baseline=False, n_boot=20,
                  out_dir=tmp_path)  # fmt: skip
    recorded = json.loads((tmp_path / "scores.json").read_text())["meta"]["method_options"]["occlusion"]
    ran = make_method(model, "occlusion")
    assert (recorded["window"], recorded["stride"]) == (ran.window, ran.stride)
    assert recorded["window"] == max(2, round(x.shape[1] / 7))


# 4. A keras.Model is randomised, not skipped.


def test_score_methods_randomises_a_bare_keras_model(squares_model) -> None:
    """Before: skipped as "needs an AgeModel", although the docs say a keras.Model works."""
    model, x, y = squares_model
    x, y = x[:4], y[:4]
    table = score_methods(
        model.keras_model,
        x,
        y,
        ["cam"],
        ["randomisation"],
        explainers={"cam": lambda xs, t: gradcam(model, xs, t)},
        model_explainers={"cam": gradcam},
        random_baseline=False,
        n_boot=50,
    )
    assert "randomisation" not in table.skipped
    assert table.scores["cam"]["randomisation"].n == 4


def test_a_bare_predict_fn_is_skipped_in_one_line(squares_model) -> None:
    model, x, y = squares_model
    x, y = x[:4], y[:4]
    predict = model.keras_model  # a callable with weights is a model; a lambda is not

    table = score_methods(
        lambda xs: np.asarray(predict(xs)),
        x,
        y,
        ["cam"],
        ["randomisation"],
        explainers={"cam": lambda xs, t: gradcam(model, xs, t)},
        random_baseline=False,
        n_boot=50,
    )
    assert "keras.Model" in table.skipped["randomisation"] and "predict_fn" in table.skipped["randomisation"]
