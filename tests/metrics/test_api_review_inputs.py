"""API review fixes: the randomisation test on a plain ``keras.Sequential``, ``score_methods`` checking
its inputs up front, and the metrics taking ``explain``'s target spellings ("predicted", None)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, gradcam, quadrant_maps, quadrant_model, sobel_model_explainer

from agelens.metrics import (
    Deletion,
    EnergyInMask,
    MaxSensitivity,
    ModelRandomisation,
    PointingGame,
    Sparseness,
    randomisation_test,
    score_methods,
)
from agelens.metrics.sanity import randomisable_layers

N = 3


def _one_line(e: pytest.ExceptionInfo) -> str:
    said = str(e.value)
    assert "\n" not in said and len(said) < 400, said
    return said


# ----------------------------------------------------------------------------- 1. keras.Sequential


def _sequential(softmax: bool):
    """The toy convnet of metric_toys as a ``keras.Sequential`` (ending in logits, or in a softmax)."""
    import keras

    keras.utils.set_random_seed(0)
    layers = [
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, name="logits"),
    ]
    return keras.Sequential(layers + ([keras.layers.Activation("softmax")] if softmax else []))


@pytest.fixture(scope="module", params=[False, True], ids=["logits", "softmax"])
def sequential(request):
    return _sequential(request.param)


def test_randomisation_test_runs_on_a_plain_sequential(sequential) -> None:
    """Before: AttributeError "The layer sequential has never been called and thus has no defined output"."""
    x = checker_images(N)
    trained = [w.copy() for w in sequential.get_weights()]
    assert randomisable_layers(sequential) == ["logits", "last_conv", "c1"]
    res = randomisation_test(sequential, gradcam, x, 1, stages=2)
    assert [len(ls) for ls in res.layers] == [2, 3] and res.spearman.shape == (2, N)
    assert res.final_spearman < 0.9  # the stages redraw the layers the maps come from
    by_prediction = randomisation_test(sequential, gradcam, x, stages=2)  # targets: predicted classes
    assert by_prediction.spearman.shape == (2, N)
    for w, v in zip(sequential.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(w, v)  # the caller's model is never randomised


def test_the_randomisation_metric_runs_on_a_plain_sequential(sequential) -> None:
    x, t = checker_images(N), np.ones(N, np.int64)
    maps = gradcam(sequential, x, t)
    got = ModelRandomisation(stages=2).score(x, maps, 1, model=sequential, model_explainer=gradcam)
    assert got.n == N and got.mean < 0.9


def test_randomisation_of_a_sequential_with_an_explain_method() -> None:
    """The reviewer's call: a Sequential ending in logits, re-explained by the explain engine's Grad-CAM."""
    from agelens.metrics import method_model_explainer

    explain = method_model_explainer("gradcam")
    res = randomisation_test(_sequential(False), explain, checker_images(2), 1, stages=2)
    assert res.spearman.shape == (2, 2)


# ----------------------------------------------------------------------------- 2. score_methods inputs


@pytest.fixture(scope="module")
def small():
    """A tiny untrained 32 px convnet wrapped as an AgeModel, and N model-size images."""
    from metric_toys import tiny_convnet

    from agelens.model.wrap import wrap_keras_model

    return wrap_keras_model(tiny_convnet(), class_names=["young", "old"]), checker_images(N)


def _score(model, x, labels, **kw):
    def quadrant_explainer(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return quadrant_maps(len(images))

    kw.setdefault("explainers", {"quadrant": quadrant_explainer})
    return score_methods(
        model, x, labels, ["quadrant"], [Deletion(step=0.25)], random_baseline=False, n_boot=50, **kw
    )


def test_score_methods_refuses_photo_size_images_in_one_line(small) -> None:
    """Before: a 6,000-character TypeError from binding the batch to the traced forward pass."""
    model, _ = small
    photos = np.random.default_rng(0).uniform(0, 255, (N, 200, 200, 3)).astype(np.float32)
    with pytest.raises(ValueError) as e:
        _score(model, photos, np.array([0, 1, 1]))
    said = _one_line(e)
    assert "200x200" in said and f"{SIZE}x{SIZE}" in said and "explanation_inputs" in said


def test_score_methods_refuses_images_that_are_not_an_rgb_batch(small) -> None:
    model, x = small
    with pytest.raises(ValueError) as e:
        _score(model, x[..., 0], np.zeros(N, int))
    assert "(N, S, S, 3)" in _one_line(e)


@pytest.mark.parametrize("labels", [np.array([0, 1]), np.array([0, 1, 1, 0]), np.zeros((N, 2), int)])
def test_score_methods_wants_one_label_per_image(small, labels: np.ndarray) -> None:
    """Before: "operands could not be broadcast together" from the gallery, after every metric had run."""
    model, x = small
    with pytest.raises(ValueError) as e:
        _score(model, x, labels)
    said = _one_line(e)
    assert "labels" in said and f"{N} images" in said


def test_score_methods_range_checks_labels(small) -> None:
    model, x = small
    with pytest.raises(ValueError) as e:
        _score(model, x, np.array([0, 1, 2]))
    assert "labels" in _one_line(e)


def test_score_methods_takes_no_labels_when_nothing_needs_them(small) -> None:
    """Before: TypeError "int() argument must be ... not 'NoneType'"."""
    model, x = small
    without = _score(model, x, None)
    with_labels = _score(model, x, np.zeros(N, int))
    assert without.scores["quadrant"]["deletion"] == with_labels.scores["quadrant"]["deletion"]
    assert without.gallery == {} and without.meta["explained"] == "predicted class"
    by_word = _score(model, x, None, targets="predicted")
    assert by_word.scores["quadrant"]["deletion"] == without.scores["quadrant"]["deletion"]
    assert by_word.meta["explained"] == "predicted class"


def test_score_methods_says_what_needs_labels(small) -> None:
    model, x = small
    regions = np.zeros((SIZE, SIZE), np.int64)
    with pytest.raises(ValueError) as e:
        _score(model, x, None, region_masks=regions, region_names=["face"])
    said = _one_line(e)
    assert "labels" in said and "region" in said


# ----------------------------------------------------------------------------- 3. target spellings


@pytest.mark.parametrize("spec", ["predicted", None, "Predicted", "pred"])
def test_metrics_explain_the_predicted_class_like_explain(spec: object) -> None:
    """Before: "unknown class 'predicted'" or "got dtype object"."""
    x, maps = checker_images(N), quadrant_maps(N)
    predicted = quadrant_model()(x).argmax(1)
    want = Deletion(step=0.25)(x, maps, predicted, predict_fn=quadrant_model())
    np.testing.assert_allclose(Deletion(step=0.25)(x, maps, spec, predict_fn=quadrant_model()), want)


def test_predicted_targets_come_from_the_model_the_metric_has(small) -> None:
    model, x = small
    maps = quadrant_maps(N)
    predicted = np.asarray(model.predict(x, flip=False)["probabilities"]).argmax(1)
    want = Deletion(step=0.25)(x, maps, predicted, predict_fn=model)
    np.testing.assert_allclose(Deletion(step=0.25)(x, maps, "predicted", predict_fn=model), want)
    seen: list[np.ndarray] = []

    def spy(m, images, targets):
        seen.append(np.asarray(targets))
        return sobel_model_explainer(m, images, targets)

    MaxSensitivity(n_samples=1)(x, maps, None, model=model, model_explainer=spy)
    np.testing.assert_array_equal(seen[0], predicted)  # the re-explained class is the predicted one


def test_predicted_targets_without_a_model_to_predict_with_fail_in_one_line() -> None:
    x, maps = checker_images(N), quadrant_maps(N)
    stand_in = SimpleNamespace()  # re-explained by a model-blind method, but it cannot predict
    sobel_explainer = sobel_model_explainer
    with pytest.raises(ValueError) as e:
        MaxSensitivity(n_samples=1)(x, maps, "predicted", model=stand_in, model_explainer=sobel_explainer)
    said = _one_line(e)
    assert "predicted" in said and "predict_fn" in said


@pytest.mark.parametrize("spec", ["old", ["old", "young", "old"], "predicted", None])
def test_metrics_that_never_read_the_target_need_no_model_to_read_it(spec: object) -> None:
    """Sparseness (and the mask metrics) ignore the target: a class name needs no model to look it up."""
    x, maps = checker_images(N), np.random.default_rng(0).random((N, SIZE, SIZE)).astype(np.float32)
    masks = quadrant_maps(N)
    np.testing.assert_allclose(Sparseness()(x, maps, spec), Sparseness()(x, maps, np.zeros(N, int)))
    for metric in (PointingGame(), EnergyInMask()):
        np.testing.assert_allclose(metric(x, maps, spec, masks=masks), metric(x, maps, 0, masks=masks))


def test_a_metric_that_ignores_the_target_still_refuses_the_wrong_count() -> None:
    x, maps = checker_images(N), quadrant_maps(N)
    with pytest.raises(ValueError, match=f"2 targets for {N} images"):
        Sparseness()(x, maps, [0, 1])


def test_metrics_that_read_the_target_still_need_a_model_for_class_names() -> None:
    x, maps = checker_images(N), quadrant_maps(N)
    with pytest.raises(ValueError, match="got names such as 'old'"):
        Deletion()(x, maps, "old", predict_fn=quadrant_model())


def test_randomisation_test_takes_the_predicted_word(small) -> None:
    model, x = small
    by_none = randomisation_test(model, gradcam, x, None, stages=2)
    by_word = randomisation_test(model, gradcam, x, "predicted", stages=2)
    np.testing.assert_allclose(by_word.spearman, by_none.spearman)
