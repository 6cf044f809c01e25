"""The model layer end to end on synthetic faces: train, save, reload, evaluate, load others' models."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
from tiny_run import TINY, train_tiny_run

from agelens.model.age_model import ModelLoadError
from agelens.model.builder import GROUP_LOGITS, ModelConfig, build_age_model
from agelens.model.evaluate import classification_metrics, markdown_table, write_evaluation
from agelens.model.io import load_model, read_metadata, save_model
from agelens.model.train import TrainConfig, lr_at, train
from agelens.model.wrap import wrap_keras_model

# ``trained``: tests/model/conftest.py's one epoch on 72 faces (tiny_run.train_tiny_run), shared with
# test_train_precise_bn.py; its checkpoint keeps the optimizer state too, so the resume tests start
# from it instead of training again (each training costs ~25 s of tracing).


def test_train_one_epoch_records_history(trained):
    res, _, _ = trained
    assert len(res.history) == 1
    assert {"loss", "val_accuracy", "val_macro_f1"} <= set(res.history[0])
    assert np.isfinite(res.history[0]["loss"])


def test_save_reload_gives_identical_predictions_and_metadata(trained):
    res, path, faces = trained
    again = load_model(path)
    a = res.model.predict(faces.images[:8])
    b = again.predict(faces.images[:8])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-6)
    np.testing.assert_allclose(a["age"], b["age"], atol=1e-4)
    assert again.class_names == ["young", "middle-aged", "old"]
    assert again.input_size == 48 and again.has_age
    meta = read_metadata(path)
    assert meta["bins"]["edges"] == [30.0, 60.0] and "agelens_version" in meta
    assert meta["train_config"]["epochs"] == 1


def test_saved_model_opens_in_plain_keras_safe_mode(trained):
    _, path, faces = trained
    km = keras.saving.load_model(path, safe_mode=True, compile=False)
    out = km.predict(faces.images[:2].astype("float32"), verbose=0)
    assert out["age_group"].shape == (2, 3)
    np.testing.assert_allclose(out["age_group"].sum(1), 1.0, atol=1e-5)


def test_evaluate_outputs(trained, tmp_path):
    res, _, faces = trained
    probs = res.model.predict(faces.images)["probabilities"]
    m = classification_metrics(faces.labels, probs.argmax(1), res.model.class_names)
    assert m["n_images"] == len(faces.labels)
    assert np.array(m["confusion_matrix"]).sum() == len(faces.labels)
    files = write_evaluation(m, tmp_path / "ev")
    assert json.loads(files["json"].read_text())["accuracy"] == m["accuracy"]
    assert "| young |" in markdown_table(m)
    assert files["plot"].stat().st_size > 1000


def test_metrics_known_answer():
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == 1.0
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_macro_averages_skip_classes_that_never_occur(recwarn):
    # One class only, all right: macro-F1 is 1, not 1/3 from two empty classes.
    m = classification_metrics([0, 0, 0], [0, 0, 0], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert m["per_class"]["b"]["support"] == 0  # still listed
    assert m["classes_in_macro_average"] == ["a"]
    table = markdown_table(m)  # an empty class shows dashes, not 0.000 that reads as all wrong
    assert "| b | – | – | – | 0 |" in table and "| a | 1.000 | 1.000 | 1.000 | 3 |" in table
    assert "–: no photo of b, c and none predicted as such; not in the macro averages." in table
    # A class that is only predicted counts (its precision is 0), as scikit-learn does.
    m = classification_metrics([0, 0, 1, 1], [0, 0, 1, 2], ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert "| **macro avg** | 0.667 | 0.500 | 0.556 | 4 |" in markdown_table(m)
    assert "| c | 0.000 | 0.000 | 0.000 | 0 |" in markdown_table(m) and "–" not in markdown_table(m)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_balanced_accuracy_says_why_it_differs_from_macro_recall():
    # c is predicted once but never true: balanced accuracy (true classes a, b) is 0.75, the
    # macro recall (a, b, c) 0.5; the page must say which is which.
    m = classification_metrics([0, 0, 1, 1], [0, 0, 1, 2], ["a", "b", "c"])
    assert m["balanced_accuracy"] == pytest.approx(0.75) and m["macro_recall"] == pytest.approx(0.5)
    line = next(x for x in markdown_table(m).splitlines() if x.startswith("Balanced accuracy"))
    assert line.startswith("Balanced accuracy: 0.750 (mean recall over the classes in the truth")
    assert "counts c, predicted but never true, at recall 0" in line
    # When the two agree there is nothing to explain.
    m = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    assert "Balanced accuracy: 0.667\n" in markdown_table(m)


def test_preprocessing_lives_in_the_model():
    km = build_age_model(TINY, seed=0)
    assert km.get_layer("rescale").scale == pytest.approx(1 / 127.5)
    assert km.get_layer(GROUP_LOGITS).activation.__name__ == "linear"


def test_legacy_h5_mobilenetv2_loads_and_predicts(tmp_path):
    base = keras.applications.MobileNetV2(weights=None, input_shape=(48, 48, 3), alpha=0.35, classes=3)
    path = tmp_path / "legacy.h5"
    base.save(path)  # legacy HDF5 format, as tf.keras 2.x wrote it
    m = load_model(path)
    assert m.input_size == 48 and m.class_names == ["young", "middle-aged", "old"]
    assert not m.rescales_input  # no Rescaling layer inside: inputs are scaled to [0, 1] for it
    probs = m.predict(np.zeros((2, 48, 48, 3), np.uint8))["probabilities"]
    assert probs.shape == (2, 3)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04broken zip"])
def test_corrupt_model_file_gives_one_line_error(tmp_path, content):
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)) and "\n" not in msg


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [("text.keras", b"just some text\n", "(a .keras file is a zip archive; this one is not)"),
     ("cut.keras", b"PK\x03\x04 cut", "(a .keras file is a zip archive; this one is damaged or incomplete)"),
     ("text.h5", b"just some text\n", "(a .h5 file is HDF5; this one is not)"),
     ("empty.keras", b"", "(the file is empty)")],
)  # fmt: skip
def test_a_file_that_is_no_model_is_called_that_not_file_not_found(tmp_path, name, content, words):
    """Keras said "File not found" for a text file named .keras; the container format says why."""
    from agelens.model.io import check_model_file

    path = tmp_path / name
    path.write_bytes(content)
    for check in (check_model_file, load_model):
        with pytest.raises(ModelLoadError) as exc:
            check(path)
        assert str(exc.value) == f"{path}: not a Keras model file {words}"


def test_real_model_files_pass_the_cheap_check_and_their_bins_read_without_keras(tmp_path):
    from agelens.data.bins import AgeBins
    from agelens.model.io import bins_in_file, check_model_file

    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    km = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))
    km.save(tmp_path / "plain.keras")
    km.save(tmp_path / "plain.h5")
    bins = AgeBins.parse("20,40,60")
    ours = wrap_keras_model(km, class_names=list(bins.names))
    ours.bins = bins
    save_model(ours, tmp_path / "ours.keras")
    for name in ("plain.keras", "plain.h5", "ours.keras"):
        assert check_model_file(tmp_path / name) == tmp_path / name
    assert bins_in_file(tmp_path / "ours.keras") == bins
    assert bins_in_file(tmp_path / "plain.keras") is None and bins_in_file(tmp_path / "plain.h5") is None
    with pytest.raises(ModelLoadError, match="is a folder"):
        check_model_file(tmp_path)


def test_missing_model_and_wrong_suffix(tmp_path):
    with pytest.raises(ModelLoadError, match="file not found"):
        load_model(tmp_path / "nope.keras")
    p = tmp_path / "m.onnx"
    p.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="unsupported"):
        load_model(p)


def test_wrap_plain_model_infers_classes():
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    km = keras.Model(inp, keras.layers.Dense(5, activation="softmax")(x))
    m = wrap_keras_model(km)
    assert m.class_names == [f"class {i}" for i in range(5)] and m.input_size == 32
    with pytest.raises(ModelLoadError):
        wrap_keras_model(km, class_names=["a", "b"])


def test_zip_without_metadata_is_read_as_plain(tmp_path, trained):
    _, path, _ = trained
    plain = tmp_path / "plain.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(plain, "w") as dst:
        for item in src.infolist():
            if item.filename != "agelens.json":
                dst.writestr(item, src.read(item.filename))
    m = load_model(plain)
    assert m.group_output == "age_group" and m.age_output == "age"


def test_schedules():
    cfg = TrainConfig(epochs=10, learning_rate=1.0, warmup_epochs=2)
    lrs = [lr_at(e, cfg) for e in range(10)]
    assert lrs[0] < lrs[1] < lrs[2] and lrs[-1] < 0.1
    one = [lr_at(e, TrainConfig(epochs=10, learning_rate=1.0, schedule="onecycle")) for e in range(10)]
    assert max(one) == pytest.approx(1.0, abs=0.15) and one[-1] < one[3]
    with pytest.raises(ValueError):
        lr_at(0, TrainConfig(schedule="nope"))


@pytest.mark.parametrize("epochs", [2, 3, 4, 5])
def test_short_cosine_runs_still_anneal(epochs: int) -> None:
    cfg = TrainConfig(epochs=epochs, learning_rate=1.0, warmup_epochs=2)
    lrs = [lr_at(e, cfg) for e in range(epochs)]
    assert max(lrs) == 1.0 and lrs[-1] <= 0.5  # before: 2 and 3 epochs ended at the peak rate


def test_wrap_sequential_model():
    km = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    m = wrap_keras_model(km)
    assert m.input_size == 32 and m.num_classes == 3
    assert m.predict(np.zeros((2, 32, 32, 3), np.uint8))["probabilities"].shape == (2, 3)


def test_test_time_flip_averages_the_mirror_image_when_the_metadata_asks():
    inp = keras.Input((8, 8, 3))
    # Probabilities depend on where the bright column is, so mirroring changes them.
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    km = keras.Model(inp, keras.layers.Dense(3, activation="softmax", kernel_initializer="glorot_uniform")(x))
    m = wrap_keras_model(km, class_names=["young", "middle-aged", "old"])
    img = np.zeros((1, 8, 8, 3), np.uint8)
    img[:, :, 1] = 255
    plain = m.predict(img)["probabilities"]
    mirrored = m.predict(img[:, :, ::-1])["probabilities"]
    assert not np.allclose(plain, mirrored)
    assert not m.test_time_flip
    m.metadata["test_time_flip"] = True
    np.testing.assert_allclose(m.predict(img)["probabilities"], (plain + mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(m.predict(img, flip=False)["probabilities"], plain, atol=1e-6)


def _tiny_conv(inp_shape: tuple, units: int = 3) -> keras.Model:
    inp = keras.Input(inp_shape)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    return keras.Model(inp, keras.layers.Dense(units, activation="softmax")(x))


def _two_inputs() -> keras.Model:
    a, b = keras.Input((32, 32, 3)), keras.Input((2,))
    x = keras.layers.Concatenate()([keras.layers.Flatten()(a), b])
    return keras.Model([a, b], keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: _tiny_conv((32, 32, 1)), "RGB"),  # grayscale: used to fail in Keras with a traceback
        (lambda: _tiny_conv((64, 48, 3)), "square"),  # used to run silently on 64x64 input
        (lambda: _tiny_conv((32, 32, 3), units=1), "one probability per class"),  # "class 0 61%"
        (_two_inputs, "2 inputs"),
    ],
)
def test_plain_models_agelens_cannot_feed_are_refused_in_one_line(make, words):
    with pytest.raises(ModelLoadError, match=words) as exc:
        wrap_keras_model(make())
    assert "\n" not in str(exc.value)


def test_a_given_input_size_must_match_the_models_fixed_one():
    with pytest.raises(ModelLoadError, match="takes 32 x 32"):
        wrap_keras_model(_tiny_conv((32, 32, 3)), input_size=64)
    assert wrap_keras_model(_tiny_conv((None, None, 3)), input_size=40).input_size == 40


def test_list_outputs_use_the_class_output_not_the_first():
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(inp)
    km = keras.Model(inp, [keras.layers.Dense(1)(x), keras.layers.Dense(3, activation="softmax")(x)])
    m = wrap_keras_model(km)
    assert m.group_output == 1 and m.class_names == ["young", "middle-aged", "old"]
    assert m.predict(np.zeros((2, 16, 16, 3), np.uint8))["probabilities"].shape == (2, 3)


def test_a_long_keras_error_is_cut_after_a_sentence_not_mid_word(tmp_path):
    path = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda t: t * 2)]).save(path)
    with pytest.raises(ModelLoadError, match="Lambda") as exc:
        load_model(path)  # safe_mode refuses the Python lambda
    msg = str(exc.value)
    keras_part, _ = msg.split("; a model with custom or Lambda layers", 1)  # the way out follows
    assert keras_part.endswith(".)") and "\n" not in msg, msg


def _train_small(faces, **kw):
    n = 24
    return train(
        faces.images[:n],
        faces.labels[:n],
        faces.images[n:32],
        faces.labels[n:32],
        ages_train=faces.ages[:n],
        ages_val=faces.ages[n:32],
        model_config=TINY,
        config=TrainConfig(epochs=kw.pop("epochs", 1), batch_size=8, augment=1.0, seed=5),
        verbose=0,
        **kw,
    )


def test_resume_keeps_the_better_weights_it_started_from(tmp_path, trained):
    from agelens.model.io import write_metadata

    _, path, faces = trained
    start = tmp_path / "start.keras"
    start.write_bytes(path.read_bytes())
    meta = read_metadata(start)
    meta["training"]["history"][0].update(val_accuracy=1.0, val_macro_f1=1.0)  # cannot be beaten
    write_metadata(start, meta)
    before = load_model(start).keras_model.get_weights()
    res = _train_small(faces, epochs=2, resume=start)
    assert res.best_epoch == 1 and len(res.model.metadata["training"]["history"]) == 2
    for wa, wb in zip(before, res.model.keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert res.model.metadata["training"]["optimizer_restored"] is False  # a finished model: no state


def test_classes_that_are_not_age_bins_must_fit_the_head(trained):
    faces = trained[2]
    labels = (faces.labels > 0).astype(int)  # two classes named by the user
    kw = dict(class_names=["child", "adult"], config=TrainConfig(epochs=1, batch_size=8), verbose=0)
    with pytest.raises(ValueError, match="3 classes, the data 2"):  # not Keras' shape mismatch mid-fit
        train(faces.images[:16], labels[:16], faces.images[16:24], labels[16:24], model_config=TINY, **kw)
    # Training such a head and what its file records (names, no bin edges): the CLI's CSV test.


def test_a_plain_model_that_outputs_logits_reports_probabilities():
    """A model trained with from_logits=True used to have its raw scores printed as probabilities."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    km = keras.Model(inp, keras.layers.Dense(3, name="scores")(x))
    km.get_layer("scores").set_weights([np.random.default_rng(0).normal(0, 0.5, (768, 3)), np.zeros(3)])
    images = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype(np.uint8)
    raw = np.asarray(km(images.astype(np.float32)))
    m = wrap_keras_model(km)
    probs = m.predict(images)["probabilities"]
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(keras.ops.softmax(raw)), atol=1e-5)
    assert km.outputs[0].shape == (None, 3) and len(km.layers) == 4  # the user's model is left as it was
    softmaxed = keras.Model(inp, keras.layers.Softmax()(km.outputs[0]))
    assert wrap_keras_model(softmaxed).keras_model is softmaxed  # probabilities already: untouched


def _two_heads(outputs: str, logits: bool = True) -> keras.Model:
    """A 16 px model with an age (1 unit) and a 4-class head, as a list or a dict."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    age = keras.layers.Dense(1, name="years")(x)
    group = keras.layers.Dense(4, activation=None if logits else "softmax", name="group")(x)
    out = [age, group] if outputs == "list" else {"years": age, "group": group}
    km = keras.Model(inp, out)
    km.get_layer("group").set_weights([np.random.default_rng(0).normal(0, 0.5, (768, 4)), np.zeros(4)])
    return km


@pytest.mark.parametrize("outputs", ["list", "dict"])
def test_a_multi_output_model_in_logits_reports_probabilities_from_its_class_head(outputs):
    """A [age, logits] model printed "195% / -106%": the softmax went on single-output models only."""
    km = _two_heads(outputs)
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    m = wrap_keras_model(km)
    assert m.group_output == (1 if outputs == "list" else "group")  # the 4-unit head, not the first key
    probs = m.predict(images)["probabilities"]
    raw = km(images.astype(np.float32))
    raw = raw[1] if outputs == "list" else raw["group"]
    np.testing.assert_allclose(probs, np.asarray(keras.ops.softmax(raw)), atol=1e-5)


def test_the_class_output_and_input_range_can_be_named():
    km = _two_heads("dict", logits=False)
    with pytest.raises(ModelLoadError, match="no output 'nope' to read classes from; outputs: years, group"):
        wrap_keras_model(km, class_output="nope")
    assert wrap_keras_model(km, class_output="group").group_output == "group"
    with pytest.raises(ModelLoadError, match="input range '0-100'"):
        wrap_keras_model(km, input_range="0-100")
    assert wrap_keras_model(km).rescales_input  # a Rescaling layer: it takes 0..255
    assert not wrap_keras_model(km, input_range="0-1").rescales_input


@pytest.mark.parametrize(("mean", "takes_255"), [(0.5, False), (120.0, True)])
def test_a_normalization_layer_tells_the_range_by_its_mean(mean, takes_255):
    """A model normalising 0..1 input (mean 0.5) was fed raw 0..255 pixels and answered [1, 0]."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Normalization(mean=mean, variance=0.08 if mean < 1 else 3000.0)(inp)
    km = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x)))
    assert wrap_keras_model(km).rescales_input is takes_255
    scaled = keras.Model(
        inp, km(keras.layers.Rescaling(1 / 255)(inp))
    )  # Rescaling first: 0..255 whatever follows
    assert wrap_keras_model(scaled).rescales_input


def test_duplicate_or_empty_class_names_are_refused():
    km = _two_heads("dict", logits=False)
    for names in (["a", "a", "b", "c"], ["a", "", "b", "c"]):
        with pytest.raises(ModelLoadError, match="each must be given, and once"):
            wrap_keras_model(km, class_names=names)


def test_a_lambda_model_file_says_how_to_load_it(tmp_path):
    path = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda t: t * 2)]).save(path)
    with pytest.raises(ModelLoadError, match="pass the keras.Model to agelens.explain") as e:
        load_model(path)
    assert "\n" not in str(e.value)


def test_shuffled_training_labels_break_only_the_link_between_photo_and_label() -> None:
    from agelens.data.bins import AgeBins
    from agelens.model.train import shuffled_training_labels

    ages = np.random.default_rng(0).integers(1, 90, 500).astype(np.float32)
    labels = AgeBins().index(ages)
    y, a = shuffled_training_labels(labels, ages, seed=3)
    assert np.bincount(y, minlength=3).tolist() == np.bincount(labels, minlength=3).tolist()
    np.testing.assert_array_equal(AgeBins().index(a), y)  # each age moved with its label
    assert (y != labels).mean() > 0.3  # most photos now carry another photo's label
    again, _ = shuffled_training_labels(labels, ages, seed=3)
    other, _ = shuffled_training_labels(labels, ages, seed=4)
    assert np.array_equal(again, y) and not np.array_equal(other, y)
    assert shuffled_training_labels(labels, None, seed=3)[1] is None


def test_a_shuffled_label_run_trains_on_permuted_labels_and_keeps_the_best_fit(monkeypatch, trained) -> None:
    from agelens.model import train as train_mod

    faces = trained[2]
    seen: dict = {"fed": [], "picked_by": []}
    permute, targets, score = (
        train_mod.shuffled_training_labels,
        train_mod._targets,
        train_mod._selection_score,
    )

    def spy_permute(labels, ages, seed):
        seen["in"] = np.asarray(labels).copy()
        seen["out"], out_ages = permute(labels, ages, seed)
        return seen["out"], out_ages

    def spy_targets(labels, ages, k, sigma):
        seen["fed"].append(np.asarray(labels).copy())
        return targets(labels, ages, k, sigma)

    def spy_score(row, shuffled=False):
        seen["picked_by"].append(shuffled)
        return score(row, shuffled)

    monkeypatch.setattr(train_mod, "shuffled_training_labels", spy_permute)
    monkeypatch.setattr(train_mod, "_targets", spy_targets)
    monkeypatch.setattr(train_mod, "_selection_score", spy_score)
    res = train(
        faces.images[:24],
        faces.labels[:24],
        faces.images[24:32],
        faces.labels[24:32],
        model_config=ModelConfig(input_size=48, alpha=0.35, num_classes=3, age_head=False),
        config=TrainConfig(epochs=2, batch_size=8, augment=0.0, seed=5, shuffle_labels=True, init_seed=9),
        verbose=0,
    )
    np.testing.assert_array_equal(seen["in"], faces.labels[:24])
    assert len(seen["fed"]) == 1 and np.array_equal(seen["fed"][0], seen["out"])  # what training saw
    assert seen["picked_by"] == [True, True]  # every epoch judged by its fit to the permuted labels
    assert res.model.metadata["train_config"]["shuffle_labels"] is True
    assert res.model.metadata["train_config"]["init_seed"] == 9
    fits = [r["train_accuracy"] for r in res.history]
    assert res.best_epoch == 1 + int(np.argmax(fits))
    row = {"train_accuracy": 0.9, "val_accuracy": 0.1, "val_macro_f1": 0.1}
    assert score(row, True) == 0.9 and score(row) == pytest.approx(0.2)


def test_init_seed_changes_the_start_and_not_the_split_seeded_parts() -> None:
    assert TrainConfig(seed=3).start_seed == 3 and TrainConfig(seed=3, init_seed=8).start_seed == 8
    a = build_age_model(
        ModelConfig(input_size=32, alpha=0.35, age_head=False), seed=TrainConfig(seed=3).start_seed
    )
    b = build_age_model(
        ModelConfig(input_size=32, alpha=0.35, age_head=False),
        seed=TrainConfig(seed=3, init_seed=8).start_seed,
    )
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


def test_a_plain_0_to_1_model_saved_by_agelens_loads_read_as_0_to_1(tmp_path):
    """save_model recorded no pixel range, so a wrapped plain model trained on 0..1 pixels came
    back from its own file read as 0..255: every answer 255x too bright, without an error."""
    inp = keras.Input((16, 16, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    km = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    am = wrap_keras_model(km)
    assert am.input_range == "0-1"  # no Rescaling layer: guessed 0..1
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    again = load_model(save_model(am, tmp_path / "plain.keras"))
    assert again.input_range == "0-1"
    np.testing.assert_allclose(again.predict(x)["probabilities"], am.predict(x)["probabilities"], atol=1e-6)


# Same data, options and seed: the same weights, bit for bit (docs/train.md, "Seeds and reproducibility").
# The promise rests on details easy to undo without another test noticing (the augmentation mapped one
# batch at a time, the seeded shuffle, dropout and BatchNorm recalibration); here, beside the run it
# repeats, it costs one tiny training, not two.
@pytest.mark.slow  # one more tiny training; run with -m slow
def test_a_second_run_with_the_same_seed_saves_the_same_weights_bit_for_bit(trained, tmp_path) -> None:
    first, first_file, _ = trained
    again, again_file, _ = train_tiny_run(tmp_path)
    a, b = first.model.keras_model.get_weights(), again.model.keras_model.get_weights()
    assert len(a) == len(b)
    differing = [i for i, (u, v) in enumerate(zip(a, b, strict=True)) if not np.array_equal(u, v)]
    assert differing == [], f"{len(differing)} of {len(a)} weight arrays differ"
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in first.history] == [
        {k: v for k, v in r.items() if k not in drop} for r in again.history
    ]
    assert first.best_epoch == again.best_epoch
    # what a researcher matching two reruns by their manifests compares (the files' own hashes differ)
    from agelens.provenance import model_fingerprint

    made = [model_fingerprint(f) for f in (first_file, again_file)]
    assert made[0]["weights_sha256"] == made[1]["weights_sha256"]
