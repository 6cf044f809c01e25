"""Review 25 of the HTML report: what is bold, flagged leaders, the Run section of a folder of
command outputs, the CI wording, readable evaluation rows, dropped photos, heading levels and
degenerate intervals, and the class-mean maps' colour scale."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_factory import _explain, make_run, png, score, scores_json, write_json

from agelens.report.findings import DIFFERENCE, SCORE, ranking_findings
from agelens.report.html import render_report


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _page(tmp_path: Path, doc: dict, name: str = "s") -> str:
    folder = tmp_path / name
    write_json(folder / "scores.json", doc)
    return render_report(folder)


def _table_html(page: str, section: str, title: str) -> str:
    """The HTML of the table headed ``title`` (any heading level) in the sub-section ``section``."""
    body = re.search(rf'id="{section}">(.*?)</section>', page, re.S)
    assert body, section
    found = re.search(rf"<h[3-6]>{re.escape(title)}.*?</table>", body.group(1), re.S)
    assert found, title
    return found.group(0)


def _bold(table: str) -> list[tuple[str, str]]:
    """(row name, cell text) of every bold ("best") cell of a table."""
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        name = re.search(r'<th scope="row"[^>]*>([^<]+)', row)
        for text in re.findall(r'<td class="[^"]*\bbest\b[^"]*"[^>]*>([^<]+)', row):
            out.append((name.group(1).strip() if name else "", text.strip()))
    return out


def _ranked_doc() -> dict:
    """scorecam first on the differences from matched random maps, gradcam best on the means shown;
    gradcam and scorecam tied on the pointing_game mean; scorecam fails the randomisation check."""
    doc = scores_json()
    doc["scores"]["gradcam"]["pointing_game"] = score(0.8)
    doc["scores"]["scorecam"]["pointing_game"] = score(0.8)
    doc["scores"]["scorecam"]["randomisation"] = score(0.9)  # CI 0.85-0.95: above 0.5, flagged
    doc["difference_vs_matched_random"] = {
        "gradcam": {"deletion": score(-0.1), "insertion": score(0.1), "pointing_game": score(0.5)},
        "scorecam": {"deletion": score(-0.3), "insertion": score(0.2), "pointing_game": score(0.3)},
    }
    doc["ranked_on"] = {"deletion": DIFFERENCE, "insertion": DIFFERENCE, "pointing_game": DIFFERENCE,
                        "randomisation": SCORE}  # fmt: skip
    doc["ranking"] = [
        {"method": "scorecam", "mean_rank": 1.5,
         "ranks": {"deletion": 1.0, "insertion": 1.0, "pointing_game": 2.0, "randomisation": 2.0}},
        {"method": "gradcam", "mean_rank": 1.5,
         "ranks": {"deletion": 2.0, "insertion": 2.0, "pointing_game": 1.0, "randomisation": 1.0}},
    ]  # fmt: skip
    doc["ranking"][0]["mean_rank"] = 1.25  # a lone leader
    doc["ranking"][0]["ranks"]["pointing_game"] = 1.0
    return doc


# --- 1. bold is the best of what the table shows ------------------------------------------------


def test_the_means_table_bolds_its_best_means_and_ties_alike(tmp_path: Path) -> None:
    page = _page(tmp_path, _ranked_doc())
    faith = _table_html(page, "scores-faithfulness", "Mean over images")
    # deletion ↓: gradcam 0.200 < scorecam 0.300; insertion ↑: gradcam 0.700 > scorecam 0.600
    assert _bold(faith) == [("gradcam", "0.200"), ("gradcam", "0.700")]
    local = _table_html(page, "scores-localisation", "Mean over images")
    assert sorted(_bold(local)) == [("gradcam", "0.800"), ("scorecam", "0.800")]  # tied means, both bold
    note = _text(faith.split("</table>")[0] + page.split(faith, 1)[1].split("</p>")[0])
    assert "the best mean in each column is in bold" in note and "not on these means" in note


def test_the_difference_table_bolds_the_best_difference_and_says_so(tmp_path: Path) -> None:
    page = _page(tmp_path, _ranked_doc())
    diff = _table_html(page, "scores-faithfulness", "Difference from a matched random map")
    # the ranking's numbers: deletion ↓ -0.300 and insertion ↑ +0.200 are scorecam's, pointing_game gradcam's
    assert sorted(_bold(diff)) == [
        ("gradcam", "✓ +0.500"),
        ("scorecam", "✓ +0.200"),
        ("scorecam", "✓ -0.300"),
    ]
    after = page.split(diff, 1)[1].split("</p>")[0]
    assert "The best difference in each ranked column is in bold" in _text(after)


# --- 2. a leader that fails the sanity check is marked ---------------------------------------------


def test_a_flagged_leader_is_marked_in_the_ranking_and_in_key_findings(tmp_path: Path) -> None:
    page = _page(tmp_path, _ranked_doc())
    overall = _table_html(page, "scores-ranking", "Overall ranking")
    row = re.search(r"scorecam</th>(.*?)</tr>", overall, re.S).group(1)
    assert "1.25" in row and "⚠ fails sanity check" in row  # the rank is kept, the verdict beside it
    assert "fails sanity check" not in re.search(r"gradcam</th>(.*?)</tr>", overall, re.S).group(1)
    key = _text(re.search(r'id="key-findings">(.*?)</section>', page, re.S).group(1))
    assert "scorecam comes first" in key
    assert "but scorecam fails the sanity check" in key
    assert "the first method that passes it is gradcam (mean rank 1.5)" in key


def test_ranking_findings_name_the_first_method_that_passes() -> None:
    ranking = [
        {"method": "a", "mean_rank": 1.0, "ranks": {"deletion": 1.0}},
        {"method": "b", "mean_rank": 2.0, "ranks": {"deletion": 2.0}},
        {"method": "c", "mean_rank": 3.0, "ranks": {"deletion": 3.0}},
    ]
    said = ranking_findings(ranking, sanity={"a": "fail", "b": "inconclusive", "c": "pass"})
    assert "but a fails the sanity check" in said.short and "b is inconclusive on it" in said.short
    assert "the first method that passes it is c (mean rank 3)" in said.short
    assert "a comes first" in said.short  # the ranks themselves do not change
    plain = ranking_findings(ranking, sanity={"a": "pass", "b": "fail", "c": "pass"})
    assert "sanity" not in plain.short  # the leader passes: nothing to add
    none = ranking_findings(ranking, sanity={"a": "fail", "b": "fail", "c": "fail"})
    assert "no method passes it" in none.short


# --- 3. a folder of command outputs shows each command's settings and skipped photos -------------


def _commands_folder(root: Path) -> Path:
    """What explain, evaluate and score write with --out explain / evaluate / score, side by side."""
    top = root / "runs"
    _explain(top / "explain", 1)
    manifest = json.loads((top / "explain/manifest.json").read_text())
    manifest |= {
        "agelens_version": "0.1.0",
        "keras_version": "3.15.1",
        "overlay": {"cmap": "jet", "alpha": 0.45},
        "problems": ["photos/broken.jpg: cannot read image header (OSError: Truncated File Read)"],
    }
    write_json(top / "explain/manifest.json", manifest)
    write_json(top / "evaluate/metrics.json", {"accuracy": 0.8, "macro_f1": 0.7, "n_images": 10})
    write_json(
        top / "evaluate/manifest.json",
        {"command": "evaluate", "versions": {"agelens": "0.1.0", "numpy": "2.4.6"},
         "settings": {"data": "eval100", "flip": False}, "n_images": 10,
         "skipped": ["photos/empty.png: not an image"]},
    )  # fmt: skip
    write_json(top / "score/scores.json", scores_json())
    return top


def test_a_folder_of_command_outputs_gets_a_run_section_per_command(tmp_path: Path) -> None:
    page = render_report(_commands_folder(tmp_path))
    run = re.search(r'<section class="card" id="run">(.*?)</section>\s*<section class="card"', page, re.S)
    assert run, "no Run section"
    text = _text(run.group(1))
    assert (
        "Explanations (explain/)" in text and "Evaluation (evaluate/)" in text and "Scores (score/)" in text
    )
    assert "photos/broken.jpg cannot read image header (OSError: Truncated File Read)" in text
    assert "photos/empty.png not an image" in text
    assert "keras_version 3.15.1" in text and "numpy 2.4.6" in text and "eval100" in text
    assert "no manifest.json; run settings" not in _text(page)


def test_a_score_folder_among_others_is_pointed_to_its_settings(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    write_json(folder / "score/scores.json", scores_json())
    text = _text(render_report(folder))
    assert "Scores (score/)" in text and "under Scores → Scoring details" in text
    assert "no manifest.json; run settings" not in text
    lone = tmp_path / "lone"
    write_json(lone / "scores.json", scores_json())  # score's own --out folder: its versions are in it
    assert 'id="run"' not in render_report(lone)


# --- 4. the CI wording ---------------------------------------------------------------------------


def test_the_glossary_does_not_teach_the_overlap_rule(tmp_path: Path) -> None:
    text = _text(render_report(make_run(tmp_path)))
    glossary = text[text.index("Plain-language meanings") :]
    assert "overlap are not shown to differ" not in text
    assert "would likely fall in if the scoring were repeated" not in text
    assert "by bootstrap" in glossary and "use the paired differences the report gives" in glossary


# --- 5. readable evaluation rows -----------------------------------------------------------------


def test_other_metrics_have_readable_labels_units_and_no_empty_rows(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    m = json.loads((run / "evaluation/metrics.json").read_text())
    m |= {"macro_precision": 0.8156, "age_mae": 4.3150532960891725, "n_aged": 100, "skipped": [],
          "not_face_crops": [], "test_time_flip": False, "evaluated_on": "held-out split"}  # fmt: skip
    write_json(run / "evaluation/metrics.json", m)
    table = _text(_table_html(render_report(run), "evaluation", "Other metrics"))
    assert "age error (mean absolute) 4.32 years" in table
    assert "macro precision 0.816" in table and "photos with a known age 100" in table
    assert "test-time flip averaging no" in table
    for raw in ("macro_precision", "age_mae", "n_aged", "skipped", "not_face_crops", "not face crops"):
        assert raw not in table


# --- 6. why fewer photos -------------------------------------------------------------------------


def test_a_caption_says_why_a_metric_rests_on_fewer_photos(tmp_path: Path) -> None:
    doc = scores_json()
    doc["meta"]["n_images"] = 48
    for row in doc["scores"].values():
        for metric, v in row.items():
            v["n"] = 27 if metric == "pointing_game" else 48
    for meth, d in (("gradcam", 0.5), ("scorecam", 0.3)):  # a localisation verdict for Key findings
        doc["difference_vs_matched_random"][meth]["pointing_game"] = score(d) | {"n": 27}
    page = _page(tmp_path, doc)
    note = _text(page.split('id="scores-localisation"', 1)[1].split("</section>", 1)[0])
    assert "pointing_game is scored on 27 of the 48 photos: a photo whose cue mask is empty" in note
    key = _text(re.search(r'id="key-findings">(.*?)</section>', page, re.S).group(1))
    assert "The other 21 have an empty cue mask" in key


def test_the_shortcut_table_says_why_a_method_has_fewer_photos(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    data = json.loads((run / "scores/shortcut.json").read_text())
    data["config"]["n_test"] = 300
    data["methods"]["scorecam"] = json.loads(json.dumps(data["methods"]["gradcam"]))
    for row in data["methods"].values():
        row["stamp_energy"]["n"] = row["cue_energy"]["n"] = 300
    data["methods"]["gradcam"]["stamp_energy"]["n"] = 297
    write_json(run / "scores/shortcut.json", data)
    text = _text(render_report(run).split('id="shortcut"', 1)[1])
    assert (
        "stamp_energy is scored on 297 of the 300 photos for gradcam: a photo on which the map is zero"
        in text
    )
    assert "cue_energy is scored" not in text  # all 300: nothing to explain


# --- 7. heading levels and degenerate intervals --------------------------------------------------


def test_headings_never_skip_a_level(tmp_path: Path) -> None:
    for page in (render_report(make_run(tmp_path)), render_report(_commands_folder(tmp_path / "c"))):
        body = page.split("<main>", 1)[1]
        body = re.sub(r'<div class="prose">.*?</div>', "", body, flags=re.S)  # a model card's own markdown
        levels = [int(h) for h in re.findall(r"<h([1-6])[ >]", body)]
        jumps = [(a, b) for a, b in zip(levels, levels[1:], strict=False) if b > a + 1]
        assert levels and not jumps, jumps


def test_an_interval_of_one_value_is_not_shown_as_a_ci(tmp_path: Path) -> None:
    doc = scores_json()
    doc["scores"]["gradcam"]["insertion"] = {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 20}
    doc["difference_vs_matched_random"]["gradcam"]["insertion"] = {
        "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 20}  # fmt: skip
    text = _text(_page(tmp_path, doc))
    assert "[0.000, 0.000]" not in text and "[+0.000, +0.000]" not in text
    assert "0.000 (all photos equal)" in text and "+0.000 (all photos equal)" in text


# --- 8. the class-mean maps' colour scale --------------------------------------------------------


class _Means:
    """The parts of a ScoreTable that ``plot_class_means`` reads."""

    def __init__(self) -> None:
        strong = np.zeros((8, 8)) + 0.1
        strong[2, 2] = 1.0
        weak = np.full((8, 8), 0.2)  # a near-flat class mean, a fifth of the strong one
        self.class_means = {"gradcam": (np.stack([strong, weak]), np.array([5, 3]))}
        self.meta = {"class_names": ["young", "old"]}


def test_class_means_share_one_colour_scale_per_method(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agelens.metrics import plots

    figures = []
    monkeypatch.setattr(plots, "atomic_savefig", lambda fig, path: figures.append(fig) or Path(path))
    plots.plot_class_means(_Means(), tmp_path / "class_mean_maps.png")
    (fig,) = figures
    limits = [ax.images[0].get_clim() for ax in fig.axes if ax.images]
    assert limits == [(0.0, 1.0), (0.0, 1.0)]  # the weak class is not stretched to look as strong
    assert "one scale per row" in fig._suptitle.get_text()


def test_the_class_mean_caption_describes_that_scale(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    png(run / "scores/class_mean_maps.png", 6)
    text = _text(render_report(run)).replace("&#39;", "'")
    assert "one per row (method), from 0 (dark) to the largest value of that method's class means" in text
    assert "stretched until it looks structured" not in text
