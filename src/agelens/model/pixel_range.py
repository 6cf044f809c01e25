"""Which pixel range a plain ``keras.Model`` is fed, guessed from the layers that act on its input.

A model trained by agelens records its range in its file; a user's ``keras.Model`` does not say
whether it wants 0..1, -1..1 or 0..255 pixels. agelens feeds either raw 0..255 pixels (to a model
that scales them itself, e.g. a ``Rescaling`` to -1..1) or 0..1, and the wrong one makes every
prediction and map come from images 255x too bright or too dark, without an error. So the range
is read from the model itself (:func:`range_guess`): only the preprocessing layers reached from
its input before any convolution or dense layer count (:func:`_input_side`). A ``Rescaling``
there means 0..255; a ``Normalization`` tells by its adapted mean which range it saw; neither
means 0..1. The guess comes with what it went by, in words, so the note that reports it (and
``input_range``, which overrules it) can name it. Keras is imported only when a model is looked at.

A model trained with ``keras.applications``' ``preprocess_input`` applied outside it takes -1..1,
or ImageNet-centred "caffe" or "torch" pixels; nothing in it says so, so those are never
guessed, only given (``input_range``). Each range's conversion is one :class:`PixelFeed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PixelFeed:
    """How raw RGB pixels (floats in 0..255) become what a model takes, for one ``--input-range``.

    One place for every caller that feeds a model (predict, its TFLite path, every explanation
    method, the metrics' traced forward pass), so a map is always over the raw 0..255 pixels and
    gradients flow through the conversion. The steps are those of Keras'
    ``imagenet_utils.preprocess_input``, in its order and float32 arithmetic (RGB -> BGR, divide,
    subtract the mean, divide by the std), so a model trained on ``keras.applications.<arch>.
    preprocess_input`` gets bit for bit what it was trained on. Calling it works on NumPy arrays
    and, with the same operators, on TensorFlow tensors inside ``tf.function`` or a
    ``GradientTape``: the constants are small float32 arrays, no NumPy round trip.
    """

    name: str
    divisor: float = 1.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    bgr: bool = False

    def __call__(self, x: Any) -> Any:
        """``x`` (..., 3) raw RGB 0..255 floats, converted; the very object for "0-255"."""
        if self.bgr:
            x = x[..., ::-1]
        if self.divisor != 1.0:
            x = x / self.divisor
        if self.mean is not None:
            x = x - np.asarray(self.mean, np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, np.float32)
        return x


PIXEL_FEEDS: dict[str, PixelFeed] = {
    "0-255": PixelFeed("0-255"),  # the model rescales its input itself (agelens-trained models)
    "0-1": PixelFeed("0-1", divisor=255.0),
    # keras.applications' preprocess_input modes: "tf", "caffe" (BGR order, ImageNet mean) and "torch"
    "-1-1": PixelFeed("-1-1", divisor=127.5, mean=(1.0, 1.0, 1.0)),
    "caffe": PixelFeed("caffe", mean=(103.939, 116.779, 123.68), bgr=True),
    "torch": PixelFeed("torch", divisor=255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
}
"""Every ``--input-range`` by name, in the order the option lists them."""


def recorded_range(meta: dict) -> str | None:
    """The range an agelens model file records: its ``input_range``, else (files from before the
    keras.applications ranges) ``rescales_input`` as 0-255 or 0-1; ``None`` where it records neither
    (a plain Keras model). Loading (``wrap``) and the CLI's overrule warning read it alike."""
    if meta.get("input_range") in PIXEL_FEEDS:
        return str(meta["input_range"])
    if isinstance(meta.get("rescales_input"), bool):
        return "0-255" if meta["rescales_input"] else "0-1"
    return None


def range_guess(km: Any) -> tuple[bool, str]:
    """Whether a plain user model takes raw 0..255 pixels (it scales them itself), judged by its layers,
    and what that went by, in words a note can end with.

    Only layers that act on the input count: those reached from the model's input through layers
    that leave each pixel's place and meaning alone (other preprocessing layers such as
    ``Resizing``, ``CenterCrop`` or random flips, and the inputs of nested models, as in a
    ``keras.applications`` base), before any convolution or dense layer. A ``Rescaling`` on the
    way out (``Rescaling(100)`` turning age / 100 back into years) says nothing of the pixels.

    A Rescaling on the input means 0..255 (EfficientNet's Rescaling is followed by a Normalization
    that only centres). Without one, a Normalization's own mean tells which range it was
    adapted on: pixel means are about 100 on 0..255 data and about 0.5 on 0..1 data (a model
    normalising 0..1 input was fed 255x too bright before); an un-adapted one (mean 0) says
    nothing and counts as 0..255, as before. Neither layer: 0..1, the usual convention for a
    model trained on scaled images. ``input_range`` overrules all this.
    """
    import keras

    layers = _input_side(km)[0]
    if any(isinstance(layer, keras.layers.Rescaling) for layer in layers):
        return True, "a Rescaling layer acts on its input"
    norms = [layer for layer in layers if isinstance(layer, keras.layers.Normalization)]
    if not norms:
        return False, "no Rescaling or Normalization layer acts on its input"
    means = [getattr(layer, "mean", None) for layer in norms]
    if not any(_mean_says_0_255(mean) for mean in means):
        return False, "the Normalization on its input was adapted on 0..1 data"
    return True, "the Normalization on its input was adapted on 0..255 data (or not adapted)"


def _keeps_pixels(layer: Any) -> bool:
    """Whether ``layer`` passes pixels on without mixing them into features: a preprocessing layer."""
    import keras

    if isinstance(layer, keras.layers.InputLayer | keras.layers.Identity | keras.layers.Rescaling):
        return True
    if isinstance(layer, keras.layers.Normalization):
        return True
    # Resizing, CenterCrop, RandomFlip, RandomRotation...: Keras' image preprocessing layers
    return any(c.__name__ == "BaseImagePreprocessingLayer" for c in type(layer).__mro__)


def _input_side(model: Any, depth: int = 0) -> tuple[list[Any], bool]:
    """The preprocessing layers (:func:`_keeps_pixels`) that act on ``model``'s input, nested models'
    included, and whether every output of ``model`` is still pixels (a preprocessing model).

    Follows tensors from the model's inputs: a layer call whose inputs are all pixels is on the
    input side; if the layer keeps pixels, its outputs are pixels too. Tensors are compared by
    identity, so a layer shared with another model counts only through its calls in this graph.
    """
    import keras

    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):  # an unbuilt or subclassed model: no graph to follow
        return [], False
    pixels = {id(t) for t in inputs}
    found: list[Any] = []
    calls = [(layer, node) for layer in model.layers for node in getattr(layer, "_inbound_nodes", [])]
    done: set[int] = set()
    grew = True
    while grew:  # until no call is added: layers listed out of order still join
        grew = False
        for i, (layer, node) in enumerate(calls):
            ins = list(getattr(node, "input_tensors", []) or [])
            if i in done or not ins or not all(id(t) in pixels for t in ins):
                continue
            done.add(i)
            if isinstance(layer, keras.Model) and depth < 32:
                inner, passes = _input_side(layer, depth + 1)
                found.extend(inner)
            else:
                passes = _keeps_pixels(layer)
                if passes:
                    found.append(layer)
            if passes:
                pixels.update(id(t) for t in getattr(node, "output_tensors", []) or [])
                grew = True
    return found, bool(outputs) and all(id(t) in pixels for t in outputs)


def _mean_says_0_255(mean: Any) -> bool:
    """A Normalization mean above 2 (or none, or all zero: not adapted) reads as 0..255 input."""
    try:
        top = float(np.max(np.abs(np.asarray(mean)))) if mean is not None else 0.0
    except (TypeError, ValueError):
        return True
    return top == 0.0 or top > 2.0
