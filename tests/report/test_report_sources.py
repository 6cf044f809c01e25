"""A photo explained by a relative path is found again from any folder: the report's cards and
``Explanation.load`` read the absolute path recorded beside the one the user typed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from report_factory import explained_by_relative_path

from agelens.report.html import render_report


def _explained_by_relative_path(tiny_model_path: Path, tmp_path: Path, monkeypatch) -> Path:
    explained_by_relative_path(tiny_model_path, tmp_path, monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a report made from another folder
    return tmp_path / "ex"


def test_the_report_finds_a_photo_explained_by_a_relative_path_from_another_folder(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    ex = _explained_by_relative_path(tiny_model_path, tmp_path, monkeypatch)
    (record,) = json.loads((ex / "manifest.json").read_text())["images"]
    assert record["source"] == "photos/face.png"  # as typed
    assert record["source_path"] == str((tmp_path / "photos" / "face.png").resolve())
    assert "photo not found" not in render_report(ex)
    manifest = json.loads((ex / "manifest.json").read_text())
    del manifest["images"][0]["source_path"]  # as an older manifest: only the typed path, missed here
    (ex / "manifest.json").write_text(json.dumps(manifest))
    assert "photo not found" in render_report(ex)


def test_a_saved_explanation_reloads_its_photo_from_another_folder(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    from agelens.explain.explanation import Explanation

    ex = _explained_by_relative_path(tiny_model_path, tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "photo not found as saved: grey stand-in" would fail here
        loaded = Explanation.load(ex)
    assert loaded.images[0].shape == (64, 64, 3) and loaded.images[0].std() > 0


def test_a_same_named_photo_in_the_current_folder_does_not_stand_in_for_the_one_explained(
    tmp_path: Path, monkeypatch
) -> None:
    """``source`` is relative to where the command ran; from another folder it can name a different
    photo, so the recorded absolute path wins."""
    from agelens.data.images import source_file, source_record

    for folder in ("first", "second"):
        (tmp_path / folder / "photos").mkdir(parents=True)
        (tmp_path / folder / "photos" / "face.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "first")
    record = source_record("photos/face.png")
    monkeypatch.chdir(tmp_path / "second")
    assert source_file(record) == (tmp_path / "first" / "photos" / "face.png").resolve()
    (tmp_path / "first" / "photos" / "face.png").unlink()  # gone: the typed path is all that is left
    assert source_file(record) == Path("photos/face.png")
