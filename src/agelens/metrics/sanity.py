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
flag is not noise. A constant map (all zero after ReLU) has no ranking, so its correlation is
NaN (:func:`spearman_rows`, as in Quantus): counting an all-zero *original* map as 0 gave it a
perfect score for explaining nothing. Such an image has no score; means skip NaN and summaries
count the images left out. One asymmetry, on purpose: a map that randomisation *flattened*
(trained map ranked, randomised one constant) counts as 0, as before. It lost every ranking it
had, which is the change the test looks for; as NaN, Grad-CAM (whose maps of a random model
are all zero after ReLU) had no score at all on the shipped model's age output.

Why the whole cascade and not only its end (every layer random): the end alone cannot
tell guided backprop from a plain gradient. On the shipped model, 10 held-out photos,
guided backprop keeps a Spearman of 0.99 / 0.97 / 0.89 with the top 13 / 26 / 40 of its
53 layers random and only drops to 0.33 with all of them; saliency gives 0.52 / 0.47 /
0.42 / 0.29. The end (0.33 vs 0.29) calls both sensitive; the cascade mean (0.79 vs 0.42)
flags guided backprop, as Adebayo et al. found: it ignores the upper layers and changes
only once the stem and bottom blocks are redrawn (``benchmarks/guided_backprop_sanity.py``).

Which layers: those with a learned kernel (conv, depthwise conv, dense) upstream of the
output the explained target reads, top-down in graph order: the class output for a class or
a contrast, the age output for ``target="age"``. Why not always the class head: on the
shipped model its top layer (``age_group_logits``) does not feed the age, so age maps kept a
Spearman of 1.0 at that "stage" while the age head (``age_logits``) was never redrawn.
``output`` names it; left out on a model with both heads, it is found by redrawing each
head's own layers once and seeing which of them change the maps (one or two extra
explanations). A learned kernel is one the layer would train: a frozen layer's counts too (a
backbone frozen for fine-tuning was still learned, and Adebayo et al. and Quantus redraw it;
reading ``trainable_weights`` skipped it, so "every layer random" kept the whole backbone);
only readouts set by construction are left as they are: a frozen expected-value layer (one
bias-free output whose kernel steps evenly up, as the builder's ``age`` layer holds the ages
0..116) and the ``agelens_`` layers added to read one-unit models.
Each weight tensor is redrawn from a normal with the tensor's own standard
deviation (scale kept, so a change in the maps is about structure, not scale); zero tensors
such as zero-initialised biases stay zero, as a re-initialisation would leave them. Batch
norms are not randomised and keep their trained moving statistics, which no longer match the
random convolutions: about half the ReLU6 units stay active, but their dependence on the
input fades with depth (on the shipped model the spread of the fully random model's output
across photos is ~5e-7 of the trained one's). Gradient maps of a deeply randomised model
therefore look less like the input than re-estimated statistics would make them, which
lowers every method's score.

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

from agelens.metrics.adapters import as_age_model, class_names_of
from agelens.metrics.base import (
    HOW_TO_GET,
    NEEDS_MODEL,
    Context,
    Metric,
    MetricResult,
    ModelExplainer,
    as_pixels,
    check_finite,
    class_targets,
    means_predicted,
)
from agelens.metrics.readouts import readout_of

SPEARMAN_THRESHOLD = 0.5


def _keras(model: Any) -> Any:
    return getattr(model, "keras_model", model)


def _graph(model: Any) -> Any:
    """The Functional graph of ``model``'s Keras model: a Sequential's own graph, the same layers.

    Why: Keras 3 defines no ``output`` for a ``keras.Sequential`` (AttributeError "has never been
    called"), so a plain Sequential, or an AgeModel that keeps one, could not be staged. The
    explain engine reads the same graph (:func:`agelens.explain._graph.functional_of`).
    """
    import keras

    km = _keras(model)
    if not isinstance(km, keras.Sequential):
        return km
    from agelens.explain._graph import functional_of

    return functional_of(km)


OUTPUTS = ("class", "age")
"""What a target can read: the class scores (classes, contrasts) or the expected age."""


def _output(model: Any, which: str) -> Any:
    """The Keras tensor of the class output or the age output."""
    out = _graph(model).output
    key = getattr(model, "group_output", 0) if which == "class" else getattr(model, "age_output", None)
    if key is None:
        raise ValueError("output 'age': this model has no age output")
    return out[key] if isinstance(out, dict | list | tuple) else out


def _class_output(model: Any) -> Any:
    return _output(model, "class")


def check_outputs(output: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"class"``, ``"age"`` or several of them as a tuple; a one-line ValueError otherwise."""
    names = (output,) if isinstance(output, str) else tuple(output)
    bad = [o for o in names if o not in OUTPUTS]
    if bad or not names:
        raise ValueError(f"output must be 'class', 'age' or both, got {output!r}")
    return tuple(dict.fromkeys(names))


def randomisable_layers(model: Any, output: str | tuple[str, ...] = "class") -> list[str]:
    """Names of layers with a learned kernel that feed ``output`` (``"class"``, ``"age"`` or both),
    top (output side) first."""
    import keras

    sub = keras.Model(_graph(model).inputs, [_output(model, o) for o in check_outputs(output)])
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
        if any(len(w.shape) >= 2 for w in learned_weights(layer)):
            names.append(layer.name)
    return names[::-1]


def learned_weights(layer: Any) -> list[Any]:
    """The weights ``layer`` would train, frozen or not; none for a readout agelens fixes.

    Why not ``trainable_weights``: it is empty once a layer is frozen, and a frozen backbone
    holds learned weights the test must redraw. Keras keeps the variables made trainable in
    ``_trainable_variables`` whatever the flag says now (BatchNorm's moving statistics are not
    among them); ``trainable_weights`` is the fallback for layers without it.
    """
    if _fixed_readout(layer):
        return []
    return list(getattr(layer, "_trainable_variables", layer.trainable_weights))


def _fixed_readout(layer: Any) -> bool:
    """A layer whose weights were set, not learned: the ``agelens_`` layers added to read a
    one-unit model, and a frozen expected-value readout (one bias-free output whose kernel steps
    evenly up: the ages 0..116 of the builder's ``age`` layer, or any bins' centres)."""
    if layer.name.startswith("agelens_"):
        return True
    if layer.trainable or len(layer.weights) != 1:
        return False
    kernel = np.asarray(layer.weights[0].numpy(), dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[1] != 1 or kernel.shape[0] < 2:
        return False
    steps = np.diff(kernel[:, 0])
    return bool(steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-5, atol=0))


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
    """New values for each learned weight: N(0, its own std); None keeps an all-constant weight."""
    out: list[np.ndarray | None] = []
    for w in learned_weights(layer):
        v = np.asarray(w.numpy())
        std = float(v.std())
        out.append(rng.normal(0.0, std, v.shape).astype(v.dtype) if std > 0 else None)
    return out


def _assign(layer: Any, values: list[np.ndarray | None]) -> None:
    for w, v in zip(learned_weights(layer), values, strict=True):
        if v is not None:
            w.assign(v)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (flattened); NaN where either map is constant.

    Why NaN and not 0: a constant map ranks nothing, so it neither agrees nor disagrees; as 0
    an all-zero map scored a perfect pass (Quantus, via scipy, gives NaN too).
    """
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1), np.nan)


def stage_spearman(original: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """:func:`spearman_rows`, but 0 where randomisation flattened a ranked map (see the module notes).

    NaN stays where the original map is constant: it explained nothing there is to test.
    """
    sp = spearman_rows(original, randomised)
    return np.where(_constant(randomised) & ~_constant(original), 0.0, sp)


def _constant(maps: np.ndarray) -> np.ndarray:
    flat = np.asarray(maps).reshape(len(maps), -1)
    return flat.max(axis=1) == flat.min(axis=1)


def ssim_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each pair of maps (skimage, 7x7 window or the largest odd one that fits).

    The data range is 1 for [0, 1] maps and 2 where a pair holds negative values (signed maps in
    [-1, 1]): SSIM's stabilising constants scale with it, and a range of 1 on signed maps would
    weight them as if their contrast were twice what it is.
    """
    win = min(7, a.shape[1] - (1 - a.shape[1] % 2), a.shape[2] - (1 - a.shape[2] % 2))
    return np.array(
        [
            structural_similarity(p, q, data_range=2.0 if min(p.min(), q.min()) < 0 else 1.0, win_size=win)
            for p, q in zip(a, b, strict=True)
        ],
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
    output: tuple[str, ...] = ("class",)
    """The model outputs whose layers were randomised: those the explained target reads."""

    @property
    def final_spearman(self) -> float:
        """Mean Spearman (NaN skipped) with every layer random (cascading) or the last layer alone."""
        return nanmean(self.spearman[-1])

    @property
    def cascade_spearman(self) -> np.ndarray:
        """Per image, the Spearman averaged over the stages: the area under the similarity curve.

        Stages where a map was constant (NaN) are left out; NaN where every stage was.
        """
        return nanmean_rows(self.spearman.T)

    @property
    def flagged(self) -> bool:
        """True when the maps survive cascading randomisation on average over its stages (cascading only).

        False when no image has a score (every map constant): there is nothing to flag on.
        """
        if self.mode != "cascading":
            raise ValueError("the flag is defined on cascading randomisation")
        return nanmean(self.cascade_spearman) > self.threshold

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "threshold": self.threshold,
            "output": list(self.output),
            "stages": [
                {
                    "layers": ls,
                    "spearman": nanmean(s),
                    "ssim": float(q.mean()),
                    "unscored": int(np.isnan(s).sum()),  # images with a constant original map
                }
                for ls, s, q in zip(self.layers, self.spearman, self.ssim, strict=True)
            ],
        }
        if self.mode == "cascading":
            out.update(
                cascade_spearman=nanmean(self.cascade_spearman),
                final_spearman=self.final_spearman,
                flagged=self.flagged,
            )
        return out


def nanmean(v: np.ndarray) -> float:
    """Mean of the finite values; NaN (without numpy's empty-slice warning) when there are none."""
    v = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Per row, the mean of its finite values; NaN for a row with none."""
    a = np.asarray(a, dtype=np.float64)
    ok = np.isfinite(a)
    count = ok.sum(axis=1)
    total = np.where(ok, a, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


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
    targets: Any = None,
    *,
    mode: str = "cascading",
    layers: list[str] | None = None,
    stages: int | None = None,
    seed: int = 0,
    threshold: float = SPEARMAN_THRESHOLD,
    original_maps: np.ndarray | None = None,
    output: str | tuple[str, ...] | None = None,
) -> RandomisationResult:
    """Re-explain ``x`` on progressively (cascading) or singly (independent) randomised clones of ``model``.

    ``targets`` (class indices or names, one per image or one for all) default (None or ``"predicted"``,
    as ``explain`` spells it) to the original model's predicted classes and stay fixed, so every stage
    explains the same class; ``"age"`` or a contrast (``"old-young"``) is handed to ``explain_fn`` as
    it is.
    ``output`` is what the explained target reads: ``"class"`` (classes, contrasts), ``"age"``
    (an ``explain_fn`` explaining ``target="age"``) or both; left out, it is the age for
    ``targets="age"``, the class output for a contrast, and otherwise found by probing (see
    the module notes), so only layers that can change the maps are staged.
    ``stages`` limits how many checkpoints are explained (the last cascading one is always
    "every layer random"). ``original_maps`` saves re-explaining the unchanged model when
    the caller already has its maps.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode is 'cascading' or 'independent', got {mode!r}")
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be a callable, got {explain_fn!r}; {HOW_TO_GET['model_explainer']}")
    outputs = check_outputs(output) if output is not None else None
    x = as_pixels(x)
    check_finite("x", x)
    targets = None if means_predicted(targets) else targets  # "predicted", as explain spells it
    read = as_age_model(model) or model  # a bare keras.Model is read as explain() reads it
    names = class_names_of(read)
    readout = readout_of(targets, names)
    if readout is not None:  # "age", "old-young": every stage explains that, and it reads its own output
        if readout.kind == "age" and getattr(read, "age_output", None) is None:
            raise ValueError("targets 'age': this model has no age output; use a class or a contrast")
        targets = readout.spec
        outputs = outputs or (None if layers is not None else (readout.output,))
    else:
        if targets is None:
            targets = _predict(model, x).argmax(axis=1)
        targets = class_targets(targets, names, len(x), len(names) if names else None, AGE_HINT)
    twin = clone_model(model)  # the one copy randomised in place: the caller's model is never touched
    tk = _keras(twin)
    original = explain_fn(twin, x, targets) if original_maps is None else original_maps
    original = np.asarray(original, np.float32)
    if layers is None and outputs is None:
        outputs = _outputs_read(twin, explain_fn, x, targets, original, seed)
    names = layers if layers is not None else randomisable_layers(model, outputs or "class")
    if not names:
        raise ValueError("the model has no layer with a learned kernel to randomise")
    rng = np.random.default_rng(seed)
    km = _keras(model)
    draws = {name: random_weights(_find_layer(km, name), rng) for name in names}  # one draw per layer
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
            last = _explain_with(twin, [chosen[0]], {chosen[0]: draws[chosen[0]]}, explain_fn, x, targets)
        stage_layers.append(list(chosen))
        sp.append(stage_spearman(original, last))
        ss.append(ssim_rows(original, last))
    return RandomisationResult(
        mode, stage_layers, np.array(sp), np.array(ss), threshold, original, last, outputs or ()
    )


AGE_HINT = (
    "; to test maps of the age, pass an explain_fn that explains it: "
    "agelens.metrics.method_model_explainer('gradcam', target='age')"
)


def _explain_with(
    twin: Any,
    names: list[str],
    values: dict[str, list[np.ndarray | None]],
    explain_fn: ModelExplainer,
    x: np.ndarray,
    targets: np.ndarray,
) -> np.ndarray:
    """Maps of ``twin`` with ``names`` set to ``values``; their trained weights are put back after."""
    tk = _keras(twin)
    found = [_find_layer(tk, name) for name in names]
    trained = [[np.array(w.numpy()) for w in learned_weights(layer)] for layer in found]
    for layer, name in zip(found, names, strict=True):
        _assign(layer, values[name])
    try:
        return np.asarray(explain_fn(twin, x, targets), dtype=np.float32)
    finally:
        for layer, weights in zip(found, trained, strict=True):
            _assign(layer, weights)  # trained again before the next test


def _outputs_read(
    twin: Any, explain_fn: ModelExplainer, x: np.ndarray, targets: np.ndarray, original: np.ndarray, seed: int
) -> tuple[str, ...]:
    """Which outputs the explained target reads, on a model with a class and an age output.

    Each head's own layers (those not feeding the other output) are redrawn once, alone; a
    head whose redraw changes the maps is read. The age head is tried first: a class target
    then costs one extra explanation. Model-blind maps change for neither: the class output
    is kept, as before. A map that changes for both (a target mixing class and age, or a
    noisy explainer) gets both heads: staging a layer too many beats missing one.
    """
    if getattr(twin, "age_output", None) is None:
        return ("class",)
    heads = {o: randomisable_layers(twin, o) for o in OUTPUTS}
    own = {o: [n for n in heads[o] if n not in heads[other]] for o, other in (OUTPUTS, OUTPUTS[::-1])}
    rng = np.random.default_rng([seed, 1])  # apart from the stages' draws, which stay as they were

    def changes(head: str) -> bool:
        if not own[head]:
            return False
        values = {n: random_weights(_find_layer(_keras(twin), n), rng) for n in own[head]}
        maps = _explain_with(twin, own[head], values, explain_fn, x, targets)
        return not np.allclose(maps, original, atol=1e-4)

    if not changes("age"):
        return ("class",)
    return ("class", "age") if changes("class") else ("age",)


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

    def __init__(self, stages: int = 4, output: str | tuple[str, ...] | None = "class") -> None:
        """``output``: what the explainer's target reads ("class", "age"; None finds it by probing).

        "class" by default: the metric's targets are classes, and probing a two-headed model
        would cost every method one more explanation.
        """
        if stages < 1:
            raise ValueError(f"stages must be at least 1, got {stages}")
        self.stages = int(stages)
        self.output = check_outputs(output) if output is not None else None

    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        output = self.output
        if ctx.readout is not None and output == ("class",):  # the default follows what is read
            output = (ctx.readout.output,)
        res = randomisation_test(
            ctx.model,
            ctx.model_explainer,
            x,
            ctx.readout.spec if ctx.readout is not None else targets,
            stages=self.stages,
            seed=ctx.seed,
            original_maps=maps,
            output=output,
        )
        counts = [len(ls) for ls in res.layers]
        extra = {
            "stage_spearman": res.spearman,
            "stage_layers": counts,
            "final_spearman": res.spearman[-1],
            "ssim": res.ssim.mean(axis=0),
            "flagged": res.flagged,
            "unscored": np.isnan(res.spearman).sum(axis=1),  # per stage: constant original maps
        }
        # The cascade as a curve (x: share of the layers random), so reports can plot it like Adebayo et al.
        x_frac = np.asarray(counts, dtype=np.float64) / counts[-1]
        return MetricResult(res.cascade_spearman, curve_x=x_frac, curves=res.spearman.T, extra=extra)
