"""The age model every command reads through, and the one error a model that cannot be one raises.

Whatever a model came from (an agelens ``.keras`` file, a user's plain Keras model, its TFLite
copy), predict, evaluate, explain and the metrics see an :class:`AgeModel`: the Keras model plus
what its file or its shapes said about feeding and reading it. It lives apart from loading
(:mod:`agelens.model.io`) and from reading a plain model (:mod:`agelens.model.wrap`) so that both
depend on it, and code that only takes a model imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agelens.data.bins import AgeBins
from agelens.model.pixel_range import PIXEL_FEEDS, PixelFeed

ONE_UNIT_READINGS = ("age", "probability")
"""How a one-unit output may be read: ``one_unit=`` of :func:`~agelens.model.io.load_model` and
:func:`~agelens.model.wrap.wrap_keras_model`."""
INPUT_RANGES = tuple(PIXEL_FEEDS)
"""Pixel ranges a model may expect: raw 0..255 (it rescales inside), 0..1 (agelens divides by 255),
or one of ``keras.applications``' ``preprocess_input`` modes applied outside the model: "-1-1"
(``x / 127.5 - 1``), "caffe" (BGR, ImageNet mean subtracted) or "torch" (0..1, ImageNet mean and
std); see :class:`~agelens.model.pixel_range.PixelFeed`."""


class ModelLoadError(ValueError):
    """One-line error naming the model file and the reason it could not be used."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class AgeModel:
    """A Keras model plus what agelens needs to feed and read it.

    ``keras_model`` takes ``(N, S, S, 3)`` float RGB in 0..255 (our models rescale
    internally), or those pixels converted by :attr:`feed` (:attr:`input_range`).
    ``group_output`` names the dict key or index of the class probabilities; ``age_output``
    the expected-age output where one exists.
    """

    keras_model: Any
    class_names: list[str]
    input_size: int
    bins: AgeBins | None = None
    metadata: dict = field(default_factory=dict)
    group_output: str | int = 0
    age_output: str | int | None = None
    path: Path | None = None
    rescales_input: bool = True
    input_range_guessed: str = ""
    """Why :attr:`input_range` is what it is, where it was guessed from the model's layers (a plain
    Keras model read without ``input_range=``): "no Rescaling or Normalization layer acts on its
    input"...; "" where it was given or an agelens file records it. Commands say it once."""
    pixel_range: str = ""
    """The ``--input-range`` name it is fed by (one of :data:`INPUT_RANGES`), where known; "" means
    as :attr:`rescales_input` says (0-255 or 0-1), as models made before the other ranges were."""

    def __post_init__(self) -> None:
        """A named range decides :attr:`rescales_input` ("fed raw 0..255"), so the two never disagree."""
        if self.pixel_range:
            if self.pixel_range not in PIXEL_FEEDS:
                raise ValueError(f"input range {self.pixel_range!r}: use one of {', '.join(INPUT_RANGES)}")
            self.rescales_input = self.pixel_range == "0-255"

    @property
    def input_range(self) -> str:
        """The pixels it is fed, as ``--input-range`` names them: "0-255", "0-1" (divided by 255),
        "-1-1", "caffe" or "torch" (``keras.applications``' ``preprocess_input`` modes)."""
        return self.pixel_range or ("0-255" if self.rescales_input else "0-1")

    @property
    def feed(self) -> PixelFeed:
        """Raw RGB 0..255 pixels -> what the Keras model takes; every caller that feeds it uses this."""
        return PIXEL_FEEDS[self.input_range]

    @property
    def read_as(self) -> dict[str, Any]:
        """How the model is read, given or guessed (--input-size, --class-names, --class-output,
        --age-output, --input-range, --one-unit, --bins): a plain model's numbers and maps depend
        on each, and a guess is only checkable if a manifest writes it down."""
        read = {
            "input_size": int(self.input_size),
            "class_names": [str(n) for n in self.class_names],
            "class_output": self.group_output,
            "age_output": self.age_output,
            "input_range": self.input_range,
        }
        if self.metadata.get("one_unit") in ONE_UNIT_READINGS:  # a one-unit model: how it was read
            read["one_unit"] = self.metadata["one_unit"]
            read["groups_from_age"] = self.groups_from_age
            if self.groups_from_age and self.bins is not None:
                read["age_bins"] = list(self.bins.edges)
        return read

    @property
    def groups_from_age(self) -> bool:
        """Whether the classes are the model's age in years cut by its bins (a one-unit age regressor).

        Its probabilities are then a softmax over each group's margin in years (how far inside
        its bin the age lies), not a trained classifier's confidence; see :mod:`agelens.model.age_head`.
        """
        return bool(self.metadata.get("groups_from_age", False))

    @property
    def has_age(self) -> bool:
        return self.age_output is not None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @staticmethod
    def _pick(outputs: Any, key: str | int) -> Any:
        """One output of a multi-output model (dict or list), or the only one."""
        return outputs[key] if isinstance(outputs, dict | list | tuple) else outputs

    @property
    def test_time_flip(self) -> bool:
        """Whether predictions average the image and its mirror image (set in the model's metadata).

        Faces are left-right symmetric, so the mirror is a free second look; on the
        shipped model it adds about 0.7 points of held-out accuracy (see its card).
        """
        return bool(self.metadata.get("test_time_flip", False))

    def predict(
        self, images: np.ndarray, batch_size: int = 128, flip: bool | None = None, fast: bool = False
    ) -> dict[str, np.ndarray]:
        """Class probabilities (and ages in years where the model has them) for model-sized images.

        ``flip`` averages each image with its mirror image; ``None`` follows the model's
        metadata (:attr:`test_time_flip`). ``fast`` runs the same weights through
        TensorFlow Lite (:mod:`agelens.model.fast`, about 2x faster on CPU) where it is
        available, and through Keras otherwise; bulk scoring uses it, explanations do not.
        The converted copy is made on the first fast call: weights changed after it are
        not seen by later fast calls on this object (load the model again).
        """
        x = self.feed(np.asarray(images, dtype=np.float32))
        views = [x, x[:, :, ::-1]] if (self.test_time_flip if flip is None else flip) else [x]
        runner = None
        if fast and len(x):
            from agelens.model.fast import AGE, PROBS, fast_predictor

            runner = fast_predictor(self)
        probs, ages = [], []
        for v in views:
            if runner is not None:
                out = runner(v, batch_size=min(batch_size, 64))
                probs.append(out[PROBS])
                if AGE in out:
                    ages.append(out[AGE])
                continue
            out = self.keras_model.predict(v, batch_size=batch_size, verbose=0)
            probs.append(np.asarray(self._pick(out, self.group_output), dtype=np.float32))
            if self.age_output is not None:
                ages.append(np.asarray(self._pick(out, self.age_output), dtype=np.float32).reshape(-1))
        result = {"probabilities": np.mean(probs, axis=0)}
        if ages:
            result["age"] = np.mean(ages, axis=0)
        return result
