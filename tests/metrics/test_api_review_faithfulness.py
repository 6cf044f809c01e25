"""API review fixes: signed Explanations keep their sign, Insertion honours ``baseline``,
Max-Sensitivity filters class-changing copies with the model it has, photo-size x is refused clearly."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, gradcam, quadrant_model

from agelens.metrics import Deletion, Insertion, MaxSensitivity, explanation_inputs
from agelens.metrics.perturb import baseline_images

N = 4

# ----------------------------------------------------------------------------- 1. signed explanations


def _signed_maps() -> np.ndarray:
    """Signed maps whose only *ordering* points at the evidence: the top-left quadrant is the least
    negative, everything else more negative; clipped to [0, 1] they would all be 0 (no order at all)."""
    m = np.full((N, SIZE, SIZE), -0.9, np.float32)
    m[:, : SIZE // 2, : SIZE // 2] = -0.2
    return m


@pytest.mark.parametrize("signed", [True, False])
def test_explanation_inputs_keep_the_sign_of_a_signed_explanation(signed: bool) -> None:
    photos = list(np.round(checker_images(N)).astype(np.uint8))  # model-size photos: no resampling
    maps = _signed_maps()
    exp = SimpleNamespace(images=photos, maps=list(maps), signed=signed)
    _, got = explanation_inputs(exp, SIZE)
    np.testing.assert_allclose(got, maps if signed else np.zeros_like(maps))


def test_deletion_scores_a_signed_explanation_like_the_same_signed_maps() -> None:
    """Review s06: Deletion of a signed HiResCAM gave 0.368 via explanation_inputs, 0.190 from attribute()."""
    photos = list(np.round(checker_images(N)).astype(np.uint8))
    exp = SimpleNamespace(images=photos, maps=list(_signed_maps()), signed=True)
    x, maps = explanation_inputs(exp, SIZE)
    t = np.ones(N, int)
    via_explanation = Deletion(step=0.05)(x, maps, t, predict_fn=quadrant_model())
    direct = Deletion(step=0.05)(x, _signed_maps(), t, predict_fn=quadrant_model())
    flat = Deletion(step=0.05)(x, np.zeros_like(maps), t, predict_fn=quadrant_model())  # what clipping left
    np.testing.assert_allclose(via_explanation, direct)
    assert via_explanation.mean() + 0.1 < flat.mean()


# ----------------------------------------------------------------------------- 2. insertion baseline


@pytest.mark.parametrize("baseline", ["black", "blur", "mean"])
def test_insertion_starts_from_its_baseline(baseline: str) -> None:
    x, t = checker_images(N), np.ones(N, int)
    maps = np.random.default_rng(0).random((N, SIZE, SIZE)).astype(np.float32)
    res = Insertion(step=0.25, baseline=baseline).evaluate(x, maps, t, predict_fn=quadrant_model())
    np.testing.assert_allclose(res.curves[:, 0], quadrant_model()(baseline_images(x, baseline))[:, 1])
    np.testing.assert_allclose(res.curves[:, -1], quadrant_model()(x)[:, 1])


def test_insertion_baselines_give_different_curves_and_blur_stays_the_default() -> None:
    """Review s21: blur, black, mean and even a made-up name gave the same AUC."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (N, SIZE, SIZE, 3)).astype(np.float32)
    maps = rng.random((N, SIZE, SIZE)).astype(np.float32)

    def model(batch: np.ndarray) -> np.ndarray:  # p(class 1) = brightness: black and mean starts differ
        p = np.asarray(batch, np.float64).mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - p, p], axis=1)

    def start(metric: Insertion) -> np.ndarray:
        return metric.evaluate(x, maps, np.ones(N, int), predict_fn=model).curves[:, 0]

    starts = {b: start(Insertion(step=0.5, baseline=b)) for b in ("black", "blur", "mean")}
    assert not np.allclose(starts["black"], starts["mean"])
    np.testing.assert_allclose(start(Insertion(step=0.5)), starts["blur"])
    assert Insertion().baseline == "blur" and Deletion().baseline == "black"


@pytest.mark.parametrize("cls", [Insertion, Deletion])
def test_an_unknown_baseline_is_refused_when_the_metric_is_built(cls: type) -> None:
    with pytest.raises(ValueError, match=r"unknown baseline 'no-such-baseline'; use black, blur, mean"):
        cls(baseline="no-such-baseline")


# ----------------------------------------------------------------------------- 3. Max-Sensitivity


def _brightness(model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).mean(-1).astype(np.float32)


def _whole_pixels_only(x: np.ndarray) -> np.ndarray:
    """Class 0 only for whole-number pixels: every noisy copy changes class."""
    whole = np.all(np.asarray(x) == np.round(x), axis=(1, 2, 3))
    return np.stack([whole, ~whole], axis=1).astype(np.float32)


def test_max_sensitivity_predicts_with_the_model_when_no_predict_fn_is_given() -> None:
    grey = np.full((3, SIZE, SIZE, 3), 128.0, np.float32)
    res = MaxSensitivity(n_samples=3).evaluate(
        grey,
        _brightness(None, grey, None),
        np.zeros(3, int),
        model=_whole_pixels_only,
        model_explainer=_brightness,
    )
    assert list(res.extra["kept"]) == [0, 0, 0] and res.extra["all_changed"] == 3
    assert np.all(np.isnan(res.scores))


def test_max_sensitivity_with_an_age_model_needs_no_predict_fn(squares_model) -> None:
    """Review s07: ``model=`` alone kept [5 5 5 5] copies, ``predict_fn=model`` too kept [3 5 0 0]."""
    model, x, _ = squares_model
    x = x[:8]
    targets = np.argmax(model.predict(x, flip=False)["probabilities"], axis=1)
    maps = gradcam(model, x, targets)
    metric = MaxSensitivity(n_samples=3, radius=120.0)  # loud enough to flip some predictions
    alone = metric.evaluate(x, maps, targets, model=model, model_explainer=gradcam)
    both = metric.evaluate(x, maps, targets, model=model, model_explainer=gradcam, predict_fn=model)
    assert (both.extra["kept"] < 3).any()  # some copies did change class
    np.testing.assert_array_equal(alone.extra["kept"], both.extra["kept"])
    np.testing.assert_allclose(alone.scores, both.scores, atol=1e-6)


def test_max_sensitivity_warns_when_the_model_cannot_predict() -> None:
    grey = np.full((2, SIZE, SIZE, 3), 128.0, np.float32)
    with pytest.warns(UserWarning, match="cannot predict with object.*pass predict_fn"):
        res = MaxSensitivity(n_samples=2).evaluate(
            grey, _brightness(None, grey, None), np.zeros(2, int), model=object(), model_explainer=_brightness
        )
    assert list(res.extra["kept"]) == [2, 2]


# ----------------------------------------------------------------------------- 4. photo-size x


def test_photo_size_images_are_refused_with_a_short_message_naming_the_fix(squares_model) -> None:
    """Review s22: photo-size arrays raised a 7,000-character TypeError from tf.function."""
    model, _, y = squares_model
    photos = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 3)).astype(np.float32)
    maps = np.random.default_rng(1).random((2, 48, 48)).astype(np.float32)
    expected = r"48x48 px images but the model takes 32x32.*explanation_inputs\(explanation, model\)"
    for context in (
        {"predict_fn": model},
        {"predict_fn": model.keras_model},
        {"predict_fn": model.predict},
    ):
        with pytest.raises(ValueError, match=expected) as err:
            Deletion().score(photos, maps, y[:2], **context)
        assert len(str(err.value)) < 300
    with pytest.raises(ValueError, match=expected):
        MaxSensitivity(n_samples=1)(photos, maps, y[:2], model=model, model_explainer=gradcam)


def test_a_bare_callable_says_no_size_so_any_size_is_scored() -> None:
    x = checker_images(2, size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = Deletion(step=0.25)(
            x, np.ones((2, 48, 48), np.float32), np.ones(2, int), predict_fn=quadrant_model()
        )
    assert scores.shape == (2,)


def test_an_explainer_given_a_target_explains_it_whatever_the_metrics_classes(squares_model) -> None:
    """``method_model_explainer("gradcam", target="age")`` used to fail with "multiple values for
    keyword argument 'target'"; a fixed target now overrides the per-image classes."""
    pytest.importorskip("agelens.explain")
    from agelens.explain import attribute
    from agelens.metrics import method_model_explainer

    model, x, _ = squares_model
    x = np.asarray(x[:2], np.float32)
    fixed = method_model_explainer("gradcam", target=1)
    assert fixed.method == "gradcam" and fixed.options == {"target": 1}
    got = fixed(model, x, np.array([0, 0]))
    np.testing.assert_allclose(got, attribute(model, x, method="gradcam", target=1), atol=1e-6)
    per_image = method_model_explainer("gradcam")(model, x, np.array([0, 0]))
    assert not np.allclose(got, per_image)
