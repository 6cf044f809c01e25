"""Activation maps: where the age model looks (Grad-CAM family, Score-CAM, gradients, occlusion, filters).

Everything goes through one verb, ``method.attribute(images, target) -> maps``; the
convenience functions are :func:`explain` (photos of any size -> :class:`Explanation`) and
:func:`attribute` (model-sized arrays -> maps). See ``docs`` and each module's docstring.
"""

from __future__ import annotations

import sys
import types

from agelens.explain.api import METHODS, attribute, explain, list_methods, make_method
from agelens.explain.explanation import Explanation
from agelens.explain.layers import list_layers, resolve_layer
from agelens.explain.targets import AgeTarget, CallableTarget, ClassTarget, ContrastTarget, resolve_target

__all__ = [
    "METHODS",
    "AgeTarget",
    "CallableTarget",
    "ClassTarget",
    "ContrastTarget",
    "Explanation",
    "attribute",
    "explain",
    "list_layers",
    "list_methods",
    "make_method",
    "resolve_layer",
    "resolve_target",
]


class _CallablePackage(types.ModuleType):
    """Make ``agelens.explain(...)`` work even after this package has been imported.

    ``agelens/__init__`` maps the attribute ``explain`` lazily to :func:`explain`, but once
    ``agelens.explain`` (this package) is imported Python binds the *package* to that
    attribute. Letting the package be called keeps both spellings working.
    """

    def __call__(self, *args: object, **kwargs: object) -> Explanation:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
