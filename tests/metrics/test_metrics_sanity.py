"""Model-parameter randomisation (Adebayo et al. 2018): Grad-CAM passes, an edge detector is flagged."""

from __future__ import annotations

import numpy as np
import pytest
from metric_toys import gradcam, sobel_model_explainer

from agelens.metrics import ModelRandomisation, randomisation_test
from agelens.metrics.sanity import _stage_points, randomisable_layers, spearman_rows, ssim_rows


def _real_gradcam():
    pytest.importorskip("agelens.explain")
    from agelens.metrics.adapters import method_model_explainer

    return method_model_explainer("gradcam")


@pytest.mark.parametrize("which", ["stand-in", "agelens.explain"])
def test_gradcam_passes_and_edge_detector_is_flagged(squares_model, which: str) -> None:
    model, x, _ = squares_model
    x = x[:8]
    cam = randomisation_test(model, gradcam if which == "stand-in" else _real_gradcam(), x)
    edges = randomisation_test(model, sobel_model_explainer, x)
    assert cam.final_spearman < 0.3 and not cam.flagged
    assert edges.final_spearman > 0.99 and edges.flagged
    assert edges.ssim[-1].mean() > 0.99 and cam.ssim[-1].mean() < 0.5
    assert cam.layers[-1] == ["logits", "last_conv", "c1"]  # cascading, top layer first
    assert cam.summary()["flagged"] is False and len(cam.summary()["stages"]) == 3


# Per stage mean Spearman and SSIM of randomisation_test(seed=3) on an untrained tiny_convnet(seed=0),
# computed with the clone-per-stage implementation this one replaced (one clone, randomised in place).
# To 1e-4: oneDNN's kernels differ by CPU (an Intel Xeon with AMX gave up to 3.4e-5 off the AMD EPYC
# numbers below); a wrong layer or draw moves them by 1e-2 or more.
OLD_NUMBERS = {
    ("stand-in", "cascading"): ([0.1626918, -0.0293245, -0.0809147], [0.0861814, 0.0176596, -0.0083294]),
    ("stand-in", "independent"): ([0.1626918, -0.0168206, 0.227704], [0.0861814, -0.0449281, 0.0970233]),
    ("guided-backprop", "cascading"): ([0.479873, 0.36024, 0.1568736], [0.4623813, 0.3561728, 0.1333128]),
    ("guided-backprop", "independent"): ([0.479873, 0.4488784, 0.1833801], [0.4623813, 0.4338746, 0.1196758]),
}


@pytest.mark.parametrize(("which", "mode"), list(OLD_NUMBERS))
def test_one_randomised_clone_gives_the_numbers_of_a_fresh_clone_per_stage(which: str, mode: str) -> None:
    """Guided backprop keeps copies of the fused conv layers: they must follow the in-place randomisation."""
    from metric_toys import tiny_convnet

    from agelens.model.wrap import wrap_keras_model

    if which == "guided-backprop":
        pytest.importorskip("agelens.explain")
        from agelens.metrics.adapters import method_model_explainer

        explain = method_model_explainer("guided-backprop")
    else:
        explain = gradcam
    model = wrap_keras_model(tiny_convnet(seed=0), class_names=["a", "b"])
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    res = randomisation_test(model, explain, x, np.array([0, 1, 0, 1]), mode=mode, seed=3)
    spearman, ssim = OLD_NUMBERS[(which, mode)]
    np.testing.assert_allclose(res.spearman.mean(1), spearman, atol=1e-4)
    np.testing.assert_allclose(res.ssim.mean(1), ssim, atol=1e-4)


def _weights(model, names: list[str]) -> dict[str, list[np.ndarray]]:
    return {n: [w.numpy().copy() for w in model.keras_model.get_layer(n).trainable_weights] for n in names}


def _changed(model, trained: dict[str, list[np.ndarray]]) -> list[str]:
    now = _weights(model, list(trained))
    return sorted(n for n, ws in trained.items() if not all(map(np.array_equal, now[n], ws)))


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_the_model_is_cloned_once_and_randomised_in_place(squares_model, monkeypatch, mode: str) -> None:
    from agelens.metrics import sanity

    model, x, y = squares_model
    trained = _weights(model, randomisable_layers(model))
    clones, seen = [], []
    real_clone = sanity.clone_model
    monkeypatch.setattr(sanity, "clone_model", lambda m: clones.append(real_clone(m)) or clones[-1])

    def explain(m, xs, targets):
        seen.append((m, _changed(m, trained)))
        return gradcam(m, xs, targets)

    res = randomisation_test(model, explain, x[:4], y[:4], mode=mode)
    assert len(clones) == 1 and all(m is clones[0] for m, _ in seen)
    # Original maps first; then cascading stages nest, independent ones randomise one layer each.
    assert [c for _, c in seen] == [[]] + [sorted(ls) for ls in res.layers]
    if mode == "independent":  # and each layer's trained weights came back after its stage
        assert _changed(clones[0], trained) == []


def test_randomisation_never_touches_the_callers_model(squares_model) -> None:
    model, x, _ = squares_model
    x = x[:8]
    before = [w.copy() for w in model.keras_model.get_weights()]
    p_before = model.predict(x)["probabilities"]
    randomisation_test(model, gradcam, x[:2], mode="independent")
    for a, b in zip(before, model.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.predict(x)["probabilities"], p_before, atol=1e-6)


def test_independent_mode_randomises_one_layer_at_a_time(squares_model) -> None:
    model, x, _ = squares_model
    x = x[:8]
    res = randomisation_test(model, gradcam, x[:4], mode="independent")
    assert res.layers == [["logits"], ["last_conv"], ["c1"]]
    assert res.spearman.shape == (3, 4) and res.ssim.shape == (3, 4)
    assert res.spearman.mean() < 0.6  # every single layer matters to Grad-CAM
    with pytest.raises(ValueError, match="cascading"):
        _ = res.flagged


def test_randomisation_metric_scores_each_image(squares_model) -> None:
    model, x, y = squares_model
    x, y = x[:8], y[:8]
    metric = ModelRandomisation()
    edge = metric(
        x, sobel_model_explainer(model, x, y), y, model=model, model_explainer=sobel_model_explainer
    )
    cam = metric(x, gradcam(model, x, y), y, model=model, model_explainer=gradcam)
    assert edge.shape == (8,) and edge.min() > 0.99 and cam.mean() < 0.3


def test_builder_model_randomises_only_class_path_layers() -> None:
    from agelens.model.builder import GROUP_LOGITS, ModelConfig, build_age_model
    from agelens.model.wrap import wrap_keras_model

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
    assert np.isnan(spearman_rows(a, np.zeros_like(a))).all()  # a constant map ranks nothing: NaN
    np.testing.assert_allclose(ssim_rows(a, a), 1.0)
    assert ssim_rows(a, rng.random((3, 16, 16))).max() < 0.3


def test_ssim_of_signed_maps_uses_their_range_of_2() -> None:
    # SSIM's constants are (0.01 L)^2 and (0.03 L)^2: halving signed maps and comparing them
    # with L = 1 must give what the maps give with L = 2 (the scale-free reading).
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = np.tanh(rng.normal(size=(3, 16, 16)))
    b = 0.5 * a + 0.2 * np.tanh(rng.normal(size=(3, 16, 16)))
    pairs = zip(a, b, strict=True)
    halved = [structural_similarity(p / 2, q / 2, data_range=1.0, win_size=7) for p, q in pairs]
    np.testing.assert_allclose(ssim_rows(a, b), halved, atol=1e-9)


def _bottom_layer_energy(model, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A map built only from the first conv's activations, like guided backprop, which (Adebayo et al.)
    ignores the upper layers: it changes only when the bottom layer is randomised."""
    import keras

    km = getattr(model, "keras_model", model)
    act = np.asarray(keras.Model(km.input, km.get_layer("c1").output)(np.asarray(x, np.float32)))
    energy = np.abs(act).sum(-1)
    from scipy.ndimage import zoom

    up = np.stack([zoom(e, (x.shape[1] / e.shape[0], x.shape[2] / e.shape[1]), order=1) for e in energy])
    peak = up.max(axis=(1, 2), keepdims=True)
    return (up / np.where(peak > 0, peak, 1)).astype(np.float32)


def test_a_map_blind_to_the_upper_layers_is_flagged_though_the_end_of_the_cascade_differs(squares_model):
    """With every layer random the map has changed, yet it ignored the top two layers: the cascade
    mean flags it, where a rule on the end alone (the old one) called it a pass."""
    model, x, y = squares_model
    x, y = x[:8], y[:8]
    res = randomisation_test(model, _bottom_layer_energy, x)
    assert res.spearman[0].mean() > 0.99 and res.spearman[1].mean() > 0.99  # top layers random: unchanged
    assert res.final_spearman < 0.5  # the end alone would pass it
    assert res.flagged and res.summary()["cascade_spearman"] > 0.5
    metric = ModelRandomisation(stages=3)
    scores = metric.evaluate(
        x, _bottom_layer_energy(model, x, y), y, model=model, model_explainer=_bottom_layer_energy
    )
    assert scores.scores.mean() > 0.5 and scores.extra["flagged"]
    assert scores.extra["stage_layers"] == [1, 2, 3] and scores.extra["stage_spearman"].shape == (3, 8)
    np.testing.assert_allclose(scores.scores, scores.extra["stage_spearman"].mean(0))


def test_score_tables_keep_and_plot_the_cascade(squares_model, tmp_path) -> None:
    from agelens.metrics import score_methods

    model, x, y = squares_model
    x, y = x[:6], y[:6]
    table = score_methods(
        model,
        x,
        y,
        ["edges", "cam"],
        ["randomisation"],
        explainers={
            "edges": lambda xs, t: sobel_model_explainer(model, xs, t),
            "cam": lambda xs, t: gradcam(model, xs, t),
        },
        model_explainers={"edges": sobel_model_explainer, "cam": gradcam},
        random_baseline=False,
        n_boot=200,
        out_dir=tmp_path,
    )
    edges, cam = (table.curves[m]["randomisation"] for m in ("edges", "cam"))
    assert edges["x"] == pytest.approx([1 / 3, 2 / 3, 1]) and min(edges["mean"]) > 0.99
    assert max(cam["mean"]) < 0.5
    assert table.scores["cam"]["randomisation"].mean == pytest.approx(np.mean(cam["mean"]))
    assert (tmp_path / "curves_randomisation.png").stat().st_size > 0
