"""An artist filter on the embedded Postgres, whose pgvector (0.6) has no iterative
index scans: the version is read from the server, the over-fetch plan is chosen for
a prolific artist, and the answer is the exact one whether the index's candidates
held enough of the artist's tracks or the exact plan had to take over. The iterative
plan (pgvector >= 0.8) cannot run here: its settings are refused, and its query is
checked on its own.

The vectors are made here (a known geometry, so NumPy gives the true answer), not by
the model: what is under test is which rows Postgres returns, not the embedding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import pytest

from analyzer_runtime import search
from analyzer_runtime.ledger.connect import create_pool
from tests.integration.conftest import new_database

MODEL = "test-geometry"
DIM = 384
PROLIFIC = "Prolific"
OTHERS = 1500  # all nearer to axis 0 than any of PROLIFIC's tracks
NEAR_AXIS_1 = 10  # PROLIFIC's tracks nearest to axis 1, well apart from the rest


@dataclass(frozen=True)
class Corpus:
    ids: np.ndarray  # track ids, row i of vectors
    artists: list[str]
    vectors: np.ndarray  # unit rows

    def truth(self, query: np.ndarray, artist: str, limit: int) -> list[int]:
        """The exact nearest tracks of `artist` by cosine distance."""
        mine = np.array([a == artist for a in self.artists])
        distance = 1.0 - self.vectors[mine] @ (query / np.linalg.norm(query))
        return [int(i) for i in self.ids[mine][np.argsort(distance, kind="stable")[:limit]]]


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def geometry(seed: int = 7) -> tuple[list[str], np.ndarray]:
    """OTHERS tracks around axis 0; EXACT_ARTIST_MAX + 1 of PROLIFIC around axis 1,
    NEAR_AXIS_1 of them much nearer to it than the rest."""
    rng = np.random.default_rng(seed)
    n_prolific = search.EXACT_ARTIST_MAX + 1
    spread = np.full(n_prolific, 0.6, dtype=np.float32)
    spread[:NEAR_AXIS_1] = np.linspace(0.01, 0.05, NEAR_AXIS_1)
    prolific = axis(1) + spread[:, None] * rng.standard_normal((n_prolific, DIM)) / np.sqrt(DIM)
    others = axis(0) + 0.3 * rng.standard_normal((OTHERS, DIM)) / np.sqrt(DIM)
    vectors = np.vstack([prolific, others]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [PROLIFIC] * n_prolific + ["Others"] * OTHERS, vectors


async def build(conn: asyncpg.Connection) -> Corpus:
    artists, vectors = geometry()
    ids = await conn.fetch(
        """INSERT INTO tracks (title, artist, lyrics, genius_id, word_count)
           SELECT 'song ' || i, a, 'line ' || i, i, 2
             FROM unnest($1::text[]) WITH ORDINALITY AS u(a, i)
           RETURNING id""",
        artists,
    )
    track_ids = np.array([r["id"] for r in ids])
    await conn.copy_records_to_table(
        "track_embeddings",
        records=[(int(t), MODEL, v) for t, v in zip(track_ids, vectors, strict=True)],
        columns=["track_id", "model", "embedding"],
    )
    await conn.execute("ANALYZE tracks; ANALYZE track_embeddings")
    return Corpus(track_ids, artists, vectors)


@pytest.fixture(scope="module")
def corpus_db(pg_server: Any) -> tuple[str, Corpus]:
    """One database with the corpus for the module (3,500 vectors into an HNSW index
    take a while on a loaded machine); the tests only read it."""
    url = new_database(pg_server, "filters_")

    async def create() -> tuple[str, Corpus]:
        pool = await create_pool(url, max_size=1)
        try:
            async with pool.acquire() as conn:
                return url, await build(conn)
        finally:
            await pool.close()

    return asyncio.run(create())


@pytest.fixture
async def pool(corpus_db: tuple[str, Corpus]) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(corpus_db[0], max_size=1)
    yield p
    await p.close()


@pytest.fixture
def corpus(corpus_db: tuple[str, Corpus]) -> Corpus:
    return corpus_db[1]


async def test_the_embedded_server_has_no_iterative_scans(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        found = await search.PgvectorOnce().of(conn)
    assert found.version[:2] == (0, 6), f"pgserver's pgvector is now {found}: see search.py"
    assert not found.iterative_scan


async def test_a_prolific_artist_far_from_the_query_falls_back_to_exact(
    pool: asyncpg.Pool, corpus: Corpus
) -> None:
    query = axis(0)  # the 1,000 candidates nearest to it are all OTHERS' tracks
    async with pool.acquire() as conn:
        result = await search.nearest(conn, query, MODEL, limit=10, artist=PROLIFIC)
    assert result.plan == "overfetch+exact"
    assert [h.track_id for h in result.hits] == corpus.truth(query, PROLIFIC, 10)
    assert {h.artist for h in result.hits} == {PROLIFIC}


async def test_a_prolific_artist_near_the_query_is_answered_by_the_over_fetch(
    pool: asyncpg.Pool, corpus: Corpus
) -> None:
    query = axis(1)
    async with pool.acquire() as conn:
        pgvector = await search.read_pgvector(conn)
        result = await search.nearest(
            conn, query, MODEL, limit=NEAR_AXIS_1, artist=PROLIFIC, pgvector=pgvector
        )
        # The same track left out, as `similar` does: the next one comes in.
        first = corpus.truth(query, PROLIFIC, 1)[0]
        without = await search.nearest(
            conn, query, MODEL, limit=NEAR_AXIS_1, artist=PROLIFIC, exclude=first
        )
    assert (result.plan, result.ef_search) == ("overfetch", search.MAX_CANDIDATES)
    assert [h.track_id for h in result.hits] == corpus.truth(query, PROLIFIC, NEAR_AXIS_1)
    truth = corpus.truth(query, PROLIFIC, NEAR_AXIS_1 + 1)
    assert [h.track_id for h in without.hits] == truth[1:]


async def test_iterative_settings_are_refused_by_pgvector_06(
    pool: asyncpg.Pool, corpus: Corpus
) -> None:
    # Why the version is read: before 0.8 the hnsw. prefix is reserved and the
    # iterative plan's SET LOCAL an error, so it must never be sent there.
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match=r"hnsw\.iterative_scan"):
            await search.nearest(conn, axis(1), MODEL, limit=10, artist=PROLIFIC, plan="iterative")


async def test_the_iterative_query_answers_with_the_artists_tracks(
    pool: asyncpg.Pool, corpus: Corpus
) -> None:
    # The query the iterative plan sends, checked here without the iterative setting
    # (0.6 refuses it): its parameters in their places, only the artist's tracks,
    # nearest first, the left-out track left out. Near axis 1 the first ef_search
    # candidates are all the artist's, so even a plain index scan answers in full.
    query = axis(1)
    truth = corpus.truth(query, PROLIFIC, NEAR_AXIS_1 + 1)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {search.DEFAULT_EF_SEARCH}")
        rows = await conn.fetch(search.ITERATIVE_SQL, query, MODEL, PROLIFIC, truth[0], NEAR_AXIS_1)
    assert [r["id"] for r in rows] == truth[1:]
    assert {r["artist"] for r in rows} == {PROLIFIC}
    distances = [r["distance"] for r in rows]
    assert distances == sorted(distances)
