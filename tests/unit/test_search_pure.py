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


@pytest.mark.parametrize(
    ("extversion", "version", "iterative"),
    [
        ("0.6.2", (0, 6, 2), False),  # the embedded server's (pgserver 0.1.4)
        ("0.7.4", (0, 7, 4), False),
        ("0.8.0", (0, 8, 0), True),
        ("0.8.2", (0, 8, 2), True),
        ("0.10.0", (0, 10, 0), True),  # numbers, not strings: "0.10" > "0.8"
        ("1.0", (1, 0), True),
        ("0.8.0-dev", (0, 8, 0), True),
        (None, (), False),  # no vector extension in this database
        ("", (), False),
    ],
)
def test_pgvector_version_decides_iterative_scans(
    extversion: str | None, version: tuple[int, ...], iterative: bool
) -> None:
    found = search.Pgvector.parse(extversion)
    assert found.version == version
    assert found.iterative_scan is iterative


PGVECTOR_06 = search.Pgvector.parse("0.6.2")
PGVECTOR_08 = search.Pgvector.parse("0.8.0")
BIG_ARTIST = search.EXACT_ARTIST_MAX + 1


@pytest.mark.parametrize(
    ("artist_tracks", "limit", "pgvector", "plan", "ef"),
    [
        # No filter: the index alone, whatever the version.
        (None, 10, PGVECTOR_06, "index", search.DEFAULT_EF_SEARCH),
        (None, 10, PGVECTOR_08, "index", search.DEFAULT_EF_SEARCH),
        # A small artist: exact through the artist index, even where iterative scans exist.
        (search.EXACT_ARTIST_MAX, 10, PGVECTOR_08, "exact", None),
        (5, 10, PGVECTOR_06, "exact", None),
        # A prolific artist: iterative scan on >= 0.8, over-fetch before it or unknown.
        (BIG_ARTIST, 10, PGVECTOR_08, "iterative", search.ITERATIVE_EF_SEARCH),
        (
            BIG_ARTIST,
            search.ITERATIVE_EF_SEARCH + 1,
            PGVECTOR_08,
            "iterative",
            search.ITERATIVE_EF_SEARCH + 1,
        ),
        (BIG_ARTIST, 10, PGVECTOR_06, "overfetch", search.MAX_CANDIDATES),
        (BIG_ARTIST, 10, None, "overfetch", search.MAX_CANDIDATES),
        (BIG_ARTIST, 10, search.Pgvector(()), "overfetch", search.MAX_CANDIDATES),
    ],
)
def test_plan_by_pgvector_version(
    artist_tracks: int | None,
    limit: int,
    pgvector: search.Pgvector | None,
    plan: str,
    ef: int | None,
) -> None:
    assert search.choose_plan(artist_tracks, limit, pgvector) == (plan, ef)


def test_only_the_iterative_plan_sets_iterative_scan() -> None:
    # pgvector < 0.8 reserves the hnsw. prefix: an unknown hnsw.* setting is an error.
    assert search.index_settings("index", 64) == {"hnsw.ef_search": "64"}
    assert search.index_settings("overfetch", 1000) == {"hnsw.ef_search": "1000"}
    assert search.index_settings("iterative", 64) == {
        "hnsw.ef_search": "64",
        "hnsw.iterative_scan": "relaxed_order",
        "hnsw.max_scan_tuples": str(search.MAX_SCAN_TUPLES),
    }


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
