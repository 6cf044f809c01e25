"""Faithfulness of maps of the age and of contrasts: the metrics read what the maps explain."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from metric_toys import quadrant_maps, quadrant_model, tiny_convnet, two_headed_convnet

from agelens.metrics import AverageDrop, Deletion, MaxSensitivity, randomisation_test, score_methods
from agelens.metrics.readouts import contrast_pair, readout_of

CLASSES = ["young", "middle-aged", "old"]


@pytest.fixture(scope="module")
def two_heads():
    """The two-headed toy (class and age outputs) wrapped, and 4 noise images."""
    from agelens.model.wrap import wrap_keras_model

    model = wrap_keras_model(two_headed_convnet(seed=3), class_names=CLASSES)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    return model, x


def test_specs_are_read_as_explain_reads_them() -> None:
    assert readout_of("old", CLASSES) is None and readout_of("middle-aged", CLASSES) is None
    assert readout_of([0, 2], CLASSES) is None and readout_of(None, CLASSES) is None
    age = readout_of(" Age ", CLASSES)
    assert (age.kind, age.spec, age.output) == ("age", "age", "age")
    mid = readout_of("middle-aged-young", CLASSES)  # the hyphen inside the class name is not the split
    assert (mid.kind, mid.a, mid.b, mid.spec, mid.output) == ("contrast", 1, 0, "middle-aged-young", "class")
    assert contrast_pair("old-old", CLASSES) is None and readout_of("old-yung", CLASSES) is None
    for spelled in ("Old-Young", "2-0", "old-0"):  # any case, or indices, as explain --target reads them
        assert readout_of(spelled, CLASSES) == readout_of("old-young", CLASSES)


def test_age_deletion_records_the_expected_age(two_heads) -> None:
    model, x = two_heads
    maps = quadrant_maps(len(x))
    res = Deletion(step=0.25).evaluate(x, maps, "age", predict_fn=model)
    ages = model.predict(x, flip=False)["age"]
    np.testing.assert_allclose(res.curves[:, 0], ages, rtol=1e-5)  # nothing deleted: the model's age
    black = model.predict(np.zeros_like(x), flip=False)["age"]
    np.testing.assert_allclose(res.curves[:, -1], black, rtol=1e-5)  # everything deleted: a black image's
    np.testing.assert_allclose(res.scores, np.trapezoid(res.curves, res.curve_x, axis=1))
    assert not np.allclose(ages, model.predict(x, flip=False)["probabilities"][:, 0])  # not a class column


def test_a_contrast_reads_the_probability_margin_and_drops_only_from_a_positive_one(two_heads) -> None:
    model, x = two_heads
    p = model.predict(x, flip=False)["probabilities"]
    maps = quadrant_maps(len(x), "br")
    res = Deletion(step=0.5).evaluate(x, maps, "old-young", predict_fn=model)
    np.testing.assert_allclose(res.curves[:, 0], p[:, 2] - p[:, 0], atol=1e-6)
    masked = model.predict(x * maps[..., None], flip=False)["probabilities"]
    drops = []
    for spec, (i, j) in (("old-young", (2, 0)), ("young-old", (0, 2))):
        margin, kept = p[:, i] - p[:, j], masked[:, i] - masked[:, j]
        drop = np.maximum(0, margin - kept) / np.where(margin > 0, margin, 1)
        want = np.where(margin > 0, np.minimum(drop, 1.0), np.nan)
        drops.append(AverageDrop().evaluate(x, maps, spec, predict_fn=model).scores)
        np.testing.assert_allclose(drops[-1], want, atol=1e-5)
    assert (np.isnan(drops[0]) ^ np.isnan(drops[1])).all()  # each image is scored in one direction only


def test_a_margin_that_flips_sign_is_a_full_drop_not_a_700_percent_one() -> None:
    """p(checker) - p(plain) falls from 0.1 to -0.6 under the mask: the drop is capped at 1."""

    def predict(x: np.ndarray) -> np.ndarray:
        bright = np.asarray(x).reshape(len(x), -1).mean(axis=1) > 100  # the photo as given, not masked
        checker = np.where(bright, 0.55, 0.2)
        return np.stack([1 - checker, checker], axis=1)

    predict.class_names = ["plain", "checker"]
    x = np.full((3, 8, 8, 3), 200.0, np.float32)
    maps = np.zeros((3, 8, 8), np.float32)
    maps[:, :2] = 1.0  # keeps a quarter: the masked image is dark
    res = AverageDrop().evaluate(x, maps, "checker-plain", predict_fn=predict)
    np.testing.assert_allclose(res.extra["original"], 0.1, atol=1e-6)
    np.testing.assert_allclose(res.extra["masked"], -0.6, atol=1e-6)
    np.testing.assert_allclose(res.scores, 1.0)
    plain = AverageDrop().evaluate(x, maps, [1, 1, 1], predict_fn=predict)  # a probability: as in the paper
    np.testing.assert_allclose(plain.scores, (0.55 - 0.2) / 0.55, rtol=1e-5)


def test_a_contrast_works_with_a_bare_probability_callable() -> None:
    predict = quadrant_model()
    predict.class_names = ["plain", "checker"]
    from metric_toys import checker_images

    x = checker_images(3)
    res = Deletion(step=0.5).evaluate(x, quadrant_maps(3), "checker-plain", predict_fn=predict)
    p = predict(x)
    np.testing.assert_allclose(res.curves[:, 0], p[:, 1] - p[:, 0])


def test_the_age_needs_a_model_that_has_one(two_heads) -> None:
    model, x = two_heads
    maps = quadrant_maps(len(x))
    with pytest.raises(TypeError, match="age output; pass predict_fn=the model"):
        Deletion().evaluate(x, maps, "age", predict_fn=lambda v: model.predict(v)["probabilities"])
    from agelens.model.wrap import wrap_keras_model

    no_age = wrap_keras_model(tiny_convnet(classes=3), class_names=CLASSES)
    with pytest.raises(ValueError, match="no age output"):
        Deletion().evaluate(x, maps, "age", predict_fn=no_age)


def test_robustness_re_explains_the_age_and_still_drops_class_changing_copies(two_heads) -> None:
    model, x = two_heads
    asked: list[object] = []

    def explainer(m, xs, targets):
        asked.append(targets)
        return quadrant_maps(len(xs))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a class predictor is there: no "cannot predict" warning
        res = MaxSensitivity(n_samples=2).evaluate(
            x, quadrant_maps(len(x)), "age", model=model, model_explainer=explainer
        )
    assert asked == ["age", "age"]
    assert res.extra["kept"].tolist() == [2] * len(x)  # invisible noise keeps each predicted class


def test_randomisation_of_age_maps_redraws_the_age_head(two_heads) -> None:
    model, x = two_heads
    asked: set[object] = set()

    def age_saliency(m, xs, targets):
        import tensorflow as tf

        asked.add(targets)
        xt = tf.convert_to_tensor(np.asarray(xs, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            score = tf.reduce_sum(m.keras_model(xt, training=False)[m.age_output])
        g = np.abs(tape.gradient(score, xt).numpy()).mean(-1)
        return (g / g.max(axis=(1, 2), keepdims=True)).astype(np.float32)

    res = randomisation_test(model, age_saliency, x, "age", stages=2)
    assert asked == {"age"} and res.output == ("age",)
    assert "age_logits" in res.layers[0] and "age_group_logits" not in res.layers[-1]


def test_score_methods_explains_and_reads_the_age(two_heads, tmp_path) -> None:
    model, x = two_heads
    table = score_methods(
        model,
        x,
        np.zeros(len(x), int),
        ["gradcam"],
        ["deletion", "average_drop"],
        targets="age",
        layer="last_conv",
        n_boot=50,
        out_dir=tmp_path,
    )
    assert table.meta["readout"] == {"kind": "age", "target": "age", "label": "expected age (years)"}
    assert table.meta["method_options"]["gradcam"]["target"] == "age"
    from agelens.explain import attribute

    want = (
        Deletion()
        .evaluate(
            x,
            np.asarray(attribute(model, x, method="gradcam", target="age", layer="last_conv")),
            "age",
            predict_fn=model,
        )
        .scores
    )
    np.testing.assert_allclose(table.scores["gradcam"]["deletion"].mean, want.mean(), rtol=1e-5)
    assert table.scores["gradcam"]["deletion"].mean > 1.0  # years, not a probability
    assert "expected age" in (tmp_path / "scores.md").read_text()
    assert (tmp_path / "curves_deletion.png").stat().st_size > 0
