"""The Postgres side of an import: one chunk of checked rows, one transaction.

Like `seed`: COPY into a temp staging table that lives in the chunk's transaction
(ON COMMIT DROP: through PgBouncer in transaction pooling the next transaction may
run on another server connection), then set-based statements into `tracks`. The
natural key is the Genius id; a row without one is matched to the oldest track with
the same (artist, title) key (values.name_key = SQL track_name_key(), migration 0013,
indexed). Concurrent imports take a transaction lock per chunk, so two of them never
both insert the same (artist, title).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from analyzer_runtime.corpus_import.fields import BY_NAME, EXTRAS, IMPORT_KEY, INT4_MAX, INT8_MAX
from analyzer_runtime.corpus_import.values import ROW_COLUMNS

OnConflict = Literal["skip", "update"]
_LOCK_KEY = 0x7261705F696D70  # "rap_imp"

_STAGE = """CREATE TEMP TABLE import_stage (
    ord bigint, genius_id bigint, title text, artist text, lyrics text, url text,
    word_count integer, genre text, release_date date, album text, language text,
    explicit boolean, song_art_url text, popularity_score integer,
    lyrics_quality_score real, scraped_date timestamptz, spotify_data jsonb,
    artist_key text, title_key text
) ON COMMIT DROP"""
STAGE_COLUMNS = ("ord", *ROW_COLUMNS)


@dataclass
class ChunkResult:
    inserted: int = 0
    updated: int = 0
    skipped_existing: int = 0


def track_columns(mapped_fields: Sequence[str]) -> list[str]:
    """The tracks columns an import with these mapped fields writes."""
    cols = [BY_NAME[f].column for f in mapped_fields if BY_NAME[f].column]
    if "lyrics" in mapped_fields:
        cols.append("word_count")
    if any(f in mapped_fields for f in EXTRAS) and "spotify_data" not in cols:
        cols.append("spotify_data")
    return [c for c in cols if c]


async def column_limits(conn: asyncpg.Connection) -> dict[str, int]:
    """Per-field limits the database itself sets: varchar(n) lengths and integer (int4)
    columns, e.g. in a database adopted from the original platform's schema."""
    rows = await conn.fetch(
        """SELECT column_name, data_type, character_maximum_length
             FROM information_schema.columns
            WHERE table_name = 'tracks' AND table_schema = current_schema()"""
    )
    limits: dict[str, int] = {}
    for r in rows:
        field = r["column_name"]
        if field not in BY_NAME:
            continue
        if r["character_maximum_length"] is not None:
            limits[field] = r["character_maximum_length"]
        elif r["data_type"] == "integer" and BY_NAME[field].kind == "int":
            limits[field] = INT4_MAX
        elif r["data_type"] == "bigint" and BY_NAME[field].kind == "int":
            limits[field] = INT8_MAX
    return limits


def _insert_exprs(cols: Sequence[str]) -> list[str]:
    # scraped_date is NOT NULL with a default: a row without one gets now().
    return [f"COALESCE(s.{c}, now())" if c == "scraped_date" else f"s.{c}" for c in cols]


def _update_exprs(cols: Sequence[str]) -> dict[str, str]:
    """New value per column: the file's where it has one (an empty cell erases nothing);
    word_count follows lyrics; spotify_data gets the file's keys merged in (and views or
    features the file has into the "import" object, keeping the others)."""
    out = {}
    for c in cols:
        if c == "genius_id":
            continue
        if c == "word_count":
            out[c] = "CASE WHEN s.lyrics IS NULL THEN t.word_count ELSE s.word_count END"
        elif c == "spotify_data":  # the file's keys win; inside "import" key by key
            out[c] = (
                "CASE WHEN s.spotify_data IS NULL THEN t.spotify_data"
                " ELSE COALESCE(t.spotify_data, '{}'::jsonb) || s.spotify_data"
                f" || CASE WHEN s.spotify_data ? '{IMPORT_KEY}' THEN jsonb_build_object("
                f"'{IMPORT_KEY}', CASE WHEN jsonb_typeof(t.spotify_data -> '{IMPORT_KEY}')"
                f" = 'object' THEN t.spotify_data -> '{IMPORT_KEY}' ELSE '{{}}'::jsonb END"
                f" || (s.spotify_data -> '{IMPORT_KEY}')) ELSE '{{}}'::jsonb END END"
            )
        else:
            out[c] = f"COALESCE(s.{c}, t.{c})"
    return out


class Loader:
    def __init__(self, mapped_fields: Sequence[str], on_conflict: OnConflict) -> None:
        cols = track_columns(mapped_fields)
        col_list = ", ".join(cols)
        exprs = ", ".join(_insert_exprs(cols))
        self.on_conflict = on_conflict
        # Insert what is not there yet. NOT EXISTS first, so a key already in tracks
        # draws no serial id; ON CONFLICT DO NOTHING covers a concurrent writer.
        self._insert_by_genius = (
            f"INSERT INTO tracks ({col_list}) SELECT {exprs} FROM import_stage s"
            " WHERE s.genius_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM tracks t WHERE t.genius_id = s.genius_id)"
            " ORDER BY s.ord ON CONFLICT DO NOTHING"
        )
        self._insert_by_name = (
            f"INSERT INTO tracks ({col_list}) SELECT {exprs} FROM import_stage s"
            " WHERE s.genius_id IS NULL AND NOT EXISTS (SELECT 1 FROM tracks t"
            " WHERE track_name_key(t.artist) = s.artist_key"
            " AND track_name_key(t.title) = s.title_key)"
            " ORDER BY s.ord ON CONFLICT DO NOTHING"
        )
        upd = _update_exprs(cols)
        sets = ", ".join(f"{c} = {e}" for c, e in upd.items())
        changed = (
            f"({', '.join(f't.{c}' for c in upd)}) IS DISTINCT FROM ({', '.join(upd.values())})"
        )
        self._update_by_genius = (
            f"UPDATE tracks t SET {sets} FROM import_stage s"
            f" WHERE s.genius_id IS NOT NULL AND t.genius_id = s.genius_id AND {changed}"
        )
        # The oldest track with the row's (artist, title) key is the one updated.
        self._update_by_name = (
            f"UPDATE tracks t SET {sets} FROM ("
            " SELECT DISTINCT ON (s.ord) s.*, m.id AS track_id FROM import_stage s"
            " JOIN tracks m ON track_name_key(m.artist) = s.artist_key"
            " AND track_name_key(m.title) = s.title_key"
            " WHERE s.genius_id IS NULL ORDER BY s.ord, m.id) s"
            f" WHERE t.id = s.track_id AND {changed}"
        )

    async def load(
        self, conn: asyncpg.Connection, payload: bytes, rows: int, by_genius: int
    ) -> ChunkResult:
        """Stage and merge one chunk, in one transaction: `payload` is `rows` staging
        rows in COPY text format (copytext), `by_genius` of them with a Genius id. The
        rows have distinct keys (the reader drops a file's duplicates)."""
        res = ChunkResult()
        if not rows:
            return res
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            # Default storage on purpose: lyrics are compressed here, once, and INSERT
            # ... SELECT moves the compressed values into tracks as they are.
            await conn.execute(_STAGE)
            await conn.copy_to_table(
                "import_stage", source=_pieces(payload), columns=STAGE_COLUMNS, format="text"
            )
            # A chunk is a few thousand rows, tracks may hold millions: look each key up
            # in the tracks indexes. Left to itself the planner (no statistics on a temp
            # table) hashes or merges against the whole genius_id index every chunk.
            await conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            if self.on_conflict == "update":
                if by_genius:
                    res.updated += _count(await conn.execute(self._update_by_genius))
                if by_genius < rows:
                    res.updated += _count(await conn.execute(self._update_by_name))
            if by_genius:
                res.inserted += _count(await conn.execute(self._insert_by_genius))
            if by_genius < rows:
                res.inserted += _count(await conn.execute(self._insert_by_name))
        res.skipped_existing = rows - res.inserted - res.updated
        return res


async def _pieces(payload: bytes, size: int = 1 << 18) -> AsyncIterator[memoryview]:
    """The payload in 256 KiB pieces: asyncpg copies each into a message and waits for
    the socket, instead of buffering the whole chunk twice more."""
    view = memoryview(payload)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
