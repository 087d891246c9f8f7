"""`rap-analyzer import` as a user runs it (the real CLI, a real Postgres): a 100,000-row
CSV with every kind of bad row, re-imports, --on-conflict update, and the other formats
(JSONL, Parquet, the original platform's SQLite file)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from analyzer_runtime.analyzers.text import tokenize
from analyzer_runtime.corpus_import.rejects import read_rejects
from analyzer_runtime.corpus_import.values import name_key
from tests.integration.clirun import cli
from tests.integration.conftest import insert_tracks

KAGGLE_HEADER = ["id", "title", "artist", "year", "lyrics", "tag", "views", "features"]
GENIUS_BASE = 5_000_000
BAD_KINDS = (
    "missing_title",
    "missing_artist",
    "nul_character",
    "invalid_utf8",
    "field_too_long",
    "invalid_date",
)


async def _import(*args: str, db_url: str) -> tuple[int, dict[str, Any], str]:
    res = await asyncio.to_thread(cli, "import", *args, "--json", db_url=db_url)
    summary = json.loads(res.stdout) if res.returncode == 0 else {}
    return res.returncode, summary, res.stderr


@dataclass
class Corpus:
    good: dict[int, dict[str, Any]] = field(default_factory=dict)  # row index -> values
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)  # line -> (reason, field)
    duplicates: int = 0


def _date_for(i: int) -> tuple[str, date | None]:
    return [
        (str(2000 + i % 20), date(2000 + i % 20, 1, 1)),
        (f"2016-{1 + i % 12:02d}-17", date(2016, 1 + i % 12, 17)),
        ("June 3, 2017", date(2017, 6, 3)),
        ("", None),
    ][i % 4]


def write_corpus(path: Path, n: int) -> Corpus:
    """A Kaggle-Genius-shaped CSV: multi-line lyrics, one row in ten without a Genius id
    (keyed by artist and title), one row in a hundred bad (every kind in turn), and
    duplicates of earlier rows by Genius id and by a re-spelled (artist, title)."""
    corpus = Corpus()
    buf = io.StringIO()  # one record at a time: its text says how many lines it takes
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(KAGGLE_HEADER)
    parts = [buf.getvalue()]
    line = 2
    for i in range(n):
        gid: int | None = None if i % 10 == 3 else GENIUS_BASE + i
        title, artist = f"Song {i}", f"Artist {i % 997}"
        lyrics = f"Verse {i} line one\nsecond line, y'all\n[Chorus]\nhook" if i % 3 else f"one {i}"
        year, when = _date_for(i)
        feats = [f"Feat {i}", "Other"] if i % 7 == 0 else None
        features = f'{{"Feat {i}","Other"}}' if feats else "{}"  # the dataset's spelling
        values = {
            "title": title,
            "artist": artist,
            "lyrics": lyrics,
            "date": when,
            "genius_id": gid,
            "views": i * 3,
            "features": feats,
        }
        bad: tuple[str, str] | None = None
        if i % 100 == 50:
            kind = BAD_KINDS[(i // 100) % len(BAD_KINDS)]
            if kind == "missing_title":
                title, bad = "", (kind, "title")
            elif kind == "missing_artist":
                artist, bad = "   ", (kind, "artist")
            elif kind == "nul_character":
                lyrics, bad = "bad\x00lyrics", (kind, "lyrics")
            elif kind == "invalid_utf8":  # written as the raw bytes ff fe (surrogateescape)
                title, bad = "Song \udcff\udcfe", (kind, "title")
            elif kind == "field_too_long" and (i // 100) % 5 == 4:
                lyrics, bad = "la " * 66_667, (kind, "lyrics")  # 200,001 characters
            elif kind == "field_too_long":
                title, bad = "x" * 1001, (kind, "title")
            else:
                year, bad = ("2019-13-45" if i % 200 == 50 else "someday"), (kind, "release_date")
        elif i % 1000 == 999:  # the Genius id of row i - 500, another title
            gid = GENIUS_BASE + i - 500
            corpus.duplicates += 1
            values = {}
        elif i % 1000 == 993:  # no id; row i - 10's artist and title, other case and spacing
            title, artist = f"  SONG   {i - 10}", f"artist  {(i - 10) % 997} "
            corpus.duplicates += 1
            values = {}
        buf.seek(0)
        buf.truncate()
        w.writerow(
            ["" if gid is None else gid, title, artist, year, lyrics, "rap", i * 3, features]
        )
        if bad:
            corpus.bad[line] = bad
        elif values:
            corpus.good[i] = values
        parts.append(buf.getvalue())
        line += parts[-1].count("\n")
    path.write_bytes("".join(parts).encode("utf-8", "surrogateescape"))
    return corpus


async def test_a_100k_row_csv_with_bad_rows(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    path = tmp_path / "genius-lyrics.csv"
    corpus = write_corpus(path, 100_000)
    assert len(corpus.bad) == 1000 and corpus.duplicates == 200

    rc, s, stderr = await _import(str(path), db_url=db_url)
    assert rc == 0, stderr
    assert s["mapping"] == {
        "title": "title", "artist": "artist", "lyrics": "lyrics", "release_date": "year",
        "genius_id": "id", "genre": "tag", "views": "views", "features": "features",
    }  # fmt: skip
    assert (s["read"], s["inserted"], s["updated"], s["skipped_existing"]) == (
        100_000, 98_800, 0, 0
    )  # fmt: skip
    assert (s["duplicates_in_file"], s["rejected"]) == (200, 1000)
    assert s["rejected_by_reason"] == {k: 1000 // 6 + (k in BAD_KINDS[:4]) for k in BAD_KINDS}
    assert s["rejects_file"] == str(tmp_path / "genius-lyrics.csv.rejects.csv")
    assert s["rows_per_s"] > 0 and s["seconds"] > 0

    rejects = read_rejects(Path(s["rejects_file"]))
    assert {r["line"]: (r["reason"], r["field"]) for r in rejects} == corpus.bad
    assert len(rejects) == 1000
    invalid = next(r for r in rejects if r["reason"] == "invalid_utf8")
    assert "\\xff\\xfe" in invalid["detail"]

    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 98_800
        assert await conn.fetchval("SELECT count(*) FROM tracks WHERE genius_id IS NULL") == 9_900
        # a sample: genius-keyed and name-keyed rows, every date form, features
        for i in (0, 1, 2, 3, 7, 13, 499, 983, 12_345, 99_998):
            want = corpus.good[i]
            row = await conn.fetchrow(
                """SELECT genius_id, title, artist, lyrics, release_date, word_count, genre,
                          spotify_data FROM tracks WHERE title = $1""",
                want["title"],
            )
            assert row is not None, i
            assert (row["genius_id"], row["artist"], row["lyrics"], row["release_date"]) == (
                want["genius_id"], want["artist"], want["lyrics"], want["date"]
            )  # fmt: skip
            assert row["word_count"] == len(tokenize(want["lyrics"])) and row["genre"] == "rap"
            extra = {"views": want["views"]}
            if want["features"]:
                extra["features"] = want["features"]
            assert json.loads(row["spotify_data"]) == {"import": extra}
        # duplicates: the first occurrence is the one imported
        assert await conn.fetchval(
            "SELECT title FROM tracks WHERE genius_id = $1", GENIUS_BASE + 499
        ) == "Song 499"  # fmt: skip
        assert await conn.fetchval("SELECT count(*) FROM tracks WHERE title = 'Song 999'") == 0
        assert await conn.fetchval(
            "SELECT count(*) FROM tracks WHERE track_name_key(title) = 'song 983'"
        ) == 1  # fmt: skip
        assert await conn.fetchval("SELECT count(*) FROM tracks WHERE title LIKE 'x%'") == 0

    # Again: nothing new, the same rejects and duplicates.
    rc, again, stderr = await _import(str(path), db_url=db_url)
    assert rc == 0, stderr
    assert (again["inserted"], again["updated"], again["skipped_existing"]) == (0, 0, 98_800)
    assert (again["duplicates_in_file"], again["rejected"]) == (200, 1000)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 98_800


async def test_on_conflict_update_overwrites_what_changed(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    first = tmp_path / "v1.csv"
    first.write_text(
        "id,title,artist,year,lyrics,album,views,features\n"
        '10,Alpha,Ann,2001,"old words here",Old Album,5,"{""F1"",""F2""}"\n'
        "11,Beta,Bob,2002,beta words,B,6,{}\n"
        ",Gamma,Cy,2003,gamma words,C,7,{}\n"
        ",Delta,Di,2004,delta words,D,8,{}\n"
    )
    rc, s, stderr = await _import(str(first), db_url=db_url)
    assert rc == 0 and s["inserted"] == 4, stderr

    second = tmp_path / "v2.csv"
    second.write_text(
        "id,title,artist,year,lyrics,album,views,features\n"
        "10,Alpha,Ann,2011-02-03,new words now here,,50,{}\n"  # changed; empty album, features
        "11,Beta,Bob,2002,beta words,B,6,{}\n"  # the same as before
        ",GAMMA, cy ,2003,gamma words changed,C,7,{}\n"  # by (artist, title), re-spelled
        ",Delta,Di,2004,delta words,D,8,{}\n"  # the same
        ",Epsilon,Ed,2005,new track,E,9,{}\n"  # new
    )
    rc, skip, stderr = await _import(str(second), db_url=db_url)
    assert rc == 0, stderr
    assert (skip["inserted"], skip["updated"], skip["skipped_existing"]) == (1, 0, 4)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT lyrics FROM tracks WHERE genius_id = 10") == (
            "old words here"
        )  # fmt: skip

    rc, upd, stderr = await _import(str(second), "--on-conflict", "update", db_url=db_url)
    assert rc == 0, stderr
    assert (upd["inserted"], upd["updated"], upd["skipped_existing"]) == (0, 2, 3)
    async with pool.acquire() as conn:
        alpha = await conn.fetchrow("SELECT * FROM tracks WHERE genius_id = 10")
        assert alpha["lyrics"] == "new words now here" and alpha["word_count"] == 4
        assert alpha["release_date"] == date(2011, 2, 3)
        assert alpha["album"] == "Old Album"  # an empty cell erases nothing
        assert json.loads(alpha["spotify_data"]) == {
            "import": {"views": 50, "features": ["F1", "F2"]}
        }
        gamma = await conn.fetch("SELECT title, artist, lyrics FROM tracks WHERE album = 'C'")
        assert [tuple(r) for r in gamma] == [("GAMMA", "cy", "gamma words changed")]
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 5

    rc, twice, _ = await _import(str(second), "--on-conflict", "update", db_url=db_url)
    assert rc == 0 and (twice["updated"], twice["skipped_existing"]) == (0, 5)


async def test_rows_without_a_genius_id_match_existing_tracks_by_artist_and_title(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    await insert_tracks(pool, [("Kendrick Lamar", "HUMBLE.", "be humble"), ("Eminem", "Stan", "x")])
    path = tmp_path / "songs.csv"
    path.write_text(
        "Song,Artist,Lyric\n"
        "humble.,  kendrick   lamar ,sit down\n"  # the existing track, spelled otherwise
        "Stan,EMINEM,y\n"
        "Stan (Live),Eminem,z\n"  # another title: a new track
    )
    rc, s, stderr = await _import(str(path), db_url=db_url)
    assert rc == 0, stderr
    assert (s["inserted"], s["skipped_existing"]) == (1, 2)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 3
        # the Python key and the SQL key agree, tabs, newlines and non-ASCII included
        for text in ["  A\tB\n\r\fC\vD  ", "ÉCOLE école", "x\u00a0y", "MiXeD CaSe 123", ""]:
            assert await conn.fetchval("SELECT track_name_key($1)", text) == name_key(text)


async def test_jsonl_parquet_and_the_original_platforms_sqlite_file(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jl = tmp_path / "songs.jsonl"
    jl.write_bytes(
        b'{"title": "J1", "artist": "JA", "lyrics": "one two", "year": 2010, "id": 901,'
        b' "features": ["X", "Y"], "views": 12}\n'
        b"{broken\n"
        b'{"title": "J2", "artist": "JA", "lyrics": "three", "year": "2011-04-05", "id": 902}\n'
        b'{"title": "J3\xff", "artist": "JA"}\n'
    )
    rc, s, stderr = await _import(str(jl), "--rejects", str(tmp_path / "jl.jsonl"), db_url=db_url)
    assert rc == 0, stderr
    assert (s["read"], s["inserted"], s["rejected"]) == (4, 2, 2)
    assert [(r["line"], r["reason"]) for r in read_rejects(tmp_path / "jl.jsonl")] == [
        (2, "invalid_json"),
        (4, "invalid_utf8"),
    ]

    pq_path = tmp_path / "spotify.parquet"
    table = pa.table(
        {
            "track_name": ["P1", "P2", None, "P4"],
            "artist_name": pa.array(["PA", "PA", "PA", "PB"]).dictionary_encode(),
            "release_date": pa.array([date(2020, 1, 2), None, date(2020, 1, 3), None]),
            "lyrics": ["p one", "p two", "p three", None],
            "genius_id": pa.array([801, None, 803, 804], pa.int64()),
            "explicit": [True, False, None, True],
        }
    )
    pq.write_table(table, pq_path, row_group_size=2)
    rc, s, stderr = await _import(str(pq_path), db_url=db_url)
    assert rc == 0, stderr
    assert (s["read"], s["inserted"], s["rejected"]) == (4, 3, 1)
    assert s["rejected_by_reason"] == {"missing_title": 1}
    assert [r["line"] for r in read_rejects(Path(s["rejects_file"]))] == [3]  # the row number

    db = tmp_path / "rap_lyrics.db"
    lite = sqlite3.connect(db)
    lite.execute(
        """CREATE TABLE tracks (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
           artist TEXT NOT NULL, lyrics TEXT, url TEXT, genius_id INTEGER UNIQUE,
           scraped_date TIMESTAMP DEFAULT CURRENT_TIMESTAMP, word_count INTEGER, genre TEXT,
           release_date TEXT, album TEXT, language TEXT, explicit BOOLEAN, song_art_url TEXT,
           popularity_score INTEGER, lyrics_quality_score REAL,
           created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, spotify_data TEXT)"""
    )
    rows = [
        ("S1", "Legacy", "first song words", "https://genius.com/s1", 701, "2024-03-04 05:06:07",
         99, "rap", "2019-05-06", "LP", "en", 1, "https://img/1", 70, 0.8,
         '{"track_id": "sp1", "popularity": 70}'),
        ("S2", "Legacy", "second", None, 702, "2024-03-04 05:06:07", 1, None, None, None, "en",
         0, None, None, None, None),
        ("S3", "Legacy", None, None, 703, "2024-03-04 05:06:07", None, None, "not a date", None,
         None, None, None, None, None, None),
    ]  # fmt: skip
    lite.executemany(
        """INSERT INTO tracks (title, artist, lyrics, url, genius_id, scraped_date, word_count,
           genre, release_date, album, language, explicit, song_art_url, popularity_score,
           lyrics_quality_score, spotify_data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        rows,
    )
    # invalid UTF-8 stored as TEXT, as a scraper writing bytes can leave it
    lite.execute(
        "INSERT INTO tracks (title, artist, lyrics, genius_id) VALUES"
        " ('S4', 'Legacy', CAST(X'6C61FF' AS TEXT), 704)"
    )
    lite.commit()
    lite.close()
    rc, s, stderr = await _import(str(db), db_url=db_url)
    assert rc == 0, stderr
    assert "id" in s["ignored_columns"] and s["mapping"]["genius_id"] == "genius_id"
    assert (s["read"], s["inserted"], s["rejected"]) == (4, 2, 2)
    assert {(r["line"], r["reason"]) for r in read_rejects(Path(s["rejects_file"]))} == {
        (3, "invalid_date"),
        (4, "invalid_utf8"),
    }
    async with pool.acquire() as conn:
        s1 = await conn.fetchrow("SELECT * FROM tracks WHERE genius_id = 701")
        assert (s1["title"], s1["url"], s1["album"], s1["genre"], s1["language"]) == (
            "S1", "https://genius.com/s1", "LP", "rap", "en"
        )  # fmt: skip
        assert s1["explicit"] is True and s1["popularity_score"] == 70
        assert s1["release_date"] == date(2019, 5, 6) and s1["word_count"] == 3  # recounted
        assert s1["scraped_date"].isoformat() == "2024-03-04T05:06:07+00:00"
        assert json.loads(s1["spotify_data"]) == {"track_id": "sp1", "popularity": 70}
        assert await conn.fetchval("SELECT explicit FROM tracks WHERE genius_id = 702") is False
        p1 = await conn.fetchrow("SELECT * FROM tracks WHERE genius_id = 801")
        assert (p1["artist"], p1["release_date"], p1["explicit"]) == ("PA", date(2020, 1, 2), True)
        j1 = await conn.fetchrow("SELECT * FROM tracks WHERE genius_id = 901")
        assert j1["release_date"] == date(2010, 1, 1)
        assert json.loads(j1["spotify_data"]) == {"import": {"views": 12, "features": ["X", "Y"]}}
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 7


async def test_a_file_unreadable_part_way_keeps_the_chunks_before(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    n = 5000
    text = "title,artist,id,lyrics\n" + "".join(
        f"T{i},A,{1000 + i},{(i * 2654435761) % 2**32:x}\n" for i in range(n)
    )
    whole = gzip.compress(text.encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    res = await asyncio.to_thread(cli, "import", str(cut), "--chunk-size", "100", db_url=db_url)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "unreadable at line" in res.stderr and "importing again skips them" in res.stderr
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM tracks")
    assert 0 < before < n
    full = tmp_path / "full.csv.gz"
    full.write_bytes(whole)
    rc, s, stderr = await _import(str(full), db_url=db_url)
    assert rc == 0, stderr
    assert (s["inserted"], s["skipped_existing"]) == (n - before, before)


async def test_refusals_exit_2_and_an_unreachable_database_exits_3(
    tmp_path: Path, db_url: str
) -> None:
    ok = tmp_path / "ok.csv"
    ok.write_text("title,artist\nT,A\n")
    other = tmp_path / "songs.txt"
    other.write_text("title,artist\nT,A\n")
    cases = [
        ((str(other),), "cannot tell the format"),
        ((str(tmp_path / "none.csv"),), "no such file"),
        ((str(ok), "--map", "title=lyric"), "unknown field 'lyric'"),
        ((str(ok), "--map", "nope=lyrics"), "no column 'nope'"),
        ((str(ok), "--map", "title=skip"), "no column for title"),
        ((str(ok), "--format", "xlsx"), "unknown format 'xlsx'"),
        ((str(ok), "--on-conflict", "merge"), "use skip or update"),
    ]
    for args, message in cases:
        res = await asyncio.to_thread(cli, "import", *args, db_url=db_url)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    # a TSV read as CSV by --format, and the plain-text summary
    res = await asyncio.to_thread(cli, "import", str(other), "--format", "csv", db_url=db_url)
    assert res.returncode == 0, res.stderr
    assert "1 inserted" in res.stdout and "columns: title <- 'title'" in res.stderr

    res = await asyncio.to_thread(
        cli, "import", str(ok), db_url="postgresql://nobody@127.0.0.1:1/nothing"
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("on_conflict", ["skip", "update"])
async def test_duplicates_in_one_chunk_and_across_chunks_count_the_same(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool, on_conflict: str
) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "title,artist,id,lyrics\n"
        + "".join(f"T{i % 7},A,{100 + i % 7},v{i}\n" for i in range(30))
        + "".join(f"N{i % 5},B,,w{i}\n" for i in range(20))
    )
    for chunk in ("1000", "3"):
        rc, s, stderr = await _import(
            str(path), "--chunk-size", chunk, "--on-conflict", on_conflict, db_url=db_url
        )
        assert rc == 0, stderr
        assert s["duplicates_in_file"] == 38
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM tracks") == 12
            # the first occurrence's values, in both modes
            assert await conn.fetchval("SELECT lyrics FROM tracks WHERE genius_id = 103") == "v3"
            assert await conn.fetchval("SELECT lyrics FROM tracks WHERE title = 'N2'") == "w2"
            await conn.execute("TRUNCATE tracks CASCADE")


async def test_awkward_text_arrives_as_it_was(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    """Tabs, backslashes, CR, a line that is only backslash-dot (COPY's end marker),
    quotes, emoji and other scripts survive the COPY text the reader sends."""
    rows = [
        ("Tab\tin title", "Back\\slash", "line one\r\nline two\n\\.\nlast \\N line"),
        ('Quote "this"', "Ärtist 🔥", "日本語の歌詞\n\n  indented"),
    ]
    path = tmp_path / "awkward.jsonl"
    path.write_text(
        "".join(json.dumps({"title": t, "artist": a, "lyrics": ly}) + "\n" for t, a, ly in rows)
    )
    rc, s, stderr = await _import(str(path), db_url=db_url)
    assert rc == 0 and s["inserted"] == 2, stderr
    async with pool.acquire() as conn:
        got = await conn.fetch("SELECT title, artist, lyrics, word_count FROM tracks ORDER BY id")
    assert [tuple(r)[:3] for r in got] == [(t.strip(), a, ly.strip()) for t, a, ly in rows]
    assert [r["word_count"] for r in got] == [len(tokenize(ly)) for _, _, ly in rows]


async def test_a_database_error_mid_import_stops_the_reader_too(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    """A chunk that fails in Postgres ends the import (exit 1, the error on one line);
    the chunks before stay, and the reader process does not outlive the command."""
    import uuid

    import psutil

    async with pool.acquire() as conn:
        await conn.execute(
            """CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'no boom allowed'; END $$;
               CREATE TRIGGER boom BEFORE INSERT ON tracks FOR EACH ROW
               WHEN (NEW.title = 'boom') EXECUTE FUNCTION boom()"""
        )
    path = tmp_path / "boom.csv"
    titles = [f"T{i}" for i in range(25)] + ["boom"] + [f"U{i}" for i in range(2000)]
    path.write_text("title,artist\n" + "".join(f"{t},A\n" for t in titles))
    mark = uuid.uuid4().hex
    res = await asyncio.to_thread(
        cli, "import", str(path), "--chunk-size", "10", db_url=db_url, RAP_TEST_MARK=mark
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no boom allowed" in res.stderr and "Traceback" not in res.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 20  # two chunks of 10

    def ours(p: psutil.Process) -> bool:
        try:
            return p.environ().get("RAP_TEST_MARK") == mark
        except (psutil.Error, OSError):
            return False

    assert [p.pid for p in psutil.process_iter() if ours(p)] == []
