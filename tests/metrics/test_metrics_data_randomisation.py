"""Data randomisation (Adebayo et al. 2018, sec. 4): maps of a model trained on the real labels against
maps of the same network trained on shuffled ones. Grad-CAM changes; an edge detector cannot."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import gradcam, sobel_model_explainer, tiny_convnet

from agelens.metrics import DataRandomisation, data_randomisation_test, score_methods


def _weights(model) -> list[np.ndarray]:
    return [w.copy() for w in model.keras_model.get_weights()]


def test_gradcam_changes_with_the_labels_and_an_edge_detector_is_flagged(
    squares_model, shuffled_squares_model, reseeded_squares_model
) -> None:
    model, x, _ = squares_model
    before = (_weights(model), _weights(shuffled_squares_model))
    cam = data_randomisation_test(model, shuffled_squares_model, gradcam, x)
    edges = data_randomisation_test(model, shuffled_squares_model, sobel_model_explainer, x)
    same_labels = data_randomisation_test(model, reseeded_squares_model, gradcam, x)
    assert edges.mean_spearman > 0.99 and edges.flagged
    assert cam.mean_spearman < 0.5 and not cam.flagged
    # The labels, not the seed, part the maps: a model retrained on the real labels from the
    # shuffled model's initial weights agrees with the real model's maps far more.
    assert same_labels.mean_spearman > cam.mean_spearman + 0.15
    assert cam.spearman.shape == (len(x),) and cam.ssim.shape == (len(x),)
    assert cam.summary()["flagged"] is False and edges.summary()["spearman"] > 0.99
    for was, model_ in zip(before, (model, shuffled_squares_model), strict=True):
        assert all(map(np.array_equal, was, _weights(model_)))  # neither model is touched


def test_the_same_target_is_explained_on_both_models(squares_model, shuffled_squares_model) -> None:
    model, x, _ = squares_model
    seen = []

    def spy(m, xs, t):
        seen.append((m, np.asarray(t).copy()))
        return gradcam(m, xs, t)

    data_randomisation_test(model, shuffled_squares_model, spy, x[:5], "red")
    assert [m for m, _ in seen] == [model, shuffled_squares_model]
    assert all((t == 1).all() for _, t in seen)  # "red" for both, not each model's own prediction


def test_models_that_answer_different_questions_are_refused(squares_model) -> None:
    from agelens.model.wrap import wrap_keras_model

    model, x, _ = squares_model
    renamed = wrap_keras_model(tiny_convnet(), class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="class names"):
        data_randomisation_test(model, renamed, gradcam, x[:2])
    bigger = wrap_keras_model(tiny_convnet(size=48), class_names=["blue", "red"])
    with pytest.raises(ValueError, match="input size"):
        data_randomisation_test(model, bigger, gradcam, x[:2])


def test_metric_needs_the_shuffled_model_and_says_how_to_make_one(squares_model) -> None:
    model, x, y = squares_model
    with pytest.raises(ValueError, match="shuffle-labels"):
        DataRandomisation()(
            x[:2], np.ones((2, 32, 32), np.float32), y[:2], model=model, model_explainer=gradcam
        )


def test_score_methods_runs_it_with_a_shuffled_model_and_skips_it_without(
    squares_model, shuffled_squares_model, tmp_path
) -> None:
    model, x, y = squares_model
    x, y = x[:6], y[:6]
    common = dict(
        explainers={
            "edges": lambda xs, t: sobel_model_explainer(model, xs, t),
            "cam": lambda xs, t: gradcam(model, xs, t),
        },
        model_explainers={"edges": sobel_model_explainer, "cam": gradcam},
        n_boot=200,
    )
    without = score_methods(model, x, y, ["cam"], ["data_randomisation", "deletion"], **common)
    assert "shuffle-labels" in without.skipped["data_randomisation"]
    table = score_methods(
        model,
        x,
        y,
        ["edges", "cam"],
        ["data_randomisation"],
        shuffled_model=shuffled_squares_model,
        out_dir=tmp_path,
        **common,
    )
    assert table.scores["edges"]["data_randomisation"].mean > 0.99
    assert table.scores["cam"]["data_randomisation"].mean < 0.5
    assert table.scores["random"]["data_randomisation"].n == 0  # noise has no model to re-explain
    assert table.metrics[0]["category"] == "randomisation" and table.metrics[0]["higher_is_better"] is False


def test_the_shuffled_model_is_explained_at_the_layer_the_model_declares(
    squares_model, shuffled_squares_model
):
    """A trained model may declare its layer (the shipped one does); one from ``agelens train`` does
    not. Left to their defaults the two would be explained at different layers."""
    from dataclasses import replace

    from agelens.explain.layers import default_layer_spec

    model, x, _ = squares_model
    declared = replace(model, metadata={**model.metadata, "explain_layer": "c1"})
    seen = []

    def spy(m, xs, t):
        seen.append(default_layer_spec(m))  # what an explainer left to its default would explain
        return gradcam(m, xs, t)

    data_randomisation_test(declared, shuffled_squares_model, spy, x[:3])
    assert seen == ["c1", "c1"]
    assert "explain_layer" not in shuffled_squares_model.metadata  # the caller's object is left alone
    twin_declares = replace(
        shuffled_squares_model, metadata={**shuffled_squares_model.metadata, "explain_layer": "c1"}
    )
    seen.clear()
    data_randomisation_test(model, twin_declares, spy, x[:3])
    assert seen == ["last-conv", "last-conv"]  # the model declares none: neither is explained at c1
    assert twin_declares.metadata["explain_layer"] == "c1"


def test_a_late_data_randomisation_score_merges_into_the_table_of_the_other_metrics(
    squares_model, shuffled_squares_model
) -> None:
    """The demo scores every other metric while its control trains, then this one: the merged table
    must be the one a single call with both would give (same cells, nothing left as skipped)."""
    model, x, y = squares_model
    x, y = x[:6], y[:6]
    common = dict(
        explainers={"cam": lambda xs, t: gradcam(model, xs, t)},
        model_explainers={"cam": gradcam},
        n_boot=200,
    )
    first = score_methods(model, x, y, ["cam"], ["deletion", "data_randomisation"], **common)
    assert "data_randomisation" in first.skipped
    late = score_methods(
        model,
        x,
        y,
        ["cam"],
        ["data_randomisation"],
        shuffled_model=shuffled_squares_model,
        random_baseline=False,
        **common,
    )
    metrics = ["deletion", "data_randomisation"]
    both = score_methods(model, x, y, ["cam"], metrics, shuffled_model=shuffled_squares_model, **common)
    first.add_metrics(late)
    assert first.skipped == {}
    assert [m["name"] for m in first.metrics] == [m["name"] for m in both.metrics]
    for method in ("cam", "random"):
        for metric in ("deletion", "data_randomisation"):
            a, b = first.scores[method][metric], both.scores[method][metric]
            assert a.n == b.n and np.allclose(a.mean, b.mean, equal_nan=True), (method, metric)
    assert first.to_dict()["scores"]["random"]["data_randomisation"]["n"] == 0


def test_merging_scores_of_other_photos_is_refused(squares_model, shuffled_squares_model) -> None:
    model, x, y = squares_model
    kw = dict(explainers={"cam": lambda xs, t: gradcam(model, xs, t)}, model_explainers={"cam": gradcam})
    table = score_methods(model, x[:6], y[:6], ["cam"], ["deletion"], n_boot=50, **kw)
    other = score_methods(
        model, x[:4], y[:4], ["cam"], ["data_randomisation"], shuffled_model=shuffled_squares_model, **kw
    )
    with pytest.raises(ValueError, match="n_images 4 != 6"):
        table.add_metrics(other)


def test_the_controls_fit_is_the_training_accuracy_of_the_epoch_it_kept() -> None:
    from types import SimpleNamespace

    from agelens.metrics.data_randomisation import shuffled_fit

    history = [{"epoch": 1, "train_accuracy": 0.4}, {"epoch": 2, "train_accuracy": 0.9}]
    assert shuffled_fit(SimpleNamespace(metadata={"training": {"best_epoch": 2, "history": history}})) == 0.9
    assert shuffled_fit(SimpleNamespace(metadata={"training": {"best_epoch": 1, "history": history}})) == 0.4
    assert shuffled_fit(SimpleNamespace(metadata={})) is None  # a plain Keras file: unknown, not 0
    assert shuffled_fit(object()) is None
