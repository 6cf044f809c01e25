"""Occlusion sensitivity (Zeiler & Fergus 2014): hide one square of the photo at a time and
measure how much the target score drops.

Why it belongs beside the CAMs and gradients: it reads nothing inside the model (no layer, no
gradient), only what the model outputs when part of the face is gone, so it is evidence of a
different kind. Where Grad-CAM and occlusion agree, the agreement does not come from the
same gradient. It is also what a user means by "the model needs this region".

A pixel's value is the mean drop over every patch that covers it (captum's ``Occlusion``
averages the same way). Drops are clipped at zero, as Grad-CAM's ReLU does: the map shows
where hiding the face *lowers* the target score. Cost: one forward pass per patch position
(13 x 13 = 169 at 112 px with the default patch); the occluded images are built and scored
inside one compiled function, at most ``max_batch`` of them per pass (:mod:`agelens.explain.masked`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from agelens.explain.base import Method, check_signed, resolve_classes, score
from agelens.explain.masked import check_fill, check_max_batch, masked_scores
from agelens.explain.targets import Target


def patch_starts(size: int, window: int, stride: int) -> list[int]:
    """Offsets of the patches along one side; the last one ends at the border, so with
    ``stride <= window`` every pixel is covered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


class Occlusion(Method):
    """Occlusion sensitivity: per pixel, the mean drop in the target score when a patch covering it
    is filled with the image's mean colour (``fill="mean"``) or a grey level in 0..255.

    ``window`` is the patch side in pixels (default: a seventh of the input side, so a patch
    hides about an eye at 112 px); ``stride`` the step between patches (default: half the
    window, so each pixel is covered by about four patches). Class targets are scored on the
    logit, as Grad-CAM's are: a softmax probability near 1 hardly moves when one patch is hidden.
    """

    name = "occlusion"
    signed_form = True

    def __init__(
        self,
        model: Any,
        *,
        window: int | None = None,
        stride: int | None = None,
        fill: str | float = "mean",
        batch_size: int = 32,
        max_batch: int = 64,
        signed: bool = False,
    ) -> None:
        super().__init__(model, batch_size=batch_size)
        self.signed_maps = check_signed(self, signed)  # keep patches whose hiding raises the score (< 0)
        s = self.size
        self.window = int(window) if window is not None else max(2, round(s / 7))
        self.stride = int(stride) if stride is not None else max(1, self.window // 2)
        if not 1 <= self.window <= s or not 1 <= self.stride <= self.window:
            raise ValueError(  # a stride above the window would leave pixels no patch ever hides
                f"occlusion needs 1 <= window <= {s} and 1 <= stride <= window, "
                f"got window {self.window}, stride {self.stride}"
            )
        check_fill("occlusion", fill)
        self.fill = fill
        self.max_batch = check_max_batch(max_batch)
        starts = patch_starts(s, self.window, self.stride)
        masks = np.zeros((len(starts) ** 2, s, s), np.float32)
        for k, (r, c) in enumerate((r, c) for r in starts for c in starts):
            masks[k, r : r + self.window, c : c + self.window] = 1.0
        self._keep = tf.constant(1.0 - masks)  # what each occluded copy still shows
        self._flat = tf.reshape(tf.constant(masks), (len(masks), s * s))  # the patches, one row each
        self._coverage = tf.constant(masks.sum(0))  # >= 1 everywhere: the last patch ends at the border
        self._steps: dict = {}

    @property
    def positions(self) -> int:
        """Forward passes per image (patch positions)."""
        return int(self._keep.shape[0])

    def _raw(self, x: Any, classes: Any, target: Target) -> tuple[Any, Any, Any]:
        logits, probs, age = self.outputs(x)
        classes = resolve_classes(classes, logits)
        base = score(target, logits, probs, age, classes)
        hidden = masked_scores(self, self._steps, x, classes, target, self._keep, self.fill)
        drops = base[:, None] - hidden
        maps = tf.reshape(drops @ self._flat, (-1, self.size, self.size)) / self._coverage
        return (maps if self.signed_maps else tf.nn.relu(maps)), probs, age
