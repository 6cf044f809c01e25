"""Model-parameter randomisation tests (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

If a method's maps hardly change when the network's weights are replaced by random
ones, the maps cannot be explaining what the network learned: they show the input
(edges, contrast), not the model. We randomise a *clone* (never the caller's model)
either cascading from the top layer down or one layer at a time, re-explain, and
compare with the original maps by Spearman rank correlation and SSIM.

Flag rule (our choice): a method is flagged when its maps' mean Spearman correlation with
the originals, averaged over the stages of a cascading randomisation (for the metric:
the top quarter, half, three quarters, then all of the layers random), exceeds ``0.5``.
A model-blind method (an edge detector) stays near 1 at every stage; gradient-of-class
methods such as Grad-CAM fall towards 0 as soon as the top layers are random. 0.5 sits
halfway and, for a map of S^2 pixels, is far beyond what chance agreement produces, so a
flag is not noise. Constant maps (all zero after ReLU) have no ranking; their correlation
is taken as 0 (they no longer agree with anything).

Why the whole cascade and not only its end (every layer random): the end alone cannot
tell guided backprop from a plain gradient. On the shipped model, 10 held-out photos,
guided backprop keeps a Spearman of 0.99 / 0.97 / 0.89 with the top 13 / 26 / 40 of its
53 layers random and only drops to 0.33 with all of them; saliency gives 0.52 / 0.47 /
0.42 / 0.29. The end (0.33 vs 0.29) calls both sensitive; the cascade mean (0.79 vs 0.42)
flags guided backprop, as Adebayo et al. found: it ignores the upper layers and changes
only once the stem and bottom blocks are redrawn (``benchmarks/guided_backprop_sanity.py``).

Which layers: those with a trainable kernel (conv, depthwise conv, dense) upstream of
the class output, top-down in graph order. Each weight tensor is redrawn from a normal
with the tensor's own standard deviation (scale kept, so a change in the maps is about
structure, not scale); zero tensors such as zero-initialised biases stay zero, as a
re-initialisation would leave them. Batch norms are not randomised and keep their
trained moving statistics, which no longer match the random convolutions: about half
the ReLU6 units stay active, but their dependence on the input fades with depth (on the shipped
model the spread of the fully random model's output across photos is ~5e-7 of the
trained one's). Gradient maps of a deeply randomised model therefore look less like the
input than re-estimated statistics would make them, which lowers every method's score.

One clone is made per test and randomised in place, stage after stage. Each layer's random
weights are drawn once, so cascading stages nest: stage k redraws only the layers it adds
on top of the earlier stages' (the same weights a fresh clone per stage would carry). In
independent mode each layer's trained weights are put back after its stage. Why one
clone: cloning MobileNetV2 and re-tracing the explain method on the copy cost ~5 s a
stage, where re-explaining the same (cached, traced) model costs a fraction. The price:
an ``explain_fn`` that keeps its own copy of a model's weights must refresh it on every
call, as ``agelens.explain`` does (its graphs read the layers' variables; guided
backprop's copied layers are re-synced by ``sync_guided_copies`` before each pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from agelens.metrics.base import (
    HOW_TO_GET,
    NEEDS_MODEL,
    Context,
    Metric,
    MetricResult,
    ModelExplainer,
    as_pixels,
    check_finite,
    check_targets,
    n_classes_of,
)

SPEARMAN_THRESHOLD = 0.5


def _keras(model: Any) -> Any:
    return getattr(model, "keras_model", model)


def _class_output(model: Any) -> Any:
    km = _keras(model)
    out = km.output
    key = getattr(model, "group_output", 0)
    return out[key] if isinstance(out, dict | list | tuple) else out


def randomisable_layers(model: Any) -> list[str]:
    """Names of layers with a trainable kernel that feed the class output, top (output side) first."""
    import keras

    km = _keras(model)
    sub = keras.Model(km.inputs, _class_output(model))
    names: list[str] = []
    stack = list(sub.layers)
    flat: list[Any] = []
    while stack:  # flatten nested models, keeping graph order
        layer = stack.pop(0)
        if hasattr(layer, "layers") and layer.layers:
            stack = list(layer.layers) + stack
        else:
            flat.append(layer)
    for layer in flat:
        if any(len(w.shape) >= 2 for w in layer.trainable_weights):
            names.append(layer.name)
    return names[::-1]


def clone_model(model: Any) -> Any:
    """A weight-for-weight copy; an :class:`AgeModel` comes back as an AgeModel around the copy."""
    import keras

    km = _keras(model)
    twin = keras.models.clone_model(km)
    twin.set_weights(km.get_weights())
    return replace(model, keras_model=twin) if twin is not km and hasattr(model, "keras_model") else twin


def _find_layer(km: Any, name: str) -> Any:
    stack = list(km.layers)
    while stack:
        layer = stack.pop()
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            stack.extend(layer.layers)
    raise KeyError(name)


def random_weights(layer: Any, rng: np.random.Generator) -> list[np.ndarray | None]:
    """New values for each trainable weight: N(0, its own std); None keeps an all-constant weight."""
    out: list[np.ndarray | None] = []
    for w in layer.trainable_weights:
        v = np.asarray(w.numpy())
        std = float(v.std())
        out.append(rng.normal(0.0, std, v.shape).astype(v.dtype) if std > 0 else None)
    return out


def _assign(layer: Any, values: list[np.ndarray | None]) -> None:
    for w, v in zip(layer.trainable_weights, values, strict=True):
        if v is not None:
            w.assign(v)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (flattened); 0 where either map is constant."""
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), 0.0)


def ssim_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each pair of [0, 1] maps (skimage, 7x7 window or the largest odd one that fits)."""
    win = min(7, a.shape[1] - (1 - a.shape[1] % 2), a.shape[2] - (1 - a.shape[2] % 2))
    return np.array(
        [structural_similarity(p, q, data_range=1.0, win_size=win) for p, q in zip(a, b, strict=True)],
        dtype=np.float64,
    )


@dataclass
class RandomisationResult:
    """Per stage: the layers random so far (cascading) or alone (independent), and per-image similarity."""

    mode: str
    layers: list[list[str]]
    spearman: np.ndarray  # (stages, N)
    ssim: np.ndarray  # (stages, N)
    threshold: float = SPEARMAN_THRESHOLD
    original_maps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    last_maps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def final_spearman(self) -> float:
        """Mean Spearman with every layer random (cascading) or with the last layer tested alone."""
        return float(np.mean(self.spearman[-1]))

    @property
    def cascade_spearman(self) -> np.ndarray:
        """Per image, the Spearman averaged over the stages: the area under the similarity curve."""
        return self.spearman.mean(axis=0)

    @property
    def flagged(self) -> bool:
        """True when the maps survive cascading randomisation on average over its stages (cascading only)."""
        if self.mode != "cascading":
            raise ValueError("the flag is defined on cascading randomisation")
        return float(self.cascade_spearman.mean()) > self.threshold

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "threshold": self.threshold,
            "stages": [
                {"layers": ls, "spearman": float(s.mean()), "ssim": float(q.mean())}
                for ls, s, q in zip(self.layers, self.spearman, self.ssim, strict=True)
            ],
        }
        if self.mode == "cascading":
            out.update(
                cascade_spearman=float(self.cascade_spearman.mean()),
                final_spearman=self.final_spearman,
                flagged=self.flagged,
            )
        return out


def _stage_points(n_layers: int, stages: int | None) -> list[int]:
    """How many top layers are random at each checkpoint: all of 1..L, or ``stages`` spread, L included."""
    if stages is None:
        stages = n_layers if n_layers <= 12 else 8
    stages = max(1, min(stages, n_layers))
    return sorted({int(round(v)) for v in np.linspace(n_layers / stages, n_layers, stages)})


def randomisation_test(
    model: Any,
    explain_fn: ModelExplainer,
    x: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    mode: str = "cascading",
    layers: list[str] | None = None,
    stages: int | None = None,
    seed: int = 0,
    threshold: float = SPEARMAN_THRESHOLD,
    original_maps: np.ndarray | None = None,
) -> RandomisationResult:
    """Re-explain ``x`` on progressively (cascading) or singly (independent) randomised clones of ``model``.

    ``targets`` defaults to the original model's predicted classes and stays fixed, so
    every stage explains the same class. ``stages`` limits how many checkpoints are
    explained (the last cascading one is always "every layer random"). ``original_maps``
    saves re-explaining the unchanged model when the caller already has its maps.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode is 'cascading' or 'independent', got {mode!r}")
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be a callable, got {explain_fn!r}; {HOW_TO_GET['model_explainer']}")
    x = np.asarray(x, dtype=np.float32)
    check_finite("x", x)
    x = as_pixels(x)
    if targets is None:
        targets = _predict(model, x).argmax(axis=1)
    targets = check_targets(targets, len(x), n_classes_of(model))
    names = layers if layers is not None else randomisable_layers(model)
    if not names:
        raise ValueError("the model has no layer with a trainable kernel to randomise")
    rng = np.random.default_rng(seed)
    km = _keras(model)
    draws = {name: random_weights(_find_layer(km, name), rng) for name in names}  # one draw per layer
    twin = clone_model(model)  # the one copy randomised in place: the caller's model is never touched
    tk = _keras(twin)
    original = explain_fn(twin, x, targets) if original_maps is None else original_maps
    original = np.asarray(original, np.float32)
    stage_layers, sp, ss = [], [], []
    last, done = original, 0
    for k in _stage_points(len(names), stages):
        if mode == "cascading":
            chosen = names[:k]
            for name in names[done:k]:  # on top of the earlier stages' random layers
                _assign(_find_layer(tk, name), draws[name])
            done = k
            last = np.asarray(explain_fn(twin, x, targets), dtype=np.float32)
        else:
            chosen = [names[k - 1]]
            layer = _find_layer(tk, chosen[0])
            trained = [np.array(w.numpy()) for w in layer.trainable_weights]
            _assign(layer, draws[chosen[0]])
            try:
                last = np.asarray(explain_fn(twin, x, targets), dtype=np.float32)
            finally:
                _assign(layer, trained)  # trained again before the next layer is tested alone
        stage_layers.append(list(chosen))
        sp.append(spearman_rows(original, last))
        ss.append(ssim_rows(original, last))
    return RandomisationResult(mode, stage_layers, np.array(sp), np.array(ss), threshold, original, last)


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict") and hasattr(model, "keras_model"):
        return np.asarray(model.predict(x, flip=False)["probabilities"])  # the network the maps explain
    out = model(x, training=False)
    if isinstance(out, dict | list | tuple):
        raise ValueError("pass targets for a multi-output Keras model (or wrap it with wrap_keras_model)")
    return np.asarray(out)


class ModelRandomisation(Metric):
    """Per image, the Spearman between its map before and after cascading randomisation, averaged over
    ``stages`` depths (default: top quarter, half, three quarters, all layers random); lower is better.

    The curve (``curve_x``: share of the layers random; ``curves``: each image's Spearman
    per stage) is what reports plot. ``extra`` has ``stage_spearman`` (stages, N),
    ``stage_layers`` (layers random at each stage), ``final_spearman`` (all random) and SSIM.
    Each stage re-explains every image, so the cost is ``stages`` explanations per image.
    """

    name = "randomisation"
    higher_is_better = False
    applies_to = NEEDS_MODEL
    category = "randomisation"
    requires = ("model", "model_explainer")

    def __init__(self, stages: int = 4) -> None:
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.stages = int(stages)

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        res = randomisation_test(
            ctx.model, ctx.model_explainer, x, targets, stages=self.stages, seed=ctx.seed, original_maps=maps
        )
        counts = [len(ls) for ls in res.layers]
        extra = {
            "stage_spearman": res.spearman,
            "stage_layers": counts,
            "final_spearman": res.spearman[-1],
            "ssim": res.ssim.mean(axis=0),
            "flagged": res.flagged,
        }
        # The cascade as a curve (x: share of the layers random), so reports can plot it like Adebayo et al.
        x_frac = np.asarray(counts, dtype=np.float64) / counts[-1]
        return MetricResult(res.cascade_spearman, curve_x=x_frac, curves=res.spearman.T, extra=extra)
