"""``agelens report``: where the page goes, which folders it reads, and when it refuses."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import typer
from report_factory import CLASSES, make_run, png, scores_json, write_json
from typer.testing import CliRunner

from agelens.atomic import atomic_write_text
from agelens.cli.report_cmd import report_command
from agelens.report.html import NothingToReport, evaluation_dir, render_report, write_report

NOTHING = "nothing to report (no manifest.json, metrics.json or scores.json found; "


def _report(*args: str | Path):
    app = typer.Typer()
    app.command()(report_command)
    return CliRunner().invoke(app, [str(a) for a in args])


def _ids(html: str) -> set[str]:
    return set(re.findall(r'<section class="[^"]*" id="([^"]+)"', html))


def _evaluate_out(folder: Path) -> Path:
    """What ``agelens evaluate --out folder`` writes, by evaluate's own writer."""
    from agelens.model.evaluate import classification_metrics, write_evaluation

    m = classification_metrics([0, 0, 1, 2, 2], [0, 1, 1, 2, 2], CLASSES)
    m |= {"n_skipped": 0, "evaluated_on": "every labelled photo in small"}
    write_evaluation(m, folder)
    return folder


def _temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".*.tmp"))


def test_out_an_existing_folder_writes_report_html_inside_it(run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    result = _report(run_dir, "--out", folder)
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").is_file() and f"wrote {folder / 'report.html'}" in result.output
    assert not _temp_files(tmp_path)


def test_out_in_a_missing_folder_is_one_line_naming_out(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "nodir" / "sub" / "page.html"
    result = _report(run_dir, "--out", out)
    assert result.exit_code == 1
    assert result.output == f"error: {out}: {out.parent} does not exist (create it first)\n"
    assert not (tmp_path / "nodir").exists()
    not_a_folder = _report(run_dir, "--out", run_dir / "model_card.md" / "page.html")
    assert not_a_folder.exit_code == 1 and "model_card.md is not a folder" in not_a_folder.output


def test_an_os_error_names_the_target_never_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep").write_text("x")  # os.replace onto a non-empty folder fails
    with pytest.raises(OSError) as e:
        atomic_write_text(target, "<html>")
    assert e.value.filename == str(target) and ".tmp" not in str(e.value)
    assert not _temp_files(tmp_path)


def test_an_existing_page_is_replaced_only_with_force(run_dir: Path) -> None:
    page = run_dir / "report.html"
    page.write_text("mine")
    refused = _report(run_dir)
    assert refused.exit_code == 1
    assert refused.output == f"error: {page}: exists; use --force to overwrite it (or choose another --out)\n"
    assert page.read_text() == "mine"
    forced = _report(run_dir, "--force")
    assert forced.exit_code == 0, forced.output
    assert page.read_text().lower().startswith("<!doctype html>")


def test_write_report_refuses_to_overwrite_unless_forced(run_dir: Path) -> None:
    page = write_report(run_dir)
    with pytest.raises(FileExistsError):
        write_report(run_dir)
    page.write_text("old")
    assert write_report(run_dir, force=True).read_text() != "old"


@pytest.mark.parametrize("name", ["ev1", "t_eval"])  # evaluate --out ev1; train --out t.keras writes t_eval/
def test_an_evaluate_output_folder_is_a_run_of_its_own(tmp_path: Path, name: str) -> None:
    folder = _evaluate_out(tmp_path / name)
    assert evaluation_dir(folder) == folder
    result = _report(folder)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    html = (folder / "report.html").read_text()
    assert _ids(html) == {
        "key-findings",
        "run",
        "evaluation",
    }  # run: evaluate's manifest (versions, settings)
    assert "<title>Evaluation: 5 photos · agelens report</title>" in html and "tensorflow" in html
    assert "80.0%" in html and "Balanced accuracy" in html and "true \\ predicted" in html
    assert "Confusion matrix (plot)" in html and "Evaluated on every labelled photo in small" in html
    # the other parts of a run are absent by design here: not a list of notes
    assert 'id="notes"' not in html and "no explain/manifest.json" not in html


def test_the_evaluation_says_why_balanced_accuracy_differs_from_macro_recall(tmp_path: Path) -> None:
    from agelens.model.evaluate import classification_metrics, write_evaluation

    folder = tmp_path / "ev"  # no old face in the truth, one predicted old
    write_evaluation(classification_metrics([0, 0, 1, 1], [0, 0, 1, 2], CLASSES), folder)
    assert _report(folder).exit_code == 0
    html = (folder / "report.html").read_text()
    assert "Balanced accuracy is the mean recall over the classes in the truth" in html
    assert "also counts old, predicted but never true, at recall 0." in html


def test_the_report_reads_metrics_without_loading_what_computes_them() -> None:
    """``agelens report`` draws saved numbers: scikit-learn (1.1 s to import) and TensorFlow stay out."""
    import subprocess
    import sys

    probe = "import sys, agelens.report.html; print(sorted({'sklearn', 'tensorflow'} & set(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


def test_a_broken_metrics_file_in_an_evaluate_folder_is_still_noted(tmp_path: Path) -> None:
    folder = _evaluate_out(tmp_path / "ev1")
    (folder / "metrics.json").write_text("{not json")
    html = render_report(folder)
    assert "could not read metrics.json" in html and "evaluation" in _ids(html)  # the plot still shows


def test_a_run_folders_own_evaluation_wins_over_a_stray_metrics_file(run_dir: Path) -> None:
    write_json(run_dir / "metrics.json", {"accuracy": 0.123})
    assert evaluation_dir(run_dir) == run_dir / "evaluation"
    html = render_report(run_dir)
    assert "80.0%" in html and "12.3%" not in html


@pytest.mark.parametrize("kind", ["photos", "empty"])
def test_a_folder_with_nothing_to_show_is_an_error_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    if kind == "photos":
        png(folder / "25_0_0_x.jpg.chip.png", 1)
        (folder / "model.keras").write_bytes(b"x")
    result = _report(folder)
    assert result.exit_code == 1
    assert (
        result.output
        == f"error: {folder}: {NOTHING}pass a run folder from demo, explain, evaluate, score or filters)\n"
    )
    assert not (folder / "report.html").exists() and not _temp_files(tmp_path)
    with pytest.raises(NothingToReport):
        write_report(folder)


def test_a_missing_run_folder_is_one_line(tmp_path: Path) -> None:
    result = _report(tmp_path / "nope")
    assert (
        result.exit_code == 1
        and result.output == f"error: {tmp_path / 'nope'}: not a folder (expected a run folder)\n"
    )


def test_a_demo_run_folder_never_holds_a_page_when_its_report_is_written(tmp_path: Path) -> None:
    """The demo writes its page once, into a folder that prepare_out emptied: no force needed."""
    from agelens.demo import RUN_ENTRIES, prepare_out

    assert "report.html" in RUN_ENTRIES
    out = tmp_path / "run"
    prepare_out(out, force=False)
    write_report(out)
    prepare_out(out, force=True)  # demo --force: the earlier page goes with the earlier run
    assert not (out / "report.html").exists()
    assert write_report(out) == out / "report.html"


def test_a_score_or_evaluate_folder_shows_the_card_of_the_model_it_names(tmp_path: Path) -> None:
    """An explain folder's page showed the model card; a score folder's said "no model card"."""
    from report_factory import scores_json

    models = tmp_path / "models"
    models.mkdir()
    (models / "MODEL_CARD.md").write_text("# Model card: mine\n\nTrained on my photos.\n")
    scores = scores_json()
    scores.setdefault("meta", {})["model"] = str(models / "mine.keras")
    write_json(tmp_path / "sc" / "scores.json", scores)
    html = render_report(tmp_path / "sc")
    assert "model-card" in _ids(html) and "Trained on my photos." in html
    ev = _evaluate_out(tmp_path / "ev")
    metrics = ev / "metrics.json"
    metrics.write_text(
        metrics.read_text().replace("{", '{"model": "' + str(models / "mine.keras") + '", ', 1)
    )
    assert "Trained on my photos." in render_report(ev)


def _explain_only_run(root: Path, model: str | None) -> Path:
    """``agelens explain photos --out RUN/explain``: a run folder holding explain/ alone (run48)."""
    run = root / "run48"
    png(run / "explain/000_face_gradcam_overlay.png", 1)
    write_json(
        run / "explain/manifest.json",
        {
            "agelens_version": "0.1.0",
            "model": model,
            "runs": [{"method": "gradcam", "layer": "out_relu", "target": None, "settings": {}}],
            "images": [{"source": "/p/face.png", "files": ["000_face_gradcam_overlay.png"]}],
        },
    )
    return run


def test_a_run_with_only_explain_shows_the_shipped_models_card(tmp_path: Path) -> None:
    """``agelens report run48`` with run48/explain/manifest.json only: the card had vanished."""
    from agelens.model.io import SHIPPED_MODEL

    # what the explain CLI records for the shipped model: its path (null only for an in-memory model)
    html = render_report(_explain_only_run(tmp_path, str(SHIPPED_MODEL)))
    assert "model-card" in _ids(html) and "explanations" in _ids(html)
    card = re.search(r'id="model-card">(.*?)</section>', html, re.S).group(1)
    summary = card[: card.index("<details")]  # outside the fold
    assert (
        "License and intended use: UTKFace is released for non-commercial research purposes only" in summary
    )
    assert "not for making decisions about people" in summary
    assert "Model card: no model_card" not in html


def test_an_explain_manifest_with_a_relative_or_null_model(tmp_path: Path) -> None:
    run = _explain_only_run(tmp_path, "../../models/mine.keras")  # relative to the explain folder
    (tmp_path / "models").mkdir()
    (tmp_path / "models/MODEL_CARD.md").write_text("# Mine\n\n## License\n\nCC BY 4.0. For testing.\n")
    html = render_report(run)
    assert "model-card" in _ids(html) and "License and intended use: CC BY 4.0. For testing." in html
    in_memory = render_report(_explain_only_run(tmp_path / "b", None))
    assert "model-card" not in _ids(in_memory)  # no file named: no guess at which card applies
    named = render_report(_explain_only_run(tmp_path / "c", "<in-memory keras.Model 'mine'>"))
    assert "model-card" not in _ids(named)  # what agelens.explain records for an in-memory model


def _notes(html: str) -> list[str]:
    section = re.search(r'id="notes">(.*?)</section>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", section.group(1)) if section else []


def test_a_folder_whose_only_part_is_a_corrupt_manifest_is_one_line_naming_it(tmp_path: Path) -> None:
    """An explain folder with a broken manifest.json: the page said "none of the files a run writes"
    and "no manifest.json" beside "could not read manifest.json", and the command exited 0."""
    folder = tmp_path / "X"
    shutil.copytree(make_run(tmp_path) / "explain", folder)  # maps and photos, listed by the manifest only
    (folder / "manifest.json").write_text("{bad\n")
    result = _report(folder)
    assert result.exit_code == 1
    assert result.output == (
        f"error: {folder / 'manifest.json'}: could not read (Expecting property name enclosed in double "
        "quotes, line 1 column 2); nothing else to report, so no page was written\n"
    )
    assert not (folder / "report.html").exists() and not _temp_files(tmp_path)


def test_a_corrupt_manifest_beside_parts_that_render_is_one_accurate_note(
    run_dir: Path, tmp_path: Path
) -> None:
    (run_dir / "manifest.json").write_text("{bad")
    result = _report(run_dir)
    assert result.exit_code == 0, result.output
    html = (run_dir / "report.html").read_text()
    run_notes = [n for n in _notes(html) if n.startswith("Run:")]
    assert run_notes == [
        "Run: could not read manifest.json (Expecting property name enclosed in double quotes, "
        "line 1 column 2); section skipped."
    ]
    assert "no manifest.json" not in html and "Nothing to show yet" not in html
    assert {"evaluation", "explanations", "scores"} <= _ids(html)


def _score_out(folder: Path) -> Path:
    """What ``agelens score --out folder`` writes: scores.json (versions in its meta), scores.md, plots."""
    scores = scores_json()
    scores["meta"]["versions"] = {"agelens": "0.1.0", "tensorflow": "2.21.0"}
    write_json(folder / "scores.json", scores)
    (folder / "scores.md").write_text("# Scores\n")
    png(folder / "curves_deletion.png", 2)
    return folder


def test_a_score_output_folder_is_a_run_of_its_own(tmp_path: Path) -> None:
    """Its page said "Run: no manifest.json; ... versions ... omitted" beside the versions it showed,
    and listed the evaluation and maps a score folder never has."""
    folder = _score_out(tmp_path / "sc1")
    result = _report(folder)
    assert result.exit_code == 0 and "warning" not in result.output
    html = (folder / "report.html").read_text()
    assert {"scores", "scores-details"} <= _ids(html) and "tensorflow" in html
    assert 'id="notes"' not in html and "omitted" not in html and "no evaluation/metrics.json" not in html
    (folder / "scores.json").write_text("{not json")  # a broken file in the part that is there is news
    notes = _notes(render_report(folder))
    assert notes == [
        "Scores: could not read scores.json (Expecting property name enclosed in double quotes, "
        "line 1 column 2); section skipped."
    ]


def test_a_score_page_says_which_photos_the_sample_left_out(tmp_path: Path) -> None:
    """score printed its skipped photos and scores.json kept them; the page said nothing."""
    import json

    folder = _score_out(tmp_path / "sc1")
    scores = json.loads((folder / "scores.json").read_text())
    scores["meta"]["skipped_photos"] = [f"d/{i}.jpg: not an image <bad>" for i in range(4)]
    write_json(folder / "scores.json", scores)
    html = render_report(folder)
    lead = "Left out: 4 photos unreadable or unlabelled (d/0.jpg: not an image &lt;bad&gt;; d/1.jpg"
    assert lead in html and "d/2.jpg: not an image &lt;bad&gt;; ...)." in html
    scores["meta"]["skipped_photos"] = []
    write_json(folder / "scores.json", scores)
    assert "Left out" not in render_report(folder)


def test_a_corrupt_manifest_in_a_score_folder_is_its_only_note(tmp_path: Path) -> None:
    folder = _score_out(tmp_path / "sc1")
    (folder / "manifest.json").write_text("{bad")
    assert [n.split(" (")[0] for n in _notes(render_report(folder))] == ["Run: could not read manifest.json"]


def test_out_without_a_page_suffix_is_a_folder_made_if_missing(run_dir: Path, tmp_path: Path) -> None:
    """``--out out/newdir2`` wrote a file named newdir2; ``out/newdir/r.html`` was refused: one rule now."""
    made = _report(run_dir, "--out", tmp_path / "newdir2")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "newdir2" / "report.html").is_file()
    page = _report(run_dir, "--out", tmp_path / "Page.HTM")
    assert page.exit_code == 0 and (tmp_path / "Page.HTM").is_file()
    deep = _report(run_dir, "--out", tmp_path / "a" / "b")  # one level only: a typo makes no tree
    assert deep.exit_code == 1
    assert (
        deep.output == f"error: {tmp_path / 'a' / 'b'}: {tmp_path / 'a'} does not exist (create it first)\n"
    )
    (tmp_path / "notes.txt").write_text("mine")
    a_file = _report(run_dir, "--out", tmp_path / "notes.txt")  # a folder name, but a file is there
    assert a_file.exit_code == 1 and a_file.output.endswith("notes.txt is not a folder\n")
    assert (tmp_path / "notes.txt").read_text() == "mine" and not _temp_files(tmp_path)
