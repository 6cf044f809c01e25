"""Build the age classifier: a MobileNetV2 trained from scratch with a two-part head.

Design choices and why:
- Preprocessing (``Rescaling`` to [-1, 1]) lives inside the model, so a saved model
  takes raw RGB in 0..255 and no caller can get the scaling wrong (the seed's bug).
- The group head ends in a separate ``Activation("softmax")`` layer after a linear
  ``age_group_logits`` layer, so the explain engine can take gradients of the class
  score *before* the softmax, as the Grad-CAM paper prescribes.
- The optional ``age`` output is a label distribution over whole years (DLDL):
  the file names carry exact ages, and learning them sharpens the group boundaries.
  Expected age is a frozen ``Dense`` whose kernel is the list of ages, so the file
  uses only stock Keras layers and loads with ``safe_mode=True`` without agelens.
- The backbone is built on our own input tensor, so its layers sit flat in the
  model and are addressable by name (``out_relu``, ``block_13_expand_relu``...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

GROUP_OUTPUT = "age_group"
GROUP_LOGITS = "age_group_logits"
AGE_OUTPUT = "age"
AGE_DIST = "age_distribution"
MAX_MODEL_AGE = 116  # oldest age in UTKFace; the distribution head covers 0..MAX_MODEL_AGE


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the architecture (weights aside)."""

    input_size: int = 128
    alpha: float = 0.75
    dropout: float = 0.2
    num_classes: int = 3
    age_head: bool = True
    # Keras's MobileNetV2 uses BatchNorm momentum 0.999: right for long runs, but after a
    # few hundred steps (the demo) its moving statistics are still mostly initial values
    # and inference-mode predictions are near constant. None keeps the Keras default here;
    # agelens.model.train.train picks one for the run's length (auto_bn_momentum).
    bn_momentum: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def build_age_model(config: ModelConfig = ModelConfig(), seed: int | None = None) -> keras.Model:
    """Return an untrained functional model taking ``(N, S, S, 3)`` RGB in 0..255."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    s = config.input_size
    inputs = keras.Input((s, s, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    backbone = keras.applications.MobileNetV2(
        input_tensor=x,
        input_shape=(s, s, 3),
        alpha=config.alpha,
        include_top=False,
        weights=None,
    )
    if config.bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = config.bn_momentum
    features = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    features = keras.layers.Dropout(config.dropout, name="head_dropout")(features)
    logits = keras.layers.Dense(config.num_classes, name=GROUP_LOGITS)(features)
    probs = keras.layers.Activation("softmax", name=GROUP_OUTPUT, dtype="float32")(logits)
    outputs = {GROUP_OUTPUT: probs}
    if config.age_head:
        age_logits = keras.layers.Dense(MAX_MODEL_AGE + 1, name="age_logits")(features)
        dist = keras.layers.Activation("softmax", name=AGE_DIST, dtype="float32")(age_logits)
        expected = keras.layers.Dense(1, use_bias=False, trainable=False, name=AGE_OUTPUT, dtype="float32")
        age = expected(dist)
        expected.set_weights([np.arange(MAX_MODEL_AGE + 1, dtype="float32")[:, None]])
        outputs[AGE_OUTPUT] = age
        outputs[AGE_DIST] = dist
    return keras.Model(inputs, outputs, name="agelens_mobilenetv2")
