"""score_methods: a method x metric table with CIs, matched-random baselines, a ranking and the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metric_toys import SIZE, checker_images, quadrant_maps, quadrant_model

from agelens.metrics import Deletion, Insertion, score_methods
from agelens.metrics.regions import LAYOUT_NAMES, face_layout

N = 8


@pytest.fixture(scope="module")
def table():
    x = checker_images(N)
    labels = np.array([1, 1, 1, 1, 0, 0, 1, 1])
    masks = quadrant_maps(N, "tl")
    explainers = {
        "on": lambda x, t: quadrant_maps(len(x), "tl"),
        "off": lambda x, t: quadrant_maps(len(x), "br"),
    }
    return score_methods(
        quadrant_model(),
        x,
        labels,
        ["on", "off"],
        [
            Deletion(step=0.05),
            Insertion(step=0.05),
            "average_drop",
            "road_morf",
            "pointing_game",
            "randomisation",
        ],
        masks=masks,
        region_masks=face_layout(SIZE),
        region_names=LAYOUT_NAMES,
        group_names=["zero", "one"],
        explainers=explainers,
        n_boot=500,
    )


def test_table_has_every_method_metric_pair_with_ci(table) -> None:
    assert table.methods == ["on", "off", "random"]
    assert [m["name"] for m in table.metrics] == [
        "deletion",
        "insertion",
        "average_drop",
        "road_morf",
        "pointing_game",
    ]
    assert table.skipped == {
        "randomisation": "needs a model (an AgeModel or keras.Model) to randomise, not a bare predict_fn"
    }
    for method in table.methods:
        for metric in ("deletion", "insertion", "pointing_game"):
            s = table.scores[method][metric]
            assert s.n == N and s.ci_low <= s.mean <= s.ci_high
    assert table.scores["on"]["pointing_game"].mean == 1.0


def test_ranking_respects_directions(table) -> None:
    ranking = table.ranking()
    assert [r["method"] for r in ranking] == ["on", "off"]  # random is the reference, never a contender
    assert ranking[0]["mean_rank"] == 1.0 and ranking[0]["ranks"]["deletion"] == 1.0


def test_paired_difference_against_matched_random_maps(table) -> None:
    assert set(table.vs_random) == {"on", "off"}  # the random row is its own baseline
    d_del, d_ins = table.vs_random["on"]["deletion"], table.vs_random["on"]["insertion"]
    assert d_del.ci_high < 0 and d_ins.ci_low > 0
    assert table.meta["matched_sigma"]["on"] > 2  # block maps are smooth; their baseline is blurred noise
    assert "matched_random_mean" in table.curves["on"]["deletion"]


def test_region_view_and_gallery(table) -> None:
    reg = table.regions["on"]
    assert reg["regions"] == list(LAYOUT_NAMES) and reg["groups"] == ["zero", "one"]
    assert np.allclose(np.nansum(reg["shares"], axis=1), 1.0)
    assert {"confident_right", "confident_wrong"} == set(table.gallery)
    assert len(table.gallery["confident_wrong"]) == 2  # the two images labelled 0


def test_write_outputs_json_markdown_and_plots(table, tmp_path) -> None:
    paths = table.write(tmp_path / "score")
    data = json.loads(paths["json"].read_text())
    assert data["scores"]["on"]["deletion"]["mean"] == pytest.approx(table.scores["on"]["deletion"].mean)
    assert data["ranking"][0]["method"] == "on"
    assert data["metrics"][0] == {
        "name": "deletion",
        "higher_is_better": False,
        "applies_to": "any attribution",
        "category": "faithfulness",
        "ranked": True,
    }
    md = paths["markdown"].read_text()
    assert "deletion ↓" in md and "insertion ↑" in md and "| on |" in md and "✓" in md
    assert [ln.split("|")[1].strip() for ln in md.splitlines() if ln.endswith("|")][2:5] == [
        "on",
        "off",
        "random (baseline)",
    ]
    assert data["files"][0] == "scores.json" and set(data["files"]) == {p.name for p in paths.values()}
    assert data["class_mean_counts"]["on"] == [int(c) for c in table.class_means["on"][1]]
    for key in ("curves_deletion", "curves_insertion", "curves_road_morf", "regions", "class_means"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "score").glob("*.tmp"))  # atomic writes leave no temp files


def test_a_second_write_removes_the_first_runs_files_it_did_not_rewrite(table, tmp_path) -> None:
    import dataclasses

    out = tmp_path / "score"
    first = table.write(out)
    (out / "notes.txt").write_text("mine")
    fewer = dataclasses.replace(table, curves={}, regions={}, class_means={})
    second = table_paths = fewer.write(out)
    assert set(table_paths) == {"json", "markdown"}
    on_disk = {p.name for p in out.iterdir()}
    assert on_disk == {p.name for p in second.values()} | {
        "notes.txt"
    }  # old plots gone, the user's file kept
    assert (first["curves_deletion"]).name not in on_disk


def test_chance_marks_say_better_worse_or_nothing_in_each_direction() -> None:
    from agelens.metrics.base import Score
    from agelens.metrics.report import chance_mark, delta_cell

    above, below, across = (
        Score(m, lo, hi, 10) for m, lo, hi in ((0.2, 0.1, 0.3), (-0.2, -0.3, -0.1), (0, -0.1, 0.1))
    )
    assert [chance_mark(s, True) for s in (above, below, across)] == [" ✓", " ⚠", ""]
    assert [chance_mark(s, False) for s in (above, below, across)] == [" ⚠", " ✓", ""]
    assert (
        chance_mark(None, True) == ""
        and chance_mark(Score(float("nan"), float("nan"), float("nan"), 0), True) == ""
    )
    assert delta_cell(above, False).endswith("⚠")  # e.g. average drop higher than chance: worse


def test_a_tiny_difference_is_not_printed_as_zero():
    from agelens.metrics.base import Score
    from agelens.metrics.report import delta_cell

    tiny = Score(mean=1.2e-4, ci_low=0.8e-4, ci_high=1.6e-4, n=10)
    assert delta_cell(tiny, True).startswith("+1e-04 [+8e-05, +2e-04]")  # as wide as +0.000
    assert delta_cell(Score(mean=0.0123, ci_low=-0.02, ci_high=0.04, n=10), True).startswith(
        "+0.012 [-0.020, +0.040]"
    )


def test_a_written_table_loads_back_with_the_same_numbers(table, tmp_path) -> None:
    from agelens.metrics import ScoreTable

    table.write(tmp_path, plots=False)
    back = ScoreTable.load(tmp_path)  # the folder, or the file itself
    assert ScoreTable.load(tmp_path / "scores.json").methods == back.methods == table.methods
    for meth, row in table.scores.items():
        for name, s in row.items():
            b = back.scores[meth][name]
            assert (b.n, b.higher_is_better) == (s.n, s.higher_is_better), (meth, name)
            np.testing.assert_allclose(
                [b.mean, b.ci_low, b.ci_high], [s.mean, s.ci_low, s.ci_high], equal_nan=True
            )
    assert back.ranking() == table.ranking() and back.skipped == table.skipped
    assert back.to_markdown() == table.to_markdown()  # the same tables, marks and skipped line
    assert back.vs_random.keys() == table.vs_random.keys() and back.meta["n_images"] == N


@pytest.mark.parametrize(("content", "words"), [(None, "file not found"), ("{oops", "not a readable"),
                                                ('{"a": 1}', "no 'scores' table")])  # fmt: skip
def test_loading_what_is_no_scores_file_says_so_in_one_line(tmp_path, content, words) -> None:
    from agelens.metrics import ScoreTable

    path = tmp_path / "scores.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=words) as exc:
        ScoreTable.load(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
