"""`rap-analyzer import`, the parts without a database: column mapping, value checks,
date parsing, word counts, the seen-keys set and the readers' line numbers."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer_runtime.analyzers.text import tokenize
from analyzer_runtime.corpus_import import readers
from analyzer_runtime.corpus_import.mapping import MappingError, parse_map_options, resolve
from analyzer_runtime.corpus_import.pipeline import ImportInputError, prepare
from analyzer_runtime.corpus_import.rejects import RejectsWriter, read_rejects
from analyzer_runtime.corpus_import.seen import SeenKeys
from analyzer_runtime.corpus_import.values import (
    Reject,
    Row,
    Validator,
    name_key,
    parse_date,
    parse_features,
    preview,
)
from analyzer_runtime.corpus_import.words import count_words

# -- mapping ----------------------------------------------------------------------------

KAGGLE_GENIUS = [
    "title", "tag", "artist", "year", "views", "features", "lyrics", "id",
    "language_cld3", "language_ft", "language",
]  # fmt: skip
LEGACY_SQLITE = [
    "id", "title", "artist", "lyrics", "url", "genius_id", "scraped_date", "word_count",
    "genre", "release_date", "album", "language", "explicit", "song_art_url",
    "popularity_score", "lyrics_quality_score", "created_at", "spotify_data",
]  # fmt: skip


def test_the_kaggle_genius_layout_maps_by_itself() -> None:
    m = resolve(KAGGLE_GENIUS)
    assert m.fields == {
        "title": "title",
        "artist": "artist",
        "lyrics": "lyrics",
        "release_date": "year",
        "genius_id": "id",  # the Genius dataset's id is the Genius id
        "language": "language",  # the combined column, not a detector's
        "genre": "tag",
        "views": "views",
        "features": "features",
    }
    assert m.ignored == ("language_cld3", "language_ft")


def test_the_legacy_sqlite_layout_keeps_its_own_id_out() -> None:
    m = resolve(LEGACY_SQLITE)
    assert m.fields["genius_id"] == "genius_id"
    assert "id" in m.ignored and "word_count" in m.ignored and "created_at" in m.ignored
    assert set(m.fields) >= {
        "explicit", "song_art_url", "popularity_score", "lyrics_quality_score",
        "scraped_date", "spotify_data", "genre", "album", "url",
    }  # fmt: skip


def test_column_names_match_case_insensitively_and_a_full_date_beats_a_year() -> None:
    m = resolve(["Song", "Artist", "Album", "Year", "Date", "Lyric"])
    assert m.fields == {
        "title": "Song",
        "artist": "Artist",
        "lyrics": "Lyric",
        "release_date": "Date",
        "album": "Album",
    }
    assert m.ignored == ("Year",)
    spotify = resolve(["artist_name", "track_name", "release_date"])
    assert spotify.fields == {
        "title": "track_name",
        "artist": "artist_name",
        "release_date": "release_date",
    }
    assert resolve(["Song Name", "track_name", "Artist"]).fields["title"] == "Song Name"


def test_map_options_override_skip_and_fail_with_a_reason() -> None:
    m = resolve(["Name", "Band", "Words", "id"], parse_map_options(
        ["Name=title", "band=artist", "Words=lyrics", "id=skip"]
    ))  # fmt: skip
    assert m.fields == {"title": "Name", "artist": "Band", "lyrics": "Words"}
    assert m.ignored == ("id",)
    with pytest.raises(MappingError, match="unknown field 'lyric'"):
        parse_map_options(["Words=lyric"])
    with pytest.raises(MappingError, match="expected COLUMN=FIELD"):
        parse_map_options(["Words"])
    with pytest.raises(MappingError, match="no column 'Nope'"):
        resolve(["title", "artist"], {"Nope": "lyrics"})
    with pytest.raises(MappingError, match="two columns"):
        resolve(["a", "b", "artist"], {"a": "title", "b": "title"})
    with pytest.raises(MappingError, match="no column for title and artist"):
        resolve(["x", "y"])
    with pytest.raises(MappingError, match="no column for artist"):
        resolve(["title", "singer_x"])


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2019", date(2019, 1, 1)),
        (2019, date(2019, 1, 1)),
        (2019.0, date(2019, 1, 1)),
        ("2019.0", date(2019, 1, 1)),
        ("2019-05-12", date(2019, 5, 12)),
        ("2019/5/2", date(2019, 5, 2)),
        ("2019-05", date(2019, 5, 1)),
        ("2019-05-00", date(2019, 5, 1)),
        ("2019-00-00", date(2019, 1, 1)),
        ("2019-05-12T10:20:30Z", date(2019, 5, 12)),
        ("2019-05-12 10:20:30", date(2019, 5, 12)),
        ("June 23, 2017", date(2017, 6, 23)),
        ("Jun 3, 2017", date(2017, 6, 3)),
        ("23 June 2017", date(2017, 6, 23)),
        ("June 2017", date(2017, 6, 1)),
        (datetime(2001, 2, 3, 4, 5), date(2001, 2, 3)),
        (date(2001, 2, 3), date(2001, 2, 3)),
        ("  ", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_dates_parse(raw: object, want: date | None) -> None:
    assert parse_date(raw) == want


@pytest.mark.parametrize(
    "raw",
    ["2019-13-45", "2019-02-30", "someday", "0", "0000", "12/05/2019", "2019-05-12Tnoon", True,
     10000, 2019.5, "2019-00-12"],
)  # fmt: skip
def test_unparseable_dates_raise(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_date(raw)


def test_features_in_every_spelling() -> None:
    assert parse_features('{"Cam\'ron","Opera Steve"}') == ["Cam'ron", "Opera Steve"]
    assert parse_features("{Drake,Future}") == ["Drake", "Future"]
    assert parse_features('{"A \\"B\\" C"}') == ['A "B" C']
    assert parse_features("{}") == []
    assert parse_features('["Drake", "Future"]') == ["Drake", "Future"]
    assert parse_features("Drake, Future") == ["Drake", "Future"]
    assert parse_features(["Drake", " ", None]) == ["Drake"]
    with pytest.raises(ValueError):
        parse_features('{"unterminated}')


ALL = [
    "title", "artist", "lyrics", "release_date", "album", "url", "genius_id", "language",
    "genre", "views", "features", "explicit", "song_art_url", "popularity_score",
    "lyrics_quality_score", "scraped_date", "spotify_data",
]  # fmt: skip


def _row(**values: object) -> Row | Reject:
    v = Validator.for_fields(ALL)
    return v([values.get(name) for name in ALL])


def test_a_good_row_is_converted() -> None:
    row = _row(
        title="  Lose  Yourself ", artist="Eminem", lyrics="Look, if you had one shot\n[Chorus]\n",
        release_date="2002", album="8 Mile", url="https://genius.com/x", genius_id="123.0",
        language="en", genre="rap", views="1,234,567", features='{"A","B"}', explicit="true",
        song_art_url="https://img", popularity_score=80, lyrics_quality_score="0.5",
        scraped_date="2024-01-02 03:04:05", spotify_data='{"id": "sp1"}',
    )  # fmt: skip
    assert isinstance(row, Row)
    assert row.title == "Lose  Yourself"  # trimmed; inner spaces kept
    assert row.title_key == "lose yourself" and row.artist_key == "eminem"
    assert row.genius_id == 123 and row.release_date == date(2002, 1, 1)
    assert row.word_count == 6 == len(tokenize(row.lyrics or ""))
    assert row.explicit is True and row.popularity_score == 80
    assert row.lyrics_quality_score == 0.5
    assert row.scraped_date == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert json.loads(row.spotify_data or "") == {
        "id": "sp1",
        "import": {"views": 1234567, "features": ["A", "B"]},
    }


@pytest.mark.parametrize(
    ("values", "reason", "field"),
    [
        ({"artist": "A"}, "missing_title", "title"),
        ({"title": "   ", "artist": "A"}, "missing_title", "title"),
        ({"title": "T"}, "missing_artist", "artist"),
        ({"title": "T\udcff", "artist": "A"}, "invalid_utf8", "title"),
        ({"title": "T", "artist": "A", "lyrics": "la\x00la"}, "nul_character", "lyrics"),
        ({"title": "T" * 1001, "artist": "A"}, "field_too_long", "title"),
        ({"title": "T", "artist": "A", "lyrics": "x" * 200_001}, "field_too_long", "lyrics"),
        ({"title": "T", "artist": "A", "url": "u" * 2049}, "field_too_long", "url"),
        ({"title": "T", "artist": "A", "release_date": "2019-13-45"}, "invalid_date",
         "release_date"),
        ({"title": "T", "artist": "A", "genius_id": "12a"}, "invalid_number", "genius_id"),
        ({"title": "T", "artist": "A", "genius_id": "0"}, "invalid_number", "genius_id"),
        ({"title": "T", "artist": "A", "genius_id": 2**63}, "invalid_number", "genius_id"),
        ({"title": "T", "artist": "A", "views": "-1"}, "invalid_number", "views"),
        ({"title": "T", "artist": "A", "explicit": "maybe"}, "invalid_value", "explicit"),
        ({"title": "T", "artist": "A", "spotify_data": "[1]"}, "invalid_json", "spotify_data"),
        ({"title": "T", "artist": "A", "spotify_data": '{"a": "\\u0000"}'}, "nul_character",
         "spotify_data"),
        ({"title": ["T"], "artist": "A"}, "invalid_value", "title"),
        # The first problem in field order is the reason: the title comes first.
        ({"release_date": "never", "artist": "A"}, "missing_title", "title"),
    ],
)  # fmt: skip
def test_bad_values_are_rejected_with_their_reason(
    values: dict[str, object], reason: str, field: str
) -> None:
    got = _row(**values)
    assert isinstance(got, Reject)
    assert (got.reason, got.field) == (reason, field)


def test_the_database_limits_tighten_ours() -> None:
    v = Validator.for_fields(["title", "artist", "genius_id"], {"title": 10, "genius_id": 99})
    assert isinstance(v(["x" * 10, "a", 99]), Row)
    # a Reject here (Row | Reject)
    assert v(["x" * 11, "a", None]).reason == "field_too_long"  # type: ignore[union-attr]
    assert v(["x", "a", 100]).reason == "invalid_number"  # type: ignore[union-attr]


def test_the_rejects_preview_is_printable_and_shows_bad_bytes() -> None:
    assert preview("ab\x00c\udcff\n") == "ab\\u0000c\\xff\\u000a"
    assert preview("x" * 100, 5) == "xxxxx..."


def test_name_keys_collapse_whitespace_and_ascii_case_only() -> None:
    assert name_key("  The\tNotorious \n B.I.G. ") == "the notorious b.i.g."
    assert name_key("BEYONCÉ") == "beyoncÉ"  # only ASCII letters: the SQL side agrees
    assert name_key("a\u00a0b") == "a\u00a0b"  # a no-break space is not collapsed


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab'`’‘ʼ \n\r\t[]1_-é\x00\x07\x7f\u200b\x85Z:"), max_size=60)
)
def test_count_words_is_the_tokenizer_count(text: str) -> None:
    assert count_words(text) == len(tokenize(text))


def test_count_words_on_real_lyrics() -> None:
    from analyzer_runtime.corpus.synthetic import generate_tracks

    for t in generate_tracks(50, seed=7):
        assert count_words(t.lyrics) == t.word_count


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 50), max_size=300))
def test_seen_keys_is_a_set(keys: list[int]) -> None:
    seen, ref = SeenKeys(merge_at=7), set()
    for k in keys:
        assert seen.add(k) == (k not in ref)
        ref.add(k)
    assert len(seen) == len(ref) and all(k in seen for k in ref)


# -- readers -------------------------------------------------------------------------------


def _records(path: Path, fmt: str | None = None) -> list[tuple[int, object]]:
    prep = prepare(path, fmt=fmt)
    try:
        return list(prep.reader.records(list(prep.mapping.fields.values())))
    finally:
        prep.close()


def test_csv_line_numbers_count_physical_lines_and_bad_bytes_stay_in_their_row(
    tmp_path: Path,
) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes(
        b"\xef\xbb\xbftitle,artist,lyrics\n"  # a BOM before the header
        b'A,B,"one\ntwo\nthree"\n'  # lines 2-4
        b"C,D,\xff\xfe bad bytes\n"  # line 5
        b"\n"  # line 6: blank, no record
        b"E,F\n"  # line 7: a field short
        b'G,H,"x\x00y"\n'  # line 8
    )
    got = _records(p)
    assert [line for line, _ in got] == [2, 5, 7, 8]
    assert got[0][1] == ["A", "B", "one\ntwo\nthree"]
    assert got[1][1] == ["C", "D", "\udcff\udcfe bad bytes"]
    assert isinstance(got[2][1], Reject) and got[2][1].reason == "malformed_record"
    assert got[3][1] == ["G", "H", "x\x00y"]


def test_gzip_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "x.tsv.gz"
    tsv.write_bytes(gzip.compress(b"Song\tArtist\nA\tB\n"))
    assert readers.detect_format(tsv) == "tsv"
    assert _records(tsv) == [(2, ["A", "B"])]
    jl = tmp_path / "x.jsonl"
    jl.write_bytes(
        b'{"title": "A", "artist": "B", "year": 1999}\n\n{not json}\n[1]\n'
        b'{"title": "C\xff", "artist": "D"}\n'
    )
    got = _records(jl)
    assert got[0] == (1, ["A", "B", 1999])
    # _records types its items as object: a row's values or a Reject.
    assert [(line, r.reason) for line, r in got[1:3]] == [  # type: ignore[attr-defined]
        (3, "invalid_json"),
        (4, "malformed_record"),
    ]
    assert got[3] == (5, ["C\udcff", "D", None])


def test_unusable_inputs_say_why(tmp_path: Path) -> None:
    with pytest.raises(ImportInputError, match="cannot tell the format"):
        prepare(tmp_path / "x.txt")
    with pytest.raises(ImportInputError, match="no such file"):
        prepare(tmp_path / "missing.csv")
    arr = tmp_path / "a.json"
    arr.write_text('[{"title": "A", "artist": "B"}]')
    with pytest.raises(ImportInputError, match="JSON array"):
        prepare(arr)
    notdb = tmp_path / "x.db"
    notdb.write_text("not sqlite")
    with pytest.raises(ImportInputError, match="SQLite"):
        prepare(notdb)
    db = tmp_path / "y.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE songs (title, artist)").connection.commit()
    with pytest.raises(ImportInputError, match=r"no table 'tracks' \(tables: songs\)"):
        prepare(db)
    assert prepare(db, table="songs").mapping.fields == {"title": "title", "artist": "artist"}
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportInputError, match="Parquet"):
        prepare(bad)


def test_rejects_files_in_both_formats(tmp_path: Path) -> None:
    for name in ("r.csv", "r.jsonl"):
        w = RejectsWriter(tmp_path / name)
        w.write(7, Reject("invalid_date", "release_date", "'x,\"y'"))
        w.write(9, Reject("missing_title", "title"))
        w.close()
        assert read_rejects(tmp_path / name) == [
            {"line": 7, "reason": "invalid_date", "field": "release_date", "detail": "'x,\"y'"},
            {"line": 9, "reason": "missing_title", "field": "title", "detail": ""},
        ]
        assert w.by_reason == {"invalid_date": 1, "missing_title": 1}


def test_copy_text_lines_have_every_staging_column_escaped() -> None:
    from analyzer_runtime.corpus_import import copytext
    from analyzer_runtime.corpus_import.loader import STAGE_COLUMNS

    row = _row(title="a\tb\\c", artist="x\ny\rz", lyrics="\\.\nx", release_date="2001")
    assert isinstance(row, Row)
    line = copytext.line(7, row)
    assert line.endswith("\n") and line.count("\n") == 1
    fields = line[:-1].split("\t")
    assert len(fields) == len(STAGE_COLUMNS)
    got = dict(zip(STAGE_COLUMNS, fields, strict=True))
    assert got["ord"] == "7" and got["genius_id"] == "\\N"
    assert got["title"] == "a\\tb\\\\c" and got["artist"] == "x\\ny\\rz"
    assert got["lyrics"] == "\\\\.\\nx" and got["release_date"] == "2001-01-01"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(" \t\n\r\f\vaBÉé\u00a0\x1cZ1"), max_size=14))
def test_name_key_is_the_documented_formula(text: str) -> None:
    import re

    collapsed = re.sub(r"[ \t\n\r\f\v]+", " ", text).strip(" ")
    lowered = "".join(c.lower() if "A" <= c <= "Z" else c for c in collapsed)
    assert name_key(text) == lowered
