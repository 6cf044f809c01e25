"""``agelens score`` end to end on a tiny saved model and a UTKFace-style folder of synthetic faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from synthetic_folders import write_utk_folder
from typer.testing import CliRunner

from agelens.cli.score_cmd import score_command
from agelens.metrics.sampling import stratified_sample

runner = CliRunner()
app = typer.Typer()
app.command()(score_command)


def _toy_classifier(seed: int):
    """A three-convolution, three-class Keras classifier of 32 px photos (two resolutions below the input).

    Why not build_age_model's MobileNetV2: loading and tracing its ~150 layers took over half of
    each of this file's ~20 score runs, and no check here is about the network: the CLI wraps any
    Keras classifier alike. The test that needs MobileNetV2's layer names and age head builds one.
    """
    import keras

    x = inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(x)
    for i, (filters, stride) in enumerate(((8, 1), (8, 2), (16, 2))):  # "early" is conv0, last-conv conv2
        init = keras.initializers.GlorotUniform(seed=seed * 10 + i)
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                                kernel_initializer=init, name=f"conv{i}")(x)  # fmt: skip
    x = keras.layers.GlobalAveragePooling2D()(x)
    # Logits of a few units, so the probabilities move with the photo as a trained model's do: with
    # the usual scale they sit at 1/3 (as MobileNetV2's did here) and every score is flat.
    init = keras.initializers.VarianceScaling(100, seed=seed * 10 + 9)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", kernel_initializer=init)(x))


@pytest.fixture(scope="module")
def folder_and_model(tmp_path_factory) -> tuple[Path, Path]:
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    root = tmp_path_factory.mktemp("score")
    data = write_utk_folder(root / "utk", 12, seed=1)
    path = save_model(wrap_keras_model(_toy_classifier(0)), root / "tiny.keras")
    return data, path


def test_score_writes_table_json_markdown_and_plots(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    out = tmp_path / "score"
    args = [str(data), "--model", str(model), "--methods", "Grad-CAM", "--metrics", "deletion,insertion"]
    res = runner.invoke(app, [*args, "--n", "6", "--out", str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "deletion ↓" in res.output and "gradcam" in res.output and "random" in res.output
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["scores"]) == {"gradcam", "random"}
    assert scores["meta"]["n_images"] == 6 and scores["meta"]["seed"] == 3
    assert scores["scores"]["gradcam"]["deletion"]["n"] == 6
    assert set(scores["regions"]["gradcam"]["regions"]) >= {"eyes", "mouth_chin"}
    for name in ("scores.md", "curves_deletion.png", "curves_insertion.png", "region_shares.png"):
        assert (out / name).stat().st_size > 0

    again = runner.invoke(app, [*args, "--n", "6", "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output


def test_score_rejects_unknown_names(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, [str(data), "--model", str(model), "--metrics", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown metric nope" in res.output  # a usage error, as explain's
    res = runner.invoke(app, [str(data), "--model", str(model), "--methods", "magic", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown method magic" in res.output
    typo = ["--methods", "smooth-gradcm", "-o", str(tmp_path)]
    res = runner.invoke(app, [str(data), "--model", str(model), *typo])
    assert res.exit_code == 2 and "unknown method smooth-gradcm" in res.output
    res = runner.invoke(app, [str(data), "--model", str(model), "--n", "0", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--n" in res.output  # a usage error like --batch-size 0


def test_smoothgrad_around_any_method_is_scored_as_explain_takes_it(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    args = ["--methods", "smooth-Grad-CAM", "--metrics", "deletion", "--n", "3", "--out", str(tmp_path / "s")]
    res = runner.invoke(app, [str(data), "--model", str(model), *args])
    assert res.exit_code == 0, res.output
    scores = json.loads((tmp_path / "s" / "scores.json").read_text())
    assert scores["scores"]["smooth-gradcam"]["deletion"]["n"] == 3
    assert scores["meta"]["method_options"]["smooth-gradcam"]["nt_type"] == "smoothgrad"


def test_stratified_sample_keeps_class_mix_and_is_seeded() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_sample(labels, 20, seed=0)
    assert len(idx) == 20 and len(set(idx)) == 20
    assert np.bincount(labels[idx]).tolist() == [12, 6, 2]
    np.testing.assert_array_equal(idx, stratified_sample(labels, 20, seed=0))
    assert not np.array_equal(idx, stratified_sample(labels, 20, seed=1))
    assert np.bincount(labels[stratified_sample(labels, 3, seed=0)]).tolist() == [1, 1, 1]
    assert len(stratified_sample(labels, 500)) == 100


def test_score_holdout_samples_only_the_named_photos(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    names = sorted(p.name for p in data.iterdir())[:4]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": names}))
    out = tmp_path / "score"
    args = [str(data), "--model", str(model), "--metrics", "deletion", "--n", "6", "--out", str(out)]
    res = runner.invoke(app, [*args, "--holdout", str(split)])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "scores.json").read_text())["meta"]
    assert meta["n_images"] == 4 and sorted(meta["images"]) == names
    from agelens.explain.layers import resolve_layer
    from agelens.model.io import load_model

    assert meta["cam_layer"] == resolve_layer(load_model(model), None)[0] != ""

    split.write_text("{}")
    res = runner.invoke(app, [*args, "--holdout", str(split), "--force"])
    assert res.exit_code == 1 and "split.json" in res.output and "'test'" in res.output


def test_broken_photos_in_the_sample_are_named_and_replaced(folder_and_model, tmp_path) -> None:
    import shutil

    data, model = folder_and_model
    copy = shutil.copytree(data, tmp_path / "utk")
    broken = sorted(copy.iterdir())[::2]  # half of the 12 photos
    for p in broken:
        p.write_bytes(b"not a jpeg")
    out = tmp_path / "score"
    args = [str(copy), "--model", str(model), "--metrics", "deletion", "--n", "6", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "scores.json").read_text())["meta"]
    assert meta["n_images"] == 6  # as asked: every readable photo stood in for a broken one
    assert not {p.name for p in broken} & set(meta["images"])
    assert "skipped" in res.output and any(p.name in res.output for p in broken)
    left = meta["skipped_photos"]  # kept with the numbers, as evaluate keeps its skipped list
    assert left and all(any(line.startswith(f"{p}: ") for p in broken) for line in left)
    assert f"Left out: {len(left)} photo" in (out / "scores.md").read_text()

    shutil.copy(sorted(copy.iterdir())[1], copy / "200_0_0_20170101.jpg.chip.jpg")  # an age out of range
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 0 and "200_0_0_20170101.jpg.chip.jpg: age 200" in res.output  # named, not lost
    left = json.loads((out / "scores.json").read_text())["meta"]["skipped_photos"]
    assert any("200_0_0_20170101.jpg.chip.jpg: age 200" in line for line in left)  # unlabelled too


def test_the_default_table_fits_80_columns_without_cut_headers(
    folder_and_model, tmp_path, monkeypatch
) -> None:
    import re

    data, model = folder_and_model
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats the output as an 80-column terminal
    monkeypatch.setenv("COLUMNS", "80")
    res = runner.invoke(app, [str(data), "--model", str(model), "--n", "3", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    table = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout)
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "…" not in table and "average" in table and "road" in table
    # Drawn whole, not wider and cut at the 80th column: every table closes on its right edge, so
    # the last columns (the mean rank, the last difference) are there, and the captions wrap.
    borders = [line.strip() for line in table.splitlines() if line.strip()[:1] in ("┏", "└")]
    assert borders and all(line[-1] in "┓┘" for line in borders), borders
    assert "mean rank" in table and "Δ road lerf" in table
    text = " ".join(table.split())
    assert "Scattered noise scores well on deletion/insertion without explaining anything" in text
    assert "judge a method by the table of differences below." in text  # the scores fill two tables
    assert "excludes 0 on the good side); ⚠ = worse than them." in text


def test_piped_output_shows_the_whole_table_and_random_as_an_unranked_baseline(folder_and_model, tmp_path):
    data, model = folder_and_model
    res = runner.invoke(app, [str(data), "--model", str(model), "--n", "3", "--out", str(tmp_path / "s")],
                        terminal_width=80)  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.count("│") > 3}
    assert "random (baseline)" in rows and rows["random (baseline)"].rstrip(" │").endswith("–")
    assert "…" not in res.stdout and "mean rank" in res.stdout  # a log keeps every column, uncut
    saved = json.loads((tmp_path / "s" / "scores.json").read_text())
    assert saved["meta"]["method_options"]["gradcam"]["batch_size"] == 32  # what ran, defaults included
    assert {"agelens", "tensorflow", "keras"} <= set(saved["meta"]["versions"])
    md = (tmp_path / "s" / "scores.md").read_text()
    assert f"Scored: model `{model}`" in md and "target: each image's predicted class" in md
    ranking = saved["ranking"]
    assert [r["method"] for r in ranking] == ["gradcam"]
    assert "nan" not in rows["gradcam"]  # a lone method has no rank to show, not "nan"
    text = " ".join(res.stdout.split())  # captions wrap at 80 columns
    assert "random (baseline) row is pixel noise" in text
    scores, diff = res.stdout.split("Method minus random maps")
    assert "✓" not in scores and "⚠" not in scores  # the marks judge differences, so they sit on those
    assert "✓ = beats random maps as smooth as the method's own" in " ".join(diff.split())
    diff_rows = [line for line in diff.splitlines() if line.count("│") > 3]
    assert any("gradcam" in line and "[" in line for line in diff_rows)
    assert not any("random" in line.split("│")[1] for line in diff_rows)  # noise is not compared with itself


def test_masks_npz_beside_the_photos_feed_the_localisation_metrics(folder_and_model, tmp_path) -> None:
    from agelens.data.synthetic import write_dataset

    _, model = folder_and_model
    data = tmp_path / "synth"
    write_dataset(data, 12, size=48, seed=4)
    args = [str(data), "--model", str(model), "--n", "6", "--metrics", "pointing_game,energy_in_mask"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    scores = json.loads((tmp_path / "s" / "scores.json").read_text())
    assert scores["skipped"] == {} and scores["meta"]["masks"] == str(data / "masks.npz")
    assert scores["scores"]["gradcam"]["energy_in_mask"]["n"] >= 1

    plain = [str(data), "--model", str(model), "--n", "3"]  # no --metrics: masks add localisation
    res = runner.invoke(app, [*plain, "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    defaults = json.loads((tmp_path / "d" / "scores.json").read_text())["scores"]["gradcam"]
    assert {"deletion", "road_lerf", "pointing_game", "energy_in_mask"} <= set(defaults)

    (data / "masks.npz").unlink()  # no masks: a run of only mask metrics is refused before any work
    res = runner.invoke(app, [*plain, "--out", str(tmp_path / "e")])
    assert res.exit_code == 0 and "skipped metric" not in res.output  # the default asks for none then
    without = json.loads((tmp_path / "e" / "scores.json").read_text())["scores"]["gradcam"]
    assert "pointing_game" not in without and "deletion" in without
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "t")])
    assert res.exit_code == 1 and "needs ground-truth masks" in res.output and not (tmp_path / "t").exists()
    both = [str(data), "--model", str(model), "--n", "3", "--metrics", "deletion,pointing_game"]
    res = runner.invoke(app, [*both, "--out", str(tmp_path / "u")])
    assert res.exit_code == 0 and "skipped metric pointing_game: no ground-truth masks" in res.output


def test_an_out_that_is_a_file_is_refused_before_any_work(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, [str(data), "--model", str(model), "--out", str(tmp_path / "afile")])
    assert res.exit_code == 1 and "is not a directory" in res.output and "Traceback" not in res.output


@pytest.fixture(scope="module")
def two_methods_run(folder_and_model, tmp_path_factory) -> tuple[list[str], Path, object]:
    """One run of a CAM and a pixel method with a faithfulness and a sanity metric, read by two tests
    (its arguments but ``--out``, the folder it wrote, and the CliRunner result)."""
    data, model = folder_and_model
    args = [str(data), "--model", str(model), "--methods", "gradcam,saliency", "--n", "4"]
    args += ["--metrics", "deletion,randomisation"]
    out = tmp_path_factory.mktemp("two-methods") / "s"
    return args, out, runner.invoke(app, [*args, "--out", str(out)], terminal_width=200)


def test_layer_picks_the_cam_layer_and_a_bad_one_fails_before_any_work(two_methods_run, tmp_path) -> None:
    from agelens.explain.layers import resolve_layer
    from agelens.model.io import load_model

    args, default_out, res = two_methods_run  # the run with no --layer
    assert res.exit_code == 0, res.output
    model = args[args.index("--model") + 1]
    runs = {None: json.loads((default_out / "scores.json").read_text())}
    out = tmp_path / "score-early"
    res = runner.invoke(app, [*args, "--out", str(out), "--layer", "early"])  # all else as that run
    assert res.exit_code == 0, res.output
    runs["early"] = json.loads((out / "scores.json").read_text())
    am = load_model(model)
    assert runs[None]["meta"]["cam_layer"] == resolve_layer(am, None)[0]
    early = runs["early"]["meta"]["cam_layer"]
    assert early == resolve_layer(am, "early")[0] != runs[None]["meta"]["cam_layer"]
    # The maps' smoothness (which sets the matched random maps) follows the explained layer's grid.
    grad = [r["meta"]["matched_sigma"]["gradcam"] for r in runs.values()]
    assert grad[0] != pytest.approx(grad[1], rel=0.05)
    sal = [r["meta"]["matched_sigma"]["saliency"] for r in runs.values()]
    assert sal[0] == sal[1]  # pixel methods take no layer

    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--layer", "nope"])
    assert bad.exit_code == 2 and "--layer" in bad.output and not (tmp_path / "bad").exists()


def test_target_chooses_what_is_explained_and_read(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    args = [str(data), "--model", str(model), "--metrics", "deletion", "--n", "6"]
    for bad, why in (("age", "no age output"), ("bogus", "'bogus' is not predicted, true, age")):
        res = runner.invoke(app, [*args, "--target", bad, "--out", str(tmp_path / bad)])
        assert res.exit_code == 2 and why in " ".join(res.output.split()), res.output
        assert not (tmp_path / bad).exists()  # refused before any work
    out = tmp_path / "contrast"
    res = runner.invoke(app, [*args, "--target", "old-young", "--out", str(out)])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "scores.json").read_text())["meta"]
    assert meta["readout"] == {"kind": "contrast", "target": "old-young", "label": "p(old) - p(young)"}
    assert meta["target"] == "old-young" and meta["method_options"]["gradcam"]["target"] == "old-young"
    assert "the metrics read the p(old) - p(young)" in " ".join(res.output.split())
    res = runner.invoke(app, [*args, "--target", "true", "--out", str(tmp_path / "true")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "true" / "scores.json").read_text())["meta"]["explained"] == "given targets"


def _tiny_model(path: Path, init: int, names: list[str] | None = None, **recipe) -> Path:
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    am = wrap_keras_model(_toy_classifier(init), class_names=names)
    if recipe:
        am.metadata["train_config"] = recipe
    if recipe.get("shuffle_labels"):  # what agelens train records of the kept epoch
        am.metadata["training"] = {"best_epoch": 2, "history": [{"epoch": 2, "train_accuracy": 0.875}]}
    return save_model(am, path)


@pytest.fixture(scope="module")
def shuffled_pair_run(folder_and_model, tmp_path_factory) -> tuple[Path, Path, Path, object]:
    """A model trained with --seed 4 and its shuffled-label control (same --seed, --init-seed 5), as the
    recipe says to make them, scored together once: the model, the control, the run's --out and its
    CliRunner result, read by the test of the check it adds and the test of the start-seed warning."""
    data, _ = folder_and_model
    root = tmp_path_factory.mktemp("shuffled")
    model = _tiny_model(root / "real.keras", 0, shuffle_labels=False, seed=4)
    twin = _tiny_model(root / "else.keras", 1, shuffle_labels=True, seed=4, init_seed=5)
    out = root / "score"
    args = [str(data), "--model", str(model), "--methods", "gradcam", "--metrics", "deletion", "--n", "4"]
    return model, twin, out, runner.invoke(app, [*args, "--shuffled-model", str(twin), "--out", str(out)])


def test_shuffled_model_adds_the_data_randomisation_check(shuffled_pair_run) -> None:
    _, twin, out, res = shuffled_pair_run
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["scores"]["gradcam"]) == {"deletion", "data_randomisation"}
    assert 0 < scores["scores"]["gradcam"]["data_randomisation"]["n"] <= 4  # constant maps have no rank
    assert scores["scores"]["random"]["data_randomisation"]["n"] == 0  # noise is not re-explained
    assert scores["meta"]["shuffled_model"] == str(twin)
    assert scores["meta"]["shuffled_model_fit"] == 0.875  # the report says how far the control memorised


def test_data_randomisation_without_a_shuffled_model_fails_before_any_work(
    folder_and_model, tmp_path
) -> None:
    data, model = folder_and_model
    res = runner.invoke(app, [str(data), "--model", str(model), "--metrics", "data_randomisation,deletion"])
    assert res.exit_code == 1 and "--shuffled-model" in res.output and "--shuffle-labels" in res.output


def test_a_shuffled_model_that_does_not_match_is_refused_or_warned_about(folder_and_model, tmp_path) -> None:
    data, model = folder_and_model
    args = [str(data), "--model", str(model), "--methods", "gradcam", "--metrics", "deletion", "--n", "2"]
    other = _tiny_model(tmp_path / "other.keras", 1, ["a", "b", "c"], shuffle_labels=True)
    res = runner.invoke(app, [*args, "--shuffled-model", str(other), "--out", str(tmp_path / "s1")])
    assert res.exit_code == 1 and str(other) in res.output and "class names" in res.output
    real = _tiny_model(tmp_path / "real.keras", 1, shuffle_labels=False, seed=3)
    res = runner.invoke(app, [*args, "--shuffled-model", str(real), "--out", str(tmp_path / "s2")])
    assert res.exit_code == 0 and "trained on the real labels" in res.output
    assert "own random weights" not in res.output  # the model itself records no recipe


def test_a_shuffled_model_started_like_the_model_or_unable_to_answer_is_caught_before_scoring(
    folder_and_model, shuffled_pair_run, tmp_path
) -> None:
    from agelens.model.builder import ModelConfig, build_age_model
    from agelens.model.io import save_model
    from agelens.model.wrap import wrap_keras_model

    data, _ = folder_and_model
    model, elsewhere, _, res = shuffled_pair_run  # the control trained with --seed 4 --init-seed 5
    assert res.exit_code == 0 and "warning" not in res.output
    args = [str(data), "--model", str(model), "--methods", "gradcam", "--metrics", "deletion", "--n", "2"]
    same = _tiny_model(tmp_path / "same.keras", 1, shuffle_labels=True, seed=4)
    res = runner.invoke(app, [*args, "--shuffled-model", str(same), "--out", str(tmp_path / "s1")])
    assert res.exit_code == 0 and "started from the model's own random weights (seed 4)" in res.output

    aged = build_age_model(ModelConfig(input_size=32, alpha=0.35, age_head=True, num_classes=3), seed=0)
    aged_am = wrap_keras_model(aged)
    aged_path = save_model(aged_am, tmp_path / "aged.keras")
    args = [str(data), "--model", str(aged_path), "--methods", "gradcam", "--metrics", "deletion", "--n", "2"]
    res = runner.invoke(
        app, [*args, "--target", "age", "--shuffled-model", str(elsewhere), "-o", str(tmp_path / "s3")]
    )
    assert res.exit_code == 1 and "has no age output" in res.output and not (tmp_path / "s3").exists()

    import keras

    plain = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    other = save_model(wrap_keras_model(plain, class_names=aged_am.class_names), tmp_path / "plain.keras")
    res = runner.invoke(app, [*args, "--layer", "block_1_expand_relu", "--shuffled-model", str(other)])
    assert (
        res.exit_code == 1
        and str(other) in res.output
        and "no layer named 'block_1_expand_relu'" in res.output
    )


def test_a_class_target_is_taken_as_explain_takes_it() -> None:
    """Before: ``--target 2`` and ``--target Old`` worked in explain and were refused by score."""
    from types import SimpleNamespace

    from agelens.cli.score_cmd import _check_target

    am = SimpleNamespace(class_names=["young", "middle-aged", "old"], has_age=False)
    assert _check_target(am, "Old") == _check_target(am, "2") == _check_target(am, "old") == "old"
    with pytest.raises(typer.BadParameter):
        _check_target(am, "3")


def test_the_terminal_says_what_the_rank_is_on_and_drops_a_column_of_na(two_methods_run) -> None:
    """With a sanity metric beside deletion, the difference table had a "Δ randomisation" column of
    n/a on every row, and nothing said the mean rank follows the differences from random maps."""
    _, _, res = two_methods_run  # gradcam and saliency on deletion and randomisation, 200 columns
    assert res.exit_code == 0, res.output
    scores, diff = res.stdout.split("Method minus random maps")
    assert "randomisation" in scores and "randomisation" not in diff and "Δ deletion" in diff
    text = " ".join(scores.split())
    assert "Mean rank" in text and "difference from random maps" in text, text
