"""What every metric shares: its declared direction and scope, per-image scores, bootstrap CIs, random maps.

Why per-image scores: a mean alone cannot say whether method A beats method B on
*these* images; keeping one score per image lets us bootstrap a confidence interval
of the mean and, more importantly, of the *paired* difference against a baseline
computed on the very same images.

Why metrics take plain callables and arrays (``predict_fn``, ``maps``, an
``Explainer``) rather than a model object: the same code then scores any Keras
model, any attribution method and toy numpy "models" in tests.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from agelens.wording import means_predicted

PredictFn = Callable[[np.ndarray], np.ndarray]
"""``(N, S, S, 3)`` float RGB 0..255 at model size -> ``(N, C)`` class probabilities."""
Explainer = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(x, targets)`` -> ``(N, S, S)`` maps in [0, 1], [-1, 1] if signed (a method bound to one model)."""
ModelExplainer = Callable[[Any, np.ndarray, np.ndarray], np.ndarray]
"""``(model, x, targets)`` -> maps: a method that must be re-run on another model (sanity checks)."""

ANY_ATTRIBUTION = "any attribution"
NEEDS_MASK = "needs ground-truth mask"
NEEDS_MODEL = "needs the model (re-explains randomised copies)"
NEEDS_MODEL_NOISY = "needs the model (re-explains noisy copies)"
NEEDS_SHUFFLED = "needs the model and one trained on shuffled labels (re-explains with both)"

CONTEXT_KEYS = ("predict_fn", "masks", "model", "model_explainer", "batch_size", "seed", "shuffled_model")

HOW_TO_GET = {
    "predict_fn": "pass predict_fn=model (an AgeModel from agelens.load_model(), a keras.Model) "
    "or a callable x -> (N, C) probabilities",
    "masks": "pass masks=(N, S, S) ground-truth evidence masks, shaped like maps",
    "model": "pass model=the AgeModel (or keras.Model) the maps explain",
    "model_explainer": "build one with agelens.metrics.method_model_explainer('gradcam') "
    "(any agelens.explain method name) or pass a callable (model, x, targets) -> maps",
    "shuffled_model": "pass shuffled_model=the same network trained on shuffled labels "
    "(agelens train DATA --shuffle-labels --out shuffled.keras, then agelens.load_model(path))",
}
"""Per context key, how to supply it: a "needs X" error must say how to build X."""

PROB_TOL = 1e-3
"""How far probabilities may stray outside [0, 1] or row sums from 1 (float32 softmax is ~1e-6 off)."""


@dataclass(frozen=True)
class Score:
    """Mean of per-image scores with a 95% percentile-bootstrap CI; NaN (not applicable) is dropped."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool | None = None
    values: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @classmethod
    def from_values(
        cls, values: np.ndarray, higher_is_better: bool | None = None, n_boot: int = 2000, seed: int = 0
    ) -> Score:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return cls(float("nan"), float("nan"), float("nan"), 0, higher_is_better, v)
        lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed)
        return cls(float(v.mean()), lo, hi, int(v.size), higher_is_better, v)

    def excludes(self, value: float = 0.0) -> bool:
        """True when the 95% CI lies strictly on one side of ``value``."""
        return bool(self.ci_low > value or self.ci_high < value)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    def __str__(self) -> str:
        return "n/a" if self.n == 0 else f"{self.mean:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (resampling images), vectorised in chunks."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // v.size)
    means = np.concatenate(
        [
            v[rng.integers(0, v.size, (min(chunk, n_boot - s), v.size))].mean(1)
            for s in range(0, n_boot, chunk)
        ]
    )
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_difference(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> Score:
    """Mean of ``a - b`` over images scored by both, with its bootstrap CI (the right test vs a baseline)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return Score.from_values(d, None, n_boot=n_boot, seed=seed)


@dataclass
class MetricResult:
    """Per-image ``scores`` plus, for curve metrics, the x axis and per-image curves (for plots)."""

    scores: np.ndarray
    curve_x: np.ndarray | None = None
    curves: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mean_curve(self) -> np.ndarray | None:
        return None if self.curves is None else np.nanmean(self.curves, axis=0)


@dataclass
class Context:
    """What a metric may need beyond ``(x, maps, targets)``; each metric names its needs in ``requires``."""

    predict_fn: PredictFn | None = None
    masks: np.ndarray | None = None
    model: Any = None
    model_explainer: ModelExplainer | None = None
    batch_size: int = 64
    seed: int = 0
    readout: Any = None
    """Set by :meth:`Metric.evaluate` for ``targets="age"`` or a contrast (see ``metrics.readouts``)."""
    explain_targets: Any = None
    """What a re-explaining metric hands its explainer: the class indices, or the readout's spec."""
    class_predict_fn: PredictFn | None = None
    """Class probabilities while ``predict_fn`` reads a readout (robustness spots class changes with it)."""
    shuffled_model: Any = None
    """The model's architecture trained on permuted labels (the data-randomisation test)."""


class Metric(ABC):
    """A metric declares how to read it (``higher_is_better``), what it applies to, and what it needs.

    Subclasses implement :meth:`_evaluate`; ``metric(x, maps, targets, **context)``
    returns one score per image (NaN where the metric does not apply, e.g. an empty mask).
    ``targets`` are spelled as ``explain`` spells them: class indices or names (one for every
    image or one per image), None or ``"predicted"`` (each image's predicted class, from the
    ``predict_fn`` or ``model`` given), ``"age"`` or a contrast such as ``"old-young"``. Names are
    looked up in the classes of the ``model`` or ``predict_fn`` given, a bare keras.Model read as
    ``explain`` reads it; a plain callable names none (wrap the model with
    ``agelens.wrap_keras_model`` to use names with it).
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    applies_to: ClassVar[str] = ANY_ATTRIBUTION
    category: ClassVar[str] = "faithfulness"
    requires: ClassVar[tuple[str, ...]] = ()
    ranked: ClassVar[bool] = True
    """False for a metric that describes maps without judging them (complexity): shown, not ranked on."""
    reads_targets: ClassVar[bool] = True
    """False for a metric whose score never reads the target (sparseness, the mask metrics): a class
    name or ``"predicted"`` then needs no model to be looked up or predicted with."""

    def __call__(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, **context: Any) -> np.ndarray:
        return self.evaluate(x, maps, targets, **context).scores

    def evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, **context: Any) -> MetricResult:
        unknown = set(context) - set(CONTEXT_KEYS)
        if unknown:
            raise TypeError(f"{self.name}: unknown context {sorted(unknown)}; use {CONTEXT_KEYS}")
        ctx = Context(**context)
        missing = [k for k in self.requires if getattr(ctx, k) is None]
        if missing:
            raise ValueError(
                f"metric {self.name!r} ({self.applies_to}) needs {', '.join(missing)}: "
                + "; ".join(HOW_TO_GET[k] for k in missing)
            )
        from agelens.metrics.adapters import (  # adapters import this module
            as_age_model,
            class_names_of,
            input_size_of,
            resolve_predict_fn,
        )
        from agelens.metrics.readouts import readout_of

        n_classes = None
        size = input_size_of(ctx.predict_fn, ctx.model)
        # A bare keras.Model is read as explain reads it (wrapped), so "old" and "old-young" mean here
        # what they meant to explain on that same model.
        names = class_names_of(ctx.model, ctx.predict_fn)
        predicted = means_predicted(targets)
        readout = None if predicted else readout_of(targets, names)
        n = np.shape(x)[0] if np.ndim(x) else 0
        if readout is not None:
            x, maps, targets = check_inputs(x, maps, np.zeros(n, np.int64), 1, size)
            self._read(readout, ctx)
        else:
            if ctx.predict_fn is not None:
                ctx.predict_fn, n_classes = resolve_predict_fn(ctx.predict_fn, ctx.batch_size)
            elif ctx.model is not None:
                described = as_age_model(ctx.model)
                n_classes = n_classes_of(ctx.model if described is None else described)
            unread = not self.reads_targets and (predicted or (names is None and _named(targets)))
            if unread:  # not read: names stand for placeholders, counted like indices
                k = 1 if predicted else np.size(targets)
                x, maps, targets = check_inputs(x, maps, np.zeros(k, np.int64), n_classes, size)
            elif predicted:  # predicted from x once x has passed its checks
                x, maps, _ = check_inputs(x, maps, np.zeros(n, np.int64), None, size)
                targets = check_targets(self._predicted(x, targets, ctx), len(x), n_classes)
            else:
                x, maps, targets = check_inputs(x, maps, class_indices(targets, names), n_classes, size)
            ctx.explain_targets = targets
        if ctx.masks is not None:
            if np.shape(ctx.masks) != maps.shape:
                raise ValueError(f"{self.name}: masks shape {np.shape(ctx.masks)} != maps shape {maps.shape}")
            check_finite("masks", np.asarray(ctx.masks, dtype=np.float32))
        if ctx.predict_fn is not None and readout is None:
            ctx.predict_fn = checked_predict_fn(ctx.predict_fn, targets)
        return self._evaluate(x, maps, targets, ctx)

    def _predicted(self, x: np.ndarray, spec: Any, ctx: Context) -> np.ndarray:
        """Each image's predicted class, from the ``predict_fn`` (else the ``model``) the metric has.

        Why here, once: ``explain`` explains the predicted class by default (``target=None`` or
        ``"predicted"``), so maps drawn that way are scored with the same spelling by every metric.
        """
        from agelens.metrics.adapters import resolve_predict_fn

        said = "None" if spec is None else repr(spec)
        source = ctx.predict_fn if ctx.predict_fn is not None else ctx.model
        try:
            if source is None:
                raise TypeError
            predict = resolve_predict_fn(source, ctx.batch_size)[0]
        except TypeError:
            what = "no model" if source is None else f"a {type(source).__name__}, which cannot predict"
            raise ValueError(
                f"metric {self.name!r}: targets {said} means each image's predicted class, but it has "
                f"{what} to predict it with; {HOW_TO_GET['predict_fn']}, or give class indices"
            ) from None
        step = max(1, int(ctx.batch_size))
        parts = [np.asarray(predict(x[s : s + step])) for s in range(0, len(x), step)]
        probs = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        return check_probabilities(probs, len(x), np.zeros(0, np.int64)).argmax(axis=1).astype(np.int64)

    def _read(self, readout: Any, ctx: Context) -> None:
        """Point ``ctx`` at ``readout``: ``predict_fn`` gives its one column, explainers get its spec.

        The class probabilities stay at hand (``class_predict_fn``): robustness leaves out noisy
        copies whose predicted class changed, whatever the maps explain.
        """
        from agelens.metrics.adapters import resolve_predict_fn

        source = ctx.predict_fn if ctx.predict_fn is not None else ctx.model
        if source is not None:
            try:
                ctx.class_predict_fn = resolve_predict_fn(source, ctx.batch_size)[0]
            except TypeError:  # a stand-in model that cannot predict: robustness warns about it
                ctx.class_predict_fn = None
        if ctx.predict_fn is not None:
            ctx.predict_fn = readout.bind(source, ctx.batch_size)
        ctx.readout, ctx.explain_targets = readout, readout.spec

    def score(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, **context: Any) -> Score:
        return Score.from_values(self(x, maps, targets, **context), self.higher_is_better)

    @abstractmethod
    def _evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, ctx: Context) -> MetricResult:
        """Per-image scores for model-sized float inputs ``x`` and maps ``(N, S, S)``."""

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "applies_to": self.applies_to,
            "category": self.category,
            "ranked": self.ranked,
        }

    def params(self) -> dict[str, Any]:
        """The settings this metric was made with, by constructor argument (deletion's ``step`` and
        ``baseline``, ROAD's ``levels``...), as JSON-ready values; ``{}`` for one that takes none.

        Why: the same metric name gives other numbers with another baseline or step, so a score
        file records them (``scores.json``'s ``meta.metric_params``). Read back from the attributes
        the constructor stored under the same names; ``progress`` (a progress bar) changes no number.
        """
        import inspect

        sig = inspect.signature(type(self).__init__)
        out: dict[str, Any] = {}
        for name, p in sig.parameters.items():
            plain = p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if name in ("self", "progress") or not plain or not hasattr(self, name):
                continue
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        return out


def _named(targets: Any) -> bool:
    """True when ``targets`` are class names (one, or one per image) rather than indices."""
    t = np.asarray(targets)
    return t.dtype.kind in "US" and t.size > 0


def check_inputs(
    x: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    n_classes: int | None = None,
    size: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Validate once so every metric can assume ``x (N,S,S,3)`` 0..255, ``maps (N,S,S)``, ``targets (N,)``.

    Values are checked, not only shapes (as Quantus does, before any model call): one NaN
    in a map silently turns a max-normalised mask or a pixel ranking into garbage, so
    non-finite maps or images are refused. Float images in 0..1 are scaled to 0..255 with
    a warning, exactly as :func:`agelens.data.images.load_image` treats them. ``size`` is the
    model's input side, when known (see :func:`check_model_size`).
    """
    x = check_images(x, size)
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape != x.shape[:3]:
        raise ValueError(f"maps must be (N, S, S) matching x {x.shape[:3]}, got {maps.shape}")
    check_finite("x", x)
    check_finite("maps", maps)
    return as_pixels(x), maps, check_targets(targets, x.shape[0], n_classes)


def check_images(x: Any, size: int | None, name: str = "x") -> np.ndarray:
    """``x`` as an ``(N, S, S, 3)`` RGB batch at the model's input size (``size``, when known):
    integers as they are (:func:`as_pixels` must still see that they are integers), anything
    else as float32.

    The shape half of :func:`check_inputs`, shared with ``score_methods``, which predicts on its
    images before any metric sees them.
    """
    x = np.asarray(x)
    x = x if x.dtype.kind in "iu" else x.astype(np.float32, copy=False)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be (N, S, S, 3) RGB, got {x.shape}")
    check_model_size(x, size, name)
    return x


def check_model_size(x: np.ndarray, size: int | None, name: str = "x") -> None:
    """Refuse ``x`` whose images are not ``size x size`` (the model's input), naming the fix.

    Why here: scoring an Explanation's own photos and maps is the natural first try, and a
    photo-size batch otherwise fails inside the traced forward pass with a TypeError
    thousands of characters long. ``size`` None (a bare callable) checks nothing.
    """
    if size is not None and tuple(x.shape[1:3]) != (size, size):
        raise ValueError(
            f"{name}: {x.shape[1]}x{x.shape[2]} px images but the model takes {size}x{size}; metrics score "
            "what the model saw: get x and maps with agelens.metrics.explanation_inputs(explanation, model)"
        )


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise a ValueError naming ``name`` and how many of its entries are NaN or infinite."""
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise ValueError(
            f"{name}: {bad} of {a.size} entries are non-finite (NaN or inf); metrics need finite values"
        )


def as_pixels(x: Any, name: str = "x", stacklevel: int = 4) -> np.ndarray:
    """``x`` as float32 RGB 0..255: float values all in 0..1 are scaled by 255 with a warning (the
    loader's rule, :func:`agelens.data.images.scale_unit_floats`, which leaves integers alone: uint8
    0/1 is a dark photo, as ``explain()`` reads it); values outside 0..255 only warn. Give it the
    array as the caller passed it: cast to float first, a dark uint8 photo would look like 0..1.

    Why scale rather than refuse: 0..1 floats are the other common convention (captum,
    Quantus), and read as 0..255 they are an almost black image on which every map scores
    the same; the image loader already scales them, so the metrics do too.
    """
    from agelens.data.images import scale_unit_floats  # the rule's one home (cv2: imported on first use)

    x = np.asarray(x)
    if x.size == 0:
        return x.astype(np.float32)
    scaled = scale_unit_floats(x, name, stacklevel=stacklevel)
    if scaled is not x:
        return scaled.astype(np.float32, copy=False)
    x = x.astype(np.float32, copy=False)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255.0 + 1e-3:
        warnings.warn(
            f"{name}: values span [{lo:.3g}, {hi:.3g}], outside 0..255; agelens models expect RGB 0..255",
            stacklevel=stacklevel,
        )
    return x


def n_classes_of(model: Any) -> int | None:
    """How many classes ``model`` declares (the length of its ``class_names``); None when it declares none.

    The one rule every entry point uses to range-check targets before predicting.
    """
    names = getattr(model, "class_names", None)
    return (len(names) or None) if names is not None else None


def class_indices(targets: Any, class_names: Any) -> Any:
    """Class names in ``targets`` (one, or one per image) as indices into ``class_names``.

    ``explain`` takes ``target="old"``; the metrics take the same, given a model that names its
    classes. Anything else is returned as it is, for :func:`check_targets` to judge.
    """
    t = np.asarray(targets)
    if class_names is None or t.dtype.kind != "U" or not t.size:
        return targets
    names = [str(n) for n in class_names]
    unknown = sorted({str(v) for v in t.reshape(-1)} - set(names))
    if unknown:
        raise ValueError(f"targets: unknown class {unknown[0]!r}; the model's classes are {', '.join(names)}")
    return np.vectorize(names.index, otypes=[np.int64])(t)


def class_targets(
    targets: Any, class_names: Any, n: int, n_classes: int | None = None, hint: str = ""
) -> np.ndarray:
    """``(n,)`` class indices from indices or class names, one for every image or one per image.

    The spellings :meth:`Metric.score` takes (:func:`~agelens.metrics.base.class_indices`),
    so ``targets="old"`` means the same in every entry point. Anything else ("age", a
    contrast) fails in one line that lists what is accepted, never in a bare ``int()``.
    """
    t = np.asarray(targets)
    if t.dtype.kind in "US" and t.size:
        names = [str(c) for c in class_names] if class_names is not None else []
        try:
            return check_targets(class_indices(t.astype(str), names), n, n_classes)
        except ValueError:
            bad = next((v for v in map(str, t.reshape(-1)) if v not in names), str(t.reshape(-1)[0]))
            said = (
                f"class names ({', '.join(names)})"
                if names
                else "class names (given a model that names them)"
            )
            contrast = f"{names[-1]}-{names[0]}" if len(names) > 1 else "old-young"
            raise ValueError(
                f"targets: {bad!r} is not a class; give class indices or {said}, one for every image "
                f"or one per image; or 'age' (models with an age output) or a contrast such as "
                f"{contrast}{hint}"
            ) from None
    return check_targets(targets, n, n_classes)


def check_targets(targets: Any, n: int, n_classes: int | None = None) -> np.ndarray:
    """``(n,)`` int64 class indices in ``[0, n_classes)``; a clear ValueError otherwise.

    Why negative indices are refused: numpy would read ``-1`` as the last class and score
    the wrong class silently. ``n_classes`` may be unknown here (a bare ``predict_fn``);
    :func:`checked_predict_fn` then checks the upper bound on the first prediction.
    """
    t = np.asarray(targets).reshape(-1)
    if t.dtype.kind in "USO" and t.size and isinstance(t[0], str):
        raise ValueError(
            f"targets must be integer class indices here, got names such as {str(t[0])!r}, but nothing "
            "given names the classes (a plain callable cannot): give class indices, pass the model "
            "itself (predict_fn=model), or wrap the model with agelens.wrap_keras_model(model) to use "
            "class names or contrasts"
        )
    if t.dtype.kind == "b" or t.dtype.kind not in "iuf":
        raise ValueError(f"targets must be integer class indices, got dtype {t.dtype}")
    if t.dtype.kind == "f" and (not np.all(np.isfinite(t)) or np.any(t != np.round(t))):
        raise ValueError("targets must be integer class indices, got non-integer values")
    t = t.astype(np.int64)
    if t.shape[0] == 1 and n > 1:  # one class for every image, as explain's target="old" means
        t = np.repeat(t, n)
    if t.shape[0] != n:
        raise ValueError(f"{t.shape[0]} targets for {n} images")
    if t.size and t.min() < 0:
        raise ValueError(f"targets must be class indices >= 0, got {int(t.min())} (no counting from the end)")
    if n_classes is not None and t.size and t.max() >= n_classes:
        raise ValueError(f"targets must be class indices in [0, {n_classes}), got {int(t.max())}")
    return t


def check_probabilities(p: Any, n: int, targets: np.ndarray) -> np.ndarray:
    """Check one ``predict_fn`` output: ``(n, C)`` finite probabilities (rows in [0, 1] summing to 1).

    Why: every faithfulness score is a probability or an area under probabilities; logits
    give "AUCs" of 3.7 that look like numbers. Also checks ``targets < C``.
    """
    if isinstance(p, dict):
        raise ValueError(
            f"predict_fn returned a dict (keys {sorted(map(str, p))}); pass the AgeModel itself "
            "(predict_fn=model) or a callable returning the (N, C) class probabilities"
        )
    p = np.asarray(p)
    if p.ndim != 2 or p.shape[0] != n or p.dtype.kind not in "iuf":
        raise ValueError(
            f"predict_fn must return (N, C) class probabilities, got {p.dtype} {p.shape} for {n} images"
        )
    check_finite("predict_fn output", p)
    sums = p.sum(axis=1)
    if p.min() < -PROB_TOL or p.max() > 1 + PROB_TOL or np.abs(sums - 1).max() > PROB_TOL:
        raise ValueError(
            f"predict_fn must return probabilities (rows in [0, 1] summing to 1), got values in "
            f"[{p.min():.3g}, {p.max():.3g}] with row sums up to {sums.max():.3g}; if it returns "
            "logits, add a softmax: lambda x: scipy.special.softmax(f(x), axis=-1)"
        )
    if targets.size and targets.max() >= p.shape[1]:
        raise ValueError(
            f"targets must be class indices in [0, {p.shape[1]}) for this predict_fn, "
            f"got {int(targets.max())}"
        )
    return p


def checked_predict_fn(predict_fn: PredictFn, targets: np.ndarray) -> PredictFn:
    """``predict_fn`` whose first output is checked by :func:`check_probabilities`, later ones passed on.

    Why the first real call and not a separate probe: a probe would cost an extra model
    call per metric and change the call pattern callers (and tests) rely on; the first
    batch fails before any score is computed.
    """
    checked = False

    def predict(x: np.ndarray) -> np.ndarray:
        nonlocal checked
        out = predict_fn(x)
        if not checked:
            out = check_probabilities(out, len(x), targets)
            checked = True
        return out

    return predict


def random_maps(
    n: int, size: int, seed: int = 0, *, cells: int | None = None, sigma: float = 0.0
) -> np.ndarray:
    """Uniform-noise maps in [0, 1]: the "explains nothing" baseline every method must beat.

    ``cells`` draws noise on a ``cells x cells`` grid and upsamples it bilinearly (like a
    CAM from a small feature map); ``sigma`` Gaussian-blurs pixel noise. Either way the
    result is rescaled to [0, 1] per map, as the methods' maps are.
    """
    rng = np.random.default_rng(seed)
    if cells:
        m = zoom(rng.random((n, cells, cells)), (1, size / cells, size / cells), order=1)[:, :size, :size]
    else:
        m = rng.random((n, size, size))
        if sigma > 0:
            m = gaussian_filter(m, sigma=(0, sigma, sigma), mode="reflect")
    return normalise_maps(m)


def _lag1(maps: np.ndarray) -> float:
    """Mean lag-1 spatial autocorrelation of maps (rows and columns), constant maps left out.

    Each shifted pair is correlated with its own norms (Pearson, not cov / total variance):
    with the total variance a map that is smooth at its own scale can never score above
    about ``1 - 1/size``, so every CAM-like map looked equally smooth.
    """
    m = np.asarray(maps, dtype=np.float64)
    m = m - m.mean(axis=(1, 2), keepdims=True)
    ok = (m**2).sum(axis=(1, 2)) > 1e-12
    if not ok.any():
        return 0.0
    m = m[ok]

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        den = np.sqrt((a**2).sum(axis=(1, 2)) * (b**2).sum(axis=(1, 2)))
        return (a * b).sum(axis=(1, 2)) / np.maximum(den, 1e-12)

    return float(np.mean(0.5 * (corr(m[:, 1:], m[:, :-1]) + corr(m[:, :, 1:], m[:, :, :-1]))))


@lru_cache(maxsize=16)
def _lag1_calibration(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured lag-1 autocorrelation of blurred noise maps of this size, over a grid of sigmas.

    The grid reaches ``size``: maps upsampled from a 4x4 feature map are as smooth as
    noise blurred with a sigma of about an eighth of the image, and the grid must contain
    the answer rather than clamp to its end.
    """
    sigmas = np.r_[0.0, np.geomspace(0.3, size, 48)]
    rhos = np.array([_lag1(random_maps(6, size, seed=99, sigma=s)) for s in sigmas])
    return sigmas, np.maximum.accumulate(rhos)


def smoothness_sigma(maps: np.ndarray) -> float:
    """Blur ``sigma`` that gives white noise the same lag-1 autocorrelation as ``maps``.

    Why: random maps as smooth as a method's maps are the fair baseline for that method
    (deleting blobs hurts a CNN differently from deleting scattered pixels). The
    autocorrelation of blurred noise is measured on a grid of sigmas at the maps' size
    (so finite-size bias cancels) and inverted by interpolation.
    """
    rho = _lag1(maps)
    sigmas, rhos = _lag1_calibration(int(np.shape(maps)[1]))
    if rho <= rhos[0] + 0.02:
        return 0.0
    return float(np.interp(rho, rhos, sigmas))


def random_explainer(size: int, seed: int = 0, sigma: float = 0.0) -> Explainer:
    """An :data:`Explainer` returning fresh noise maps (seeded per call count) whatever the input."""
    calls = iter(range(1 << 30))

    def explain(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return random_maps(len(x), size, seed + 7919 * next(calls), sigma=sigma)

    return explain


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Min-max each map to [0, 1]; a constant map becomes all zeros (it ranks nothing)."""
    m = np.asarray(maps, dtype=np.float32)
    lo = m.min(axis=(1, 2), keepdims=True)
    span = m.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (m - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)
