"""Activation maps: where the age model looks (Grad-CAMs, Score-CAM, gradients, occlusion, RISE, filters).

Everything goes through one verb, ``method.attribute(images, target) -> maps``; the
convenience functions are :func:`explain` (photos of any size -> :class:`Explanation`) and
:func:`attribute` (model-sized arrays -> maps). See ``docs`` and each module's docstring.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agelens.explain.api import METHODS, attribute, explain, list_methods, make_method
    from agelens.explain.explanation import Explanation
    from agelens.explain.feature_vis import filter_atlas, filter_patterns, save_atlas
    from agelens.explain.layers import list_layers, resolve_layer
    from agelens.explain.targets import (
        AgeTarget,
        CallableTarget,
        ClassTarget,
        ContrastTarget,
        resolve_target,
    )

_HOME = {
    "METHODS": "api",
    "attribute": "api",
    "explain": "api",
    "list_methods": "api",
    "make_method": "api",
    "Explanation": "explanation",
    "filter_atlas": "feature_vis",
    "filter_patterns": "feature_vis",
    "save_atlas": "feature_vis",
    "list_layers": "layers",
    "resolve_layer": "layers",
    "AgeTarget": "targets",
    "CallableTarget": "targets",
    "ClassTarget": "targets",
    "ContrastTarget": "targets",
    "resolve_target": "targets",
}
"""Where each public name lives. Loaded on first use (PEP 562): importing a light submodule such as
``agelens.explain.explanation`` (output folders, manifests) must not load TensorFlow, so the CLI
can refuse a bad path or a full output folder in a fraction of a second."""


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "METHODS",
    "AgeTarget",
    "CallableTarget",
    "ClassTarget",
    "ContrastTarget",
    "Explanation",
    "attribute",
    "explain",
    "filter_atlas",
    "filter_patterns",
    "list_layers",
    "list_methods",
    "make_method",
    "resolve_layer",
    "resolve_target",
    "save_atlas",
]


class _CallablePackage(types.ModuleType):
    """Make ``agelens.explain(...)`` work even after this package has been imported.

    ``agelens/__init__`` maps the attribute ``explain`` lazily to :func:`explain`, but once
    ``agelens.explain`` (this package) is imported Python binds the *package* to that
    attribute. Letting the package be called keeps both spellings working.
    """

    def __call__(self, *args: object, **kwargs: object) -> Explanation:
        from agelens.explain.api import explain

        return explain(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """:func:`explain`'s, so IDE and notebook tooltips show its parameters on either spelling."""
        from agelens.explain.api import explain

        return inspect.signature(explain)


sys.modules[__name__].__class__ = _CallablePackage
