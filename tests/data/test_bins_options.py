"""``--bins``/``--names`` as commands read them: the same class names everywhere, errors naming the option."""

from __future__ import annotations

import pytest

from agelens.data.bins import AgeBins, bins_from_options


def test_bins_alone_get_the_names_data_inspect_gives_them() -> None:
    assert bins_from_options("20,40,60").names == ("0-20", "20-40", "40-60", "60+")
    assert bins_from_options("20,40,60") == AgeBins.parse("20,40,60")
    assert bins_from_options("30,60") == AgeBins()  # two edges: young, middle-aged, old


def test_names_are_used_when_there_is_one_per_class() -> None:
    assert bins_from_options("18", " minor, adult ").names == ("minor", "adult")


@pytest.mark.parametrize(
    ("bins", "names", "message"),
    [("20,40,60", "a,b,c", "--names: 3 names for 4 classes (--bins 20,40,60 makes 4)"),
     ("30,60", "a,b,c,d", "--names: 4 names for 3 classes (--bins 30,60 makes 3)"),
     ("2x,40", None, "--bins 2x,40: give ages in years, comma-separated (e.g. 30,60)"),
     ("60,30", None, "--bins 60,30: the ages must increase (e.g. 30,60)"),
     ("", None, "--bins '': give at least one age in years (e.g. 30,60)")],
)  # fmt: skip
def test_a_bad_option_is_named_in_the_message(bins, names, message) -> None:
    with pytest.raises(ValueError) as exc:
        bins_from_options(bins, names)
    assert str(exc.value) == message


def test_two_edges_other_than_30_60_are_named_by_their_ages_and_edges_are_positive() -> None:
    """``--bins 20,40`` named its groups young / middle-aged / old: a 25-year-old "middle-aged"."""
    from agelens.data.bins import bins_from_options

    assert bins_from_options("20,40").names == ("0-20", "20-40", "40+")
    assert bins_from_options("30,60").names == ("young", "middle-aged", "old")
    for bad in ("-5,30", "0,30"):
        with pytest.raises(ValueError, match="leaves no one below it"):
            bins_from_options(bad)
