"""Metric names as used by the CLI and ``score_methods``."""

from __future__ import annotations

from typing import Any

from agelens.metrics.base import Metric
from agelens.metrics.complexity import Sparseness
from agelens.metrics.data_randomisation import DataRandomisation
from agelens.metrics.faithfulness import (
    AverageDrop,
    Deletion,
    IncreaseInConfidence,
    Insertion,
    RoadLeRF,
    RoadMoRF,
)
from agelens.metrics.localisation import EnergyInMask, PointingGame
from agelens.metrics.robustness import MaxSensitivity
from agelens.metrics.sanity import ModelRandomisation

METRICS: dict[str, type[Metric]] = {
    m.name: m
    for m in (
        Deletion,
        Insertion,
        AverageDrop,
        IncreaseInConfidence,
        RoadMoRF,
        RoadLeRF,
        PointingGame,
        EnergyInMask,
        ModelRandomisation,
        DataRandomisation,
        MaxSensitivity,
        Sparseness,
    )
}
DEFAULT_METRICS: tuple[str, ...] = (
    "deletion",
    "insertion",
    "average_drop",
    "increase_in_confidence",
    "road_morf",
    "road_lerf",
)


def get_metric(name: str | Metric, **options: Any) -> Metric:
    """A metric instance from its name (options go to its constructor) or the instance itself."""
    if isinstance(name, Metric):
        return name
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name](**options)


def parse_names(spec: str, choices: list[str] | tuple[str, ...], what: str) -> list[str]:
    """``"a,b"`` or ``"all"`` -> list of names, in the order given, checked against ``choices``."""
    if spec.strip().lower() == "all":
        return list(choices)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in choices]
    if bad or not names:
        raise ValueError(
            f"unknown {what} {', '.join(bad) or '(none given)'}; choose from {', '.join(choices)}"
        )
    return list(dict.fromkeys(names))
