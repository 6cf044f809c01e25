"""``agelens data inspect`` / ``data synth`` and the top-level app, through Typer's CliRunner."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from data_factory import bad_files, encode, face_like, odd_valid_files
from typer.testing import CliRunner

from agelens import __version__
from agelens.cli.main import app

runner = CliRunner()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """3 plain JPEGs, 5 odd-but-valid images and 5 bad files, UTKFace-named."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, age in enumerate((8, 33, 77)):
        (folder / f"{age}_0_0_plain{i}.jpg.chip.jpg").write_bytes(encode(face_like(seed=i), "JPEG"))
    for name, data in odd_valid_files().items():
        (folder / name).write_bytes(data)
    for name, (data, _) in bad_files().items():
        (folder / name).write_bytes(data)
    return folder


def test_inspect_mixed_folder_names_every_bad_file_with_its_reason(mixed_folder: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(mixed_folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, (_, word) in bad_files().items():
        hits = [ln for ln in lines if name in ln]
        assert len(hits) == 1, (name, hits)
        assert word in hits[0].lower(), hits[0]
    for name in odd_valid_files():
        assert name not in result.output  # valid: counted, never listed as a problem
    assert "8 usable images" in result.output and "5 problems" in result.output
    assert "utkface" in result.output


def test_inspect_json(mixed_folder: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(mixed_folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "utkface" and report["n_usable"] == 8
    assert report["counts"] == {"young": 3, "middle-aged": 3, "old": 2}  # ages 8 15 21 | 33 35 45 | 70 77
    assert sum(sum(v.values()) for v in report["split_counts"].values()) == 8
    assert report["size_stats"]["height"]["max"] == 48 and report["size_stats"]["width"]["min"] == 20
    assert sorted(Path(p["path"]).name for p in report["problems"]) == sorted(bad_files())


def test_inspect_custom_bins(mixed_folder: Path) -> None:
    args = ["data", "inspect", str(mixed_folder), "--bins", "50", "--names", "under50,over50", "--json"]
    report = json.loads(runner.invoke(app, args).stdout)
    assert report["counts"] == {"under50": 6, "over50": 2}


def test_inspect_bad_bins_is_a_usage_error(mixed_folder: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(mixed_folder), "--bins", "60,30"])
    assert result.exit_code == 2


def test_inspect_missing_path_exits_1_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(tmp_path / "absent")])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr


def test_inspect_empty_folder_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 1 and "empty folder" in result.stderr


def test_inspect_nothing_usable_exits_1(tmp_path: Path) -> None:
    for name, (data, _) in bad_files().items():
        (tmp_path / name).write_bytes(data)
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 1
    assert "no usable images" in result.stderr and result.stderr.strip().count("\n") == 0
    assert all(name in result.stdout for name in bad_files())


def test_inspect_class_folders_format_option(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.png").write_bytes(encode(face_like(), "PNG"))
    result = runner.invoke(app, ["data", "inspect", str(tmp_path), "-f", "folders", "--json"])
    report = json.loads(result.stdout)
    assert report["format"] == "folders" and report["counts"] == {"a": 1, "b": 1}


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"agelens {__version__}"
    result = runner.invoke(app, ["data", "inspect", "--help"])
    assert result.exit_code == 0 and "Examples" in result.stdout


def test_synth_calls_write_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def write_dataset(out: Path, n: int, size: int = 96, seed: int = 0) -> dict:
        calls.append((Path(out), n, size, seed))
        return {"out": str(out), "n": n, "size": size, "counts": {"young": n}, "seconds": 0.5}

    fake = types.ModuleType("agelens.data.synthetic")
    fake.write_dataset = write_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agelens.data.synthetic", fake)
    args = ["data", "synth", str(tmp_path / "s"), "--n", "12", "--size", "32", "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "s", 12, 32, 3)]
    assert "wrote 12 images" in result.stdout and "young: 12" in result.stdout


def test_synth_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_dataset(out: Path, n: int, size: int = 96, seed: int = 0) -> dict:
        raise FileExistsError(f"refusing to write synthetic data into non-empty {out}")

    fake = types.ModuleType("agelens.data.synthetic")
    fake.write_dataset = write_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agelens.data.synthetic", fake)
    result = runner.invoke(app, ["data", "synth", str(tmp_path), "--n", "2"])
    assert result.exit_code == 1 and "non-empty" in result.stderr


def test_synth_errors_name_the_folder_once_without_temp_paths(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    (tmp_path / "photo.png").write_bytes(b"png")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    cases = {
        "full": "non-empty folder; give a new or empty one",
        "photo.png": "is a file; give a new or empty folder",
        "blocker/out": f"cannot write there ({tmp_path / 'blocker'} is a file, not a folder)",
    }
    for name, reason in cases.items():
        out = tmp_path / name
        result = runner.invoke(app, ["data", "synth", str(out), "--n", "2", "--size", "32"])
        assert result.exit_code == 1, result.output
        line = result.stderr.strip()
        assert line.startswith(f"error: {out}") and reason in line and "\n" not in line
        assert line.count(str(out)) == 1 and ".tmp" not in line, line
