"""Load the synthetic corpus into `tracks` (idempotent: keyed by genius_id)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import asyncpg

from analyzer_runtime.corpus.synthetic import generate_tracks

COLUMNS = [
    "genius_id",
    "title",
    "artist",
    "album",
    "release_date",
    "url",
    "lyrics",
    "word_count",
    "genre",
    "language",
    "explicit",
]
CHUNK = 5000


async def seed(
    pool: asyncpg.Pool,
    n: int,
    *,
    seed: int = 42,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Insert tracks 0..n-1 of the seeded corpus; returns how many were new.

    COPY into a temp table, then one INSERT … ON CONFLICT per chunk: COPY is the
    fast path, and the conflict clause makes seeding twice a no-op."""
    inserted = 0
    tracks = generate_tracks(n, seed=seed)
    async with pool.acquire() as conn:
        cols = ", ".join(COLUMNS)
        done = 0
        while chunk := list(itertools.islice(tracks, CHUNK)):
            async with conn.transaction():
                # No defaults or constraints: the serial id must not be drawn for staged
                # rows. Per transaction (ON COMMIT DROP): through PgBouncer in
                # transaction pooling the next transaction may be another server
                # connection, which would not have a session's temp table.
                await conn.execute(
                    f"CREATE TEMP TABLE seed_stage ON COMMIT DROP"
                    f" AS SELECT {cols} FROM tracks WITH NO DATA"
                )
                await conn.copy_records_to_table(
                    "seed_stage",
                    records=[tuple(getattr(t, c) for c in COLUMNS) for t in chunk],
                    columns=COLUMNS,
                )
                status = await conn.execute(
                    f"INSERT INTO tracks ({cols}) SELECT {cols} FROM seed_stage"
                    " ORDER BY genius_id ON CONFLICT (genius_id) DO NOTHING"
                )
            inserted += int(status.rsplit(" ", 1)[-1])
            done += len(chunk)
            if on_progress:
                on_progress(done)
    return inserted
