"""`rap-analyzer export` (issue 21) on real Postgres: results and tracks written as
Parquet, CSV and JSON lines, then read back with DuckDB (a reader that is not the
writer) and compared value by value with what Postgres holds: the same rows, themes
as lists, scores as floats, NULLs as nulls, typed Parquet columns. Streaming: a chunk
smaller than the table gives one Parquet row group per chunk and the same data."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pyarrow.parquet as pq
import pytest

from analyzer_runtime import export
from analyzer_runtime.export import Format
from tests.integration.clirun import cli

QWEN = "qwen-3-4b-fp8"
N_TRACKS = 50
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Text that CSV and JSON must carry intact: quotes, commas, newlines, non-ASCII.
AWKWARD = 'He said "yo", then left,\nnext line — ünïcödé 🎤'


async def _corpus(pool: asyncpg.Pool) -> dict[str, Any]:
    """50 tracks with every kind of column set or NULL; results of qwen-3-4b-fp8 in two
    versions (the adopted 'legacy' one and a named one), and of other analyzers."""
    async with pool.acquire() as conn:
        ids = []
        for i in range(N_TRACKS):
            ids.append(
                await conn.fetchval(
                    """INSERT INTO tracks (title, artist, lyrics, genius_id, word_count,
                                           release_date, explicit, lyrics_quality_score,
                                           spotify_data, lyrics_embedding)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id""",
                    AWKWARD if i == 3 else f"song {i}",
                    f"artist {i % 4}",
                    None if i % 10 == 0 else f'lyrics of {i}, with "quotes"\nand lines',
                    None if i % 7 == 0 else 10_000_000_000 + i,  # beyond int32: int64
                    i * 3,
                    None if i % 5 == 0 else dt.date(1990 + i % 30, 1 + i % 12, 1 + i % 28),
                    None if i % 3 == 0 else bool(i % 2),
                    None if i % 4 == 0 else 0.25 * (i % 4),
                    None if i % 6 == 0 else json.dumps({"popularity": i, "genres": ["rap"]}),
                    [0.1] * 384 if i % 2 else None,
                )
            )
        for n, tid in enumerate(ids):
            version = "legacy" if n % 2 else "qwen-3-4b-fp8"
            await conn.execute(
                """INSERT INTO analysis_results (track_id, analyzer_type, model_version,
                       sentiment, confidence, themes, complexity_score, analysis_data,
                       processing_time_ms, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10)""",
                tid,
                QWEN,
                version,
                None if n % 9 == 0 else ["positive", "negative", "neutral"][n % 3],
                None if n % 8 == 0 else Decimal(f"0.{(n * 379) % 10000:04d}"),
                # JSON null, an empty list, a list with awkward text, a normal list
                ["null", "[]", json.dumps([AWKWARD, "money"]), json.dumps(["love", "street"])][
                    n % 4
                ],
                None if n % 5 == 0 else Decimal("0.5") + Decimal(n) / 1000,
                json.dumps(
                    {"quality_metrics": {"overall_quality": n / 50}, "legacy": {"x": n}}
                    if n % 2
                    else {"mood": AWKWARD}
                ),
                None if n % 11 == 0 else n * 100,
                EPOCH + dt.timedelta(days=20000 + n, microseconds=n * 123457),
            )
        # Other analyzers' rows: never in a qwen export.
        await conn.executemany(
            """INSERT INTO analysis_results (track_id, analyzer_type, model_version)
               VALUES ($1, $2, 'legacy')""",
            [(tid, a) for tid in ids[:20] for a in ("simplified_features", "gemma-3-27b-it")],
        )
    return {"ids": ids}


# ---- the truth, from Postgres --------------------------------------------------------


async def _truth_results(pool: asyncpg.Pool, version: str | None = None) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT r.*, t.title, t.artist FROM analysis_results r
                 JOIN tracks t ON t.id = r.track_id
                WHERE r.analyzer_type = $1 AND ($2::text IS NULL OR r.model_version = $2)
                ORDER BY r.model_version, r.track_id""",
            QWEN,
            version,
        )
    out = []
    for r in rows:
        themes = None if r["themes"] is None else json.loads(r["themes"])
        out.append(
            {
                "id": r["id"],
                "track_id": r["track_id"],
                "title": r["title"],
                "artist": r["artist"],
                "analyzer_type": r["analyzer_type"],
                "model_version": r["model_version"],
                "sentiment": r["sentiment"],
                "confidence": None if r["confidence"] is None else float(r["confidence"]),
                "themes": themes,
                "complexity_score": (
                    None if r["complexity_score"] is None else float(r["complexity_score"])
                ),
                "analysis_data": json.loads(r["analysis_data"]),
                "processing_time_ms": r["processing_time_ms"],
                "created_at": (r["created_at"] - EPOCH) // dt.timedelta(microseconds=1),
            }
        )
    return out


RESULT_COLUMNS = [
    "id", "track_id", "title", "artist", "analyzer_type", "model_version", "sentiment",
    "confidence", "themes", "complexity_score", "analysis_data", "processing_time_ms",
    "created_at",
]  # fmt: skip


# ---- reading back with DuckDB --------------------------------------------------------


def _read_results(path: Path, fmt: Format) -> list[dict[str, Any]]:
    """The exported results as the truth's Python shapes."""
    con = duckdb.connect()
    p = str(path)
    if fmt is Format.PARQUET:
        cur = con.execute(
            "SELECT * REPLACE (epoch_us(created_at) AS created_at) FROM read_parquet(?)", [p]
        )
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        for d in rows:
            d["analysis_data"] = json.loads(d["analysis_data"])
    elif fmt is Format.CSV:
        # Every column as text: the file's own encoding is what is checked.
        raw = con.execute(
            "SELECT * FROM read_csv(?, header = true, all_varchar = true)", [p]
        ).fetchall()
        cols = [d[0] for d in con.description]
        rows = []
        for r in raw:
            d = dict(zip(cols, r, strict=True))
            for k in ("id", "track_id", "processing_time_ms"):
                d[k] = None if d[k] is None else int(d[k])
            for k in ("confidence", "complexity_score"):
                d[k] = None if d[k] is None else float(d[k])
            d["themes"] = None if d["themes"] is None else json.loads(d["themes"])
            d["analysis_data"] = json.loads(d["analysis_data"])
            ts = dt.datetime.fromisoformat(d["created_at"])
            d["created_at"] = (ts - EPOCH) // dt.timedelta(microseconds=1)
            rows.append(d)
    else:
        raw = con.execute(
            """SELECT * REPLACE (epoch_us(created_at::TIMESTAMPTZ) AS created_at,
                                 analysis_data::VARCHAR AS analysis_data)
                 FROM read_json(?, format = 'newline_delimited', columns = {
                     id: 'BIGINT', track_id: 'BIGINT', title: 'VARCHAR', artist: 'VARCHAR',
                     analyzer_type: 'VARCHAR', model_version: 'VARCHAR',
                     sentiment: 'VARCHAR', confidence: 'DOUBLE', themes: 'VARCHAR[]',
                     complexity_score: 'DOUBLE', analysis_data: 'JSON',
                     processing_time_ms: 'BIGINT', created_at: 'VARCHAR'})""",
            [p],
        ).fetchall()
        cols = [d[0] for d in con.description]
        rows = [dict(zip(cols, r, strict=True)) for r in raw]
        for d in rows:
            d["analysis_data"] = json.loads(d["analysis_data"])
    con.close()
    return rows


@pytest.mark.parametrize("fmt", list(Format), ids=lambda f: f.value)
async def test_results_read_back_equal_postgres(
    pool: asyncpg.Pool, tmp_path: Path, fmt: Format
) -> None:
    await _corpus(pool)
    truth = await _truth_results(pool)
    assert len(truth) == N_TRACKS
    path = tmp_path / f"qwen.{fmt.value}"
    async with pool.acquire() as conn:
        summary = await export.export_results(conn, QWEN, path, fmt)
    assert summary.rows == N_TRACKS and summary.columns == RESULT_COLUMNS
    got = _read_results(path, fmt)
    assert list(got[0]) == RESULT_COLUMNS
    assert got == truth
    # The quirks are really in the data compared above.
    assert any(r["themes"] is None for r in got) and any(r["themes"] == [] for r in got)
    assert any(r["themes"] == [AWKWARD, "money"] for r in got)
    assert any(r["confidence"] is None for r in got)
    assert {r["model_version"] for r in got} == {"legacy", QWEN}
    assert not list(tmp_path.glob(".*partial"))


async def test_parquet_columns_are_typed(pool: asyncpg.Pool, tmp_path: Path) -> None:
    await _corpus(pool)
    results, tracks = tmp_path / "r.parquet", tmp_path / "t.parquet"
    async with pool.acquire() as conn:
        await export.export_results(conn, QWEN, results, Format.PARQUET, version="legacy")
        summary = await export.export_tracks(conn, tracks, Format.PARQUET)
    con = duckdb.connect()
    types = dict(
        (r[0], r[1])
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(results)]).fetchall()
    )
    assert types == {
        "id": "BIGINT", "track_id": "BIGINT", "title": "VARCHAR", "artist": "VARCHAR",
        "analyzer_type": "VARCHAR", "model_version": "VARCHAR", "sentiment": "VARCHAR",
        "confidence": "DOUBLE", "themes": "VARCHAR[]", "complexity_score": "DOUBLE",
        "analysis_data": "VARCHAR", "processing_time_ms": "BIGINT",
        "created_at": "TIMESTAMP WITH TIME ZONE",
    }  # fmt: skip
    assert con.execute(
        "SELECT count(*), count(DISTINCT model_version), min(model_version) FROM read_parquet(?)",
        [str(results)],
    ).fetchone() == (N_TRACKS // 2, 1, "legacy")
    ttypes = dict(
        (r[0], r[1])
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(tracks)]).fetchall()
    )
    assert "lyrics_embedding" not in ttypes and "audio_embedding" not in ttypes
    assert summary.left_out == ["lyrics_embedding", "audio_embedding"]
    assert ttypes["id"] == ttypes["genius_id"] == ttypes["word_count"] == "BIGINT"
    assert ttypes["release_date"] == "DATE" and ttypes["explicit"] == "BOOLEAN"
    assert ttypes["lyrics_quality_score"] == "DOUBLE"
    assert ttypes["scraped_date"] == ttypes["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert ttypes["spotify_data"] == "VARCHAR"
    con.close()


async def _truth_tracks(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, title, artist, lyrics, genius_id, release_date, explicit,
                      lyrics_quality_score::float8 AS q, spotify_data
                 FROM tracks ORDER BY id"""
        )
    return [
        (r["id"], r["title"], r["artist"], r["lyrics"], r["genius_id"], r["release_date"],
         r["explicit"], r["q"], None if r["spotify_data"] is None else json.loads(r["spotify_data"]))
        for r in rows
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", list(Format), ids=lambda f: f.value)
async def test_tracks_read_back_equal_postgres(
    pool: asyncpg.Pool, tmp_path: Path, fmt: Format
) -> None:
    await _corpus(pool)
    truth = await _truth_tracks(pool)
    path = tmp_path / f"tracks.{fmt.value}"
    async with pool.acquire() as conn:
        summary = await export.export_tracks(conn, path, fmt)
    assert summary.rows == N_TRACKS
    con = duckdb.connect()
    cols = "id, title, artist, lyrics, genius_id, release_date, explicit, lyrics_quality_score"
    if fmt is Format.PARQUET:
        src = "read_parquet(?)"
        cols += ", spotify_data"
    elif fmt is Format.CSV:
        src = """read_csv(?, header = true, types = {'genius_id': 'BIGINT',
                 'release_date': 'DATE', 'explicit': 'BOOLEAN', 'lyrics_quality_score': 'DOUBLE',
                 'lyrics': 'VARCHAR', 'title': 'VARCHAR'})"""
        cols += ", spotify_data"
    else:
        src = "read_json(?, format = 'newline_delimited')"
        cols += ", to_json(spotify_data)"
    got = con.execute(f"SELECT {cols} FROM {src} ORDER BY id", [str(path)]).fetchall()
    con.close()
    got = [(*r[:-1], None if r[-1] is None else json.loads(r[-1])) for r in got]
    assert got == truth
    assert any(r[3] is None for r in got) and any(r[1] == AWKWARD for r in got)


async def test_chunks_smaller_than_the_table_give_the_same_file(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Streaming: 7 rows per fetch -> 8 Parquet row groups (written one per chunk, none
    held back), the same rows; CSV and JSONL byte for byte the same."""
    await _corpus(pool)
    async with pool.acquire() as conn:
        for fmt in Format:
            small, big = tmp_path / f"small.{fmt.value}", tmp_path / f"big.{fmt.value}"
            await export.export_results(conn, QWEN, small, fmt, chunk_size=7)
            await export.export_results(conn, QWEN, big, fmt)
            if fmt is Format.PARQUET:
                assert pq.ParquetFile(small).metadata.num_row_groups == 8  # ceil(50 / 7)
                assert pq.ParquetFile(big).metadata.num_row_groups == 1
                assert pq.read_table(small).equals(pq.read_table(big))
            else:
                assert small.read_bytes() == big.read_bytes()


async def test_no_results_or_no_version_is_refused_without_a_file(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await _corpus(pool)
    path = tmp_path / "x.csv"
    async with pool.acquire() as conn:
        with pytest.raises(export.ExportError, match="gemma-3-27b-it, qwen-3-4b-fp8, simplified"):
            await export.export_results(conn, "qwen", path, Format.CSV)
        with pytest.raises(export.ExportError, match="its versions: legacy, qwen-3-4b-fp8"):
            await export.export_results(conn, QWEN, path, Format.CSV, version="v9")
    assert list(tmp_path.iterdir()) == []
    # A file that cannot be written: an export error (exit 2), not a database one.
    folder = tmp_path / "taken.csv"
    folder.mkdir()
    async with pool.acquire() as conn:
        with pytest.raises(export.ExportError, match=r"taken\.csv: Is a directory"):
            await export.export_results(conn, QWEN, folder, Format.CSV)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.csv"]  # no partial left


def test_format_from_the_file_name() -> None:
    assert export.format_for(Path("a.PARQUET"), None) is Format.PARQUET
    assert export.format_for(Path("a.ndjson"), None) is Format.JSONL
    assert export.format_for(Path("a.txt"), "csv") is Format.CSV
    with pytest.raises(export.FormatError, match="cannot tell the format"):
        export.format_for(Path("a.json"), None)
    with pytest.raises(export.FormatError, match="one of parquet, csv, jsonl"):
        export.format_for(Path("a.csv"), "xlsx")


async def test_cli_export_as_users_run_it(pool: asyncpg.Pool, db_url: str, tmp_path: Path) -> None:
    await _corpus(pool)
    path = tmp_path / "legacy.parquet"
    r = cli("export", "results", "--analyzer", QWEN, "--version", "legacy", "--out", str(path),
            db_url=db_url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"exported 25 {QWEN} results (version legacy) to {path} (parquet" in r.stdout
    assert pq.read_metadata(path).num_rows == 25

    r = cli("export", "tracks", "--out", str(tmp_path / "t.out"), "--format", "jsonl", "--json",
            db_url=db_url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["rows"] == N_TRACKS and doc["format"] == "jsonl" and doc["what"] == "tracks"
    assert len((tmp_path / "t.out").read_text(encoding="utf-8").splitlines()) == N_TRACKS

    r = cli("export", "results", "--analyzer", "nope", "--out", str(tmp_path / "n.csv"),
            db_url=db_url)  # fmt: skip
    assert r.returncode == 2
    assert "no results of analyzer 'nope'" in r.stderr and "qwen-3-4b-fp8" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "n.csv").exists()

    r = cli("export", "tracks", "--out", str(tmp_path / "t.xlsx"), db_url=db_url)
    assert r.returncode == 2 and "cannot tell the format" in r.stderr
    r = cli("export", "tracks", "--out", str(tmp_path / "no" / "t.csv"), db_url=db_url)
    assert r.returncode == 2 and "no such folder" in r.stderr
