"""What to explain: small callables mapping model outputs to one score per image.

A target is called as ``target(logits, probs, age) -> (N,)`` inside the compiled step, so
it must use tensor ops (``keras.ops``). ``age`` is None when the model has no age output.
Gradient methods differentiate this score; Score-CAM and Ablation-CAM measure it on
perturbed inputs.

Why class targets score the *logit*: the softmax couples all classes, so the gradient of a
probability also carries "less of the other classes" evidence; the Grad-CAM paper uses the
pre-softmax score. Score-CAM is the exception (its paper and tf-keras-vis weight channels by
the softmax probability), which :meth:`ClassTarget.on_probs` provides.

:class:`ClassTarget` takes one class, a per-image list, or None (each image's predicted
class). The engine passes per-image class indices as a tensor (``classes``) so that one
compiled step serves every class choice without retracing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from keras import ops

from agelens.wording import means_predicted

PREDICTED = -1


@dataclass(frozen=True)
class ClassTarget:
    """Score of one class (index or name), per-image classes, or the predicted class (None)."""

    index: int | str | tuple[int | str, ...] | None = None
    on: str = "logits"  # or "probs"

    def __post_init__(self) -> None:
        if isinstance(self.index, list):
            object.__setattr__(self, "index", tuple(self.index))
        if self.on not in ("logits", "probs"):
            raise ValueError(f"ClassTarget.on must be 'logits' or 'probs', not {self.on!r}")

    def resolved(self, class_names: Sequence[str]) -> ClassTarget:
        """Names replaced by indices, checked against the model's classes."""
        if self.index is None:
            return self
        if isinstance(self.index, tuple):
            return ClassTarget(tuple(_class_index(i, class_names) for i in self.index), self.on)
        return ClassTarget(_class_index(self.index, class_names), self.on)

    def on_probs(self) -> ClassTarget:
        return ClassTarget(self.index, "probs")

    def class_vector(self, n: int) -> np.ndarray:
        """Per-image class indices (``PREDICTED`` = -1 for "the model's own prediction")."""
        if self.index is None:
            return np.full(n, PREDICTED, np.int32)
        if isinstance(self.index, tuple):
            if len(self.index) != n:
                raise ValueError(f"{len(self.index)} target classes given for {n} images")
            return np.asarray(self.index, np.int32)
        if not isinstance(self.index, int | np.integer):
            raise ValueError(f"unresolved class name {self.index!r}; call resolve_target first")
        return np.full(n, int(self.index), np.int32)

    def __call__(self, logits: Any, probs: Any, age: Any = None, classes: Any = None) -> Any:
        if classes is None:
            classes = ops.convert_to_tensor(self.class_vector(int(logits.shape[0])))
        classes = ops.where(classes < 0, ops.cast(ops.argmax(logits, axis=-1), "int32"), classes)
        scores = probs if self.on == "probs" else logits
        return ops.take_along_axis(scores, ops.expand_dims(classes, -1), axis=-1)[:, 0]

    def describe(self, class_names: Sequence[str]) -> str:
        if self.index is None:
            return "predicted class"
        if isinstance(self.index, tuple):
            return "per-image classes " + ",".join(_name(i, class_names) for i in self.index)
        return _name(self.index, class_names)


@dataclass(frozen=True)
class ContrastTarget:
    """Score of class ``a`` minus class ``b`` (e.g. old minus young): what tells them apart."""

    a: int | str
    b: int | str

    def resolved(self, class_names: Sequence[str]) -> ContrastTarget:
        a, b = _class_index(self.a, class_names), _class_index(self.b, class_names)
        if a == b:
            raise ValueError(f"contrast target needs two different classes, got {self.a!r} twice")
        return ContrastTarget(a, b)

    def __call__(self, logits: Any, probs: Any, age: Any = None) -> Any:
        return logits[:, int(self.a)] - logits[:, int(self.b)]

    def describe(self, class_names: Sequence[str]) -> str:
        return f"{_name(self.a, class_names)} minus {_name(self.b, class_names)}"


@dataclass(frozen=True)
class AgeTarget:
    """The expected age in years (models with an age output only)."""

    def __call__(self, logits: Any, probs: Any, age: Any = None) -> Any:
        if age is None:
            raise ValueError("this model has no age output; use a class target")
        return ops.reshape(age, (-1,))

    def describe(self, class_names: Sequence[str]) -> str:
        return "expected age"


@dataclass(frozen=True)
class CallableTarget:
    """Any user function ``fn(logits, probs, age) -> (N,)`` written with tensor ops; :meth:`checked`
    refuses one that does not give one score per image, or that reads ``age`` on a model without one.

    ``age`` is None when the model has no age output (``has_age=False``, set by
    :func:`resolve_target`). The function is called as written, not converted by AutoGraph (whose
    "could not transform <lambda>" warning two lambdas on one line set off, with no change to what
    runs), unless it needs AutoGraph: Python ``if``/``for`` on tensors, found when it is checked.
    """

    fn: Callable[..., Any]
    has_age: bool = True
    autograph: bool = False

    def __call__(self, logits: Any, probs: Any, age: Any = None) -> Any:
        return self._graph_fn()(logits, probs, age if self.has_age else None)

    def _graph_fn(self) -> Callable[..., Any]:
        if self.autograph:
            return self.fn
        import tensorflow as tf

        return tf.autograph.experimental.do_not_convert(self.fn)

    def checked(self, n_classes: int, has_age: bool = True, no_age_hint: str = "") -> CallableTarget:
        """``self`` once the function, traced as the methods run it on two dummy images, returns one
        score per image.

        A ``(N, classes)`` result would be summed by the gradient, explaining every class at once
        without a word; checked here, before any real graph is traced, the error is one plain line.
        Traced, not run eagerly: a target written with numpy passes an eager run and then fails
        inside the compiled step with a dozen lines of TensorFlow's trace. On a model without an
        age output the function gets ``age=None``; one that then fails, and works given an age,
        reads the age: said in one line (it was TensorFlow's 60-line "None values not supported").
        """
        import tensorflow as tf

        target = replace(self, has_age=has_age, autograph=False)
        try:
            out = target._trace(n_classes)
        except tf.errors.OperatorNotAllowedInGraphError:
            target = replace(target, autograph=True)  # Python control flow on tensors: AutoGraph's job
            out = target._trace(n_classes, quiet=True)
        except Exception as e:  # noqa: BLE001 - the user's code: any failure is reported as theirs
            out = e
        if not has_age and (isinstance(out, Exception) or _score_shape(out) != (2,)):
            with_age = replace(target, has_age=True)._trace(n_classes, quiet=True)
            if not isinstance(with_age, Exception) and _score_shape(with_age) == (2,):
                raise ValueError(
                    f"target {self.describe([])} reads age, which needs a model with an age output; this "
                    f"model has none (score logits or probs instead){no_age_hint}"
                ) from None
        if isinstance(out, Exception):
            raise _failed(self.describe([]), out) from None
        shape = _score_shape(out)
        if shape != (2,):
            raise ValueError(
                f"target {self.describe([])}: must return one score per image, shape (N,); got shape "
                f"{shape or 'a scalar'} for N = 2 (pick a column, e.g. logits[:, 2])"
            )
        return target

    def _trace(self, n_classes: int, quiet: bool = False) -> Any:
        """The function's output traced on two dummy images; with ``quiet``, a failure is returned."""
        import tensorflow as tf

        spec, age = tf.TensorSpec((2, n_classes), tf.float32), tf.TensorSpec((2,), tf.float32)
        try:
            traced = tf.function(lambda lg, pr, ag: self(lg, pr, ag), autograph=self.autograph)
            return traced.get_concrete_function(spec, spec, age).structured_outputs
        except Exception as e:  # noqa: BLE001 - the user's code: any failure is reported as theirs
            if quiet:
                return e
            raise

    def describe(self, class_names: Sequence[str]) -> str:
        return getattr(self.fn, "__name__", "custom")


def _score_shape(out: Any) -> tuple[Any, ...]:
    return tuple(getattr(out, "shape", ()))


def _failed(name: str, e: Exception) -> ValueError:
    """A user target's failure on dummy inputs as one line (the last of TensorFlow's message)."""
    kind = type(e).__name__
    lines = [ln.strip().removeprefix(f"{kind}: ") for ln in str(e).splitlines() if ln.strip()]
    symbolic = isinstance(e, NotImplementedError) or "symbolic" in str(e).lower()
    hint = "; the target runs inside a compiled graph: use keras.ops or tf, not numpy" if symbolic else ""
    return ValueError(f"target {name} failed on dummy inputs: {kind}: {lines[-1] if lines else ''}{hint}")


Target = ClassTarget | ContrastTarget | AgeTarget | CallableTarget


def resolve_target(spec: Any, model: Any) -> Target:
    """Turn a user's target spec into a target checked against ``model`` (an ``AgeModel``).

    Accepted: None / ``"predicted"`` (each image's predicted class), a class index
    (``2``, ``"2"``), a class name (``"old"``), a per-image list of those, a contrast
    ``"old-young"`` (class names may contain hyphens: ``"middle-aged-young"`` works),
    ``"age"`` (expected age), a target object, or any callable ``(logits, probs, age)``.
    """
    names = list(model.class_names)
    if isinstance(spec, ClassTarget | ContrastTarget):
        return spec.resolved(names)
    if isinstance(spec, AgeTarget):
        return _check_age(spec, model)
    has_age = getattr(model, "age_output", None) is not None
    if isinstance(spec, CallableTarget):
        return spec.checked(len(names), has_age, age_hint(model))
    if spec is None:
        return ClassTarget(None)
    if isinstance(spec, list | tuple | np.ndarray):
        return ClassTarget(tuple(_scalar(s) for s in spec)).resolved(names)
    if isinstance(spec, int | np.integer):
        return ClassTarget(int(spec)).resolved(names)
    if callable(spec):
        return CallableTarget(spec).checked(len(names), has_age, age_hint(model))
    if not isinstance(spec, str):
        raise TypeError(f"target must be a class, a list, a string or a callable, not {type(spec).__name__}")
    text = spec.strip()
    low = text.lower()
    if means_predicted(low):
        return ClassTarget(None)
    if low == "age":
        return _check_age(AgeTarget(), model)
    try:
        return ClassTarget(_class_index(text, names))
    except ValueError:
        pass
    for pos in (i for i, ch in enumerate(text) if ch == "-"):
        left, right = text[:pos].strip(), text[pos + 1 :].strip()
        try:
            return ContrastTarget(left, right).resolved(names)
        except ValueError:
            if _is_class(left, names) and _is_class(right, names):
                raise  # both sides are classes: the contrast's own reason ("two different classes")
            continue
    from agelens.wording import target_choices

    raise ValueError(f"unknown target {spec!r}: {target_choices(names)}")


def _is_class(text: str, names: list[str]) -> bool:
    try:
        _class_index(text, names)
    except ValueError:
        return False
    return True


def _check_age(target: AgeTarget, model: Any) -> AgeTarget:
    if getattr(model, "age_output", None) is None:
        raise ValueError(
            f"target 'age' needs a model with an age output; this model has none{age_hint(model)}"
        )
    return target


def age_hint(model: Any) -> str:
    """The way out for a model with several outputs and none read as the age: a head named
    otherwise (``years``) is read as the age only when named."""
    outputs = getattr(getattr(model, "keras_model", None), "outputs", None) or []
    if len(outputs) < 2:
        return ""
    return "; if one of its outputs is the age in years, name it: age_output= (the CLI's --age-output)"


def _scalar(s: Any) -> int | str:
    return int(s) if isinstance(s, int | np.integer) or (isinstance(s, str) and s.isdigit()) else s


def _class_index(value: int | str, names: Sequence[str]) -> int:
    if isinstance(value, int | np.integer) or (isinstance(value, str) and value.strip().isdigit()):
        idx = int(value)
        if not 0 <= idx < len(names):
            raise ValueError(f"class index {idx} out of range (the model has {len(names)} classes)")
        return idx
    lowered = [n.lower() for n in names]
    if str(value).strip().lower() in lowered:
        return lowered.index(str(value).strip().lower())
    raise ValueError(f"unknown class {value!r} (classes: {', '.join(names)})")


def _name(i: int | str, names: Sequence[str]) -> str:
    return names[int(i)] if isinstance(i, int | np.integer) and 0 <= int(i) < len(names) else str(i)


def trace_key(target: Target) -> Any:
    """Compiled steps are cached per key: every ClassTarget shares one (classes come as a tensor)."""
    return ("class", target.on) if isinstance(target, ClassTarget) else target
