"""``agelens score --force`` drops the replaced run's page; the noise row is explained, not crowned."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_score_cli import app, folder_and_model, runner  # noqa: F401  (the module fixture: one tiny model)

from agelens.metrics.base import class_targets


def test_force_removes_the_report_of_the_replaced_run_only_once_the_new_one_is_written(
    folder_and_model,  # noqa: F811
    tmp_path: Path,
) -> None:
    data, model = folder_and_model
    out = tmp_path / "score"
    args = [str(data), "--model", str(model), "--metrics", "deletion", "--n", "3", "--out", str(out)]
    out.mkdir()
    (out / "scores.json").write_text("{}")  # an earlier run, as far as score's --force rule reads it
    page = out / "report.html"
    page.write_text("<html>the earlier run</html>")
    failed = runner.invoke(app, [*args[:3], "--metrics", "nope", *args[5:], "--force"])
    assert failed.exit_code == 2 and page.exists()  # no new run: the page still shows what is there
    res = runner.invoke(app, [*args, "--force", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert not page.exists() and f"removed {page}: it showed the earlier run" in res.stderr
    text = " ".join(res.stdout.split())
    assert "Scattered noise scores well on deletion/insertion without explaining anything" in text
    assert "judge a method by the second table" in text
    md = (out / "scores.md").read_text()
    assert "judge a method by the table below" in md


def test_an_unknown_target_lists_every_accepted_spelling() -> None:
    with pytest.raises(ValueError) as e:
        class_targets("olde", ["young", "middle-aged", "old"], 2)
    said = str(e.value)
    assert "'olde' is not a class; give class indices or class names (young, middle-aged, old)" in said
    assert "'age' (models with an age output) or a contrast such as old-young" in said
