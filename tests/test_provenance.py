"""What every saved result records about how it was made (agelens.provenance), and that each writer
records it: the explain manifest (and so the app's zips), evaluate's manifest, scores.json's meta
with each metric's settings, and the demo's manifest, shortcut.json and step timings."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agelens.provenance import (
    SHIPPED_MODEL_NAME,
    command_line,
    model_fingerprint,
    provenance,
    resolved_paths,
)

CLI_ARGV = ["/home/me/.venv/bin/agelens", "explain", "my photo.jpg", "--method", "gradcam"]


def _model_file(tmp_path: Path, content: bytes = b"not really a model, but bytes to hash") -> Path:
    path = tmp_path / "models" / "mine.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# --- the provenance function itself ---------------------------------------------------------


def test_versions_name_numpy_and_the_frameworks_without_starting_tensorflow():
    code = (
        "import sys, json; from agelens.provenance import versions; "
        "print(json.dumps([versions(), 'tensorflow' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    found, tf_started = json.loads(out.strip().splitlines()[-1])
    assert set(found) == {"agelens", "tensorflow", "keras", "numpy", "python"}
    assert found["numpy"] == np.__version__ and found["agelens"]
    assert tf_started is False


def test_the_command_line_is_recorded_as_typed_only_from_the_agelens_command():
    assert command_line(CLI_ARGV) == "agelens explain 'my photo.jpg' --method gradcam"
    assert command_line(["/usr/lib/python3/site-packages/pytest/__main__.py", "-q"]) is None
    assert command_line([]) is None
    assert "command_line" not in provenance(argv=["ipykernel_launcher.py"])
    assert provenance(argv=CLI_ARGV)["command_line"].startswith("agelens explain")


def test_provenance_says_when_in_utc():
    created = provenance()["created"]
    assert created.endswith("+00:00") and created[:4].isdigit()


def test_a_model_file_is_fingerprinted_by_its_bytes_and_named_not_located(tmp_path):
    path = _model_file(tmp_path)
    found = model_fingerprint(path)
    assert found == {
        "name": "mine.keras",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": path.stat().st_size,
        "shipped": False,
    }
    assert str(tmp_path) not in json.dumps(found)  # a shared manifest does not say where files live
    path.write_bytes(b"retrained in place: same path, other model")
    assert model_fingerprint(path)["sha256"] != found["sha256"]
    assert provenance(path)["model_file"]["name"] == "mine.keras"


def test_no_fingerprint_without_a_readable_file(tmp_path):
    assert model_fingerprint(None) is None
    assert model_fingerprint("<in-memory keras.Model 'toy'>") is None
    assert model_fingerprint(tmp_path / "gone.keras") is None
    assert "model_file" not in provenance(tmp_path / "gone.keras")


def test_a_savedmodel_folder_is_fingerprinted_by_every_file_and_its_name(tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.data").write_bytes(b"weights")
    first = model_fingerprint(folder)
    assert first["bytes"] == len(b"graph") + len(b"weights") and first["name"] == "saved"
    (folder / "variables" / "v.data").rename(folder / "variables" / "w.data")
    assert model_fingerprint(folder)["sha256"] != first["sha256"]


def test_the_shipped_model_is_named_as_such():
    import agelens

    shipped = Path(agelens.__file__).parent / "assets" / SHIPPED_MODEL_NAME
    if not shipped.exists():
        pytest.skip("this install has no shipped model")
    found = model_fingerprint(shipped)
    assert found["shipped"] is True and found["name"] == SHIPPED_MODEL_NAME and found["bytes"] > 0


def test_paths_typed_relative_are_resolved_and_kept_as_typed(tmp_path, monkeypatch):
    from agelens.report.assets import shared_path

    (tmp_path / "score20").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = {"data": "score20", "holdout": None, "batch_size": 8, "masks": str(tmp_path / "m.npz")}
    out = resolved_paths(settings)
    assert out["data"] == str((tmp_path / "score20").resolve()) and out["data_as_typed"] == "score20"
    assert list(out)[:2] == ["data", "data_as_typed"]  # the typed one beside the resolved one
    assert out["masks"] == settings["masks"] and "masks_as_typed" not in out  # typed absolute: as is
    assert resolved_paths(out) == out  # resolved once, never again from another folder
    described = {"data": "48 held-out synthetic faces of the demo (seed 0)"}
    assert resolved_paths(described) == described
    # the report shows a shared page the folder's name, never the absolute path
    assert shared_path("settings · data", out["data"]) == "score20"
    assert shared_path("settings · data_as_typed", out["data_as_typed"]) == "score20"


# --- the writers ------------------------------------------------------------------------------


def test_the_explain_manifest_records_time_numpy_command_and_model_fingerprint(tmp_path, monkeypatch):
    from agelens.explain.explanation import Explanation

    model = _model_file(tmp_path)
    monkeypatch.setattr(sys, "argv", CLI_ARGV)
    exp = Explanation(
        maps=np.linspace(0, 1, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8),
        probabilities=np.array([[0.8, 0.2], [0.3, 0.7]], np.float32),
        class_names=["young", "old"],
        layer="last_conv",
        method="gradcam",
        target="predicted class",
        images=[np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 200, np.uint8)],
        model_path=str(model),
    )
    exp.save(tmp_path / "out")  # what the app zips, too
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["numpy_version"] == np.__version__ and manifest["agelens_version"]
    assert {"keras_version", "tensorflow_version", "python_version", "created"} <= set(manifest)
    assert manifest["command_line"] == "agelens explain 'my photo.jpg' --method gradcam"
    assert manifest["model"] == str(model)
    assert manifest["model_file"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert {"model_file", "command_line"} <= set(manifest["conventions"])


def test_the_evaluate_manifest_records_the_model_and_the_data_folder(tmp_path, monkeypatch):
    from agelens.model.evaluate import classification_metrics, write_evaluation

    model = _model_file(tmp_path)
    (tmp_path / "eval100").mkdir()
    monkeypatch.chdir(tmp_path)
    m = classification_metrics([0, 1, 1], [0, 1, 0], ["young", "old"]) | {"model": str(model)}
    write_evaluation(m, tmp_path / "ev", {"data": "eval100", "batch_size": 8})
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["model"] == str(model) and manifest["model_file"]["bytes"] == model.stat().st_size
    assert manifest["settings"]["data"] == str((tmp_path / "eval100").resolve())
    assert manifest["settings"]["data_as_typed"] == "eval100"
    assert manifest["versions"]["numpy"] == np.__version__ and manifest["created"]


def _predict(x: np.ndarray) -> np.ndarray:
    """Class 1 the brighter the top-left quarter: a numpy model, no TensorFlow."""
    h = x.shape[1] // 2
    p = 1 / (1 + np.exp(-(np.asarray(x, np.float64)[:, :h, :h].mean(axis=(1, 2, 3)) / 255 - 0.5) * 8))
    return np.stack([1 - p, p], axis=1)


def test_scores_meta_records_numpy_each_metrics_settings_and_the_data_folder(tmp_path, monkeypatch):
    from agelens.metrics import Deletion, Insertion, score_methods
    from agelens.metrics.faithfulness import RoadMoRF

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    explainers = {
        "top-left": lambda x, t: np.pad(np.ones((len(x), 16, 16), np.float32), ((0, 0), (0, 16), (0, 16)))
    }
    table = score_methods(
        _predict,
        x,
        np.array([0, 1, 0, 1, 0, 1]),
        ["top-left"],
        [Deletion(step=0.1, baseline="mean"), Insertion(step=0.1), RoadMoRF(levels=(0.2, 0.6))],
        explainers=explainers,
        n_boot=50,
    )
    params = table.meta["metric_params"]
    assert params["deletion"] == {"step": 0.1, "baseline": "mean", "blur_sigma": None}
    assert params["insertion"] == {"step": 0.1, "baseline": "blur", "blur_sigma": 2.0}  # 32 px / 16, as used
    assert params["road_morf"]["levels"] == [0.2, 0.6]
    assert table.meta["versions"]["numpy"] == np.__version__ and table.meta["created"]
    (tmp_path / "score20").mkdir()
    monkeypatch.chdir(tmp_path)
    table.meta.update(data="score20", model=str(_model_file(tmp_path)))  # as `agelens score` adds them
    table.write(tmp_path / "scores", plots=False)
    meta = json.loads((tmp_path / "scores" / "scores.json").read_text())["meta"]
    assert meta["data"] == str((tmp_path / "score20").resolve()) and meta["data_as_typed"] == "score20"
    assert meta["metric_params"] == json.loads(json.dumps(params))
    assert "`score20`" in (tmp_path / "scores" / "scores.md").read_text()  # the markdown says it as typed


def test_metric_params_give_the_constructor_settings():
    from agelens.metrics.complexity import Sparseness
    from agelens.metrics.faithfulness import Deletion, RoadLeRF
    from agelens.metrics.robustness import MaxSensitivity
    from agelens.metrics.sanity import ModelRandomisation

    assert Deletion(step=0.05, baseline="blur", blur_sigma=3.0, progress=True).params() == {
        "step": 0.05,
        "baseline": "blur",
        "blur_sigma": 3.0,
    }  # progress draws a bar and changes no number
    assert RoadLeRF(levels=(0.25, 0.5)).params()["levels"] == [0.25, 0.5]
    assert ModelRandomisation(stages=2).params() == {"stages": 2, "output": ["class"]}
    assert MaxSensitivity(n_samples=3).params()["n_samples"] == 3
    assert Sparseness().params() == {}
    json.dumps(RoadLeRF().params())  # JSON-ready, numpy arrays included


# --- the demo ---------------------------------------------------------------------------------


def test_the_second_process_times_reach_the_steps_table(tmp_path):
    from agelens.demo import SecondProcess, _timed_jobs, second_process_row

    times_file = tmp_path / ".second-process-times.json"
    times = _timed_jobs({"shortcut story": lambda: None, "shuffled-label control": lambda: None}, times_file)
    assert list(times) == ["shortcut story", "shuffled-label control"]
    assert json.loads(times_file.read_text()) == times

    class Finished:
        exitcode = 0

        def join(self) -> None:
            pass

    proc = object.__new__(SecondProcess)  # a process that already ended, as the demo waits for it
    proc.proc, proc.error_file, proc.times_file = Finished(), tmp_path / "no-error.txt", times_file
    assert proc.result() == times
    row = second_process_row({"step": "shortcut story (...)", "seconds": 0.0}, {"a": 1.25, "b": 2.5})
    assert row == {
        "step": "shortcut story (...)",
        "seconds": 0.0,
        "seconds_in_second_process": 3.75,
        "second_process": {"a": 1.25, "b": 2.5},
    }
    proc.stop = SecondProcess.stop.__get__(proc)
    proc.proc.is_alive = lambda: False
    proc.stop()
    assert not times_file.exists()  # no hidden file left in the run folder


def test_a_failing_job_is_named_for_the_error_file(tmp_path):
    from agelens.demo import _timed_jobs

    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError) as caught:
        _timed_jobs({"shortcut story": lambda: None, "shuffled-label control": fails}, tmp_path / "t.json")
    assert caught.value.job == "shuffled-label control"
    assert list(json.loads((tmp_path / "t.json").read_text())) == ["shortcut story"]


def test_shortcut_json_says_which_layer_the_plain_gradcam_used():
    import keras

    from agelens.demo import shortcut_layers

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="first_conv")(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="last_conv")(x)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    layers = shortcut_layers(
        keras.Model(inp, out), {"gradcam": None, "saliency": None, "gradcam (early layer)": "early"}
    )
    assert layers == {
        "gradcam": {"layer": "last_conv", "asked": "last-conv"},  # the stamped model declares no layer
        "gradcam (early layer)": {"layer": "first_conv", "asked": "early"},
    }  # saliency draws no CAM: no layer to name
