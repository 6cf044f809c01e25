"""load_dataset: the three layouts, auto-detection, one problem per bad file, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_factory import bad_files, encode, face_like, truncated_jpeg

from agelens.data.bins import AgeBins
from agelens.data.sources import (
    Dataset,
    DatasetError,
    Problem,
    Record,
    detect_format,
    load_dataset,
    parse_utkface_age,
)


def _write(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _jpeg(seed: int = 0) -> bytes:
    return encode(face_like(seed=seed), "JPEG")


def _problem_for(ds: Dataset, name: str) -> list[Problem]:
    return [p for p in ds.problems if Path(p.path).name == name]


# --- UTKFace names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "age"),
    [
        ("25_0_1_20170116174525125.jpg.chip.jpg", 25.0),
        ("39_1_20170116174525125.jpg.chip.jpg", 39.0),  # no race field
        ("0_0_0_x.png", 0.0),
        ("120_1_0_x.jpg", 120.0),
        ("7.5_0_0_x.jpg", 7.5),
    ],
)
def test_parse_utkface_age(name: str, age: float) -> None:
    assert parse_utkface_age(name) == age


@pytest.mark.parametrize(
    "name", ["abc_0_0_x.jpg", "_0_0.jpg", "25.jpg", "-3_0_0.jpg", "\u00b25_0_0.jpg", "1e2_0.jpg", "nan_0.jpg"]
)
def test_parse_utkface_age_unparsable(name: str) -> None:
    with pytest.raises(ValueError, match="age"):
        parse_utkface_age(name)


def test_parse_utkface_age_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside 0-120"):
        parse_utkface_age("150_0_0_x.jpg")


def test_utkface_folder(utk_folder: Path) -> None:
    ds = load_dataset(utk_folder)
    assert ds.format == "utkface" and ds.root == utk_folder
    assert ds.class_names == ["young", "middle-aged", "old"]
    assert ds.counts() == {"young": 2, "middle-aged": 2, "old": 2}
    assert ds.ages.tolist() == sorted(ds.ages.tolist(), key=lambda a: f"{a:g}_")  # sorted by file name
    assert sorted(ds.ages.tolist()) == [3, 25, 30, 59, 60, 116]
    assert ds.labels.tolist() == AgeBins().index(ds.ages).tolist()
    assert ds.problems == []  # README.txt is not an image: ignored, not a problem
    assert ds.sizes is not None and ds.sizes.tolist() == [[40, 48]] * 6


def test_unparsable_age_in_name_is_a_problem(utk_folder: Path) -> None:
    _write(utk_folder, "abc_0_0_x.jpg.chip.jpg", _jpeg())
    ds = load_dataset(utk_folder)
    (problem,) = _problem_for(ds, "abc_0_0_x.jpg.chip.jpg")
    assert "unparsable age" in problem.reason
    assert len(ds) == 6


def test_age_150_is_a_problem(utk_folder: Path) -> None:
    _write(utk_folder, "150_0_0_x.jpg.chip.jpg", _jpeg())
    ds = load_dataset(utk_folder)
    (problem,) = _problem_for(ds, "150_0_0_x.jpg.chip.jpg")
    assert "150" in problem.reason and "outside" in problem.reason
    assert 150 not in ds.ages


def test_zero_byte_image_is_a_problem(utk_folder: Path) -> None:
    _write(utk_folder, "33_0_0_empty.jpg.chip.jpg", b"")
    ds = load_dataset(utk_folder)
    (problem,) = _problem_for(ds, "33_0_0_empty.jpg.chip.jpg")
    assert "empty" in problem.reason
    assert all(r.path.name != "33_0_0_empty.jpg.chip.jpg" for r in ds.records)


def test_text_file_named_jpg_is_a_problem(utk_folder: Path) -> None:
    _write(utk_folder, "33_0_0_text.jpg", b"hello, I am text")
    ds = load_dataset(utk_folder)
    (problem,) = _problem_for(ds, "33_0_0_text.jpg")
    assert "not an image" in problem.reason


def test_truncated_jpeg_is_a_problem(utk_folder: Path) -> None:
    _write(utk_folder, "33_0_0_cut.jpg", truncated_jpeg())
    ds = load_dataset(utk_folder)
    (problem,) = _problem_for(ds, "33_0_0_cut.jpg")
    assert "truncated" in problem.reason


def test_without_image_check_bad_images_stay_records(utk_folder: Path) -> None:
    _write(utk_folder, "33_0_0_cut.jpg", truncated_jpeg())
    ds = load_dataset(utk_folder, check_images=False)
    assert len(ds) == 7 and ds.problems == [] and ds.sizes is None


def test_every_bad_file_reported_exactly_once(utk_folder: Path) -> None:
    for name, (data, _) in bad_files().items():
        _write(utk_folder, name, data)
    ds = load_dataset(utk_folder)
    names = [Path(p.path).name for p in ds.problems]
    assert sorted(names) == sorted(bad_files())
    for name, (_, word) in bad_files().items():
        (problem,) = _problem_for(ds, name)
        assert word in problem.reason.lower(), (name, problem.reason)
        assert "\n" not in str(problem)
    assert len(ds) == 6


def test_custom_bins(utk_folder: Path) -> None:
    ds = load_dataset(utk_folder, bins=AgeBins.parse("18", "minor,adult"))
    assert ds.class_names == ["minor", "adult"] and ds.counts() == {"minor": 1, "adult": 5}


# --- class folders ----------------------------------------------------------------------------


def test_class_folders_sorted(tmp_path: Path) -> None:
    for cls, n in (("zebra", 2), ("cat", 1), ("mouse", 3)):
        for i in range(n):
            _write(tmp_path, f"{cls}/sub/{i}.png", encode(face_like(seed=i), "PNG"))
    (tmp_path / "empty_class").mkdir()
    ds = load_dataset(tmp_path)
    assert ds.format == "folders"
    assert ds.class_names == ["cat", "mouse", "zebra"]
    assert ds.counts() == {"cat": 1, "mouse": 3, "zebra": 2}
    assert all(r.age is None for r in ds.records) and np.isnan(ds.ages).all()
    assert all(ds.class_names[r.label] == r.path.parts[-3] for r in ds.records)


def test_class_folders_named_like_the_bins_keep_bin_order(tmp_path: Path) -> None:
    for cls in ("old", "young"):  # no middle-aged folder
        _write(tmp_path, f"{cls}/a.jpg", _jpeg())
    ds = load_dataset(tmp_path)
    assert ds.class_names == ["young", "middle-aged", "old"]
    assert ds.counts() == {"young": 1, "middle-aged": 0, "old": 1}


def test_class_folders_bad_image_and_stray_file(tmp_path: Path) -> None:
    _write(tmp_path, "a/good.jpg", _jpeg())
    _write(tmp_path, "b/bad.jpg", b"")
    _write(tmp_path, "b/good.jpg", _jpeg(1))
    _write(tmp_path, "stray.jpg", _jpeg(2))
    ds = load_dataset(tmp_path, format="folders")
    assert len(ds) == 2
    assert {Path(p.path).name: p.reason for p in ds.problems}.keys() == {"bad.jpg", "stray.jpg"}


def test_utkface_part_folders_are_not_classes(tmp_path: Path) -> None:
    """UTKFace's own release splits its photos into part1/ part2/ part3/: ages, not classes."""
    for i, name in enumerate(["part1/8_0_0_a.jpg", "part1/45_1_2_b.jpg", "part2/70_0_1_c.jpg"]):
        _write(tmp_path, name, _jpeg(i))
    assert detect_format(tmp_path) == "utkface"
    ds = load_dataset(tmp_path)
    assert ds.format == "utkface" and ds.class_names == ["young", "middle-aged", "old"]
    assert ds.counts() == {"young": 1, "middle-aged": 1, "old": 1} and ds.problems == []
    assert sorted(ds.ages) == [8.0, 45.0, 70.0]


def test_age_named_photos_in_class_folders_stay_class_folders(tmp_path: Path) -> None:
    _write(tmp_path, "old/8_0_0_a.jpg", _jpeg())  # the folder is the label, even against the name
    _write(tmp_path, "young/70_0_0_b.jpg", _jpeg(1))
    assert detect_format(tmp_path) == "folders"
    assert detect_format(tmp_path, AgeBins.parse("50", "young,old")) == "folders"
    assert load_dataset(tmp_path).counts() == {"young": 1, "middle-aged": 0, "old": 1}


def test_utkface_images_in_sub_folders_are_reported_not_silently_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "20_0_0_a.jpg", _jpeg())
    _write(tmp_path, "backup/30_0_0_b.jpg", _jpeg(1))
    ds = load_dataset(tmp_path)
    assert ds.format == "utkface" and len(ds) == 1
    assert [(Path(p.path).relative_to(tmp_path).as_posix(), p.reason) for p in ds.problems] == [
        ("backup/30_0_0_b.jpg", "image in a sub-folder (not read: images sit at this dataset's top level)")
    ]


def test_broken_links_are_problems(tmp_path: Path) -> None:
    utk, folders = tmp_path / "utk", tmp_path / "folders"
    _write(utk, "20_0_0_a.jpg", _jpeg())
    _write(folders, "young/a.jpg", _jpeg())
    for link in (utk / "33_0_0_gone.jpg", folders / "young" / "gone.jpg"):
        link.symlink_to(tmp_path / "nowhere.jpg")
    for root in (utk, folders):
        ds = load_dataset(root)
        assert len(ds) == 1
        assert [(Path(p.path).name, p.reason) for p in ds.problems] == [
            ("33_0_0_gone.jpg" if root == utk else "gone.jpg", "broken link (its target does not exist)")
        ]


# --- CSV --------------------------------------------------------------------------------------


def _csv_set(tmp_path: Path, header: str, rows: list[str]) -> Path:
    for i in range(3):
        _write(tmp_path, f"img/{i}.jpg", _jpeg(i))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return csv_path


def test_csv_with_ages(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "Path,age", ["img/0.jpg,12", "img/1.jpg,44.5", "img/2.jpg,88"])
    ds = load_dataset(csv_path)
    assert ds.format == "csv" and ds.root == tmp_path
    assert ds.ages.tolist() == [12.0, 44.5, 88.0] and ds.labels.tolist() == [0, 1, 2]


def test_csv_row_naming_missing_file(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "file,age", ["img/0.jpg,12", "img/missing.jpg,30", "img/2.jpg,70"])
    ds = load_dataset(csv_path)
    assert len(ds) == 2
    (problem,) = ds.problems
    assert Path(problem.path) == tmp_path / "img/missing.jpg"
    assert "file not found" in problem.reason and "line 3" in problem.reason


def test_csv_bad_age_values(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "image,age", ["img/0.jpg,old", "img/1.jpg,150", "img/2.jpg,nan"])
    ds = load_dataset(csv_path)
    assert len(ds) == 0
    reasons = sorted(p.reason for p in ds.problems)
    assert len(reasons) == 3 and any("unparsable" in r for r in reasons)
    assert sum("outside" in r for r in reasons) == 2


def test_csv_label_names(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "filename,label", ["img/0.jpg,dog", "img/1.jpg,cat", "img/2.jpg,dog"])
    ds = load_dataset(csv_path)
    assert ds.class_names == ["cat", "dog"] and ds.labels.tolist() == [1, 0, 1]
    assert np.isnan(ds.ages).all()


def test_csv_label_indices_use_bin_names(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "path,label", ["img/0.jpg,2", "img/1.jpg,0", "img/2.jpg,5"])
    ds = load_dataset(csv_path)
    assert ds.class_names == ["young", "middle-aged", "old"] and ds.labels.tolist() == [2, 0]
    (problem,) = ds.problems
    assert "out of range" in problem.reason


def test_csv_duplicate_row_reported_once(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "path,age", ["img/0.jpg,12", "img/0.jpg,13"])
    ds = load_dataset(csv_path)
    assert len(ds) == 1 and ds.records[0].age == 12.0
    (problem,) = ds.problems
    assert "duplicate" in problem.reason


def test_csv_without_needed_columns(tmp_path: Path) -> None:
    csv_path = _csv_set(tmp_path, "name,years", ["img/0.jpg,12"])
    with pytest.raises(DatasetError, match="path column"):
        load_dataset(csv_path)


def test_folder_with_single_csv_is_csv(tmp_path: Path) -> None:
    _csv_set(tmp_path / "d", "path,age", ["img/0.jpg,5"])
    assert detect_format(tmp_path / "d") == "csv"
    assert len(load_dataset(tmp_path / "d")) == 1


# --- detection and whole-path errors ----------------------------------------------------------


def test_empty_folder_is_a_clear_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "nothing here"
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        load_dataset(empty)
    assert str(e.value).startswith(str(empty)) and "empty folder" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "absent")


def test_unknown_layout(tmp_path: Path) -> None:
    _write(tmp_path, "holiday.jpg", _jpeg())
    with pytest.raises(DatasetError, match="cannot tell.*: 1 image whose name does not start with an age"):
        load_dataset(tmp_path)
    _write(tmp_path, "beach.jpg", _jpeg())
    with pytest.raises(DatasetError, match="2 images whose names do not"):
        load_dataset(tmp_path)


def test_unknown_format_name(utk_folder: Path) -> None:
    with pytest.raises(DatasetError, match="unknown format"):
        load_dataset(utk_folder, format="parquet")


def test_auto_detects_utkface_despite_a_few_odd_names(utk_folder: Path) -> None:
    _write(utk_folder, "holiday.jpg", _jpeg())
    assert detect_format(utk_folder) == "utkface"
    ds = load_dataset(utk_folder)
    assert [Path(p.path).name for p in ds.problems] == ["holiday.jpg"]


# --- Dataset helpers and splits ---------------------------------------------------------------


def _synthetic_dataset(n: int = 200) -> Dataset:
    rng = np.random.default_rng(1)
    labels = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    recs = [Record(Path(f"{i:04d}.jpg"), int(k), float(10 + 30 * k)) for i, k in enumerate(labels)]
    sizes = np.arange(2 * n).reshape(n, 2)
    return Dataset("utkface", Path("."), recs, ["young", "middle-aged", "old"], [], sizes)


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    ds = _synthetic_dataset()
    train, val, test = ds.split(seed=0)
    paths = [set(part.paths) for part in (train, val, test)]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert set().union(*paths) == set(ds.paths)
    assert len(train) == pytest.approx(0.8 * len(ds), abs=3)
    for part in (train, val, test):
        assert all(part.counts()[c] > 0 for c in ds.class_names)
    again = ds.split(seed=0)
    assert [p.paths for p in again] == [p.paths for p in (train, val, test)]
    assert ds.split(seed=1)[2].paths != test.paths
    np.testing.assert_array_equal(ds.split_index(seed=0) == 1, np.isin(ds.paths, val.paths))


def test_subset_keeps_sizes_aligned() -> None:
    ds = _synthetic_dataset(10)
    sub = ds.subset([3, 1])
    assert sub.paths == [ds.paths[3], ds.paths[1]]
    assert sub.sizes is not None and sub.sizes.tolist() == [ds.sizes[3].tolist(), ds.sizes[1].tolist()]


def test_problem_str_is_one_line() -> None:
    assert str(Problem(Path("a/b.jpg"), "bad\nfile")) == "a/b.jpg: bad file"
