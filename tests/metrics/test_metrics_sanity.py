"""Model-parameter randomisation (Adebayo et al. 2018): Grad-CAM passes, an edge detector is flagged."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import gradcam, sobel_model_explainer, tiny_convnet

from agelens.metrics import ModelRandomisation, randomisation_test
from agelens.metrics.sanity import _stage_points, randomisable_layers, spearman_rows, ssim_rows


@pytest.fixture(scope="module")
def trained():
    """A tiny convnet trained (4 epochs) to tell a red from a blue square on noise; plus 8 test images."""
    import keras

    from agelens.model.io import wrap_keras_model

    rng = np.random.default_rng(0)
    n = 200
    x = rng.uniform(0, 100, (n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(2, 24, 2)
        x[i, r : r + 6, c : c + 6, 0 if y[i] else 2] += 150
    km = tiny_convnet()
    km.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    km.fit(x[:192], y[:192], epochs=4, batch_size=32, verbose=0)
    return wrap_keras_model(km, class_names=["blue", "red"]), x[192:], y[192:]


def test_gradcam_passes_and_edge_detector_is_flagged(trained) -> None:
    model, x, _ = trained
    cam = randomisation_test(model, gradcam, x)
    edges = randomisation_test(model, sobel_model_explainer, x)
    assert cam.final_spearman < 0.3 and not cam.flagged
    assert edges.final_spearman > 0.99 and edges.flagged
    assert edges.ssim[-1].mean() > 0.99 and cam.ssim[-1].mean() < 0.5
    assert cam.layers[-1] == ["logits", "last_conv", "c1"]  # cascading, top layer first
    assert cam.summary()["flagged"] is False and len(cam.summary()["stages"]) == 3


def test_randomisation_never_touches_the_callers_model(trained) -> None:
    model, x, _ = trained
    before = [w.copy() for w in model.keras_model.get_weights()]
    p_before = model.predict(x)["probabilities"]
    randomisation_test(model, gradcam, x[:2], mode="independent")
    for a, b in zip(before, model.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.predict(x)["probabilities"], p_before, atol=1e-6)


def test_independent_mode_randomises_one_layer_at_a_time(trained) -> None:
    model, x, _ = trained
    res = randomisation_test(model, gradcam, x[:4], mode="independent")
    assert res.layers == [["logits"], ["last_conv"], ["c1"]]
    assert res.spearman.shape == (3, 4) and res.ssim.shape == (3, 4)
    assert res.spearman.mean() < 0.6  # every single layer matters to Grad-CAM
    with pytest.raises(ValueError, match="cascading"):
        _ = res.flagged


def test_randomisation_metric_scores_each_image(trained) -> None:
    model, x, y = trained
    metric = ModelRandomisation()
    edge = metric(
        x, sobel_model_explainer(model, x, y), y, model=model, model_explainer=sobel_model_explainer
    )
    cam = metric(x, gradcam(model, x, y), y, model=model, model_explainer=gradcam)
    assert edge.shape == (8,) and edge.min() > 0.99 and cam.mean() < 0.3


def test_builder_model_randomises_only_class_path_layers() -> None:
    from agelens.model.builder import GROUP_LOGITS, ModelConfig, build_age_model
    from agelens.model.io import wrap_keras_model

    km = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True), seed=0)
    names = randomisable_layers(wrap_keras_model(km))
    assert names[0] == GROUP_LOGITS and names[-1] == "Conv1"
    assert "age_logits" not in names and "age" not in names  # other head, and the frozen expected-age layer
    assert all(km.get_layer(n).trainable_weights for n in names)


def test_stage_points_always_end_with_every_layer() -> None:
    assert _stage_points(3, None) == [1, 2, 3]
    pts = _stage_points(53, None)
    assert len(pts) == 8 and pts[-1] == 53 and pts == sorted(pts)
    assert _stage_points(53, 1) == [53]


def test_similarity_helpers() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 16, 16))
    np.testing.assert_allclose(spearman_rows(a, a), 1.0)
    np.testing.assert_allclose(spearman_rows(a, 1 - a), -1.0)
    assert spearman_rows(a, np.zeros_like(a)).tolist() == [0.0, 0.0, 0.0]  # constant map: no agreement
    np.testing.assert_allclose(ssim_rows(a, a), 1.0)
    assert ssim_rows(a, rng.random((3, 16, 16))).max() < 0.3
