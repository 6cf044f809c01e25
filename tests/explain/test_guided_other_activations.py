"""Guided backprop on networks whose activations are not ReLUs (ConvNeXt's gelu, EfficientNet's
swish, MobileNetV3's hard_swish): only ReLU/ReLU6 have a guided rule, and such a model's map used
to be the plain gradient (saliency's map) labelled guided backprop, without a word. Now the method
counts what it guided, warns when that is nothing or only part, and the saved settings say it.
"""

from __future__ import annotations

import json
import warnings

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.explain import explain, make_method
from agelens.explain.gradients import GuidedBackprop, GuidedGradCAM, Saliency, UnguidedActivationsWarning

SIZE = 32


def _images(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.float32)


def _head(x: keras.KerasTensor, inp: keras.KerasTensor, name: str) -> keras.Model:
    """Pooling and a softmax head (not a hidden activation: never counted), seeded weights."""
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name=name)


def relu_model() -> keras.Model:
    """Every ReLU form: a fused ``activation="relu"``, a ReLU layer, an ``Activation("relu6")`` and a
    bare ``keras.ops.relu`` call (the last was left unguided before)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="fused")(x)
    x = keras.layers.ReLU(name="layer")(keras.layers.Conv2D(4, 3, name="c2")(x))
    x = keras.layers.Activation("relu6", name="act")(keras.layers.Conv2D(4, 3, name="c3")(x))
    x = keras.ops.relu(keras.layers.Conv2D(4, 3, name="c4")(x))
    return _head(x, inp, "all_relu")


def smooth_model(kind: str) -> keras.Model:
    """Only ``kind`` (gelu, swish): fused in one convolution and as a layer after another."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation=kind, name="fused")(x)
    x = keras.layers.Activation(kind, name="act")(keras.layers.Conv2D(4, 3, name="c2")(x))
    return _head(x, inp, f"all_{kind}")


def mixed_model() -> keras.Model:
    """MobileNetV3-like: ReLUs plus hard_swish, and the other layer activations with no guided rule."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="fused")(x)
    x = keras.layers.Activation("hard_swish", name="hs")(keras.layers.Conv2D(4, 3, name="c2")(x))
    x = keras.layers.ReLU(6.0, name="r6")(keras.layers.Conv2D(4, 3, name="c3")(x))
    x = keras.layers.LeakyReLU(name="leaky")(x)
    x = keras.layers.PReLU(name="prelu")(x)
    x = keras.layers.ELU(name="elu")(x)
    return _head(x, inp, "mixed")


def _said(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "guided" in str(w.message)]


def _build(cls: type, model: keras.Model) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method = cls(model)
    return method, _said(caught)


def test_an_all_relu_model_is_guided_everywhere_without_a_warning() -> None:
    method, said = _build(GuidedBackprop, relu_model())
    assert said == []
    assert method.recorded == {"guided_activations": 4, "unguided_activations": {}}


def test_a_bare_keras_ops_relu_is_guided_like_a_relu_layer() -> None:
    """``keras.ops.relu(x)`` in a functional graph was not swapped: its map was the plain gradient."""

    def model(bare: bool) -> keras.Model:
        keras.utils.set_random_seed(1)
        inp = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(4, 3, name="c1")(keras.layers.Rescaling(1 / 255)(inp))
        x = keras.ops.relu(x) if bare else keras.layers.ReLU(name="r")(x)
        return _head(keras.layers.Conv2D(4, 3, name="c2")(x), inp, f"bare_{bare}")

    x = _images()
    bare, layer = GuidedBackprop(model(True)), GuidedBackprop(model(False))
    np.testing.assert_allclose(bare.input_gradients(x, 0), layer.input_gradients(x, 0), rtol=1e-5, atol=1e-9)
    assert not np.allclose(Saliency(model(True)).input_gradients(x, 0), layer.input_gradients(x, 0))


@pytest.mark.parametrize(
    ("kind", "shown", "recorded"), [("gelu", "2 gelu", "gelu"), ("swish", "2 silu/swish", "silu")]
)
def test_a_model_with_no_relu_warns_its_map_is_saliencys(kind: str, shown: str, recorded: str) -> None:
    model = smooth_model(kind)
    method, said = _build(GuidedBackprop, model)
    assert said == [
        f"guided-backprop: this model has no ReLU to guide (its activations: {shown}), "
        "so the map is the plain input gradient, as saliency gives"
    ]
    assert method.recorded == {"guided_activations": 0, "unguided_activations": {recorded: 2}}
    with pytest.warns(UnguidedActivationsWarning) as caught:
        GuidedBackprop(model)
    assert caught[0].filename == __file__  # the caller's line, not an agelens file
    x = _images()
    np.testing.assert_allclose(method.attribute(x, 0), Saliency(model).attribute(x, 0), atol=1e-6)


def test_a_partly_guided_model_says_how_many_and_which_were_not() -> None:
    method, said = _build(GuidedBackprop, mixed_model())
    assert said == [
        "guided-backprop: 2 of 6 activations were guided (ReLU/ReLU6); the other 4 (1 elu, "
        "1 hard_silu/hard_swish, 1 leaky_relu, 1 prelu) pass the plain gradient, "
        "so the map is only partly guided"
    ]
    unguided = {"elu": 1, "hard_silu": 1, "leaky_relu": 1, "prelu": 1}
    assert method.recorded == {"guided_activations": 2, "unguided_activations": unguided}


def test_guided_gradcam_warns_once_under_its_own_name() -> None:
    method, said = _build(GuidedGradCAM, smooth_model("gelu"))
    assert len(said) == 1 and said[0].startswith("guided-gradcam: this model has no ReLU to guide"), said
    assert said[0].endswith("so the map is Grad-CAM times the plain input gradient (saliency's map)")
    assert method.recorded == {"guided_activations": 0, "unguided_activations": {"gelu": 2}}


def test_the_cached_method_warns_once_for_many_calls() -> None:
    model = smooth_model("gelu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(3):
            make_method(model, "guided-backprop").attribute(_images(1, seed), 0)
    assert len(_said(caught)) == 1, _said(caught)


@pytest.mark.parametrize("method", ["guided-backprop", "guided-gradcam", "smooth-guided-backprop"])
def test_the_explanations_settings_record_what_was_guided(method: str) -> None:
    photo = _images(1)[0].astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = explain(mixed_model(), photo, method=method, **({"n": 2} if "smooth" in method else {}))
    assert mixed.settings["guided_activations"] == 2
    assert mixed.settings["unguided_activations"] == {"elu": 1, "hard_silu": 1, "leaky_relu": 1, "prelu": 1}
    assert "guided_activations" not in explain(relu_model(), photo, method="saliency").settings


def test_the_cli_says_it_in_one_line_and_the_manifest_records_it(tmp_path, monkeypatch) -> None:
    from agelens.cli import main

    model = smooth_model("gelu")
    model.save(tmp_path / "gelu.keras")
    Image.fromarray(_images(1)[0].astype(np.uint8)).save(tmp_path / "face.png")
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    main.one_line_warnings()
    args = ["explain", str(tmp_path / "face.png"), "--model", str(tmp_path / "gelu.keras")]
    args += [
        "--method",
        "guided-backprop",
        "--no-detect",
        "--input-range",
        "0-255",
        "--out",
        str(tmp_path / "ex"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    said = [line for line in res.output.splitlines() if "ReLU" in line]
    assert said == [
        "warning: guided-backprop: this model has no ReLU to guide (its activations: 2 gelu), "
        "so the map is the plain input gradient, as saliency gives"
    ], res.output
    run = json.loads((tmp_path / "ex" / "manifest.json").read_text())["runs"][0]
    assert run["settings"]["guided_activations"] == 0
    assert run["settings"]["unguided_activations"] == {"gelu": 2}
