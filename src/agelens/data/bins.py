"""Age bins: the one place that turns ages in years into age-group classes.

Keeping the edges and names together (and saving them inside every model file)
means a model trained with other bins can never be evaluated with the wrong ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_EDGES: tuple[float, ...] = (30.0, 60.0)
DEFAULT_NAMES: tuple[str, ...] = ("young", "middle-aged", "old")
MIN_AGE, MAX_AGE = 0, 120


@dataclass(frozen=True)
class AgeBins:
    """Half-open age bins: ``names[i]`` covers ``edges[i-1] <= age < edges[i]``."""

    edges: tuple[float, ...] = DEFAULT_EDGES
    names: tuple[str, ...] = field(default=DEFAULT_NAMES)

    def __post_init__(self) -> None:
        edges = tuple(float(e) for e in self.edges)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if list(edges) != sorted(set(edges)):
            raise ValueError(f"age bin edges must be strictly increasing, got {edges}")
        if len(self.names) != len(edges) + 1:
            raise ValueError(f"{len(edges)} edges need {len(edges) + 1} class names, got {len(self.names)}")

    @classmethod
    def parse(cls, edges: str | Sequence[float] | None, names: str | Sequence[str] | None = None) -> AgeBins:
        """Build bins from CLI-style strings such as ``"30,60"`` and ``"young,middle-aged,old"``."""
        if edges is None:
            e: tuple[float, ...] = DEFAULT_EDGES
        elif isinstance(edges, str):
            e = tuple(float(x) for x in edges.split(",") if x.strip())
        else:
            e = tuple(float(x) for x in edges)
        if names is None:
            n: tuple[str, ...] = (
                DEFAULT_NAMES if e == DEFAULT_EDGES else tuple(_default_name(e, i) for i in range(len(e) + 1))
            )
        elif isinstance(names, str):
            n = tuple(x.strip() for x in names.split(",") if x.strip())
        else:
            n = tuple(names)
        return cls(e, n)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, age: float | np.ndarray) -> np.ndarray:
        """Class index of each age (vectorised)."""
        return np.searchsorted(np.asarray(self.edges), np.asarray(age, dtype=float), side="right")

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "names": list(self.names)}


def bins_from_options(bins: str, names: str | None = None) -> AgeBins:
    """Age bins from the ``--bins``/``--names`` strings of a command; a ``ValueError`` names the option.

    Without ``names`` the classes are named as :meth:`AgeBins.parse` names them (``young,middle-aged,old``
    for the default 30,60, else by their ages: ``0-20``, ``20-40``, ... ; "middle-aged" for 20-40 would
    mislead), so every command that takes ``--bins`` accepts the same bins alone. The messages name
    the options, since the user typed those, not edges and names.
    """
    try:
        edges = tuple(float(x) for x in bins.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--bins {bins}: give ages in years, comma-separated (e.g. 30,60)") from None
    if not edges:
        raise ValueError(f"--bins {bins!r}: give at least one age in years (e.g. 30,60)")
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"--bins {bins}: the ages must increase (e.g. 30,60)")
    if edges[0] <= 0:
        raise ValueError(f"--bins {bins}: an edge at {edges[0]:g} years leaves no one below it (e.g. 30,60)")
    if names is not None:
        given = [n for n in (x.strip() for x in names.split(",")) if n]
        if len(given) != len(edges) + 1:
            raise ValueError(
                f"--names: {len(given)} names for {len(edges) + 1} classes "
                f"(--bins {bins} makes {len(edges) + 1})"
            )
    return AgeBins.parse(edges, names)


def _default_name(edges: tuple[float, ...], i: int) -> str:
    lo = "0" if i == 0 else f"{edges[i - 1]:g}"
    hi = "" if i == len(edges) else f"{edges[i]:g}"
    return f"{lo}-{hi}" if hi else f"{lo}+"
