"""A model file's ``weights_sha256`` (agelens.provenance.weights_fingerprint): the same for two saves
of the same weights, though their bytes (and so ``sha256``) differ, and different when one weight does.

Why: two same-seed training runs save bit-identical weights in files that differ in their save time,
object ids and epoch seconds (docs/train.md, "Seeds and reproducibility"); a manifest must let a
reader match them without loading either model.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from agelens import provenance as prov
from agelens.provenance import model_fingerprint, provenance, weights_fingerprint


def _toy(seed: int = 0):
    """A tiny three-class Keras model (a conv, a BatchNorm, a dense head) with seeded weights."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="groups")(x))


def _save(km, path: Path, seconds: float = 1.0) -> Path:
    """``km`` saved as agelens saves a trained model (its metadata inside the zip)."""
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    return save_model(wrap_keras_model(km), path, extra={"history": [{"epoch": 1, "seconds": seconds}]})


@pytest.fixture(scope="module")
def toy():
    return _toy()


def test_two_saves_of_the_same_weights_differ_in_bytes_but_not_in_weights(toy, tmp_path) -> None:
    first = _save(toy, tmp_path / "a.keras", seconds=1.25)
    time.sleep(1.1)  # Keras records the save time to the second
    second = _save(toy, tmp_path / "b.keras", seconds=1.5)  # as a rerun: its epochs took other times
    a, b = model_fingerprint(first), model_fingerprint(second)
    assert a["sha256"] != b["sha256"]  # the file hash cannot match them...
    assert a["weights_sha256"] == b["weights_sha256"]  # ...the weights hash does
    assert len(a["weights_sha256"]) == 64 and a["weights_sha256"] != a["sha256"]


def test_one_changed_weight_changes_the_fingerprint(toy, tmp_path) -> None:
    import keras

    before = weights_fingerprint(_save(toy, tmp_path / "a.keras"))
    other = keras.models.clone_model(toy)
    weights = toy.get_weights()
    weights[0] = weights[0].copy()
    weights[0].flat[5] = np.nextafter(weights[0].flat[5], np.float32(1))  # the last digit of one weight
    other.set_weights(weights)
    after = weights_fingerprint(_save(other, tmp_path / "b.keras"))
    assert before is not None and after is not None and before != after
    other.set_weights(toy.get_weights())  # the same weights again in the clone: the same fingerprint
    assert weights_fingerprint(_save(other, tmp_path / "c.keras")) == before


def test_the_optimizer_state_is_not_part_of_the_weights(toy, tmp_path) -> None:
    import keras

    trained = keras.models.clone_model(toy)
    trained.set_weights(toy.get_weights())
    trained.compile(optimizer="adam", loss="categorical_crossentropy")
    trained.optimizer.build(trained.trainable_variables)  # its state, saved with the model
    path = tmp_path / "compiled.keras"
    trained.save(path)
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
        assert "optimizer" in f  # the file does hold an optimizer's state
    assert weights_fingerprint(path) == weights_fingerprint(_save(toy, tmp_path / "plain.keras"))


def test_a_legacy_h5_file_is_fingerprinted_by_its_weights_too(toy, tmp_path) -> None:
    import keras

    toy.save(tmp_path / "a.h5")
    time.sleep(1.1)
    toy.save(tmp_path / "b.h5")
    a = model_fingerprint(tmp_path / "a.h5")
    assert a["weights_sha256"] == model_fingerprint(tmp_path / "b.h5")["weights_sha256"]
    other = keras.models.clone_model(toy)
    other.set_weights([w + 1 if i == 1 else w for i, w in enumerate(toy.get_weights())])
    other.save(tmp_path / "c.h5")
    assert weights_fingerprint(tmp_path / "c.h5") != a["weights_sha256"]


def test_a_file_without_readable_weights_has_only_its_bytes_fingerprinted(tmp_path) -> None:
    not_zip = tmp_path / "text.keras"
    not_zip.write_bytes(b"not a model")
    no_weights = tmp_path / "empty.keras"
    with zipfile.ZipFile(no_weights, "w") as z:
        z.writestr("config.json", "{}")
    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_bytes(b"not HDF5 either")
    for path in (not_zip, no_weights, not_hdf5):
        found = model_fingerprint(path)
        assert found["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "weights_sha256" not in found and weights_fingerprint(path) is None


def test_the_manifest_records_it_and_hashes_the_weights_once_per_file_version(
    toy, tmp_path, monkeypatch
) -> None:
    path = _save(toy, tmp_path / "mine.keras")
    calls: list[Path] = []
    real = prov.weights_fingerprint
    monkeypatch.setattr(prov, "weights_fingerprint", lambda p: calls.append(p) or real(p))
    recorded = provenance(path)["model_file"]
    assert recorded["weights_sha256"] == real(path)
    assert provenance(path)["model_file"] == recorded and len(calls) == 1  # cached by path, size, time
    _save(_toy(seed=1), path)  # retrained in place
    assert model_fingerprint(path)["weights_sha256"] != recorded["weights_sha256"] and len(calls) == 2


_PROBE = """
import json, sys
from agelens.provenance import model_fingerprint
assert "h5py" not in sys.modules  # imported when a file is hashed: `agelens predict` never pays for it
found = model_fingerprint(sys.argv[1])
print(json.dumps([found.get("weights_sha256"), [m for m in ("tensorflow", "keras") if m in sys.modules]]))
"""


def test_the_weights_are_read_without_starting_tensorflow_or_keras(toy, tmp_path) -> None:
    path = _save(toy, tmp_path / "mine.keras")
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    weights, started = json.loads(run.stdout.strip().splitlines()[-1])
    assert weights == weights_fingerprint(path) and started == []
