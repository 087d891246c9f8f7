"""Semantic search over `track_embeddings`: nearest tracks to a query text or to a track.

Pure pieces (validation, the SQL, the choice of plan, the first lyric line) are apart
from the async functions that run them, so they are unit-tested without a database.

How an artist filter combines with the HNSW index. The pgvector the embedded server
ships (0.6) has no iterative index scans (`hnsw.iterative_scan`, 0.8+): an index scan
returns at most `hnsw.ef_search` candidates and a WHERE clause filters those, so a
filter can leave fewer than `limit` rows. Hence two plans:

- `exact`: the artist has few tracks (<= EXACT_ARTIST_MAX): their vectors are read
  through the artist index and every distance computed; exact and cheap.
- `overfetch`: a prolific artist: the index returns MAX_CANDIDATES candidates
  (ef_search raised to match), the artist filter keeps its own; when fewer than
  `limit` survive, the exact plan runs instead, so the answer is never short.

Without a filter the index answers with ef_search = max(DEFAULT_EF_SEARCH, limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import asyncpg

INT32_MAX = 2**31 - 1
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100
# Measured at 57,718 tracks (bench/search_bench.py, bench/RESULTS.md "Issue 13"):
# bench/RESULTS.md at 57,718 tracks: ef_search 64 gives recall@10 0.985 vs an exact
# scan at p95 5.6 ms (the goals: >= 0.95 and < 10 ms); 100: 0.993 but p95 10.4 ms.
DEFAULT_EF_SEARCH = 64
# The exact plan costs ~0.04 ms per track of the artist (121 tracks: p50 7 ms; 1,617:
# 68 ms), the over-fetch ~80 ms whatever the artist (ef_search 1000): they cross near
# 2,000 tracks. An artist that big is also >= 1% of a corpus this size, so 1,000
# candidates hold ~10+ of its tracks and the over-fetch rarely falls back.
EXACT_ARTIST_MAX = 2000
# pgvector caps hnsw.ef_search at 1000, and the index returns at most ef_search rows.
MAX_CANDIDATES = 1000

Plan = Literal["index", "exact", "overfetch", "overfetch+exact"]

NO_EMBEDDINGS_HINT = (
    "embed the corpus first: `rap-analyzer run examples/embedding-run.yaml`"
    " (or `kubectl apply -f examples/embedding-run.yaml`)"
)


class SearchError(Exception):
    """A search that cannot be answered; the message says why and what to do."""


class InvalidQuery(SearchError, ValueError):
    """Bad input: an empty or too long query, a limit or id out of range."""


class NoEmbeddings(SearchError):
    """No track has a vector of this model yet."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no track has an embedding of model {model} yet; {NO_EMBEDDINGS_HINT}")


class UnknownTrack(SearchError, LookupError):
    def __init__(self, track_id: int) -> None:
        super().__init__(f"no track with id {track_id}")
        self.track_id = track_id


class TrackNotEmbedded(SearchError, LookupError):
    def __init__(self, track_id: int, model: str) -> None:
        super().__init__(
            f"track {track_id} has no embedding of model {model} yet; {NO_EMBEDDINGS_HINT}"
        )
        self.track_id = track_id


@dataclass(frozen=True, slots=True)
class Hit:
    track_id: int
    artist: str
    title: str
    distance: float
    first_line: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    plan: Plan
    ef_search: int | None  # None: the exact plan used no index


# -- pure helpers -----------------------------------------------------------------


def check_query(text: str) -> str:
    """The query, stripped; refused when empty or longer than MAX_QUERY_CHARS."""
    q = text.strip()
    if not q:
        raise InvalidQuery("the query is empty: give some words to search for")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"the query is {len(q)} characters long; at most {MAX_QUERY_CHARS}")
    if "\x00" in q:
        raise InvalidQuery("the query contains a NUL character")
    return q


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def check_track_id(track_id: int) -> int:
    if not 1 <= track_id <= INT32_MAX:
        raise InvalidQuery(f"a track id is a positive 32-bit integer, got {track_id}")
    return track_id


def first_line(lyrics: str | None) -> str:
    """The first sung line: section headers ("[Verse 1]") and blank lines skipped."""
    for line in (lyrics or "").splitlines():
        s = line.strip()
        if s and not (s.startswith("[") and s.endswith("]")):
            return s[:200]
    return ""


def choose_plan(artist_tracks: int | None, limit: int) -> tuple[Plan, int | None]:
    """The plan and its ef_search for a search with an artist filter matching
    `artist_tracks` tracks (None: no filter)."""
    if artist_tracks is None:
        return "index", max(DEFAULT_EF_SEARCH, limit)
    if artist_tracks <= EXACT_ARTIST_MAX:
        return "exact", None
    return "overfetch", MAX_CANDIDATES


# The candidates come from the index in a subquery (its ORDER BY ... LIMIT is what an
# HNSW index scan answers); tracks are joined and filtered outside it. $1 the vector,
# $2 the model, $3 the number of candidates, $4 the artist (NULL: any), $5 a track to
# leave out (NULL: none), $6 the limit.
INDEX_SQL = """
SELECT t.id, t.artist, t.title, c.distance, left(t.lyrics, 2000) AS head
  FROM (SELECT track_id, embedding <=> $1 AS distance
          FROM track_embeddings
         WHERE model = $2
         ORDER BY embedding <=> $1
         LIMIT $3) c
  JOIN tracks t ON t.id = c.track_id
 WHERE ($4::text IS NULL OR t.artist = $4) AND ($5::int IS NULL OR t.id <> $5)
 ORDER BY c.distance
 LIMIT $6"""

# Every distance of one artist's tracks, found through tracks_artist_idx. MATERIALIZED
# keeps the planner from turning the ORDER BY into an HNSW scan that the filter would
# then starve. $1 vector, $2 model, $3 artist, $4 track to leave out, $5 limit.
EXACT_ARTIST_SQL = """
WITH c AS MATERIALIZED (
    SELECT e.track_id, e.embedding <=> $1 AS distance
      FROM tracks t
      JOIN track_embeddings e ON e.track_id = t.id AND e.model = $2
     WHERE t.artist = $3 AND ($4::int IS NULL OR t.id <> $4))
SELECT t.id, t.artist, t.title, c.distance, left(t.lyrics, 2000) AS head
  FROM c JOIN tracks t ON t.id = c.track_id
 ORDER BY c.distance, t.id
 LIMIT $5"""

# An exact scan of every vector (the benchmark's ground truth): the caller turns index
# scans off. $1 vector, $2 model, $3 track to leave out, $4 limit.
EXACT_ALL_SQL = """
SELECT t.id, t.artist, t.title, c.distance, left(t.lyrics, 2000) AS head
  FROM (SELECT track_id, embedding <=> $1 AS distance
          FROM track_embeddings
         WHERE model = $2 AND ($3::int IS NULL OR track_id <> $3)
         ORDER BY embedding <=> $1
         LIMIT $4) c
  JOIN tracks t ON t.id = c.track_id
 ORDER BY c.distance, t.id"""


def _hits(rows: Sequence[asyncpg.Record]) -> list[Hit]:
    return [
        Hit(r["id"], r["artist"], r["title"], float(r["distance"]), first_line(r["head"]))
        for r in rows
    ]


# -- queries ----------------------------------------------------------------------


async def has_embeddings(conn: asyncpg.Connection, model: str) -> bool:
    try:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM track_embeddings WHERE model = $1)", model
            )
        )
    except asyncpg.UndefinedTableError:  # a database migrated before issue 13
        return False


async def _index_search(
    conn: asyncpg.Connection,
    vector: Any,
    model: str,
    *,
    candidates: int,
    ef_search: int,
    artist: str | None,
    exclude: int | None,
    limit: int,
) -> list[Hit]:
    async with conn.transaction():
        # SET LOCAL: the setting ends with the transaction, never leaks to the pool.
        await conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        rows = await conn.fetch(INDEX_SQL, vector, model, candidates, artist, exclude, limit)
    return _hits(rows)


async def nearest(
    conn: asyncpg.Connection,
    vector: Any,
    model: str,
    *,
    limit: int = 10,
    artist: str | None = None,
    exclude: int | None = None,
    plan: Plan | None = None,
) -> SearchResult:
    """The `limit` tracks nearest to `vector` (a float32 array), optionally of one
    artist and leaving out one track. `plan` forces a plan (the benchmark's use)."""
    check_limit(limit)
    if not await has_embeddings(conn, model):
        raise NoEmbeddings(model)
    artist_tracks = None
    if artist is not None:
        artist_tracks = int(
            await conn.fetchval("SELECT count(*) FROM tracks WHERE artist = $1", artist)
        )
    chosen, ef = choose_plan(artist_tracks, limit + (exclude is not None))
    chosen = plan or chosen
    if artist is not None and artist_tracks == 0:
        return SearchResult([], "exact", None)
    if chosen == "exact" and artist is not None:
        rows = await conn.fetch(EXACT_ARTIST_SQL, vector, model, artist, exclude, limit)
        return SearchResult(_hits(rows), "exact", None)
    if chosen == "exact":
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_indexscan = off")
            rows = await conn.fetch(EXACT_ALL_SQL, vector, model, exclude, limit)
        return SearchResult(_hits(rows), "exact", None)
    if chosen == "index" or artist is None:
        ef = max(DEFAULT_EF_SEARCH, limit + 1) if ef is None else ef
        hits = await _index_search(
            conn, vector, model, candidates=ef, ef_search=ef, artist=None,
            exclude=exclude, limit=limit,
        )  # fmt: skip
        return SearchResult(hits, "index", ef)
    hits = await _index_search(
        conn, vector, model, candidates=MAX_CANDIDATES, ef_search=MAX_CANDIDATES,
        artist=artist, exclude=exclude, limit=limit,
    )  # fmt: skip
    if len(hits) >= min(limit, artist_tracks or 0):
        return SearchResult(hits, "overfetch", MAX_CANDIDATES)
    # The index's candidates held too few of this artist's tracks: answer exactly.
    rows = await conn.fetch(EXACT_ARTIST_SQL, vector, model, artist, exclude, limit)
    return SearchResult(_hits(rows), "overfetch+exact", MAX_CANDIDATES)


async def track_vector(conn: asyncpg.Connection, track_id: int, model: str) -> Any:
    """The stored vector of a track; UnknownTrack / TrackNotEmbedded / NoEmbeddings."""
    check_track_id(track_id)
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tracks WHERE id = $1)", track_id):
        raise UnknownTrack(track_id)
    if not await has_embeddings(conn, model):
        raise NoEmbeddings(model)
    vector = await conn.fetchval(
        "SELECT embedding FROM track_embeddings WHERE track_id = $1 AND model = $2",
        track_id,
        model,
    )
    if vector is None:
        raise TrackNotEmbedded(track_id, model)
    return vector


async def similar(
    conn: asyncpg.Connection, track_id: int, model: str, *, limit: int = 10
) -> SearchResult:
    """The tracks nearest to a track's stored vector, the track itself left out."""
    vector = await track_vector(conn, track_id, model)
    return await nearest(conn, vector, model, limit=limit, exclude=track_id)


async def track_info(conn: asyncpg.Connection, track_id: int) -> dict[str, Any]:
    """A track's metadata, first line and which models embedded it; UnknownTrack."""
    check_track_id(track_id)
    row = await conn.fetchrow(
        """SELECT id, title, artist, album, release_date, word_count, genre, url,
                  left(lyrics, 2000) AS head
             FROM tracks WHERE id = $1""",
        track_id,
    )
    if row is None:
        raise UnknownTrack(track_id)
    try:
        models = [
            r["model"]
            for r in await conn.fetch(
                "SELECT model FROM track_embeddings WHERE track_id = $1 ORDER BY model", track_id
            )
        ]
    except asyncpg.UndefinedTableError:
        models = []
    return {
        "id": row["id"],
        "title": row["title"],
        "artist": row["artist"],
        "album": row["album"],
        "release_date": row["release_date"].isoformat() if row["release_date"] else None,
        "word_count": row["word_count"],
        "genre": row["genre"],
        "url": row["url"],
        "first_line": first_line(row["head"]),
        "embedding_models": models,
    }


def recall_at(k: int, got: Sequence[int], truth: Sequence[int]) -> float:
    """Share of the true top-k found in the approximate top-k."""
    want = set(truth[:k])
    return len(want & set(got[:k])) / max(len(want), 1)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]
