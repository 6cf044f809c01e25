"""The HTML report: one self-contained file, every section, and graceful gaps."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from report_factory import METHODS, make_run
from typer.testing import CliRunner

from agelens.report.html import render_report, write_report
from agelens.report.tables import tables_from_json

SECTION_IDS = ["run", "model-card", "evaluation", "explanations", "scores", "shortcut"]


def _ids(html: str) -> set[str]:
    return set(re.findall(r'<section class="[^"]*" id="([^"]+)"', html))


def test_single_self_contained_file(run_dir: Path) -> None:
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text(encoding="utf-8")
    # no external fetches of any kind: every src/href is a data: URI or an in-page anchor
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', html)
    assert refs, "expected embedded images"
    assert all(r.startswith(("data:", "#")) for r in refs), [
        r for r in refs if not r.startswith(("data:", "#"))
    ]
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", html)
    assert "@import" not in html and "url(http" not in html
    # the model card's remote link survives as text, never as a reference
    assert "example.org/utk" in html
    # plots stay PNG (the card's local image, confusion matrix, 3 score plots, shortcut plot,
    # 3 filter grids); photos and the 3 x 2 x 2 overlays of each of the 3 photos are JPEG
    assert html.count("data:image/png;base64,") == 9
    assert html.count("data:image/jpeg;base64,") >= 3 * (1 + 12)
    assert not list(run_dir.glob(".report.html.*")), "temp file left behind"
    assert (run_dir / "report.html").stat().st_mode & 0o777 == 0o644  # shareable, not mkstemp's 0600


def test_all_sections_and_their_content(run_dir: Path) -> None:
    html = render_report(run_dir)
    assert set(SECTION_IDS) <= _ids(html)
    for sub in ("scores-faithfulness", "scores-randomisation", "scores-localisation", "scores-regions"):
        assert f'id="{sub}"' in html
    assert "80.0%" in html and "Balanced accuracy" in html  # headline stat cards
    assert "true \\ predicted" in html  # confusion matrix as a table
    assert 'deletion <span class="arrow"' in html and "↓" in html and "↑" in html  # direction arrows
    assert "mean rank" in html
    assert "flagged: map survives the randomisation" in html  # scorecam's randomisation correlation 0.9 > 0.5
    assert "area share" in html  # region matrix from scores.json
    assert "accuracy stamped" in html and "99.0%" in html  # shortcut story


def test_gallery_switches_are_wired(run_dir: Path) -> None:
    html = render_report(run_dir)
    method_select = re.search(r'<select id="sel-method">(.*?)</select>', html, re.S)
    assert method_select
    assert re.findall(r">([^<]+)</option>", method_select.group(1)) == METHODS
    for sel in ("sel-layer", "sel-target", "sel-filter"):
        assert f'id="{sel}"' in html
    data = json.loads(re.search(r'id="gallery-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["items"]) == 3
    first = data["items"][0]["maps"]
    assert len(first) == 3 * 2 * 2 and len(set(first.values())) == len(first)  # every variant distinct
    assert data["default"] == "0-0-0" and html.count('class="gcard"') == 3


def test_ranking_orders_rows_and_marks_best() -> None:
    scores = {
        "a": {"deletion": 0.3, "insertion": 0.5},
        "b": {"deletion": 0.1, "insertion": 0.9},
        "c": {"deletion": 0.2, "insertion": 0.7},
    }
    (table,) = tables_from_json(scores, "t", rank=True, stated={"deletion": "lower", "insertion": "higher"})
    assert [row[0].text for row in table.rows] == ["b", "c", "a"]
    assert table.arrows == {"deletion": "↓", "insertion": "↑"}
    assert [name for name, _ in table.ranking] == ["b", "c", "a"]
    assert all("best" in c.cls for c in table.rows[0][1:])


@pytest.mark.parametrize(
    "doc",
    [
        [{"method": "x", "score": 1}, {"method": "y", "nested": {"deep": {"deeper": [1, {"z": 2}]}}}],
        {"a": {"b": {"c": {"d": {"e": 1}}}}},
        {"a": [1, 2, 3], "b": None, "c": "text", "d": {"mean": float("nan"), "std": 1.0}},
        [1, "two", None],
        "just a string",
        {},
    ],
)
def test_generic_tables_survive_odd_shapes(doc: object) -> None:
    tables = tables_from_json(doc, "odd")
    assert all(t.rows or t.columns for t in tables)


def test_long_lists_are_cut() -> None:
    (table,) = tables_from_json({"loss": [0.5] * 1000}, "history")
    assert table.rows[0][1].text.endswith("… (1,000 values)") and len(table.rows[0][1].text) < 120


def test_legacy_score_schema_falls_back_by_name(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path, schema="legacy"))
    assert 'id="scores-faithfulness"' in html and 'id="scores-randomisation"' in html
    assert 'deletion_auc <span class="arrow"' in html
    assert "⚠ no" in html  # the failed sanity check shows as a flag


def test_missing_sections_are_noted_not_fatal(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "explain")
    shutil.rmtree(run_dir / "scores")
    (run_dir / "model_card.md").unlink()
    (run_dir / "evaluation" / "metrics.json").write_text("{not json")
    html = render_report(run_dir)
    ids = _ids(html)
    assert {"explanations", "scores", "shortcut", "model-card"}.isdisjoint(ids)
    assert "evaluation" in ids  # the confusion-matrix PNG alone still makes a section
    assert "could not read metrics.json" in html
    assert "no explain/manifest.json" in html and "no scores/ folder" in html
    assert 'id="notes"' in html


def test_empty_folder_and_broken_gallery_entries(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "Nothing to show yet" in render_report(empty)  # write_report refuses it: see test_report_command
    run = make_run(tmp_path / "x", n_images=2)
    manifest = json.loads((run / "explain/manifest.json").read_text())
    manifest["images"][0]["maps"][0]["overlay"] = "../../../../etc/passwd"  # escapes the run folder
    manifest["images"][1]["file"] = "missing.png"
    manifest["images"].append("not a dict")
    (run / "explain/manifest.json").write_text(json.dumps(manifest))
    html = render_report(run)
    assert "1 overlay file listed in the manifest was not found" in html
    assert "photo not found" in html


def test_untrusted_text_is_escaped(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "evaluation/metrics.json").read_text())
    metrics["per_class"]["<script>alert(1)</script>"] = {"precision": 1.0}
    (run_dir / "evaluation/metrics.json").write_text(json.dumps(metrics))
    (run_dir / "model_card.md").write_text("<script>alert(2)</script>\n\n[x](javascript:alert(3))")
    html = render_report(run_dir)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert not re.search(r"href\s*=\s*[\"']?javascript:", html, re.I)


def test_cli_command(run_dir: Path, tmp_path: Path) -> None:
    import typer

    from agelens.cli.report_cmd import report_command

    app = typer.Typer()
    app.command()(report_command)
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "elsewhere" / "page.html"
    result = CliRunner().invoke(app, [str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output and "warning" not in result.output
    bad = CliRunner().invoke(app, [str(tmp_path / "nope")])
    assert bad.exit_code == 1
    models = tmp_path / "models"
    models.mkdir()
    (models / "m.keras").write_bytes(b"x")
    empty = CliRunner().invoke(app, [str(models)])
    assert empty.exit_code == 1 and "nothing to report" in empty.output
    assert not (models / "report.html").exists()
    score_dir = tmp_path / "score"  # what `agelens score --out score` writes is a part on its own
    score_dir.mkdir()
    (score_dir / "scores.json").write_text((run_dir / "scores" / "scores.json").read_text())
    scored = CliRunner().invoke(app, [str(score_dir)])
    assert scored.exit_code == 0 and "warning" not in scored.output


def test_gallery_from_the_real_explain_cli(tiny_model_path: Path, tmp_path: Path) -> None:
    """The explain CLI's own manifest (file lists + runs) feeds the gallery, photos included."""
    import typer
    from PIL import Image

    from agelens.cli.explain_cmd import explain_command
    from agelens.data.synthetic import generate

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, img in enumerate(generate(2, size=64, seed=2).images):
        Image.fromarray(img).save(photos / f"face{i}.png")
    run = tmp_path / "run"
    app = typer.Typer()
    app.command()(explain_command)
    args = [str(photos), "--model", str(tiny_model_path), "--method", "gradcam,gradcam++", "--filters", "3"]
    result = CliRunner().invoke(app, [*args, "--out", str(run / "explain")])
    assert result.exit_code == 0, result.output
    html = render_report(run)
    method_select = re.search(r'<select id="sel-method">(.*?)</select>', html, re.S)
    assert re.findall(r">([^<]+)</option>", method_select.group(1)) == ["gradcam", "gradcam++"]
    data = json.loads(re.search(r'id="gallery-data">(.*?)</script>', html, re.S).group(1))
    assert [sorted(it["maps"]) for it in data["items"]] == [["0-0-0", "1-0-0"]] * 2
    assert all(it["maps"]["0-0-0"] != it["maps"]["1-0-0"] for it in data["items"])
    assert all(len(it["filters"]) == 1 for it in data["items"])
    assert "photo not found" not in html and html.count('class="photo"') == 2


def test_an_explain_output_folder_is_a_run_of_its_own(tmp_path: Path) -> None:
    # ``agelens explain --out X`` then ``agelens report X``: the gallery is X itself.
    run = make_run(tmp_path / "run", n_images=2)
    only = shutil.copytree(run / "explain", tmp_path / "explained")
    html = render_report(only)
    assert "explanations" in _ids(html) and "no explain/manifest.json" not in html
    # no evaluation or scores in an explain folder is by design, not a note
    assert "no evaluation/metrics.json" not in html and "no scores/ folder" not in html
    assert "model-card" not in _ids(html)  # its manifest names no model with a card beside it
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.keras").write_bytes(b"x")
    (models / "MODEL_CARD.md").write_text("# Mine\n\nTrained on *faces*.")
    manifest = json.loads((only / "manifest.json").read_text())
    (only / "manifest.json").write_text(json.dumps(dict(manifest, model=str(models / "mine.keras"))))
    html = render_report(only)
    assert "model-card" in _ids(html) and "<em>faces</em>" in html and "no model_card" not in html


def test_evaluation_says_what_it_was_run_on_and_claims_held_out_only_when_recorded(run_dir: Path) -> None:
    path = run_dir / "evaluation/metrics.json"
    assert "Held-out" not in render_report(run_dir)  # nothing recorded: nothing claimed
    metrics = json.loads(path.read_text())
    metrics["evaluated_on"] = "held-out test split (30 synthetic faces never used in training)"
    path.write_text(json.dumps(metrics))
    assert "Evaluated on held-out test split (30 synthetic faces" in render_report(run_dir)


def test_a_summary_without_a_value_is_one_dash_not_four_columns() -> None:
    rows = {"gradcam": {"randomisation": {"mean": 0.1, "ci_low": 0.0, "ci_high": 0.2, "n": 5}},
            "random": {"randomisation": {"mean": None, "ci_low": None, "ci_high": None, "n": 0}}}  # fmt: skip
    (table,) = tables_from_json(rows, "sanity")
    assert table.columns[-1] == "randomisation" and len(table.columns) == 2
    assert table.rows[1][1].text == "—"


def test_a_class_with_no_photo_and_no_prediction_gets_dashes_not_zeros(run_dir: Path) -> None:
    """scikit-learn scores an absent class 0.0; the report must not show that as 0.000 (a class the
    model always misses), nor list ``classes_in_macro_average`` as one more metric."""
    path = run_dir / "evaluation/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["per_class"]["old"] = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    metrics["classes_in_macro_average"] = ["young", "middle-aged"]
    path.write_text(json.dumps(metrics))
    html = render_report(run_dir)
    section = html[html.index('id="evaluation"') :]
    row = re.search(r"<tr>\s*<t[hd][^>]*>old</t[hd]>(.*?)</tr>", section, re.S).group(1)
    assert row.count(">—<") == 3 and ">0.000<" not in row
    assert "old: no photo and no prediction" in section
    assert "classes_in_macro_average" not in section and "Other metrics" not in section
    young = re.search(r"<tr>\s*<t[hd][^>]*>young</t[hd]>(.*?)</tr>", section, re.S).group(1)
    assert "0.800" in young  # the classes that were there keep their scores
