"""The page model the template renders: sections of stat cards, tables, figures and sub-sections."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from agelens.report.gallery import Gallery
from agelens.report.tables import Table

WIDE = 1.8
"""Width/height above which a plot gets the whole row: a 1728 px strip in a third of it is unreadable."""


@dataclass
class Figure:
    title: str
    uri: str

    @property
    def wide(self) -> bool:
        size = png_size(self.uri)
        return size is not None and size[0] > WIDE * size[1]


def png_size(uri: str) -> tuple[int, int] | None:
    """(width, height) from a PNG data URI's header; only its first bytes are decoded."""
    head, _, data = uri.partition(",")
    if head != "data:image/png;base64":
        return None
    try:
        raw = base64.b64decode(data[:44])
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


@dataclass
class Section:
    """One block of the page; every part is optional so loaders fill only what their files give."""

    id: str
    title: str
    lead: str = ""
    stats: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    html: str = ""
    gallery: Gallery | None = None
    subsections: list[Section] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # what the numbers conclude, in sentences
    key: str = ""  # this section's line in the page's "Key findings" box
    summary: str = ""  # one line shown above a folded body (e.g. a model card's license and use)
    fold: str = ""  # when set, the body is a collapsed <details> with this label: reference, not results
    terms: list[Term] = field(default_factory=list)  # a glossary's entries


@dataclass
class Term:
    """One glossary entry: a name as the page prints it, what it means in words, how to read it."""

    name: str
    meaning: str
    reading: str = ""  # "higher is better", "lower is better", "not ranked: ..."
    group: str = "Metrics"
