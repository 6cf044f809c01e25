"""Verdict sentences and the Key findings box: claims only where the files' CIs support them."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest
from report_factory import make_run, score, scores_json, write_json

from agelens.report.findings import (
    BEATS,
    SMALL_SAMPLE,
    UNCLEAR,
    WORSE,
    ci_side,
    evaluation_findings,
    ranking_findings,
    sample_sentence,
    sanity_findings,
    shortcut_findings,
    vs_random_findings,
    vs_random_sides,
)
from agelens.report.html import render_report


def stat(mean: float, lo: float, hi: float) -> dict:
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": 20}


DIRS = {"deletion": "lower", "insertion": "higher"}


@pytest.mark.parametrize(
    ("v", "higher", "side"),
    [
        (stat(0.2, 0.1, 0.3), True, BEATS),
        (stat(0.2, 0.1, 0.3), False, WORSE),
        (stat(-0.2, -0.3, -0.1), False, BEATS),
        (stat(-0.2, -0.3, -0.1), True, WORSE),
        (stat(0.0, -0.1, 0.1), True, UNCLEAR),
        (stat(0.1, 0.0, 0.2), True, UNCLEAR),  # a CI touching zero does not exclude it
        ({"mean": 0.2, "n": 20}, True, None),  # no CI: no claim from a mean alone
        (stat(0.2, float("nan"), 0.3), True, None),
        ({"mean": None, "ci_low": None, "ci_high": None, "n": 0}, True, None),
        (0.2, True, None),
    ],
)
def test_ci_side(v: object, higher: bool, side: str | None) -> None:
    assert ci_side(v, higher) == side


def test_vs_random_sides_use_the_stated_direction_and_skip_what_is_missing() -> None:
    diff = {
        "a": {
            "deletion": stat(-0.2, -0.3, -0.1),  # lower is better: beats
            "insertion": stat(0.0, -0.1, 0.1),  # straddles zero
            "mystery": stat(0.5, 0.4, 0.6),  # no stated direction: never judged
            "road": {"mean": 0.3},  # no CI
        },
        "random": {"deletion": stat(-1, -2, -0.5)},  # the baseline is not a method
        "b": {"deletion": stat(0.2, 0.1, 0.3), "insertion": stat(0.2, 0.1, 0.3)},
        "c": {"mystery": stat(1, 0.5, 2)},  # nothing judgeable: left out
    }
    sides = vs_random_sides(diff, ["deletion", "insertion", "mystery", "road"], DIRS)
    assert sides == {
        "a": {BEATS: ["deletion"], UNCLEAR: ["insertion"], WORSE: []},
        "b": {BEATS: ["insertion"], UNCLEAR: [], WORSE: ["deletion"]},
    }
    said = vs_random_findings(diff, ["deletion", "insertion"], DIRS, "Faithfulness", order=["b", "a"])
    assert said.sentences == [
        "b beats matched random maps on insertion (95% CI); worse than random maps on deletion (95% CI).",
        "a beats matched random maps on deletion (95% CI); "
        "not distinguishable from random maps on insertion.",
    ]
    assert said.short.startswith("Faithfulness: b and a beat matched random maps on 1 of 2 metrics (95% CI)")
    assert said.short.endswith("; worse than random: b on deletion.")


def test_vs_random_groups_methods_with_the_same_verdict() -> None:
    same = {"deletion": stat(-0.2, -0.3, -0.1), "insertion": stat(0.0, -0.1, 0.1)}
    diff = {m: same for m in ("x", "y", "z")}
    said = vs_random_findings(diff, ["deletion", "insertion"], DIRS, "Localisation")
    assert said.sentences == [
        "All 3 methods beat matched random maps on deletion (95% CI); "
        "not distinguishable from random maps on insertion."
    ]
    assert said.short.startswith("Localisation: all 3 methods beat matched random maps on deletion")
    lost = vs_random_findings(
        {"x": {"insertion": stat(0.0, -0.1, 0.1)}, "y": {"insertion": stat(-0.1, -0.2, -0.05)}},
        ["insertion"],
        DIRS,
        "Faithfulness",
    )
    assert lost.sentences == [
        "x is not distinguishable from random maps on insertion.",
        "y is worse than random maps on insertion (95% CI).",
    ]
    assert lost.short == (
        "Faithfulness: no method beats matched random maps on any metric (95% CI); "
        "worse than random: y on insertion."
    )


@pytest.mark.parametrize(
    ("direction", "v", "side", "mark"),
    [
        ("higher", stat(0.2, 0.1, 0.3), BEATS, "✓ +0.200"),
        ("higher", stat(-0.2, -0.3, -0.1), WORSE, "⚠ -0.200"),
        ("lower", stat(-0.2, -0.3, -0.1), BEATS, "✓ -0.200"),
        ("lower", stat(0.2, 0.1, 0.3), WORSE, "⚠ +0.200"),
        ("higher", stat(0.0, -0.1, 0.1), UNCLEAR, "+0.000"),
        (None, stat(0.2, 0.1, 0.3), None, "+0.200"),  # no stated direction: no claim either way
        (None, stat(-0.2, -0.3, -0.1), None, "-0.200"),
    ],
)
def test_vs_random_table_and_sentences_agree_on_direction(
    direction: str | None, v: dict, side: str | None, mark: str
) -> None:
    """One rule (``directed_side``) for the table's ✓/⚠ and the sentences; the table used to
    read a metric with no stated direction as higher-is-better and mark it."""
    from agelens.report.findings import directed_side
    from agelens.report.vs_random import vs_random_table

    stated = {"m": direction} if direction else {}
    assert directed_side(v, direction) == side
    sides = vs_random_sides({"a": {"m": v}}, ["m"], stated)
    assert sides == ({"a": {k: ["m"] if k == side else [] for k in (BEATS, UNCLEAR, WORSE)}} if side else {})
    c = vs_random_table({"a": {"m": v}}, stated).rows[0][1]
    assert c.text == mark
    assert ("badge good" in c.cls, "badge bad" in c.cls) == (side == BEATS, side == WORSE)


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        (stat(0.3, 0.2, 0.4), "pass"),
        (stat(0.6, 0.55, 0.7), "fail"),
        (stat(0.45, 0.3, 0.6), "inconclusive"),
        ({"mean": 0.3, "n": 5}, "pass"),  # no CI: the mean decides
        (0.7, "fail"),
        ({"mean": None, "ci_low": None, "ci_high": None, "n": 0}, None),
    ],
)
def test_sanity_verdict_is_the_ci_rule_with_lower_better(v: object, expected: str | None) -> None:
    from agelens.report.sanity import SPEARMAN_FLAG, verdict

    assert verdict(v) == expected
    if ci_side(v, False, zero=SPEARMAN_FLAG) is not None:
        names = {BEATS: "pass", UNCLEAR: "inconclusive", WORSE: "fail"}
        assert verdict(v) == names[ci_side(v, False, zero=SPEARMAN_FLAG)]


@pytest.mark.parametrize("diff", [None, {}, {"a": {"deletion": {"mean": -0.2}}}, {"a": "oops"}])
def test_vs_random_says_nothing_without_cis(diff: object) -> None:
    assert not vs_random_findings(diff, ["deletion"], DIRS, "Faithfulness")


def test_ranking_names_the_top_method_never_random() -> None:
    ranking = [
        {"method": "random", "mean_rank": 1.0},
        {"method": "b", "mean_rank": 2.5, "ranks": {"deletion": 2, "insertion": 3}},
        {"method": "a", "mean_rank": 1.5, "ranks": {"deletion": 1, "insertion": 2}},
    ]
    said = ranking_findings(ranking)
    assert said.short == "Overall ranking: a comes first (mean rank 1.5 over 2 metrics; next: b, 2.5)."
    ci = {
        "deletion": {"mean": 0.4, "ci_low": 0.3, "ci_high": 0.5},
        "insertion": {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7},
    }
    shifted = {k: dict(v, ci_low=v["ci_low"] + 0.05, ci_high=v["ci_high"] + 0.05) for k, v in ci.items()}
    close = ranking_findings(ranking, {"a": ci, "b": shifted})  # a reviewer saw a "winner" on 6 photos
    assert close.short.startswith("Overall ranking: no method clearly leads: a has the best mean rank")
    assert "CIs overlap b's on every metric" in close.short and "comes first" not in close.short
    apart = {
        "a": ci,
        "b": {"deletion": dict(ci["deletion"], ci_low=0.6, ci_high=0.7), "insertion": ci["insertion"]},
    }
    assert ranking_findings(ranking, apart).short.startswith("Overall ranking: a comes first")
    tie = ranking_findings([{"method": "a", "mean_rank": 2}, {"method": "b", "mean_rank": 2}])
    assert tie.short.startswith("Overall ranking: a and b share first place")
    for bad in (None, [], [{"method": "a", "mean_rank": 1}], [{"method": "a"}, {"method": "b"}]):
        assert not ranking_findings(bad)


def test_sanity_groups_methods_by_verdict() -> None:
    said = sanity_findings({"a": "pass", "b": "inconclusive", "c": "fail", "d": None, "random": "pass"}, 0.5)
    assert said.short == "Sanity (weight randomisation): a passes; b inconclusive; c flagged."
    assert said.sentences[0].startswith("a passes the weight randomisation check: the 95% CI")
    assert "contains 0.5" in said.sentences[1] and "c: flagged" in said.sentences[2]
    assert "lower layers" in said.sentences[2] and "shuffled" not in said.sentences[2]
    assert not sanity_findings({"a": None, "random": "pass"}, 0.5)


def test_sanity_findings_name_the_checks_that_ran_and_which_flagged_each_method() -> None:
    checks = ("weight randomisation", "label randomisation")
    failed = {"a": (), "c": ("label randomisation",), "d": ("weight randomisation",)}
    both = sanity_findings({"a": "pass", "c": "fail", "d": "fail"}, 0.5, checks, failed)
    assert both.short == "Sanity (weight randomisation and label randomisation): a passes; c and d flagged."
    assert "after randomising the weights or retraining on shuffled labels" in both.sentences[0]
    c, d = both.sentences[1:]
    assert c.startswith("c: flagged by label randomisation: its maps of a model trained on shuffled labels")
    assert d.startswith("d: flagged by weight randomisation: while the weights") and "shuffled" not in d
    labels = sanity_findings({"c": "fail"}, 0.5, ("label randomisation",))
    assert labels.sentences[0].startswith("c: flagged: its maps of a model trained on shuffled labels")


def test_evaluation_states_what_was_evaluated_as_recorded() -> None:
    m = {"accuracy": 0.82, "macro_f1": 0.815, "evaluated_on": "held-out test split (600 faces)"}
    assert evaluation_findings(m).short == (
        "Evaluation: accuracy 82.0% and macro-F1 81.5% on held-out test split (600 faces)."
    )
    assert evaluation_findings({"accuracy": 0.5, "n_images": 300}).short == (
        "Evaluation: accuracy 50.0% on 300 images (which ones is not recorded)."
    )
    assert evaluation_findings(m | {"n_images": 600}).short == evaluation_findings(m).short  # 600 said once
    assert evaluation_findings(m | {"n_images": 60, "evaluated_on": "test split"}).short == (
        "Evaluation: accuracy 82.0% and macro-F1 81.5% on test split (60 photos)."
    )
    assert "not recorded" in evaluation_findings({"macro_f1": 0.5}).short
    assert not evaluation_findings({"evaluated_on": "test"}) and not evaluation_findings(None)


def _shortcut(drop: dict | None, **methods: dict) -> dict:
    acc = {"stamped": stat(0.99, 0.98, 1.0), "clean": stat(0.33, 0.27, 0.38)}
    return {"accuracy": acc | ({"drop": drop} if drop else {}), "methods": methods}


def _stamp(energy: dict, area: float | None = 0.01) -> dict:
    return {"stamp_energy": energy} | ({"stamp_area": area} if area is not None else {})


def test_shortcut_drop_and_stamp_energy_per_method() -> None:
    data = _shortcut(
        stat(0.667, 0.61, 0.72),
        early=_stamp(stat(0.029, 0.025, 0.033)),  # 2.9x, CI above the area share
        last=_stamp(stat(0.004, 0.003, 0.005)),  # 0.4x, CI below
        mid=_stamp(stat(0.011, 0.008, 0.014)),  # 1.1x, CI contains the area share
        nomask=_stamp(stat(0.5, 0.4, 0.6), area=None),  # no stamp area: nothing to compare with
        random=_stamp(stat(0.01, 0.009, 0.011)),
    )
    said = shortcut_findings(data)
    assert said.sentences == [
        "Without the stamps, accuracy on the same faces falls from 99.0% to 33.0%: a drop of "
        "66.7 percentage points (95% CI 61.0 to 72.0), so the model relies on the stamp.",
        "early puts 2.9x the stamp's area share of its energy on the stamp (95% CI 2.5x to 3.3x): "
        "it sees the shortcut.",
        "last puts 0.4x the stamp's area share of its energy on the stamp (95% CI 0.3x to 0.5x), "
        "less than a uniform map: it does not show the stamp.",
        "mid puts 1.1x the stamp's area share of its energy on the stamp (95% CI 0.8x to 1.4x): "
        "not distinguishable from a uniform map.",
    ]
    assert said.short == (
        "Shortcut check: accuracy drops 66.7 percentage points without the stamps (95% CI 61.0 to 72.0); "
        "early at 2.9x puts more than the stamp's area share of energy on the stamp; last at 0.4x does not; "
        "mid at 1.1x is not distinguishable from the stamp's area share."
    )


def test_a_narrow_ratio_ci_is_printed_apart_and_a_small_excess_is_not_called_seeing_it() -> None:
    said = shortcut_findings(
        _shortcut(
            stat(0.667, 0.61, 0.72),
            near=_stamp(stat(0.013, 0.0126, 0.0134)),
            edge=_stamp(stat(0.0104, 0.01004, 0.0108)),
        )
    )
    assert said.sentences[1] == (
        "near puts 1.30x the stamp's area share of its energy on the stamp (95% CI 1.26x to 1.34x): "
        "only slightly more than a uniform map puts there."
    )
    assert "(95% CI 1.004x to 1.080x)" in said.sentences[2]  # the low end is printed apart from 1x
    assert "sees the shortcut" not in " ".join(said.sentences)


def test_shortcut_without_a_clear_drop_claims_no_shortcut() -> None:
    said = shortcut_findings(_shortcut(stat(0.02, -0.03, 0.07), early=_stamp(stat(0.03, 0.025, 0.035))))
    assert "not distinguishable from no change" in said.sentences[0]
    assert "relies" not in " ".join(said.sentences) and "sees the shortcut" not in " ".join(said.sentences)
    assert "its map points at the stamp" in said.sentences[1]
    assert said.short.startswith("Shortcut check: no clear accuracy drop without the stamps;")


def test_shortcut_with_missing_fields_says_less() -> None:
    assert not shortcut_findings(None) and not shortcut_findings({"config": {}})
    old = shortcut_findings({"methods": {"a": {"stamp_energy": {"mean": 0.03}, "stamp_area": 0.01}}})
    assert old.sentences == [
        "a puts 3.0x the stamp's area share of its energy on the stamp (no CI recorded)."
    ]
    assert old.short == ""  # nothing decided, so nothing for Key findings
    no_ci = shortcut_findings({"accuracy": {"drop": {"mean": 0.5}}})
    assert no_ci.sentences == [
        "Without the stamps, accuracy changes by +50.0 percentage points (no CI recorded)."
    ]


def _key_findings(page: str) -> list[tuple[str, str]]:
    box = re.search(r'<section class="card key-findings" id="key-findings">(.*?)</section>', page, re.S)
    assert box, "no Key findings box"
    items = re.findall(r"<li>(.*?)</li>", box.group(1), re.S)
    out = []
    for item in items:
        href = re.search(r'<a href="#([^"]+)"', item)
        assert href, item
        out.append((htmllib.unescape(re.sub(r"<[^>]+>", "", item)), href.group(1)))
    return out


def test_key_findings_box_for_a_fixture_run(tmp_path: Path) -> None:
    page = render_report(make_run(tmp_path))
    found = _key_findings(page)
    assert [href for _, href in found] == [
        "evaluation",
        "scores-ranking",
        "scores-faithfulness",
        "scores-randomisation",
        "shortcut",
    ]
    text = dict((h, t) for t, h in found)
    assert text["evaluation"].startswith("Evaluation: accuracy 80.0% and macro-F1 74.0% on 30 images")
    assert "no method clearly leads: gradcam has the best mean rank" in text["scores-ranking"]  # CIs overlap
    assert text["scores-faithfulness"].startswith(
        "Faithfulness: gradcam beats matched random maps on 2 of 2 metrics (95% CI); scorecam on none"
    )
    assert "worse than random: scorecam on insertion" in text["scores-faithfulness"]
    assert text["scores-randomisation"].startswith(
        "Sanity (weight randomisation): gradcam passes; scorecam flagged"
    )
    assert "accuracy drops 58.0 percentage points" in text["shortcut"]
    assert "gradcam at 31.0x puts more than the stamp's area share" in text["shortcut"]
    assert "random" not in text["shortcut"] and "random" not in text["scores-ranking"]
    for _, href in found:  # every link lands on a section of the page
        assert f'id="{href}"' in page
    assert 'href="#key-findings"' in page  # listed in the side nav
    # the sections state their verdicts under their headings too
    assert (
        "scorecam is not distinguishable from random maps on deletion; worse than random maps on insertion"
        in page
    )
    assert "stamp_pointing: how often the map" in page  # the shortcut table's columns explained


def test_key_findings_degrade_with_old_files(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    doc = scores_json()
    del doc["difference_vs_matched_random"], doc["ranking"]
    for r in doc["scores"].values():
        r["randomisation"] = {
            "mean": r["randomisation"]["mean"]
        }  # no CI: the mean decides, as the table does
    write_json(run / "scores/scores.json", doc)
    write_json(run / "scores/shortcut.json", {"accuracy": {"drop": score(0.58)}})
    write_json(run / "evaluation/metrics.json", {"n_images": 3})
    hrefs = [h for _, h in _key_findings(render_report(run))]
    assert hrefs == ["scores-randomisation", "shortcut"]


def test_no_box_when_nothing_is_concluded(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    write_json(run / "manifest.json", {"name": "bare"})
    page = render_report(run)
    assert 'id="key-findings"' not in page and 'class="verdict"' not in page


# The usability review: "accuracy 100.0% and macro-F1 100.0%" on 10 photos, with no count, and a ranking.


def test_a_small_evaluation_says_how_few_photos_and_what_one_photo_is_worth() -> None:
    said = evaluation_findings(
        {"accuracy": 1.0, "macro_f1": 1.0, "n_images": 10, "evaluated_on": "every labelled photo in small"}
    )
    assert said.short == (
        "Evaluation: accuracy 100.0% and macro-F1 100.0% on every labelled photo in small (10 photos). "
        "Only 10 photos: too few for precise percentages (one photo moves accuracy by 10.0 points); "
        "treat them as provisional."
    )
    assert "too few" not in evaluation_findings({"accuracy": 0.9, "n_images": SMALL_SAMPLE}).short


@pytest.mark.parametrize(
    ("n", "small"), [(10, True), (SMALL_SAMPLE - 1, True), (SMALL_SAMPLE, False), (2135, False)]
)
def test_every_key_finding_on_scores_gives_its_sample_and_says_when_it_is_too_small(
    tmp_path: Path, n: int, small: bool
) -> None:
    run = make_run(tmp_path)
    doc = scores_json()
    doc["meta"]["n_images"] = n
    for row in doc["scores"].values():
        for stat in row.values():
            stat["n"] = n
    write_json(run / "scores/scores.json", doc)
    write_json(run / "scores/shortcut.json", {"config": {"n_test": n}, "accuracy": {"drop": score(0.58)}})
    found = dict((h, t) for t, h in _key_findings(render_report(run)))
    for sid in ("scores-ranking", "scores-faithfulness", "scores-randomisation"):
        assert f" {n:,} photos" in found[sid], found[sid]
        assert "scored" not in found[sid]  # every photo counted: no "of the N scored"
        assert ("too few to rank methods" in found[sid]) == small
    assert f" {n:,} photos" in found["shortcut"] and ("too few" in found["shortcut"]) == small
    assert "no method clearly leads" in found["scores-ranking"]  # the CI rule still decides the wording


def test_a_finding_on_metrics_that_skipped_photos_names_its_own_count(tmp_path: Path) -> None:
    """Localisation on 27 of 48 photos (empty masks skipped) must not say "Based on 48 photos"."""
    run = make_run(tmp_path)
    doc = scores_json()
    doc["meta"]["n_images"] = 48
    for meth, row in doc["scores"].items():
        for metric, stat in row.items():
            stat["n"] = 27 if metric == "pointing_game" else 48 - (meth == "scorecam")  # largest n: 48
    doc["difference_vs_matched_random"]["gradcam"]["pointing_game"] = score(0.4)
    write_json(run / "scores/scores.json", doc)
    found = dict((h, t) for t, h in _key_findings(render_report(run)))
    assert "Based on only 27 of the 48 photos scored: too few" in found["scores-localisation"]
    assert "Based on only 48 photos: too few" in found["scores-faithfulness"]
    assert sample_sentence(60, of=80) == "Based on 60 of the 80 photos scored."
    assert sample_sentence(80, of=80) == sample_sentence(80) == "Based on 80 photos."


def test_the_sample_is_read_from_the_scores_when_meta_has_no_count() -> None:
    from agelens.report.photo_counts import scored_images

    doc = scores_json()
    del doc["meta"]["n_images"]
    assert scored_images(doc) == 20  # score()'s n
    assert scored_images({"scores": {"a": {"m": {"mean": 1.0}}}}) is None
    assert sample_sentence(None) == "" and sample_sentence(0) == "" and sample_sentence(2.5) == ""
    assert sample_sentence(1) == "Based on only 1 photo: too few to rank methods; treat this as provisional."


def _evaluated(y_true: list[int], y_pred: list[int]) -> dict:
    from agelens.model.evaluate import classification_metrics

    return classification_metrics(y_true, y_pred, ["young", "middle-aged", "old"])


def test_a_model_that_predicts_one_class_is_called_out() -> None:
    """An untrained model said "accuracy 60.0% and macro-F1 25.0%" while it called every photo young."""
    m = _evaluated([0, 0, 0, 1, 2], [0, 0, 0, 0, 0])
    assert evaluation_findings(m).short.startswith(
        "Evaluation: accuracy 60.0% and macro-F1 25.0% on 5 images (which ones is not recorded). "
        "The model predicts only young: every photo gets the same class "
        "(balanced accuracy 33.3%, chance level for 3 classes). Only 5 photos:"
    )
    below = evaluation_findings(_evaluated([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 0])).short
    assert (
        "The model does no better than chance (balanced accuracy 0.0%, below the 33.3% chance level " in below
    )
    for fine in (_evaluated([0, 0, 1, 2], [0, 0, 1, 1]), _evaluated([0, 0, 0], [0, 0, 0])):
        assert "chance" not in evaluation_findings(fine).short  # better than chance; one true class
    assert "chance" not in evaluation_findings({"accuracy": 0.3, "balanced_accuracy": 0.1}).short  # no matrix


def test_the_key_findings_box_says_the_model_predicts_one_class(tmp_path: Path) -> None:
    from agelens.model.evaluate import write_evaluation

    write_evaluation(_evaluated([0, 0, 0, 1, 2], [0, 0, 0, 0, 0]), tmp_path / "ev")
    box = re.search(r'id="key-findings">(.*?)</section>', render_report(tmp_path / "ev"), re.S).group(1)
    assert "The model predicts only young: every photo gets the same class" in box
