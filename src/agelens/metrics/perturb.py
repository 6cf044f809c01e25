"""Perturbation machinery shared by the faithfulness metrics: pixel order, baselines, batched curves.

Everything that touches pixels is vectorised over images *and* perturbation steps:
the (image, step) pairs are cut into chunks of ``batch_size`` and each chunk becomes
one ``predict_fn`` call, built by one ``np.where`` (or one sparse solve per image and
level for ROAD), never a Python loop over pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import sparse
from scipy.ndimage import gaussian_filter
from scipy.sparse.linalg import spsolve

from agelens.metrics.base import PredictFn


def pixel_ranks(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rank of every pixel by map value, 0 = most relevant; ties broken at random (seeded).

    Why random tie-breaks: CAM maps are flat over large areas (zero after ReLU); a fixed
    raster order there would delete the top rows first and bias the curves. Only the
    order counts, so signed maps need no clipping: negative values rank last.
    """
    n, h, w = maps.shape
    flat = maps.reshape(n, h * w)
    tie = np.random.default_rng(seed).random(flat.shape)
    order = np.lexsort((tie, -flat), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(h * w)[None, :].repeat(n, 0), axis=-1)
    return ranks.reshape(n, h, w)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the spatial axes of ``(N, S, S, 3)`` images."""
    return gaussian_filter(x.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")


def default_blur_sigma(size: int) -> float:
    """``size / 16`` px: strong enough to wipe wrinkle-scale texture (the age cues) but keep face layout.

    About twice RISE's insertion blur in nominal sigma (its 11x11 kernel, sigma 5, acts like a
    3 px one): a blur that leaves wrinkles readable would credit a map for cues never removed.
    """
    return size / 16.0


def baseline_images(x: np.ndarray, kind: str, sigma: float | None = None) -> np.ndarray:
    """What removed pixels become: ``black`` (0; RISE's zero is in ImageNet-normalised units, the
    mean colour), ``blur`` or ``mean`` (per-image colour)."""
    if kind == "black":
        return np.zeros_like(x, dtype=np.float32)
    if kind == "blur":
        return blur(x, sigma or default_blur_sigma(x.shape[1]))
    if kind == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).astype(np.float32)
    raise ValueError(f"unknown baseline {kind!r}; use black, blur or mean")


def pair_chunks(n_images: int, n_steps: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image index, step index) arrays covering every pair once, ``batch_size`` pairs at a time."""
    ii, kk = np.divmod(np.arange(n_images * n_steps), n_steps)
    for s in range(0, ii.size, batch_size):
        yield ii[s : s + batch_size], kk[s : s + batch_size]


def target_probs(
    predict_fn: PredictFn, x: np.ndarray, targets: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """Probability of each image's target class, predicted in batches."""
    out = [
        np.asarray(predict_fn(x[s : s + batch_size]))[
            np.arange(min(batch_size, len(x) - s)), targets[s : s + batch_size]
        ]
        for s in range(0, len(x), batch_size)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def run_curves(
    predict_fn: PredictFn,
    targets: np.ndarray,
    n_steps: int,
    build: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int = 64,
    progress: str | None = None,
) -> np.ndarray:
    """``(N, n_steps)`` target-class probabilities, where ``build(i, k)`` returns the perturbed inputs."""
    n = len(targets)
    curves = np.empty((n, n_steps), dtype=np.float64)
    chunks = pair_chunks(n, n_steps, batch_size)
    if progress:
        from rich.progress import track

        chunks = track(chunks, description=progress, total=-(-n * n_steps // batch_size), transient=True)
    for ii, kk in chunks:
        probs = np.asarray(predict_fn(build(ii, kk)))
        curves[ii, kk] = probs[np.arange(len(ii)), targets[ii]]
    return curves


def step_counts(fractions: np.ndarray, n_pixels: int) -> np.ndarray:
    """Number of pixels changed at each fraction (rounded)."""
    return np.rint(np.asarray(fractions) * n_pixels).astype(np.int64)


# ----------------------------------------------------------------------------- ROAD imputation

_OFFSETS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]
_WEIGHTS = [1 / 6] * 4 + [1 / 12] * 4  # Rong et al. 2022: direct neighbours weigh twice the diagonals


def _neighbour_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (pixel, neighbour, weight) triples of an ``h x w`` grid, 8-connected, inside the image."""
    r, c = np.divmod(np.arange(h * w), w)
    ps, qs, ws = [], [], []
    for (dr, dc), wt in zip(_OFFSETS, _WEIGHTS, strict=True):
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        ps.append(np.flatnonzero(ok))
        qs.append(rr[ok] * w + cc[ok])
        ws.append(np.full(ok.sum(), wt))
    return np.concatenate(ps), np.concatenate(qs), np.concatenate(ws)


_PAIR_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def impute_linear(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Fill ``removed`` pixels so each is the weighted mean of its 8 neighbours (ROAD's linear imputation).

    The removed pixels are the unknowns of one sparse linear system, ``D u - W_uu u =
    W_uk k`` (known neighbours on the right), solved for all channels at once. Every
    connected group of removed pixels touches a known pixel unless *all* pixels are
    removed, so the system is non-singular; removing everything returns the image mean.
    """
    h, w = removed.shape
    flat = image.reshape(h * w, -1).astype(np.float64)
    u = removed.reshape(-1).astype(bool)
    m = int(u.sum())
    out = flat.copy()
    if m == 0:
        return out.reshape(image.shape)
    if m == u.size:
        out[:] = flat.mean(axis=0)
        return out.reshape(image.shape)
    if (h, w) not in _PAIR_CACHE:
        _PAIR_CACHE[(h, w)] = _neighbour_pairs(h, w)
    p, q, wt = _PAIR_CACHE[(h, w)]
    sel = u[p]
    p, q, wt = p[sel], q[sel], wt[sel]
    idx = np.full(u.size, -1)
    idx[u] = np.arange(m)
    diag = np.bincount(idx[p], weights=wt, minlength=m)
    unknown_q = u[q]
    a = sparse.csr_matrix(
        (
            np.concatenate([diag, -wt[unknown_q]]),
            (
                np.concatenate([np.arange(m), idx[p[unknown_q]]]),
                np.concatenate([np.arange(m), idx[q[unknown_q]]]),
            ),
        ),
        shape=(m, m),
    )
    known = ~unknown_q
    rhs = np.stack(
        [
            np.bincount(idx[p[known]], weights=wt[known] * flat[q[known], ch], minlength=m)
            for ch in range(flat.shape[1])
        ],
        axis=1,
    )
    sol = spsolve(a.tocsc(), rhs)
    out[u] = sol.reshape(m, -1)
    return out.reshape(image.shape)


def noisy_linear_impute(
    image: np.ndarray, removed: np.ndarray, noise_std: float, rng: np.random.Generator
) -> np.ndarray:
    """Linear imputation plus Gaussian noise on the imputed pixels only (ROAD's NoisyLinearImputer).

    Why noise: without it the smooth fill itself is a tell-tale pattern the model can
    read ("class information leakage" through the mask shape); noise masks it.
    """
    out = impute_linear(image, removed)
    if noise_std > 0:
        out[removed] += rng.normal(0.0, noise_std, out[removed].shape)
    return np.clip(out, 0.0, 255.0).astype(np.float32)
