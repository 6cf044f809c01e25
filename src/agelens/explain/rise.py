"""RISE (Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC 2018): show the model the photo through many random soft masks and credit each pixel with the
mean target score of the masked photos it stayed visible in.

Why beside occlusion: both read nothing inside the model, only its outputs, but occlusion hides
one square at a time, so it misses regions that matter only together (two eyes, either of which
still gives the age away). RISE hides about half of the face at once, in random smooth blobs,
so such regions are credited too. None of the peer libraries (pytorch-grad-cam, captum, torchcam,
tf-keras-vis) has it.

How (the paper's, with the differences stated):

- ``n_masks`` masks: a ``(cells + 1)`` x ``(cells + 1)`` grid of cells kept with probability
  ``p_keep``, enlarged bilinearly to ``(cells + 2)`` cells' width (a cell is the input side over
  ``cells``, rounded up) and cropped at a random offset inside one cell, so the blobs have soft
  edges and no fixed grid lines. The paper draws ``cells`` x ``cells`` and enlarges to ``cells + 1``;
  ours has one cell more of margin, so a photo shows about ``cells - 1`` cells across (6.2 at the
  defaults and 112 px). Hidden pixels take ``fill``: 0 (black, the paper's product ``I * M``) by
  default, ``"mean"`` for the image's mean colour as occlusion does. The masks are drawn once from
  ``seed``: every photo sees the same masks, and a run repeats.
- Class targets are scored by their softmax probability, as in the paper and Score-CAM; the age
  or a contrast by its own value.
- Difference 1: a pixel's value is the mean score over the masks that kept it (each mask weighted
  by how much of the pixel it kept) *minus the mean score over all masks*. The paper divides by
  ``n_masks * p_keep`` and keeps the mean, which lifts every pixel by the same floor; subtracting it
  leaves what the pixel adds, so ``signed=True`` has a meaning: pixels whose presence lowers the
  score are negative.
- Difference 2: per-pixel normalisation by the masks' actual coverage, not its expectation, so
  the finite sample's uneven coverage (the border is kept less often after the crop) does not show
  up as structure in the map.

Cost: ``n_masks`` forward passes per photo (1,000 by default, against occlusion's 169 at 112 px);
the masked photos are built and scored as occlusion's are (:mod:`agelens.explain.masked`). Fewer
masks give noisier maps: the paper uses 4,000 to 8,000.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import tensorflow as tf

from agelens.explain.base import Method, check_signed, resolve_classes
from agelens.explain.masked import check_fill, check_max_batch, masked_scores
from agelens.explain.targets import ClassTarget, Target


def rise_masks(n: int, size: int, cells: int, p_keep: float, seed: int) -> np.ndarray:
    """``(n, size, size)`` float32 soft masks in [0, 1], drawn from ``seed`` (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    cell = -(-size // cells)  # ceil: the enlarged grid covers the photo at any offset
    big = (cells + 1) * cell
    grids = (rng.random((n, cells + 1, cells + 1)) < p_keep).astype(np.float32)
    shifts = rng.integers(0, cell, size=(n, 2))
    masks = np.empty((n, size, size), np.float32)
    for i in range(n):
        up = cv2.resize(grids[i], (big + cell, big + cell), interpolation=cv2.INTER_LINEAR)
        dy, dx = shifts[i]
        masks[i] = up[dy : dy + size, dx : dx + size]
    return masks


class RISE(Method):
    """RISE: per pixel, the mean target score of the randomly masked photos that kept it, minus the
    mean over all masks (``signed=True`` keeps the pixels whose presence lowers the score, < 0).

    ``n_masks`` masks of a ``cells`` x ``cells`` grid (default 7, so a cell is about an eye at
    112 px; at most the input side), each cell kept with probability ``p_keep``;
    hidden pixels take ``fill`` (0: black, as in the paper; ``"mean"``: the image's mean colour;
    or a grey level in 0..255). ``seed`` draws the masks; ``max_batch`` bounds the masked photos
    per forward pass.
    """

    name = "rise"
    signed_form = True

    def __init__(
        self,
        model: Any,
        *,
        n_masks: int = 1000,
        cells: int | None = None,
        p_keep: float = 0.5,
        fill: str | float = 0.0,
        seed: int = 0,
        batch_size: int = 32,
        max_batch: int = 64,
        signed: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size)
        self.signed_maps = check_signed(self, signed)
        if int(n_masks) < 1:
            raise ValueError(f"rise needs n_masks >= 1, got {n_masks}")
        cells = min(7, self.size) if cells is None else cells
        if not 1 <= int(cells) <= self.size:
            raise ValueError(f"rise needs 1 <= cells <= {self.size} (the input side), got {cells}")
        if not 0.0 < float(p_keep) < 1.0:
            raise ValueError(f"rise needs 0 < p_keep < 1 (the share of cells kept), got {p_keep}")
        check_fill("rise", fill)
        self.n_masks, self.cells, self.p_keep = int(n_masks), int(cells), float(p_keep)
        self.fill, self.seed, self.max_batch = fill, int(seed), check_max_batch(max_batch)
        masks = rise_masks(self.n_masks, self.size, self.cells, self.p_keep, self.seed)
        self._masks = tf.constant(masks)
        self._flat = tf.reshape(self._masks, (self.n_masks, -1))  # the same buffer, seen as rows
        coverage = masks.sum(0)
        self._coverage = tf.constant(np.where(coverage > 0, coverage, 1.0))  # no mask kept it: no 0 / 0
        self._steps: dict = {}

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        logits, probs, age = self.outputs(x)
        classes = resolve_classes(classes, logits)
        t = target.on_probs() if isinstance(target, ClassTarget) else target
        scores = masked_scores(self, self._steps, x, classes, t, self._masks, self.fill)
        kept = tf.reshape(scores @ self._flat, (-1, self.size, self.size)) / self._coverage
        maps = kept - tf.reduce_mean(scores, axis=1)[:, None, None]
        return (maps if self.signed_maps else tf.nn.relu(maps)), probs, age
