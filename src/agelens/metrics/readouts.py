"""What a faithfulness metric reads from the model: a class probability, the expected age, or a contrast.

Why: ``agelens explain --target age`` and ``--target old-young`` draw maps of the expected
age and of "old rather than young"; scoring those maps on a class probability would test
them against a question they do not answer. A metric given ``targets="age"`` (or
``"old-young"``) therefore reads that same quantity instead:

* ``age``: the model's expected age in years (models with an age output). Deletion then
  records the predicted age while the most age-raising pixels go, and its AUC is in years.
* ``a-b``: ``p(a) - p(b)``, the probability margin of ``a`` over ``b``, in [-1, 1].

Either becomes a one-column ``predict_fn`` read at column 0, so every metric's arithmetic
runs unchanged; an explainer re-run by a metric (robustness, randomisation) is handed the
spec itself (``"age"``) so that it explains the same quantity, never class 0. Numbers are
comparable between methods on the same readout and images (and against the matched random
maps), not across readouts: an AUC in years is not a probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agelens.metrics.base import PredictFn, check_finite, checked_predict_fn

AGE = "age"


@dataclass(frozen=True)
class Readout:
    """One scalar per image the metrics read instead of a class probability (see the module notes)."""

    kind: str  # "age" or "contrast"
    spec: str  # what explainers are asked to explain: "age", "old-young"
    label: str  # for tables and plot axes
    a: int = -1
    b: int = -1

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.spec, "label": self.label}

    @property
    def output(self) -> str:
        """The model output the readout reads ("age" or "class"), as the sanity checks name them."""
        return "age" if self.kind == AGE else "class"

    def bind(self, source: Any, batch_size: int = 64) -> PredictFn:
        """``x -> (N, 1)`` values from ``source``: a model (for a contrast also a probability callable)."""
        from agelens.metrics.adapters import age_predict_fn, resolve_predict_fn

        if self.kind == AGE:
            return _one_column(age_predict_fn(source, batch_size), self.label)
        probs, _ = resolve_predict_fn(source, batch_size)
        probs = checked_predict_fn(probs, np.array([self.a, self.b]))
        a, b = self.a, self.b
        return _one_column(lambda x: (lambda p: p[:, a] - p[:, b])(np.asarray(probs(x))), self.label)


def readout_of(targets: Any, class_names: Sequence[str] | None) -> Readout | None:
    """The :class:`Readout` a target spec asks for, or None for class targets (indices or names).

    Accepted: ``"age"`` and a contrast ``"a-b"`` of two class names (names may hold hyphens:
    ``"middle-aged-young"``), spelled as ``agelens explain --target`` spells them.
    """
    if isinstance(targets, Readout):
        return targets
    if not isinstance(targets, str):
        return None
    text = targets.strip()
    if text.lower() == AGE:
        return Readout(AGE, AGE, "expected age (years)")
    names = [str(n) for n in class_names or ()]
    if text in names:
        return None
    pair = contrast_pair(text, names)
    if pair is None:
        return None
    a, b = pair
    return Readout("contrast", f"{names[a]}-{names[b]}", f"p({names[a]}) - p({names[b]})", a, b)


def contrast_pair(text: str, names: Sequence[str]) -> tuple[int, int] | None:
    """``(a, b)`` class indices for ``"a-b"``, trying every hyphen as the split; None if none fits.

    Each side is a class name in any case or a class index, as ``agelens explain --target`` reads
    them, so a contrast that explains also scores (and ``explain`` checks it early with this).
    """
    for pos in (i for i, ch in enumerate(text) if ch == "-"):
        a, b = class_of(text[:pos], names), class_of(text[pos + 1 :], names)
        if a is not None and b is not None and a != b:
            return a, b
    return None


def class_of(text: str, names: Sequence[str]) -> int | None:
    """The index of the class ``text`` names (any case) or numbers; None when it names none."""
    part = text.strip()
    if part.isdigit():
        return int(part) if int(part) < len(names) else None
    lowered = [str(n).lower() for n in names]
    return lowered.index(part.lower()) if part.lower() in lowered else None


def _one_column(fn: PredictFn, label: str) -> PredictFn:
    """``fn``'s values as a finite ``(N, 1)`` column; anything else fails in one line naming ``label``."""

    def predict(x: np.ndarray) -> np.ndarray:
        v = np.asarray(fn(x), dtype=np.float64)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.shape != (len(x),):
            raise ValueError(f"{label}: expected one value per image, got {v.shape} for {len(x)} images")
        check_finite(label, v)
        return v[:, None]

    return predict
