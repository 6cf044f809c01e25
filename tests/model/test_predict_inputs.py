"""collect_inputs: which files `agelens predict` reads, and which it reports, for files, folders, globs."""

from __future__ import annotations

from pathlib import Path

from agelens.model.predict import collect_inputs


def _touch(root: Path, name: str) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"not decoded here")
    return p


def _names(root: Path, paths) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_folder_skips_hidden_files_and_folders_as_the_loader_does(tmp_path: Path) -> None:
    _touch(tmp_path, "30_0_0_a.jpg")
    _touch(tmp_path, ".30_0_0_hidden.jpg")
    _touch(tmp_path, "sub/b.png")
    _touch(tmp_path, "sub/.thumbnails/c.png")
    _touch(tmp_path, ".cache/d.jpg")
    _touch(tmp_path, "notes.txt")
    paths, problems = collect_inputs([tmp_path])
    assert _names(tmp_path, paths) == ["30_0_0_a.jpg", "sub/b.png"] and problems == []


def test_hidden_file_named_outright_is_read(tmp_path: Path) -> None:
    hidden = _touch(tmp_path, ".30_0_0_hidden.jpg")
    assert collect_inputs([hidden]) == ([hidden], [])


def test_broken_link_in_a_folder_is_a_problem(tmp_path: Path) -> None:
    _touch(tmp_path, "a.jpg")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    paths, problems = collect_inputs([tmp_path])
    assert _names(tmp_path, paths) == ["a.jpg"]
    assert [(Path(p.path).name, p.reason) for p in problems] == [
        ("gone.jpg", "broken link (its target does not exist)"),
        ("loop.jpg", "symlink loop (the link cannot be resolved)"),
    ]
    assert "gone.jpg" in str(problems[0]) and all("\n" not in str(p) for p in problems)


def test_broken_link_named_outright_or_by_glob_is_a_problem(tmp_path: Path) -> None:
    link = tmp_path / "gone.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    _touch(tmp_path, "a.jpg")
    paths, problems = collect_inputs([link])
    assert paths == [] and [(p.path, p.reason) for p in problems] == [
        (link, "broken link (its target does not exist)")
    ]
    paths, problems = collect_inputs([str(tmp_path / "*.jpg")])
    assert _names(tmp_path, paths) == ["a.jpg"]
    assert [(Path(p.path).name, p.reason) for p in problems] == [
        ("gone.jpg", "broken link (its target does not exist)")
    ]


def test_missing_inputs_still_reported(tmp_path: Path) -> None:
    paths, problems = collect_inputs([tmp_path / "absent.jpg", str(tmp_path / "*.png")])
    assert paths == []
    assert [p.reason for p in problems] == ["no such file or folder", "pattern matched no files"]
