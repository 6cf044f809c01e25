"""The shortcut ("Clever Hans") story on synthetic faces, told with numbers.

Train on faces where every image of a class carries that class's corner stamp
(``generate(..., shortcut=1.0)``), then test on the *same* test faces with and without
the stamps (the generator draws the stamp last, so the faces are pixel-identical
elsewhere). A model that learned the stamp loses accuracy without it, and a faithful
map puts far more of its energy on the stamp than the stamp's area share (what a
random map gets).

The trainer is injected (``train_fn(images, labels) -> AgeModel``) so the lead's
training code runs the real demo and tests can pass a tiny fast trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agelens.metrics._io import to_jsonable
from agelens.metrics.adapters import attribute_by_target, predict_fn_of
from agelens.metrics.base import ModelExplainer, Score, random_maps
from agelens.metrics.localisation import energy_in_mask, pointing_hits

TrainFn = Callable[[np.ndarray, np.ndarray], Any]


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> Score:
    return Score.from_values((probs.argmax(1) == labels).astype(np.float64), True)


def _map_scores(maps: np.ndarray, stamps: np.ndarray, cues: np.ndarray) -> dict[str, Any]:
    share, area = energy_in_mask(maps, stamps)
    cue_share, cue_area = energy_in_mask(maps, cues)
    return {
        "stamp_energy": Score.from_values(share, True).to_dict(),
        "stamp_area": float(np.nanmean(area)),
        "stamp_pointing": Score.from_values(pointing_hits(maps, stamps, tolerance=1), True).to_dict(),
        "cue_energy": Score.from_values(cue_share, True).to_dict(),
        "cue_area": float(np.nanmean(cue_area)) if np.isfinite(cue_area).any() else float("nan"),
    }


def run_shortcut_demo(
    train_fn: TrainFn,
    n_train: int = 600,
    size: int = 64,
    seed: int = 0,
    methods: Sequence[str] = ("gradcam",),
    *,
    n_test: int = 200,
    explainers: Mapping[str, ModelExplainer] | None = None,
    batch_size: int = 64,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train on stamped faces; report the accuracy drop without stamps and each method's map energy on stamps.

    Maps explain the model's predicted class on the stamped test set. ``explainers``
    maps a method name to ``(model, x, targets) -> maps`` and overrides
    ``agelens.explain`` for that name. The result is JSON-ready; with ``out_dir`` it is
    also written there (:func:`write_shortcut`).
    """
    from agelens.data.synthetic import generate

    train = generate(n_train, size, seed, shortcut=1.0)
    stamped = generate(n_test, size, seed + 1, shortcut=1.0)
    clean = generate(n_test, size, seed + 1, shortcut=0.0)
    model = train_fn(train.images, train.labels)
    predict = predict_fn_of(model, batch_size)
    x = stamped.images.astype(np.float32)
    p_stamped = predict(x)
    p_clean = predict(clean.images.astype(np.float32))
    acc_s, acc_c = _accuracy(p_stamped, stamped.labels), _accuracy(p_clean, clean.labels)
    drop = Score.from_values(
        (p_stamped.argmax(1) == stamped.labels).astype(float) - (p_clean.argmax(1) == clean.labels), None
    )
    targets = p_stamped.argmax(1)
    per_method: dict[str, Any] = {}
    for name in methods:
        fn = (explainers or {}).get(name)
        maps = fn(model, x, targets) if fn else attribute_by_target(model, x, targets, name)
        per_method[name] = _map_scores(np.asarray(maps, np.float32), stamped.stamp_masks, stamped.cue_masks)
    per_method["random"] = _map_scores(
        random_maps(len(x), size, seed), stamped.stamp_masks, stamped.cue_masks
    )
    config = {"n_train": n_train, "n_test": n_test, "size": size, "seed": seed, "methods": list(methods)}
    accuracy = {"stamped": acc_s.to_dict(), "clean": acc_c.to_dict(), "drop": drop.to_dict()}
    result = to_jsonable({"config": config, "accuracy": accuracy, "methods": per_method})
    if out_dir is not None:
        write_shortcut(result, out_dir)
    return result


def write_shortcut(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``shortcut.json`` and ``shortcut_stamp_energy.png`` in ``out_dir``, both or neither.

    Why staged (:func:`agelens.atomic.staged_folder`, the JSON moved in last): written one at a
    time, a full disk or a Ctrl-C at the plot left a new shortcut.json beside no plot, or beside
    an earlier run's plot of other numbers, and the report showed them as one story.
    """
    from agelens.atomic import staged_folder
    from agelens.metrics._io import atomic_write_text, dumps
    from agelens.metrics.plots import plot_shortcut

    out = Path(out_dir)
    with staged_folder(out, last="shortcut.json") as tmp:
        files = {
            "json": atomic_write_text(tmp / "shortcut.json", dumps(result)),
            "plot": plot_shortcut(result, tmp / "shortcut_stamp_energy.png"),
        }
    return {k: out / p.name for k, p in files.items()}
