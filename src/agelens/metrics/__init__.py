"""Prove the maps: faithfulness, sanity, localisation, robustness, complexity and dataset-level metrics.

Metrics take plain arrays and callables (``predict_fn(x) -> probs``, ``maps (N,S,S)``,
``explainer(x, targets) -> maps``) so they score any model and any method; see
:mod:`agelens.metrics.base`. TensorFlow is only imported by the sanity checks and
the adapters to the real model. Pass ``predict_fn=model`` (an AgeModel or keras.Model) and
it is adapted by :func:`predict_fn_of`; :func:`explanation_inputs` turns an
``agelens.explain`` result (photo-size maps) into the model-size ``x, maps`` metrics take.
"""

from __future__ import annotations

from agelens.metrics.adapters import (
    attribute_by_target,
    explanation_inputs,
    method_explainer,
    method_model_explainer,
    predict_fn_of,
)
from agelens.metrics.base import (
    ANY_ATTRIBUTION,
    NEEDS_MASK,
    NEEDS_MODEL,
    NEEDS_MODEL_NOISY,
    NEEDS_SHUFFLED,
    Explainer,
    Metric,
    MetricResult,
    ModelExplainer,
    PredictFn,
    Score,
    bootstrap_ci,
    normalise_maps,
    paired_difference,
    random_maps,
    smoothness_sigma,
)
from agelens.metrics.complexity import Sparseness, gini
from agelens.metrics.data_randomisation import (
    DataRandomisation,
    DataRandomisationResult,
    data_randomisation_test,
)
from agelens.metrics.faithfulness import (
    AverageDrop,
    Deletion,
    IncreaseInConfidence,
    Insertion,
    RoadLeRF,
    RoadMoRF,
)
from agelens.metrics.localisation import EnergyInMask, PointingGame, energy_in_mask, pointing_hits
from agelens.metrics.registry import DEFAULT_METRICS, METRICS, get_metric
from agelens.metrics.report import ScoreTable, score_methods
from agelens.metrics.robustness import MaxSensitivity
from agelens.metrics.sanity import ModelRandomisation, RandomisationResult, randomisation_test

__all__ = [
    "ANY_ATTRIBUTION",
    "DEFAULT_METRICS",
    "METRICS",
    "NEEDS_MASK",
    "NEEDS_MODEL",
    "NEEDS_MODEL_NOISY",
    "NEEDS_SHUFFLED",
    "AverageDrop",
    "Deletion",
    "EnergyInMask",
    "Explainer",
    "IncreaseInConfidence",
    "MaxSensitivity",
    "Insertion",
    "Metric",
    "MetricResult",
    "ModelExplainer",
    "ModelRandomisation",
    "DataRandomisation",
    "DataRandomisationResult",
    "data_randomisation_test",
    "PointingGame",
    "PredictFn",
    "RandomisationResult",
    "RoadLeRF",
    "RoadMoRF",
    "Score",
    "ScoreTable",
    "Sparseness",
    "attribute_by_target",
    "bootstrap_ci",
    "energy_in_mask",
    "explanation_inputs",
    "get_metric",
    "gini",
    "method_explainer",
    "method_model_explainer",
    "normalise_maps",
    "paired_difference",
    "pointing_hits",
    "predict_fn_of",
    "random_maps",
    "randomisation_test",
    "score_methods",
    "smoothness_sigma",
]
