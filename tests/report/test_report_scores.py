"""Score tables in the report: the random baseline, sanity directions and verdicts, groupings, folders."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from report_factory import CLASSES, make_run, png, score, scores_json, write_json

from agelens.report.html import render_report
from agelens.report.sanity import verdict
from agelens.report.tables import fmt, tables_from_json


def _rows(html: str, section: str, table: str = "Mean over images") -> dict[str, str]:
    """Row name -> the row's HTML, in the table titled ``table`` of the sub-section ``section``."""
    head = rf".*?<h4>{table}" if table else ""
    body = re.search(rf'id="{section}">{head}(.*?)</table>', html, re.S)
    assert body, section
    rows = re.findall(r"<tr>\s*<th scope=\"row\"[^>]*>([^<]+)(.*?)</tr>", body.group(1), re.S)
    return {name.strip(): rest for name, rest in rows}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _old_scores(randomisation: dict | None = None) -> dict:
    """A scores.json from before the baseline left the ranking: ``random`` wins deletion and insertion."""
    doc = scores_json()
    doc["scores"]["random"].update(deletion=score(0.05), insertion=score(0.95))
    doc["scores"]["random"]["randomisation"] = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    if randomisation:
        for m, v in randomisation.items():
            doc["scores"][m]["randomisation"] = v
    doc["ranking"] = [
        {"method": "random", "mean_rank": 1.0, "ranks": {"deletion": 1.0, "insertion": 1.0}},
        {"method": "gradcam", "mean_rank": 2.0, "ranks": {"deletion": 2.0, "insertion": 2.0}},
        {"method": "scorecam", "mean_rank": 3.0, "ranks": {"deletion": 3.0, "insertion": 3.0}},
    ]
    return doc


def _run_with(tmp_path: Path, doc: dict) -> Path:
    run = make_run(tmp_path)
    write_json(run / "scores/scores.json", doc)
    return run


def test_random_is_a_reference_row_never_best(tmp_path: Path) -> None:
    html = render_report(_run_with(tmp_path, _old_scores()))
    rows = _rows(html, "scores-faithfulness")
    random = rows["random"]
    assert "(baseline)" in random and "baseline" in random
    assert "best" not in random  # best values on deletion and insertion, yet no mark
    assert re.search(r'class="num best"[^>]*>0\.200', rows["gradcam"])  # the best method's deletion
    names = list(rows)
    assert names.index("random") > names.index("scorecam")  # after every method, not ranked first
    assert "never ranked or marked best" in html


def test_generic_ranked_table_skips_the_baseline() -> None:
    rows = {"a": {"deletion": 0.3}, "random": {"deletion": 0.01}, "b": {"deletion": 0.2}}
    (table,) = tables_from_json(rows, "t", rank=True, stated={"deletion": "lower"})
    assert [r[0].text for r in table.rows] == ["b", "a", "random"]
    assert [n for n, _ in table.ranking] == ["b", "a"]
    assert "best" in table.rows[0][1].cls and "best" not in table.rows[2][1].cls
    assert table.rows[2][0].sub == "(baseline)"


@pytest.mark.parametrize("with_random", [True, False])
def test_ranking_table_without_random_and_without_raw_dicts(tmp_path: Path, with_random: bool) -> None:
    doc = _old_scores()
    if not with_random:  # a new scores.json: the scorer already left the baseline out
        doc["ranking"] = [r for r in doc["ranking"] if r["method"] != "random"]
        doc["ranking"][0].update(
            mean_rank=1.0, ranks={"deletion": 1.0, "insertion": 1.0, "randomisation": 1.0}
        )
        doc["ranking"][1]["ranks"] = {}  # a method no metric could rank
    html = render_report(_run_with(tmp_path, doc))
    table = re.search(r"<h4>Overall ranking.*?</table>", html, re.S).group(0)
    assert ">random<" not in table and "{}" not in table and "ranks ·" not in table
    assert "rank on deletion" in table
    gradcam = re.search(r"gradcam</th>(.*?)</tr>", table, re.S).group(1)
    assert re.findall(r">([^<]+)</td>", gradcam)[:3] == ["1", "1", "1"]  # ranked among methods, no "1.000"


def test_nested_dicts_never_land_raw_in_a_cell() -> None:
    rows = [{"method": "gradcam", "ranks": {"deletion": 1.0}}, {"method": "random", "ranks": {}}]
    (table,) = tables_from_json(rows, "ranking")
    texts = [c.text for r in table.rows for c in r]
    assert "{}" not in texts and table.columns == ["method", "ranks · deletion"]
    (deep,) = tables_from_json([{"method": "x", "a": {"b": {"c": 1}}}], "deep")
    assert deep.columns == ["method", "a · b · c"] and deep.rows[0][1].text == "1"


@pytest.mark.parametrize("declared", [False, True])
def test_sanity_marks_follow_the_declared_direction(tmp_path: Path, declared: bool) -> None:
    doc = _old_scores({"gradcam": score(0.1), "scorecam": score(0.3)})
    doc["metrics"][3]["higher_is_better"] = declared  # sanity.py declares False: lower similarity is better
    html = render_report(_run_with(tmp_path, doc))
    rows = _rows(html, "scores-randomisation")
    best, other = ("scorecam", "gradcam") if declared else ("gradcam", "scorecam")
    assert "best" in rows[best] and "best" not in rows[other] and "best" not in rows["random"]
    arrow = "↑" if declared else "↓"
    assert re.search(rf'randomisation <span class="arrow"[^>]*>{arrow}', html)


def test_legacy_sanity_similarity_is_lower_better(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path, schema="legacy"))
    rows = _rows(html, "scores-randomisation", table="")
    assert "best" in rows["gradcam"] and "best" not in rows["scorecam"]  # 0.1 beats 0.9
    assert 'rank_correlation <span class="arrow" title="lower is better">↓' in html


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0.042, 0.607, "inconclusive"), (0.1, 0.45, "pass"), (0.55, 0.9, "fail"), (0.2, 0.5, "inconclusive")],
)
def test_verdict_reads_the_ci(lo: float, hi: float, expected: str) -> None:
    assert verdict({"mean": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "n": 12}) == expected


def test_a_ci_across_the_threshold_is_inconclusive_on_the_page(tmp_path: Path) -> None:
    straddles = {"mean": 0.31, "ci_low": 0.042, "ci_high": 0.607, "n": 12}
    html = render_report(_run_with(tmp_path, _old_scores({"gradcam": straddles, "scorecam": score(0.9)})))
    rows = _rows(html, "scores-randomisation")
    assert "inconclusive" in rows["gradcam"] and "passes" not in rows["gradcam"]
    assert "flagged: map survives the randomisation" in rows["scorecam"]
    text = _text(html)
    assert "✓ passes when its upper end is below 0.5" in text
    assert "⚠ flagged when its lower end is above 0.5" in text and "inconclusive when it contains 0.5" in text


def test_a_score_folder_passed_directly_is_read(tmp_path: Path) -> None:
    # ``agelens score --out X`` then ``agelens report X``: X holds scores.json itself.
    run = make_run(tmp_path / "run")
    only = shutil.copytree(run / "scores", tmp_path / "score")
    html = render_report(only)
    for sid in ("scores", "scores-faithfulness", "scores-randomisation", "scores-regions", "shortcut"):
        assert f'id="{sid}"' in html
    assert "no scores/ folder" not in html and "Nothing to show yet" not in html


def test_groupings_and_the_colour_scale_are_stated(run_dir: Path) -> None:
    png(run_dir / "scores/class_mean_maps.png", 6)
    text = _text(render_report(run_dir))
    assert "Mean maps per class (by predicted class)" in text
    assert "Where the maps look, per age group (by true label)" in text
    assert "gradcam · by true label" in text
    assert re.search(rf"{CLASSES[0]} n = 7 0\.200", text)  # n per group beside the group
    assert "images grouped by predicted class, n per class in each panel's title" in text.replace(
        "&#39;", "'"
    )
    assert "one per row (method)" in text and "not comparable between methods" in text


def test_explain_predictions_read_as_text(tmp_path: Path) -> None:
    ex = tmp_path / "explained"
    png(ex / "000_face_gradcam_overlay.png", 1)
    prediction = {
        "class": "old",
        "probabilities": {"young": 0.12, "middle-aged": 0.3, "old": 0.58},
        "age": 61.2,
    }
    write_json(
        ex / "manifest.json",
        {
            "agelens_version": "0.1.0",
            "runs": [{"method": "gradcam", "layer": "out_relu", "target": None, "settings": {}}],
            "images": [
                {
                    "source": "/photos/face.png",
                    "size": [64, 64],
                    "method": "gradcam",
                    "prediction": prediction,
                    "files": ["000_face_gradcam_overlay.png"],
                }
            ],
        },
    )
    html = render_report(ex)
    run = re.search(r'id="run">(.*?)</section>', html, re.S).group(1)
    assert "old 58% (young 12%, middle-aged 30%), age output ≈ 61 y" in run
    assert "&#34;class&#34;" not in run and '"class"' not in run and "{" not in _text(run)
    assert fmt({"class": "young", "probabilities": {}}) == "young"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(8.39e-05, "0.0000839"), (-0.00042, "-0.000420"), (0.0123, "0.012"), (0.0, "0.000"),
     (123456.7, "123,457"), (2.5e-08, "2.5e-08"), (1234.5, "1,234.500")],
)  # fmt: skip
def test_small_and_large_numbers_read_without_scientific_notation(value: float, shown: str) -> None:
    assert fmt(value) == shown


def _with_label_check(doc: dict) -> dict:
    """A scores.json that also declares the data-randomisation (label) sanity column."""
    info = {
        "name": "data_randomisation",
        "higher_is_better": False,
        "applies_to": "m",
        "category": "randomisation",
    }
    doc["metrics"].append(info)
    return doc


def test_label_randomisation_sits_beside_weight_randomisation_and_the_worst_decides(tmp_path: Path) -> None:
    doc = _with_label_check(scores_json())
    doc["scores"]["gradcam"]["data_randomisation"] = score(0.8)  # passes on weights (0.1), not on labels
    doc["scores"]["scorecam"]["data_randomisation"] = score(0.1)
    html = render_report(_run_with(tmp_path, doc))
    rows = _rows(html, "scores-randomisation")
    assert "flagged" in rows["gradcam"] and "flagged" in rows["scorecam"]  # scorecam fails on weights (0.9)
    text = _text(html)
    assert "network trained on shuffled labels" in text and "the worst over the columns" in text
    assert "Sanity (weight randomisation and label randomisation): gradcam and scorecam flagged" in text
    assert (
        "gradcam: flagged by label randomisation" in text
        and "scorecam: flagged by weight randomisation" in text
    )
    assert "trained again on shuffled labels" in text  # the metric's plain-words line


def test_a_check_no_method_was_scored_on_is_not_claimed(tmp_path: Path) -> None:
    doc = _with_label_check(scores_json())
    for meth in doc["scores"]:
        doc["scores"][meth]["data_randomisation"] = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    text = _text(render_report(_run_with(tmp_path, doc)))
    assert "gradcam passes the weight randomisation check:" in text and "label randomisation" not in text


@pytest.mark.parametrize(
    ("fit", "said"),
    [
        (0.97, "its permuted training labels to 0.97 training accuracy (chance about 0.33 for 3 classes)"),
        (0.41, "to 0.41 training accuracy (chance about 0.33 for 3 classes); it memorised little"),
        (None, None),
    ],
)
def test_the_sanity_section_says_how_well_the_shuffled_label_control_fits(
    tmp_path: Path, fit: float | None, said: str | None
) -> None:
    doc = _with_label_check(scores_json())
    doc["meta"] = {**doc.get("meta", {}), "class_names": list(CLASSES), "shuffled_model_fit": fit}
    doc["scores"]["gradcam"]["data_randomisation"] = score(0.1)
    doc["scores"]["scorecam"]["data_randomisation"] = score(0.1)
    text = _text(render_report(_run_with(tmp_path, doc)))
    if said is None:
        assert "fits its permuted training labels" not in text
    else:
        assert said in text
        assert ("memorised little" in text) == (fit < 0.6)


def test_the_ranking_lead_names_the_sections_the_rank_rests_on(tmp_path: Path) -> None:
    doc = scores_json()  # ranked on deletion and insertion only: faithfulness
    html = _text(render_report(_run_with(tmp_path / "a", doc)))
    assert "every directed metric of the sections below (faithfulness)." in html
    doc["metrics"].append(
        {"name": "max_sensitivity", "higher_is_better": False, "applies_to": "any", "category": "robustness"}
    )
    for i, row in enumerate(doc["ranking"]):
        row["ranks"] |= {"pointing_game": i + 1.0, "max_sensitivity": 2.0 - i}
    for meth, row in doc["scores"].items():
        row["max_sensitivity"] = score(0.1 if meth == "gradcam" else 0.2)
    html = _text(render_report(_run_with(tmp_path / "b", doc)))
    assert "of the sections below (faithfulness, localisation and robustness)." in html
