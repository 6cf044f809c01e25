"""The files a training run keeps while it runs, and what resuming one may change.

Why a module of its own: ``agelens train --resume`` must refuse a checkpoint that cannot be
continued (another recipe, other classes, other photos, no epochs left) in a second, from the
checkpoint's metadata alone, before the data is decoded and TensorFlow starts (7-9 s). So
nothing here imports TensorFlow or Keras.

A run writing ``NAME.keras`` keeps, until it ends:

* ``NAME.checkpoint.keras``: the last finished epoch (weights, metadata with the history and
  the best score and epoch so far), and ``NAME.checkpoint.keras.optimizer.npz`` beside it
  (AdamW's step count and moments); resuming continues from these, as Keras' BackupAndRestore
  does, so no epoch is lost;
* ``NAME.best.keras``: the best epoch so far, a model like any other, so an interrupted run
  still leaves its best model behind, and a resumed run ends with the best over all epochs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIX = ".checkpoint.keras"
BEST_SUFFIX = ".best.keras"

RECIPE: dict[str, tuple[str, str]] = {
    "size": ("model_config", "input_size"),
    "alpha": ("model_config", "alpha"),
    "dropout": ("model_config", "dropout"),
    "bn_momentum": ("model_config", "bn_momentum"),
    "age_head": ("model_config", "age_head"),
    "batch_size": ("train_config", "batch_size"),
    "lr": ("train_config", "learning_rate"),
    "schedule": ("train_config", "schedule"),
    "label_smoothing": ("train_config", "label_smoothing"),
    "class_weights": ("train_config", "class_weight_power"),
    "augment": ("train_config", "augment"),
    "patience": ("train_config", "patience"),
    "seed": ("train_config", "seed"),
    "init_seed": ("train_config", "init_seed"),
    "shuffle_labels": ("train_config", "shuffle_labels"),
}
"""``agelens train`` options that are part of a run's recipe, and where its metadata keeps each.
A resumed run takes them from the checkpoint; ``--epochs`` is not among them (it may be raised)."""


def optimizer_state_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's optimizer state (AdamW step count and moments) is kept: beside it.

    Not inside the ``.keras`` file: that file is also a model users load, and the moments
    would triple its size for nothing but resuming.
    """
    p = Path(checkpoint)
    return p.with_name(p.name + ".optimizer.npz")


def best_checkpoint_path(checkpoint: str | Path) -> Path:
    """Where a run keeps its best epoch so far, beside its last-epoch ``checkpoint``."""
    p = Path(checkpoint)
    stem = p.name[: -len(CHECKPOINT_SUFFIX)] if p.name.endswith(CHECKPOINT_SUFFIX) else p.stem
    return p.with_name(stem + BEST_SUFFIX)


def run_state_files(checkpoint: str | Path) -> list[Path]:
    """Every file a run keeps while it runs (removed when it ends): resuming needs them all."""
    return [Path(checkpoint), optimizer_state_path(checkpoint), best_checkpoint_path(checkpoint)]


def split_fingerprint(parts: Iterable[Iterable[str]]) -> dict:
    """A small record of a train/val/test split: sha256 of its sorted name lists, and their sizes.

    Why not the lists: a checkpoint of a 20k-photo run would carry a megabyte of names. The
    hash says whether the split is the same; the sizes say by how much it is not.
    """
    lists = [sorted(str(n) for n in part) for part in parts]
    digest = hashlib.sha256(json.dumps(lists, separators=(",", ":")).encode()).hexdigest()
    return {
        "sha256": digest,
        **{f"n_{k}": len(v) for k, v in zip(("train", "val", "test"), lists, strict=True)},
    }


def split_change(then: Mapping | None, now: Mapping) -> str | None:
    """Why a run cannot resume on this split, or None where it can (or ``then`` records none)."""
    if not then or then.get("sha256") == now.get("sha256"):
        return None
    size = {
        k: sum(int(f.get(f"n_{p}", 0)) for p in ("train", "val", "test"))
        for k, f in (("then", then), ("now", now))
    }
    diff = size["now"] - size["then"]
    if diff:
        how = "added" if diff > 0 else "removed"
        changed = f"{abs(diff)} photo(s) {how} ({size['then']} then, {size['now']} now)"
    else:
        changed = f"as many photos ({size['now']}) but not the same ones, or split otherwise"
    return (
        f"the data changed since the checkpoint: {changed}; resume needs the same photos "
        "(else its test photos may be ones it trained on)"
    )


def classes_problem(resume: Path | str, theirs: Iterable[str] | None, ours: Iterable[str]) -> str | None:
    """Why a checkpoint whose head outputs ``theirs`` cannot go on training on ``ours``, or None
    (also where it records no classes).

    One check and one wording for ``agelens train --resume``, which asks of the checkpoint's
    metadata before a photo is decoded, and :func:`agelens.model.train.train`, which asks of the
    loaded checkpoint: each output means a class, in its order.
    """
    theirs, ours = list(theirs or []), list(ours)
    if not theirs or theirs == ours:
        return None
    return f"{resume}: cannot resume: its classes are {', '.join(theirs)}, the data's {', '.join(ours)}"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def _flag(option: str, value: Any) -> str:
    name = "--" + option.replace("_", "-")
    if isinstance(value, bool):
        return name if value else "--no-" + option.replace("_", "-")
    return f"{name} {value}"


def _why(option: str, saved: Any) -> str:
    if option == "seed":
        return (
            f"the checkpoint's run has --seed {saved}: another seed's test split holds photos it trained on"
        )
    if option == "shuffle_labels":
        return (
            f"trained on {'shuffled' if saved else 'the real'} labels; resume "
            f"{'with' if saved else 'without'} --shuffle-labels"
        )
    if saved is None:  # --init-seed: the run seeded its start with --seed
        return f"the checkpoint has no {_flag(option, True)} (its start was seeded by --seed)"
    return f"the checkpoint has {_flag(option, saved)}"


def resumed_recipe(
    meta: Mapping, given: Mapping[str, Any], explicit: Iterable[str]
) -> tuple[dict, list[str]]:
    """The recipe a resumed run uses, and the options given that differ from it.

    ``given`` holds the command line's values of :data:`RECIPE`'s options, ``explicit`` the
    names of those the user typed. Each option comes from the checkpoint's metadata where it
    records one; an option typed with another value is a difference (the caller refuses them
    all in one line), one left out silently takes the checkpoint's value, since a run continued
    with another recipe is neither run, and its saved config would claim the first for both.
    """
    explicit = set(explicit)
    settings, differences = dict(given), []
    for option, (section, key) in RECIPE.items():
        part = meta.get(section)
        if not isinstance(part, Mapping) or key not in part:
            continue  # an older file without it: the command line decides
        saved = part[key]
        if option == "bn_momentum" and saved is None:
            continue
        asked = given.get(option)
        if option == "init_seed" and saved is None:  # the run's start was seeded by its --seed
            saved_seed = (meta.get("train_config") or {}).get("seed")
            asked = None if asked is not None and _same(asked, saved_seed) else asked
        if option in explicit and not _same(asked, saved):
            differences.append(f"{_flag(option, given.get(option))} ({_why(option, saved)})")
        settings[option] = saved
    return settings, differences


def differences_line(resume: Path | str, differences: list[str]) -> str:
    """The one-line refusal of options that differ from the checkpoint's run."""
    return (
        f"{resume}: cannot resume with options that differ from the checkpoint's run: "
        + "; ".join(differences)
        + ". Leave them out to continue its own recipe (only --epochs may change), or start a new run"
    )


def run_is_over(meta: Mapping, epochs: int) -> bool:
    """Whether resuming this checkpoint for ``epochs`` in all only finishes its run: the run had
    trained all it would (its planned epochs, or it stopped early) but its model was never
    written (a full disk, a locked folder, a Ctrl-C after the last epoch). Such a resume trains
    no epoch; it does what the end of the run would have done (see :func:`agelens.model.train.train`).

    Only a run's own checkpoint (a finished model has nothing left to finish), and only at the
    run's own length: another ``--epochs`` is another run's schedule, whose metadata would then
    claim one it did not train with.
    """
    training = meta.get("training") or {}
    planned = (meta.get("train_config") or {}).get("epochs")
    if training.get("kind") != "checkpoint" or not isinstance(planned, int) or epochs != planned:
        return False
    done = int(training.get("epochs_done", 0) or 0)
    return done >= planned or bool(training.get("stopped_early"))


def epochs_left_problem(resume: Path | str, meta: Mapping, epochs: int) -> str | None:
    """Why ``epochs`` (in all) leaves nothing to train after the checkpoint, or None (also where
    the resume only finishes a run that is over, :func:`run_is_over`)."""
    done = int((meta.get("training") or {}).get("epochs_done", 0) or 0)
    if run_is_over(meta, epochs):
        return None
    if done and epochs <= done:
        planned = (meta.get("train_config") or {}).get("epochs")
        finish = ""
        if isinstance(planned, int) and run_is_over(meta, planned):
            finish = f"; to finish its run as it ended, --epochs {planned}"
        return (
            f"{resume}: already trained {done} epoch(s); to continue, ask for more "
            f"epochs in all (--epochs {done + 1} or more){finish}"
        )
    return None
