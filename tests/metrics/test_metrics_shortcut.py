"""The shortcut demo with an injected tiny trainer: the stamp-trained model collapses without stamps."""

from __future__ import annotations

import json

import numpy as np
from metric_toys import gradcam, tiny_convnet

from agelens.metrics.shortcut import run_shortcut_demo


def _tiny_trainer(images: np.ndarray, labels: np.ndarray):
    """Stand-in for the lead's trainer: a max-pooling convnet, 5 epochs (notices few-pixel stamps)."""
    import keras

    from agelens.model.wrap import wrap_keras_model

    km = tiny_convnet(size=images.shape[1], classes=3, pool="max")
    km.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    km.fit(images.astype("float32"), labels, epochs=5, batch_size=32, verbose=0)
    return wrap_keras_model(km)


def test_shortcut_demo_shows_the_drop_and_the_stamp_in_the_maps(tmp_path) -> None:
    out = run_shortcut_demo(
        _tiny_trainer,
        n_train=240,
        size=48,
        seed=0,
        methods=("gradcam",),
        n_test=60,
        explainers={"gradcam": gradcam},
        out_dir=tmp_path,
    )
    assert json.loads((tmp_path / "shortcut.json").read_text()) == json.loads(
        json.dumps(out, allow_nan=False)
    )
    assert (tmp_path / "shortcut_stamp_energy.png").read_bytes()[:4] == b"\x89PNG"
    acc = out["accuracy"]
    assert acc["stamped"]["mean"] > 0.9
    assert acc["drop"]["mean"] > 0.3 and acc["drop"]["ci_low"] > 0  # learned the stamp, not the face
    cam, rnd = out["methods"]["gradcam"], out["methods"]["random"]
    assert cam["stamp_area"] < 0.01  # the stamp is a tiny corner square...
    assert cam["stamp_energy"]["ci_low"] > 5 * cam["stamp_area"]  # ...yet holds a large share of Grad-CAM
    assert abs(rnd["stamp_energy"]["mean"] - rnd["stamp_area"]) < 0.003  # random maps: about its area
    assert cam["stamp_pointing"]["mean"] > 0.8 > rnd["stamp_pointing"]["mean"]
    assert out["config"]["methods"] == ["gradcam"] and cam["stamp_energy"]["n"] == 60
