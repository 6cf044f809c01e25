"""The page model the template renders: sections of stat cards, tables, figures and sub-sections."""

from __future__ import annotations

from dataclasses import dataclass, field

from agelens.report.gallery import Gallery
from agelens.report.tables import Table


@dataclass
class Figure:
    title: str
    uri: str


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
