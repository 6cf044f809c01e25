"""Format detection across sub-folders, hidden sub-folders and unresolvable links."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_factory import encode, face_like

from agelens.data.bins import AgeBins
from agelens.data.sources import detect_format, load_dataset, scan_images


def _write(folder: Path, name: str, seed: int = 0) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(encode(face_like(seed=seed), "PNG"))
    return p


def _rel(root: Path, paths) -> list[str]:
    return sorted(Path(p).relative_to(root).as_posix() for p in paths)


# --- class folders against UTKFace-looking names -----------------------------------------------


def test_numbered_files_in_class_folders_are_classes_not_ages(tmp_path: Path) -> None:
    """child/001_face.png: the folder is the label, the number a counter (not age 1)."""
    i = 1
    for cls, n in (("child", 3), ("adult", 4), ("senior", 2)):
        for _ in range(n):
            _write(tmp_path, f"{cls}/{i:03d}_face.png", i)
            i += 1
    assert detect_format(tmp_path) == "folders"
    ds = load_dataset(tmp_path)
    assert ds.format == "folders" and ds.class_names == ["adult", "child", "senior"]
    assert ds.counts() == {"adult": 4, "child": 3, "senior": 2} and ds.problems == []
    assert not ds.has_ages


def test_utkface_named_files_in_custom_class_folders_are_classes(tmp_path: Path) -> None:
    """kid/ adult/ senior/ holding UTKFace-named photos: several user folders, so class folders."""
    for cls, ages in (("kid", (8, 12)), ("adult", (35, 40, 45)), ("senior", (70,))):
        for k, age in enumerate(ages):
            _write(tmp_path, f"{cls}/{age}_0_1_2017011{k}.jpg.chip.png", age)
    assert detect_format(tmp_path) == "folders"
    ds = load_dataset(tmp_path)
    assert ds.counts() == {"adult": 3, "kid": 2, "senior": 1}


@pytest.mark.parametrize("parts", [("part1", "part2", "part3"), ("crop_part1",), ("UTKFace",), ("faces",)])
def test_utkface_release_folders_stay_utkface(tmp_path: Path, parts: tuple[str, ...]) -> None:
    """UTKFace's own folders (part1/..., crop_part1/, UTKFace/) or a single wrapper folder."""
    ages = (8, 45, 70, 25, 61)
    for k, age in enumerate(ages):
        _write(tmp_path, f"{parts[k % len(parts)]}/{age}_{k % 2}_0_2017010{k}.jpg.chip.jpg", k)
    assert detect_format(tmp_path) == "utkface"
    ds = load_dataset(tmp_path)
    assert ds.format == "utkface" and sorted(ds.ages) == sorted(ages) and ds.problems == []


def test_part_folders_need_utkface_names(tmp_path: Path) -> None:
    """A counter (leading zeros, no gender field) is no age, even in part1/ part2/."""
    for k in range(4):
        _write(tmp_path, f"part{k % 2 + 1}/{k + 1:03d}_face.png", k)
    assert detect_format(tmp_path) == "folders"


def test_flat_utkface_folder_unchanged(tmp_path: Path) -> None:
    for k, age in enumerate((3, 39, 61)):
        _write(tmp_path, f"{age}_1_{k}_2017011{k}.jpg.chip.jpg", k)
    _write(tmp_path, "39_1_20170116174525125.jpg.chip.jpg")  # a real name without the race field
    assert detect_format(tmp_path) == "utkface"
    assert sorted(load_dataset(tmp_path).ages) == [3, 39, 39, 61]


def test_folders_named_after_bins_stay_class_folders(tmp_path: Path) -> None:
    _write(tmp_path, "young/70_0_0_a.jpg")  # one folder, UTKFace name, but a class name
    assert detect_format(tmp_path) == "folders"
    assert detect_format(tmp_path, AgeBins.parse("50", "kid,grown")) == "utkface"


# --- hidden sub-folders ------------------------------------------------------------------------


def test_images_in_hidden_sub_folders_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "young/a.png")
    _write(tmp_path, "young/.thumbnails/old_face.png", 1)
    _write(tmp_path, "young/sub/.cache/deep/x.png", 2)
    _write(tmp_path, "old/b.png", 3)
    _write(tmp_path, ".hidden_class/c.png", 4)
    ds = load_dataset(tmp_path)
    assert ds.format == "folders"
    assert ds.counts() == {"young": 1, "middle-aged": 0, "old": 1} and ds.problems == []


def test_utkface_hidden_sub_folders_neither_read_nor_reported(tmp_path: Path) -> None:
    _write(tmp_path, "20_0_0_a.jpg")
    _write(tmp_path, ".thumbnails/30_0_0_b.jpg", 1)
    ds = load_dataset(tmp_path)
    assert ds.format == "utkface" and len(ds) == 1 and ds.problems == []
    parts = tmp_path / "parts"
    _write(parts, "part1/20_0_0_a.jpg")
    _write(parts, "part1/.cache/30_0_0_b.jpg", 1)
    ds = load_dataset(parts)
    assert ds.format == "utkface" and ds.ages.tolist() == [20.0] and ds.problems == []


def test_scan_is_relative_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / ".config" / "data"  # a hidden folder above the root does not hide it
    _write(root, "a.png")
    _write(root, "sub/b.png")
    _write(root, "sub/.c.png")
    images, problems = scan_images(root, recursive=True)
    assert _rel(root, images) == ["a.png", "sub/b.png"] and problems == []
    assert _rel(root, scan_images(root)[0]) == ["a.png"]


# --- links -------------------------------------------------------------------------------------


def test_symlink_loop_is_not_called_a_missing_target(tmp_path: Path) -> None:
    _write(tmp_path, "20_0_0_a.jpg")
    (tmp_path / "30_0_0_loop_a.jpg").symlink_to("30_0_0_loop_b.jpg")
    (tmp_path / "30_0_0_loop_b.jpg").symlink_to("30_0_0_loop_a.jpg")
    (tmp_path / "40_0_0_gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "dirloop").symlink_to(".")
    ds = load_dataset(tmp_path)
    assert len(ds) == 1
    reasons = {Path(p.path).name: p.reason for p in ds.problems}
    assert reasons == {
        "30_0_0_loop_a.jpg": "symlink loop (the link cannot be resolved)",
        "30_0_0_loop_b.jpg": "symlink loop (the link cannot be resolved)",
        "40_0_0_gone.jpg": "broken link (its target does not exist)",
    }


def test_agelens_output_folders_are_not_read_as_photos(tmp_path: Path) -> None:
    """`explain .` twice read the first run's overlays and panels as photos (and grew each run)."""
    import json

    _write(tmp_path, "me.png")
    run = tmp_path / "outputs" / "explain"
    _write(run, "000_me_gradcam_overlay.png")
    (run / "manifest.json").write_text(json.dumps({"agelens_version": "0.1", "files": ["x"]}))
    score = tmp_path / "sc"
    _write(score, "class_mean_maps.png")
    (score / "scores.json").write_text(json.dumps({"meta": {"versions": {"agelens": "0.1"}}}))
    mine = tmp_path / "albums"  # a manifest.json of someone else's is no reason to skip photos
    _write(mine, "holiday.png")
    (mine / "manifest.json").write_text(json.dumps({"photos": 1}))
    with pytest.warns(UserWarning, match="agelens output") as said:
        images, _ = scan_images(tmp_path, recursive=True)
    assert _rel(tmp_path, images) == ["albums/holiday.png", "me.png"]
    assert sorted(str(w.message).split(":")[0] for w in said) == [f"skipped {run}", f"skipped {score}"]
    # Given by name (or `explain run --out run --force`), only the files agelens wrote are skipped.
    _write(run, "a_photo_of_mine.png")
    (run / "manifest.json").write_text(
        json.dumps({"agelens_version": "0.1", "files": ["000_me_gradcam_overlay.png", "manifest.json"]})
    )
    assert _rel(run, scan_images(run)[0]) == ["a_photo_of_mine.png"]
    assert _rel(run, scan_images(run, recursive=True)[0]) == ["a_photo_of_mine.png"]
