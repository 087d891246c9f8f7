"""The pure parts of analyzer_runtime/search.py: input checks, plan choice, lines, stats."""

from __future__ import annotations

import pytest

from analyzer_runtime import search


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_query_is_refused(text: str) -> None:
    with pytest.raises(search.InvalidQuery, match="the query is empty"):
        search.check_query(text)


def test_query_limits() -> None:
    assert search.check_query("  money  ") == "money"
    assert search.check_query("x" * 1000) == "x" * 1000
    with pytest.raises(search.InvalidQuery, match="1001 characters long; at most 1000"):
        search.check_query("x" * 1001)
    with pytest.raises(search.InvalidQuery, match="NUL"):
        search.check_query("a\x00b")


@pytest.mark.parametrize("bad", [0, -1, 101])
def test_limit_bounds(bad: int) -> None:
    assert search.check_limit(1) == 1 and search.check_limit(100) == 100
    with pytest.raises(search.InvalidQuery, match="between 1 and 100"):
        search.check_limit(bad)


@pytest.mark.parametrize("bad", [0, -5, 2**31])
def test_track_id_bounds(bad: int) -> None:
    assert search.check_track_id(2**31 - 1) == 2**31 - 1
    with pytest.raises(search.InvalidQuery, match="positive 32-bit integer"):
        search.check_track_id(bad)


@pytest.mark.parametrize(
    ("lyrics", "line"),
    [
        ("[Intro]\n\n  yeah yeah  \nsecond", "yeah yeah"),
        ("first\nsecond", "first"),
        ("[Verse 1]\n[Chorus]\n", ""),
        (None, ""),
        ("", ""),
    ],
)
def test_first_line_skips_headers_and_blanks(lyrics: str | None, line: str) -> None:
    assert search.first_line(lyrics) == line


def test_first_line_is_capped() -> None:
    assert len(search.first_line("a" * 500)) == 200


def test_plan_choice() -> None:
    assert search.choose_plan(None, 10) == ("index", search.DEFAULT_EF_SEARCH)
    # A limit above the default ef_search raises it: the index returns <= ef_search rows.
    assert search.choose_plan(None, search.DEFAULT_EF_SEARCH + 50) == (
        "index",
        search.DEFAULT_EF_SEARCH + 50,
    )
    assert search.choose_plan(0, 10) == ("exact", None)
    assert search.choose_plan(search.EXACT_ARTIST_MAX, 10) == ("exact", None)
    assert search.choose_plan(search.EXACT_ARTIST_MAX + 1, 10) == (
        "overfetch",
        search.MAX_CANDIDATES,
    )


def test_recall_and_percentile() -> None:
    assert search.recall_at(3, [1, 2, 9], [1, 2, 3]) == pytest.approx(2 / 3)
    assert search.recall_at(2, [2, 1, 3], [1, 2, 3]) == 1.0
    assert search.recall_at(2, [], [1, 2]) == 0.0
    values = [float(v) for v in range(1, 101)]
    assert search.percentile(values, 50) == 50.0
    assert search.percentile(values, 95) == 95.0
    assert search.percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        search.percentile([], 50)


def test_errors_say_what_to_do() -> None:
    msg = str(search.NoEmbeddings("m"))
    assert "no track has an embedding of model m" in msg
    assert "rap-analyzer run examples/embedding-run.yaml" in msg
    assert str(search.UnknownTrack(7)) == "no track with id 7"
    assert "track 7 has no embedding of model m" in str(search.TrackNotEmbedded(7, "m"))
