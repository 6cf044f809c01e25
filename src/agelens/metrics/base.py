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

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

PredictFn = Callable[[np.ndarray], np.ndarray]
"""``(N, S, S, 3)`` float RGB 0..255 at model size -> ``(N, C)`` class probabilities."""
Explainer = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(x, targets)`` -> ``(N, S, S)`` maps in [0, 1] (a method bound to one model)."""
ModelExplainer = Callable[[Any, np.ndarray, np.ndarray], np.ndarray]
"""``(model, x, targets)`` -> maps: a method that must be re-run on another model (sanity checks)."""

ANY_ATTRIBUTION = "any attribution"
NEEDS_MASK = "needs ground-truth mask"
NEEDS_MODEL = "needs the model (re-explains randomised copies)"

CONTEXT_KEYS = ("predict_fn", "masks", "model", "model_explainer", "batch_size", "seed")


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


class Metric(ABC):
    """A metric declares how to read it (``higher_is_better``), what it applies to, and what it needs.

    Subclasses implement :meth:`_evaluate`; ``metric(x, maps, targets, **context)``
    returns one score per image (NaN where the metric does not apply, e.g. an empty mask).
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    applies_to: ClassVar[str] = ANY_ATTRIBUTION
    category: ClassVar[str] = "faithfulness"
    requires: ClassVar[tuple[str, ...]] = ()

    def __call__(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, **context: Any) -> np.ndarray:
        return self.evaluate(x, maps, targets, **context).scores

    def evaluate(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, **context: Any) -> MetricResult:
        unknown = set(context) - set(CONTEXT_KEYS)
        if unknown:
            raise TypeError(f"{self.name}: unknown context {sorted(unknown)}; use {CONTEXT_KEYS}")
        ctx = Context(**context)
        missing = [k for k in self.requires if getattr(ctx, k) is None]
        if missing:
            raise ValueError(f"metric {self.name!r} ({self.applies_to}) needs {', '.join(missing)}")
        x, maps, targets = check_inputs(x, maps, targets)
        if ctx.masks is not None and np.shape(ctx.masks) != maps.shape:
            raise ValueError(f"{self.name}: masks shape {np.shape(ctx.masks)} != maps shape {maps.shape}")
        return self._evaluate(x, maps, targets, ctx)

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
        }


def check_inputs(x: np.ndarray, maps: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Validate shapes once so every metric can assume ``x (N,S,S,3)``, ``maps (N,S,S)``, ``targets (N,)``."""
    x = np.asarray(x, dtype=np.float32)
    maps = np.asarray(maps, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"x must be (N, S, S, 3) RGB, got {x.shape}")
    if maps.shape != x.shape[:3]:
        raise ValueError(f"maps must be (N, S, S) matching x {x.shape[:3]}, got {maps.shape}")
    if targets.shape[0] != x.shape[0]:
        raise ValueError(f"{targets.shape[0]} targets for {x.shape[0]} images")
    return x, maps, targets


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
