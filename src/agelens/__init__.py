"""agelens: see what an age-detection CNN looks at.

Heavy dependencies (TensorFlow) are imported lazily so ``agelens --help`` is fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Explanation", "__version__", "explain", "load_model", "wrap_keras_model"]


def __getattr__(name: str) -> Any:  # PEP 562 lazy attributes
    if name == "load_model":
        from agelens.model.io import load_model

        return load_model
    if name == "wrap_keras_model":
        from agelens.model.wrap import wrap_keras_model

        return wrap_keras_model
    if name == "explain":  # the package, callable as explain(): agelens.explain.list_methods() too
        import agelens.explain as package

        return package
    if name == "Explanation":  # what explain returns; Explanation.load reads a saved one back
        from agelens.explain.explanation import Explanation

        return Explanation
    raise AttributeError(f"module 'agelens' has no attribute {name!r}")


def __dir__() -> list[str]:  # so tab completion and dir() show the lazy attributes too
    return sorted(__all__)
