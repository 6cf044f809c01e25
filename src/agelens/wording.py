"""Counts in messages and report findings, worded one way everywhere.

Why a module of its own: the CLI (``cli.common``) and the report's findings both say "1 photo",
"1,200 photos"; each had its own helper, and they disagreed on the thousands separator.
"""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 photo``, ``3 photos``, ``1,200 photos`` (``plural`` for irregular nouns): messages read as
    sentences, and a dataset's counts as the tables beside them print them."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
