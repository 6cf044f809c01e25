"""Phrases the CLI, the explain engine and the report share, worded one way everywhere.

Why a module of its own: the CLI (``cli.common``) and the report's findings both say "1 photo",
"1,200 photos"; each had its own helper, and they disagreed on the thousands separator. It
imports nothing heavy, so checks that run before TensorFlow loads can use it.
"""

from __future__ import annotations

PREDICTED_WORDS = ("", "predicted", "pred", "top", "none")
"""Target words meaning "each image's predicted class" (with None), for explain and the metrics alike."""


def means_predicted(target: object) -> bool:
    """True for None or a word of :data:`PREDICTED_WORDS` (any case): each image's predicted class."""
    return target is None or (isinstance(target, str) and target.strip().lower() in PREDICTED_WORDS)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``3 photos``, ``1,200 photos`` (``plural`` for irregular nouns): messages read as
    sentences, and a dataset's counts as the tables beside them print them."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def target_choices(names: list[str]) -> str:
    """What ``--target`` takes, in this model's words: its own classes and a contrast of two of them
    (a custom model's classes, not the shipped model's ``old-young``)."""
    names = [str(n) for n in names]
    contrast = f", a contrast like '{names[-1]}-{names[0]}'" if len(names) >= 2 else ""
    return (
        f"use a class ({', '.join(names)}) or its index, 'predicted'{contrast}, "
        "or 'age' (models with an age output)"
    )
