"""Review fixes for ``data inspect`` and train's data checks: one-class data, class gaps, --seed,
unsuitable image sizes and counts of usable photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app
from agelens.data.inspect import class_gaps, loaded_counts, split_counts_of, too_few_classes
from agelens.data.sources import load_dataset

runner = CliRunner()


def _face(seed: int, w: int = 48, h: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _utk(folder: Path, ages: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, age in enumerate(ages):
        _face(i).save(folder / f"{age}_0_0_20170101{i:06d}.jpg.chip.jpg")
    return folder


def _one_label_csv(tmp_path: Path, n: int = 20) -> Path:
    _utk(tmp_path / "img", [20] * n)
    rows = ["filename,label", *(f"img/{p.name},A" for p in sorted((tmp_path / "img").iterdir()))]
    csv = tmp_path / "lab.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_inspect_takes_seed_and_shows_that_split(tmp_path: Path) -> None:
    data = _utk(tmp_path / "d", [10 + 3 * i for i in range(30)])
    res = runner.invoke(app, ["data", "inspect", str(data), "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    train, val, test = load_dataset(data).split(seed=3)
    assert report["split_seed"] == 3
    assert report["split_counts"] == {"train": train.counts(), "val": val.counts(), "test": test.counts()}
    text = runner.invoke(app, ["data", "inspect", str(data), "--seed", "3"]).stdout
    assert "seed 3" in text


def test_inspect_warns_when_classes_have_no_photos(tmp_path: Path) -> None:
    data = _utk(tmp_path / "young", [10 + i % 15 for i in range(20)])
    res = runner.invoke(app, ["data", "inspect", str(data)])
    assert res.exit_code == 0
    lines = [line for line in res.stdout.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1
    assert "no photos of middle-aged, old" in lines[0] and "train refuses this data" in lines[0]
    report = json.loads(runner.invoke(app, ["data", "inspect", str(data), "--json"]).stdout)
    assert report["class_gaps"] == "no photos of middle-aged, old"


def test_inspect_warns_about_one_label_csv(tmp_path: Path) -> None:
    res = runner.invoke(app, ["data", "inspect", str(_one_label_csv(tmp_path))])
    assert "warning: train refuses this data: only A has training photos" in res.stdout


THREE_GROUPS = [20] * 10 + [40] * 10 + [70] * 10
"""Ages whose seeded split puts every class in every part."""


def test_inspect_names_tiny_images_and_photos_in_the_wild(tmp_path: Path) -> None:
    data = _utk(tmp_path / "d", THREE_GROUPS)
    _face(99, 8, 8).save(data / "35_0_0_20170101999991.jpg")
    _face(98, 600, 300).save(data / "36_0_0_20170101999992.jpg")
    res = runner.invoke(app, ["data", "inspect", str(data)])
    warnings = [line for line in res.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, res.stdout
    assert "1 of the 32 images is smaller than 32 px (the smallest 8x8)" in warnings[0]
    assert "not face crops" in warnings[1] and "999992.jpg 600x300" in warnings[1]
    report = json.loads(runner.invoke(app, ["data", "inspect", str(data), "--json"]).stdout)
    assert [Path(p).name for p in report["too_small"]] == ["35_0_0_20170101999991.jpg"]
    assert [Path(p).name for p in report["not_face_crops"]] == ["36_0_0_20170101999992.jpg"]


def test_inspect_of_plain_face_crops_says_no_warning(tmp_path: Path) -> None:
    data = _utk(tmp_path / "d", THREE_GROUPS)
    assert "warning" not in runner.invoke(app, ["data", "inspect", str(data)]).stdout


def _no_tensorflow() -> None:
    raise AssertionError("TensorFlow started before the data was refused")


@pytest.mark.parametrize("kind", ["csv", "folder"])
def test_train_refuses_one_class_before_tensorflow(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agelens.quiet.import_tensorflow_quietly", _no_tensorflow)
    data = (
        _one_label_csv(tmp_path)
        if kind == "csv"
        else _utk(tmp_path / "young", [10 + i % 15 for i in range(30)])
    )
    out = tmp_path / "m.keras"
    res = runner.invoke(app, ["train", str(data), "--out", str(out), "--size", "32", "--epochs", "1"])
    assert res.exit_code == 1, res.output
    assert res.stderr.count("\n") == 1 and "cannot train" in res.stderr
    assert "a classifier needs training photos of at least two classes" in res.stderr
    assert not out.exists()


def test_train_check_warns_about_a_class_missing_from_a_part(capsys: pytest.CaptureFixture) -> None:
    from agelens.cli.data_cmd import check_training_classes

    names = ["young", "middle-aged", "old"]
    check_training_classes(Path("d"), names, ([0, 1, 2, 0], [0, 1], [0, 1]))
    err = capsys.readouterr().err
    assert err == "warning: no old photos in the validation or test part\n"


def test_class_gaps_and_too_few_classes() -> None:
    names = ["young", "middle-aged", "old"]
    counts = split_counts_of(names, ([0, 0, 1], [0, 1], [0]))
    assert class_gaps(counts) == "no photos of old; no middle-aged photos in the test part"
    assert too_few_classes(counts) == ""
    assert "only young has training photos" in too_few_classes(split_counts_of(names, ([0], [0], [0])))
    assert class_gaps(split_counts_of(names, ([0, 1, 2], [0, 1, 2], [0, 1, 2]))) == ""


def test_loaded_counts_count_the_photos_that_loaded() -> None:
    """train's data.counts: 308 photos loaded, not the 311 files listed."""
    assert loaded_counts(["young", "old"], ([0, 0, 1], [1], [])) == {"young": 2, "old": 2}
