"""Review fixes in the page: settings read as plain yes/no; only names that carry a label give the truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

from report_factory import CLASSES, make_run, write_json

from agelens.report.gallery import true_label
from agelens.report.html import render_report
from agelens.report.tables import cell, tables_from_json

BINS = ([30.0, 60.0], CLASSES)


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section class="[^"]*" id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


# A ⚠ only where false (or true) is a problem.


def test_option_flags_read_plain_yes_no_and_checks_keep_their_marks() -> None:
    for key in ("signed", "test_time_flip", "detect"):
        c = cell(key, False)
        assert (c.text, "badge" in c.cls) == ("no", False), key
    assert cell("detect", True).text == "yes"
    assert cell("face_found", False).text == "⚠ no" and "badge bad" in cell("face_found", False).cls
    assert cell("face_found", True).text == "✓ yes"
    assert cell("passed", False).text == "⚠ no" and cell("beats_random", True).text == "✓ yes"
    assert cell("flagged", True).text == "⚠ yes" and cell("flagged", False).text == "✓ no"
    (table,) = tables_from_json({"random": False}, "sanity · passed_by_baseline")
    assert table.rows[0][1].text == "⚠ no"  # the table's title says what the bare key is


def test_run_settings_show_no_warning_for_default_options(run_dir: Path) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    settings = {"signed": False, "test_time_flip": False, "detect": False}
    write_json(run_dir / "manifest.json", manifest | {"settings": settings})
    run = _section(render_report(run_dir), "run")
    assert "test_time_flip" in run and "⚠" not in run
    assert re.search(r"signed</t[hd]>\s*<td[^>]*>no</td>", run)


# The true label from names written to carry one, never from any word of a name.


def test_words_in_a_file_name_are_not_a_label() -> None:
    for name in ("young_at_heart.jpg", "canvas4_old.jpg", "old.png", "face_old.png", "my_face_001_old.jpg"):
        assert true_label(name, CLASSES, BINS) is None, name


def test_utkface_synth_and_demo_names_give_the_label() -> None:
    assert true_label("face_001_middle-aged.png", CLASSES, None) == ("middle-aged", "")
    assert true_label("face_012_young.png", CLASSES, BINS) == ("young", "")
    # ``agelens data synth``: {age}_{gender}_{race}_{seed}{index:07d}.png
    assert true_label("61_0_2_30000004.png", CLASSES, BINS) == ("old", "age 61")
    assert true_label("26_1_3_20170104222933607.jpg.chip.jpg", CLASSES, BINS) == ("young", "age 26")


def test_a_class_sub_folder_gives_the_label_and_says_so(tmp_path: Path) -> None:
    assert true_label("IMG_0001.jpg", CLASSES, BINS, folder="old") == ("old", "folder old/")
    assert true_label("IMG_0001.jpg", CLASSES, BINS, folder="Pictures") is None
    run = make_run(tmp_path, n_images=3)  # predicted young, middle-aged, old
    path = run / "explain/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["images"][0]["source"] = "/data/old/IMG_0001.jpg"
    manifest["images"][1]["source"] = "/photos/young_at_heart.jpg"
    path.write_text(json.dumps(manifest))
    gallery = _section(render_report(run), "explanations")
    truths = re.findall(r'<div class="truth ([a-z]+)">true <b>([^<]+)</b>(.*?)</div>', gallery)
    assert [(cls, name) for cls, name, _ in truths] == [("wrong", "old")]  # predicted young
    assert "(folder old/)" in truths[0][2]
