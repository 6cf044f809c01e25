"""``agelens demo --real PHOTOS``: unreadable photos are counted, named and never leave a half run behind."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from agelens.cli.main import app


def _face(path) -> None:
    from agelens.data.synthetic import generate

    Image.fromarray(generate(1, size=64, seed=0).images[0]).save(path)


def _truncated_jpeg(path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 60)).save(buf, format="JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_real_demo_counts_the_photos_it_explained_and_names_the_skipped(tmp_path, monkeypatch):
    """Before: "[1] explain 2 photos", the manifest and the page listed the empty file among the
    photos, and the skip and its reason were nowhere on the page."""
    import agelens.demo as demo

    real = tmp_path / "real"
    real.mkdir()
    _face(real / "face.png")
    (real / "zero.jpg").write_bytes(b"")
    quick = replace(demo.DemoSettings(), methods=("gradcam",), filters=2)  # the shipped model, one method
    monkeypatch.setattr(demo, "DemoSettings", lambda: quick)
    out = tmp_path / "demoreal"
    res = CliRunner().invoke(app, ["demo", "--real", str(real), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "[1] explain 1 photo with 1 method" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["photos"] == [str(real / "face.png")]
    assert manifest["skipped"] == [f"{real / 'zero.jpg'}: empty file (0 bytes)"]
    assert manifest["steps"][0]["step"].startswith("explain 1 photo with 1 method")
    assert "1 unreadable photo skipped" in manifest["steps"][0]["step"]
    html = (out / "report.html").read_text()
    assert re.search(r"zero\.jpg</th>\s*<td[^>]*>empty file", html)  # its row in "Skipped photos"
    assert "explain 1 photo " in html and "explain 2 photos" not in html


def test_real_demo_with_no_readable_photo_is_one_error_and_leaves_nothing(tmp_path):
    """Before: a stray "error: 1" line, and a stub manifest.json that made the rerun need --force."""
    bad = tmp_path / "realbad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    _truncated_jpeg(bad / "trunc.jpg")
    out = tmp_path / "demobad"
    for _ in range(2):  # the rerun meets the same error, not a folder that is "not empty"
        res = CliRunner().invoke(app, ["demo", "--real", str(bad), "--out", str(out)])
        assert res.exit_code == 1
        assert _error_lines(res.output) == ["error: nothing to explain: all 2 photos were unreadable"]
        assert not out.exists()


DISK_FULL = "demo/explain: could not write the run: No space left on device"


@pytest.fixture
def failing_explain(monkeypatch):
    """The model loads and explain fails the way ``agelens explain`` does, after writing into its folder."""
    import agelens.cli.explain_cmd as explain_cmd
    import agelens.model.io as model_io

    class Model:
        path = None

    def explain(**kwargs):
        (kwargs["out"] / "partial.png").parent.mkdir(parents=True)
        (kwargs["out"] / "partial.png").write_bytes(b"half")
        typer.echo(f"error: {DISK_FULL}", err=True)
        raise typer.Exit(1)

    monkeypatch.setattr(model_io, "load_model", lambda *a, **k: Model())
    monkeypatch.setattr(explain_cmd, "explain_command", explain)


def test_real_demo_failing_step_is_one_error_and_leaves_no_folder(tmp_path, failing_explain):
    """Before: explain's error was followed by "error: 1", and the stub run folder stayed."""
    _face(tmp_path / "face.png")
    out = tmp_path / "runs" / "demo"
    res = CliRunner().invoke(app, ["demo", "--real", str(tmp_path / "face.png"), "--out", str(out)])
    assert res.exit_code == 1
    assert _error_lines(res.output) == [f"error: {DISK_FULL}"]
    assert not (tmp_path / "runs").exists()

    # an earlier run beside the user's file, replaced with --force: the user's file stays, and
    # the folder still reads as a run, so --force can clear it again
    out.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"agelens_version": "0", "steps": []}))
    (out / "explain").mkdir()
    (out / "thesis.txt").write_text("mine")
    res = CliRunner().invoke(app, ["demo", "--real", str(tmp_path / "face.png"), "-o", str(out), "--force"])
    assert res.exit_code == 1 and len(_error_lines(res.output)) == 1
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "thesis.txt"]
    assert json.loads((out / "manifest.json").read_text())["status"] == "incomplete"
