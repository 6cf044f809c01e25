"""``agelens demo --quick`` end to end: the README's main command must keep working."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agelens.cli.main import app


def test_quick_demo_writes_a_complete_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    assert report.exists() and str(report.resolve()) in result.output
    html = report.read_text()
    for section in ("Evaluation", "Explanations", "Faithfulness", "Localisation", "Shortcut"):
        assert section in html, section
    assert "http://" not in html.split("<body", 1)[1].replace("http://www.w3.org", "")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["step"].split()[0] for s in manifest["steps"]][:3] == ["generate", "train", "evaluate"]
    explained = json.loads((out / "explain" / "manifest.json").read_text())
    assert len(explained["runs"]) >= 3  # several methods
    scores = json.loads((out / "scores" / "scores.json").read_text())
    assert "gradcam" in json.dumps(scores)
    shortcut = json.loads((out / "scores" / "shortcut.json").read_text())
    assert "stamp_energy" in json.dumps(shortcut)


def test_demo_refuses_non_empty_out_without_force(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 1
    assert "not empty" in result.output and (out / "keep.txt").read_text() == "mine"
