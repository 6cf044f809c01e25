"""``agelens score``'s terminal tables at a terminal's width: every column shown, none cut off.

Why: at 80 columns rich drew the tables wider and the terminal cut each line, so the mean rank, the
last difference column and words of the captions vanished without a sign; and a tiny difference
printed as ``+4.2e-04`` was wider than every other number of its column.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from agelens.cli.score_cmd import NOISE_NOTE, NOISE_NOTE_SPLIT, _rich_tables
from agelens.metrics.base import Score
from agelens.metrics.report import ScoreTable, delta_cell, signed

DEFAULT = ("deletion", "insertion", "average_drop", "increase_in_confidence", "road_morf", "road_lerf")
WITH_MASKS = (*DEFAULT, "pointing_game", "energy_in_mask")  # score's default when there are masks


def _table(metrics: tuple[str, ...] = DEFAULT, tiny: bool = False, second: str = "scorecam") -> ScoreTable:
    """gradcam, ``second`` and the random row on ``metrics``; one difference beats chance, under
    0.0005 when ``tiny`` (``+4e-04``), else as long as the others (``+0.012``)."""
    info = [
        {"name": n, "higher_is_better": n not in ("deletion", "average_drop", "road_morf")} for n in metrics
    ]
    names = ("gradcam", second, "random")
    scores = {
        m: {n: Score(0.1 + 0.1 * i, 0.05 + 0.1 * i, 0.15 + 0.1 * i, 3) for n in metrics}
        for i, m in enumerate(names)
    }
    vs = {
        m: {n: Score(-0.012 + 0.02 * i, -0.057, 0.042 + 0.01 * i, 3) for n in metrics}
        for i, m in enumerate(names[:2])
    }
    vs["gradcam"][metrics[1]] = Score(4.2e-4, 1.2e-4, 3.1e-4, 3) if tiny else Score(0.012, 0.005, 0.019, 3)
    return ScoreTable(list(names), info, scores, vs_random=vs, meta={"n_images": 3})


def _render(shown: Table, width: int) -> str:
    """What a terminal of ``width`` columns gets, uncut: a table drawn wider shows as longer lines."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(shown, crop=False)
    return console.file.getvalue()


def _headers(tables: list[Table]) -> list[str]:
    return [str(c.header) for t in tables for c in t.columns[1:]]


def _is_diff(t: Table) -> bool:
    return str(t.title).startswith("Method minus random maps")


def _rows(t: Table) -> dict[str, dict[str, str]]:
    """Each row's cells by column header, under the row's method."""
    headers, cells = [str(c.header) for c in t.columns], [list(c.cells) for c in t.columns]
    return {
        row: {h: col[i] for h, col in zip(headers[1:], cells[1:], strict=True)}
        for i, row in enumerate(cells[0])
    }


@pytest.mark.parametrize(
    ("width", "metrics", "second"),
    [
        (60, DEFAULT, "scorecam"),
        (80, DEFAULT, "scorecam"),
        (80, WITH_MASKS, "scorecam"),
        (80, DEFAULT, "integrated_gradients"),
        # A name that cannot wrap: rich drew the whole table 153 columns wide here, past the edge.
        (150, DEFAULT, "integrated_gradients"),
    ],
)
def test_a_terminal_too_narrow_for_a_table_gets_every_column_and_cell_within_its_width(
    width: int, metrics: tuple, second: str
) -> None:
    table = _table(metrics, tiny=True, second=second)
    full, fitted = _rich_tables(table), _rich_tables(table, width)
    drawn = [_render(t, width) for t in fitted]
    assert max(len(line) for text in drawn for line in text.splitlines()) <= width  # nothing to cut
    assert "…" not in "".join(drawn)
    for kind in (False, True):  # the scores, then the differences
        whole = [t for t in full if _is_diff(t) == kind]
        parts = [t for t in fitted if _is_diff(t) == kind]
        assert len(whole) == 1 and len(parts) > 1  # too wide whole at these widths: split, not cut
        assert _headers(parts) == _headers(whole)  # every column once, in the table's order
        assert [c.header for t in parts for c in t.columns[:1]] == ["method"] * len(parts)
        merged: dict[str, dict[str, str]] = {}
        for t in parts:
            for row, cells in _rows(t).items():
                merged.setdefault(row, {}).update(cells)
        assert merged == _rows(whole[0])  # every cell, under its method and header
        assert [t.caption for t in parts[:-1]] == [None] * (len(parts) - 1)
        assert all(str(t.title).endswith(", continued") for t in parts[1:])
    scores = [t for t in fitted if not _is_diff(t)]
    assert str(scores[-1].columns[-1].header) == "mean rank"
    caption = " ".join(str(scores[-1].caption).split())
    assert " ".join(NOISE_NOTE_SPLIT.split()) in caption and "second table" not in caption
    for t, text in zip(fitted, drawn, strict=True):  # the captions wrap: every word is on screen
        if t.caption:
            assert " ".join(str(t.caption).split()) in " ".join(text.split())


def test_a_wide_terminal_gets_the_two_whole_tables_as_before() -> None:
    table = _table(tiny=True)
    fitted = _rich_tables(table, 120)
    assert len(fitted) == 2 and [_render(t, 120) for t in fitted] == [
        _render(t, 120) for t in _rich_tables(table)
    ]
    assert max(len(line) for t in fitted for line in _render(t, 120).splitlines()) <= 120
    assert NOISE_NOTE in str(fitted[0].caption)  # "judge a method by the second table" is still true
    assert str(fitted[0].columns[-1].header) == "mean rank"


def test_a_tiny_difference_is_as_wide_as_any_other_and_keeps_its_sign() -> None:
    assert [signed(v) for v in (4.2e-4, -4.2e-4, 1.2e-4, 4.99e-4)] == ["+4e-04", "-4e-04", "+1e-04", "+5e-04"]
    for v in (1e-5, 1e-4, 3e-4, 4.9e-4, 1e-99):  # nonzero, so not "+0.000" beside a ✓
        assert (
            len(signed(v)) == len(signed(-v)) == len("+0.000")
            and signed(v)[0] == "+"
            and signed(v) != "+0.000"
        )
    assert signed(1e-300) == "+0.000"  # a three-digit exponent would be wider: zero to every purpose
    assert [signed(v) for v in (0.0, 0.0123, -0.5)] == ["+0.000", "+0.012", "-0.500"]
    tiny, usual = Score(4.2e-4, 1.2e-4, 3.1e-4, 3), Score(0.012, -0.027, 0.048, 3)
    assert delta_cell(tiny, True) == "+4e-04 [+1e-04, +3e-04] ✓"
    assert len(delta_cell(tiny, True, marked=False)) == len(delta_cell(usual, True))  # the column's width


def test_a_tiny_difference_does_not_widen_its_column() -> None:
    def widths(tiny: bool) -> list[int]:
        diff = next(t for t in _rich_tables(_table(tiny=tiny), 200) if _is_diff(t))
        return [len(line) for line in _render(diff, 200).splitlines()]

    assert widths(tiny=True) == widths(tiny=False)
