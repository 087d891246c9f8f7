"""Semantic search over `track_embeddings`: nearest tracks to a query text or to a track.

Pure pieces (validation, the SQL, the choice of plan and of its settings, the first
lyric line) are apart from the async functions that run them, so they are
unit-tested without a database.

How an artist filter combines with the HNSW index. Before pgvector 0.8 (the embedded
server ships 0.6) there are no iterative index scans: an index scan returns at most
`hnsw.ef_search` candidates and a WHERE clause filters those, so a filter can leave
fewer than `limit` rows. pgvector 0.8 added `hnsw.iterative_scan`: the scan goes on
past ef_search until the filter has let `limit` rows through or it has looked at
`hnsw.max_scan_tuples` tuples. The server's version is read once per pool
(`PgvectorVersion`) and decides the plan for a prolific artist:

- `exact`: the artist has few tracks (<= EXACT_ARTIST_MAX): their vectors are read
  through the artist index and every distance computed; exact and cheap, whatever
  the pgvector version.
- `iterative` (pgvector >= 0.8): a prolific artist: one index scan with the artist
  filter inside it and `hnsw.iterative_scan = relaxed_order`; when the scan stops at
  MAX_SCAN_TUPLES with fewer than `limit` rows, the exact plan runs instead.
- `overfetch` (pgvector < 0.8): a prolific artist: the index returns MAX_CANDIDATES
  candidates (ef_search raised to match), the artist filter keeps its own; when fewer
  than `limit` survive, the exact plan runs instead, so the answer is never short.

Without a filter the index answers with ef_search = max(DEFAULT_EF_SEARCH, limit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import asyncpg

INT32_MAX = 2**31 - 1
MAX_QUERY_CHARS = 1000
MAX_LIMIT = 100
# Measured at 57,718 tracks (bench/search_bench.py, bench/RESULTS.md "Issue 13"):
# ef_search 64 gives recall@10 0.985-0.987 vs an exact scan (the goals: >= 0.95 and
# p95 < 10 ms); p95 5.6 ms on a quiet machine, where 100 (0.99) took 10.4 ms, over
# the latency goal. Under load both run slower, 64 at about half of 100's p95.
DEFAULT_EF_SEARCH = 64
# The exact plan costs ~0.04 ms per track of the artist (121 tracks: p50 7 ms; 1,617:
# 68 ms), the over-fetch ~80 ms whatever the artist (ef_search 1000): they cross near
# 2,000 tracks. An artist that big is also >= 1% of a corpus this size, so 1,000
# candidates hold ~10+ of its tracks and the over-fetch rarely falls back.
EXACT_ARTIST_MAX = 2000
# pgvector caps hnsw.ef_search at 1000, and the index returns at most ef_search rows.
MAX_CANDIDATES = 1000
# The first pgvector with iterative index scans (its CHANGELOG, 0.8.0).
ITERATIVE_SCAN_SINCE = (0, 8, 0)
# The iterative plan's ef_search: its first pass. Measured on pgvector 0.8.0 at 57,718
# tracks for the largest artist (1,617 tracks; bench/RESULTS.md, "pgvector 0.8"): 64
# gives recall@10 0.99 at p50 52 ms, 200 gives 1.0 at 31 ms (the exact plan: 88 ms) -
# a wider first pass means fewer, more productive iterations.
ITERATIVE_EF_SEARCH = 200
# How many tuples an iterative scan may visit before it gives up (pgvector's own
# default, set explicitly so the bound is ours). An artist above EXACT_ARTIST_MAX is
# >= 3.5% of a 57,718-track corpus, so 20,000 tuples hold ~700 of its tracks when they
# are spread evenly; when they are not and the scan comes back short, the exact plan
# answers.
MAX_SCAN_TUPLES = 20_000

Plan = Literal["index", "exact", "overfetch", "overfetch+exact", "iterative", "iterative+exact"]

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


@dataclass(frozen=True, slots=True)
class Pgvector:
    """The server's pgvector extension: `version` as integers, () when not installed."""

    version: tuple[int, ...]

    @classmethod
    def parse(cls, extversion: str | None) -> Pgvector:
        """From pg_extension.extversion ("0.6.2", "0.8.0"); a suffix after the
        numbers ("0.8.0-dev") is ignored, None (no extension) gives ()."""
        found = re.match(r"\d+(?:\.\d+)*", extversion or "")
        return cls(tuple(int(p) for p in found.group().split("."))) if found else cls(())

    @property
    def iterative_scan(self) -> bool:
        return self.version >= ITERATIVE_SCAN_SINCE

    def __str__(self) -> str:
        return ".".join(map(str, self.version)) or "none"


def choose_plan(
    artist_tracks: int | None, limit: int, pgvector: Pgvector | None = None
) -> tuple[Plan, int | None]:
    """The plan and its ef_search for a search with an artist filter matching
    `artist_tracks` tracks (None: no filter) on a server with `pgvector` (None:
    unknown, taken as one without iterative scans)."""
    if artist_tracks is None:
        return "index", max(DEFAULT_EF_SEARCH, limit)
    if artist_tracks <= EXACT_ARTIST_MAX:
        return "exact", None
    if pgvector is not None and pgvector.iterative_scan:
        return "iterative", max(ITERATIVE_EF_SEARCH, limit)
    return "overfetch", MAX_CANDIDATES


def index_settings(plan: Plan, ef_search: int) -> dict[str, str]:
    """The SET LOCALs an index plan runs under. Only the iterative plan names
    hnsw.iterative_scan: pgvector < 0.8 reserves the `hnsw.` prefix and refuses a
    parameter it does not know."""
    settings = {"hnsw.ef_search": str(int(ef_search))}
    if plan == "iterative":
        # relaxed_order: better recall than strict_order (pgvector's README); the
        # query re-sorts its few rows by distance, so the order comes out exact.
        settings["hnsw.iterative_scan"] = "relaxed_order"
        settings["hnsw.max_scan_tuples"] = str(MAX_SCAN_TUPLES)
    return settings


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

# pgvector >= 0.8 with hnsw.iterative_scan on: the artist filter sits inside the query
# the HNSW index answers, so the scan goes on until `limit` rows pass it. MATERIALIZED:
# relaxed_order may return them slightly out of order; the outer ORDER BY fixes that.
# $1 vector, $2 model, $3 artist, $4 track to leave out, $5 limit.
ITERATIVE_SQL = """
WITH c AS MATERIALIZED (
    SELECT e.track_id, e.embedding <=> $1 AS distance
      FROM track_embeddings e
      JOIN tracks t ON t.id = e.track_id
     WHERE e.model = $2 AND t.artist = $3 AND ($4::int IS NULL OR e.track_id <> $4)
     ORDER BY e.embedding <=> $1
     LIMIT $5)
SELECT t.id, t.artist, t.title, c.distance, left(t.lyrics, 2000) AS head
  FROM c JOIN tracks t ON t.id = c.track_id
 ORDER BY c.distance, t.id"""

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


async def read_pgvector(conn: asyncpg.Connection) -> Pgvector:
    """The version of the vector extension in the connection's database."""
    return Pgvector.parse(
        await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    )


class PgvectorOnce:
    """The server's pgvector, read on the first search and kept: one per pool, whose
    connections all reach the same server (an extension upgrade needs a restart of
    the process to be seen, as `ALTER EXTENSION vector UPDATE` is rare)."""

    def __init__(self) -> None:
        self._known: Pgvector | None = None

    async def of(self, conn: asyncpg.Connection) -> Pgvector:
        if self._known is None:
            self._known = await read_pgvector(conn)
        return self._known


async def _index_search(
    conn: asyncpg.Connection,
    sql: str,
    settings: dict[str, str],
    *args: Any,
) -> list[Hit]:
    async with conn.transaction():
        # SET LOCAL: the settings end with the transaction, never leak to the pool.
        for name, value in settings.items():
            await conn.execute(f"SET LOCAL {name} = {value}")
        rows = await conn.fetch(sql, *args)
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
    pgvector: Pgvector | None = None,
) -> SearchResult:
    """The `limit` tracks nearest to `vector` (a float32 array), optionally of one
    artist and leaving out one track. `plan` forces a plan (the benchmark's use).
    `pgvector`: the server's, read once per pool by the caller (PgvectorOnce); read
    here when not given and an artist filter needs it."""
    check_limit(limit)
    if not await has_embeddings(conn, model):
        raise NoEmbeddings(model)
    artist_tracks = None
    if artist is not None:
        artist_tracks = int(
            await conn.fetchval("SELECT count(*) FROM tracks WHERE artist = $1", artist)
        )
        if pgvector is None:
            pgvector = await read_pgvector(conn)
    wanted = limit + (exclude is not None)
    chosen, ef = choose_plan(artist_tracks, wanted, pgvector)
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
        ef = max(DEFAULT_EF_SEARCH, wanted) if ef is None else ef
        hits = await _index_search(
            conn, INDEX_SQL, index_settings("index", ef),
            vector, model, ef, None, exclude, limit,
        )  # fmt: skip
        return SearchResult(hits, "index", ef)
    if chosen == "iterative":
        ef = max(ITERATIVE_EF_SEARCH, wanted)
        hits = await _index_search(
            conn, ITERATIVE_SQL, index_settings("iterative", ef),
            vector, model, artist, exclude, limit,
        )  # fmt: skip
    else:
        ef = MAX_CANDIDATES
        hits = await _index_search(
            conn, INDEX_SQL, index_settings("overfetch", ef),
            vector, model, ef, artist, exclude, limit,
        )  # fmt: skip
    if len(hits) >= min(limit, artist_tracks or 0):
        return SearchResult(hits, chosen, ef)
    # The index's candidates held too few of this artist's tracks: answer exactly.
    rows = await conn.fetch(EXACT_ARTIST_SQL, vector, model, artist, exclude, limit)
    fallback: Plan = "iterative+exact" if chosen == "iterative" else "overfetch+exact"
    return SearchResult(_hits(rows), fallback, ef)


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
    conn: asyncpg.Connection,
    track_id: int,
    model: str,
    *,
    limit: int = 10,
    pgvector: Pgvector | None = None,
) -> SearchResult:
    """The tracks nearest to a track's stored vector, the track itself left out."""
    vector = await track_vector(conn, track_id, model)
    return await nearest(conn, vector, model, limit=limit, exclude=track_id, pgvector=pgvector)


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
