"""Postgres side of scraping (migrations 0004, 0006): tracks upserted by genius_id, the
per-run song ledger, per-shard counters, artist resolutions, and the notes a shard
records once per run about an upstream (Spotify refusing the app, ...).

`write_songs` runs inside `shards.commit_batch`'s transaction (its `write`
callback), so tracks, ledger rows, scrape counters, item states and the heartbeat
commit together. Counters grow by the ledger rows actually inserted (the ledger's
primary key is (run, genius_id)), so a batch replayed by a re-processed artist, or
raced by a stale pod, is never counted twice - the same rule as ledger/shards.py's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from analyzer_runtime.contract.scrape_status import Note, ScrapeCounters

if TYPE_CHECKING:  # the scrape clients' parsed rows, which this module writes
    from analyzer_runtime.scrape.genius import ArtistMatch, ScrapedSong
    from analyzer_runtime.scrape.spotify import Enrichment

# What the worker decided for a song before writing; 'fetched' becomes inserted,
# updated or unchanged by the upsert.
Planned = Literal["fetched", "duplicate", "skipped", "not_song", "failed"]


@dataclass(frozen=True, slots=True)
class SongResult:
    genius_id: int
    planned: Planned
    song: ScrapedSong | None = None
    spotify: Enrichment | None = None
    spotify_error: str | None = None
    detail: str | None = None
    track_id: int | None = None  # for duplicates: the existing track
    reason: str | None = None  # why it failed, machine-readable: 'blocked'

    @property
    def spotify_state(self) -> str | None:
        if self.spotify_error is not None:
            return "error"
        if self.spotify is None:
            return None
        return "matched" if self.spotify.matched else "missed"


async def already_handled(
    conn: asyncpg.Connection, run_id: int, genius_ids: Sequence[int]
) -> tuple[set[int], dict[int, int]]:
    """(songs this run already recorded, existing tracks by genius_id among the rest)."""
    ids = list(genius_ids)
    done = {
        r[0]
        for r in await conn.fetch(
            "SELECT genius_id FROM scrape_songs WHERE run_id = $1 AND genius_id = ANY($2::bigint[])",
            run_id,
            ids,
        )
    }
    rows = await conn.fetch(
        "SELECT genius_id, id FROM tracks WHERE genius_id = ANY($1::bigint[])",
        [i for i in ids if i not in done],
    )
    return done, {r["genius_id"]: r["id"] for r in rows}


_UPSERT = """
INSERT INTO tracks AS t (genius_id, title, artist, album, release_date, url, lyrics, word_count,
                         language, song_art_url, explicit, popularity_score, spotify_data)
SELECT u.genius_id, u.title, u.artist, u.album, u.release_date, u.url, u.lyrics, u.word_count,
       u.language, u.song_art_url, u.explicit, u.popularity, u.spotify::jsonb
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::date[], $6::text[],
              $7::text[], $8::int[], $9::text[], $10::text[], $11::bool[], $12::int[],
              $13::text[])
       AS u(genius_id, title, artist, album, release_date, url, lyrics, word_count, language,
            song_art_url, explicit, popularity, spotify)
ON CONFLICT (genius_id) DO UPDATE
   SET title = EXCLUDED.title, artist = EXCLUDED.artist, album = EXCLUDED.album,
       release_date = EXCLUDED.release_date, url = EXCLUDED.url, lyrics = EXCLUDED.lyrics,
       word_count = EXCLUDED.word_count, language = EXCLUDED.language,
       song_art_url = EXCLUDED.song_art_url,
       -- Spotify data is only sent for new tracks: never erase what a track has.
       explicit = coalesce(EXCLUDED.explicit, t.explicit),
       popularity_score = coalesce(EXCLUDED.popularity_score, t.popularity_score),
       spotify_data = coalesce(EXCLUDED.spotify_data, t.spotify_data),
       scraped_date = now()
 -- An identical row is left alone (and not returned): it counts as a duplicate.
 WHERE (t.title, t.artist, t.album, t.release_date, t.url, t.lyrics, t.song_art_url)
       IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.artist, EXCLUDED.album, EXCLUDED.release_date,
                         EXCLUDED.url, EXCLUDED.lyrics, EXCLUDED.song_art_url)
RETURNING t.id, t.genius_id, (t.xmax = 0) AS inserted
"""

_LEDGER = """
WITH ins AS (
    INSERT INTO scrape_songs (run_id, genius_id, artist_item, shard, track_id, outcome,
                              spotify, detail, reason)
    SELECT $1, u.genius_id, $2, $3, u.track_id, u.outcome, u.spotify, u.detail, u.reason
      FROM unnest($4::bigint[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[])
           AS u(genius_id, track_id, outcome, spotify, detail, reason)
    ON CONFLICT (run_id, genius_id) DO NOTHING
    RETURNING outcome, spotify, reason)
INSERT INTO scrape_counters AS c (run_id, shard, songs_found, tracks_new, tracks_updated,
                                  duplicates, songs_skipped, songs_failed, non_songs,
                                  spotify_matched, spotify_missed, songs_blocked)
SELECT $1, $3,
       count(*) FILTER (WHERE outcome <> 'not_song'),
       count(*) FILTER (WHERE outcome = 'inserted'),
       count(*) FILTER (WHERE outcome = 'updated'),
       count(*) FILTER (WHERE outcome IN ('duplicate', 'unchanged')),
       count(*) FILTER (WHERE outcome = 'skipped'),
       count(*) FILTER (WHERE outcome = 'failed'),
       count(*) FILTER (WHERE outcome = 'not_song'),
       count(*) FILTER (WHERE spotify = 'matched'),
       count(*) FILTER (WHERE spotify IN ('missed', 'error')),
       count(*) FILTER (WHERE outcome = 'failed' AND reason = 'blocked')
  FROM ins
ON CONFLICT (run_id, shard) DO UPDATE
   SET songs_found = c.songs_found + EXCLUDED.songs_found,
       tracks_new = c.tracks_new + EXCLUDED.tracks_new,
       tracks_updated = c.tracks_updated + EXCLUDED.tracks_updated,
       duplicates = c.duplicates + EXCLUDED.duplicates,
       songs_skipped = c.songs_skipped + EXCLUDED.songs_skipped,
       songs_failed = c.songs_failed + EXCLUDED.songs_failed,
       non_songs = c.non_songs + EXCLUDED.non_songs,
       spotify_matched = c.spotify_matched + EXCLUDED.spotify_matched,
       spotify_missed = c.spotify_missed + EXCLUDED.spotify_missed,
       songs_blocked = c.songs_blocked + EXCLUDED.songs_blocked
RETURNING (SELECT count(*) FROM ins) AS recorded
"""


async def write_songs(
    conn: asyncpg.Connection,
    run_id: int,
    shard: int,
    artist_item: int,
    results: Sequence[SongResult],
) -> int:
    """Upsert the fetched songs' tracks and record every result; returns how many
    ledger rows were new (0 for a replayed batch). Call inside a transaction."""
    by_id: dict[int, SongResult] = {}
    for r in results:  # one row per song: ON CONFLICT cannot touch a row twice
        by_id.setdefault(r.genius_id, r)
    fetched = [r for r in by_id.values() if r.planned == "fetched" and r.song is not None]
    outcome: dict[int, tuple[int | None, str]] = {}
    if fetched:
        cols: list[list[Any]] = [[] for _ in range(13)]
        for r in fetched:
            s, sp = r.song, r.spotify
            assert s is not None
            row = (
                s.genius_id, s.title, s.artist, s.album, s.release_date, s.url, s.lyrics,
                s.word_count, s.language, s.song_art_url,
                sp.explicit if sp else None, sp.popularity if sp else None,
                json.dumps(sp.data) if sp else None,
            )  # fmt: skip
            for col, value in zip(cols, row, strict=True):
                col.append(value)
        for rec in await conn.fetch(_UPSERT, *cols):
            outcome[rec["genius_id"]] = (rec["id"], "inserted" if rec["inserted"] else "updated")
        unchanged = [r.genius_id for r in fetched if r.genius_id not in outcome]
        if unchanged:
            for rec in await conn.fetch(
                "SELECT id, genius_id FROM tracks WHERE genius_id = ANY($1::bigint[])", unchanged
            ):
                outcome[rec["genius_id"]] = (rec["id"], "unchanged")
    ledger: list[tuple[int, int | None, str, str | None, str | None, str | None]] = []
    for r in by_id.values():
        track_id, state = outcome.get(r.genius_id, (r.track_id, r.planned))
        detail = r.detail or r.spotify_error
        ledger.append((r.genius_id, track_id, state, r.spotify_state, detail, r.reason))
    recorded = await conn.fetchval(
        _LEDGER,
        run_id,
        artist_item,
        shard,
        [x[0] for x in ledger],
        [x[1] for x in ledger],
        [x[2] for x in ledger],
        [x[3] for x in ledger],
        [x[4] for x in ledger],
        [x[5] for x in ledger],
    )
    return int(recorded or 0)


async def record_artist(
    conn: asyncpg.Connection, run_id: int, item_id: int, match: ArtistMatch
) -> None:
    """How the name was resolved (idempotent: a re-processed artist overwrites it)."""
    await conn.execute(
        """INSERT INTO scrape_artists (run_id, item_id, name, genius_artist_id, matched_name,
                                       ambiguous, candidates)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
           ON CONFLICT (run_id, item_id) DO UPDATE
              SET genius_artist_id = EXCLUDED.genius_artist_id,
                  matched_name = EXCLUDED.matched_name, ambiguous = EXCLUDED.ambiguous,
                  candidates = EXCLUDED.candidates""",
        run_id,
        item_id,
        match.query,
        match.artist_id,
        match.name,
        match.ambiguous,
        json.dumps(match.candidates),
    )


async def set_songs_listed(conn: asyncpg.Connection, run_id: int, item_id: int, n: int) -> None:
    await conn.execute(
        "UPDATE scrape_artists SET songs_listed = $3 WHERE run_id = $1 AND item_id = $2",
        run_id,
        item_id,
        n,
    )


async def read_counters(conn: asyncpg.Connection, run_id: int) -> list[ScrapeCounters]:
    """Per-shard scrape counters: O(shards), like shards.read_shards."""
    rows = await conn.fetch(
        """SELECT shard, songs_found, tracks_new, tracks_updated, duplicates, songs_skipped,
                  songs_failed, non_songs, spotify_matched, spotify_missed, songs_blocked
             FROM scrape_counters WHERE run_id = $1 ORDER BY shard""",
        run_id,
    )
    return [ScrapeCounters(**dict(r)) for r in rows]


async def failed_artists(
    conn: asyncpg.Connection, run_id: int, limit: int = 10
) -> list[dict[str, str]]:
    """Names and reasons of the first failed artists (only read when some failed)."""
    rows = await conn.fetch(
        """SELECT payload, last_error FROM run_items
            WHERE run_id = $1 AND state = 'failed' ORDER BY item_id LIMIT $2""",
        run_id,
        limit,
    )
    return [{"name": r["payload"] or "", "reason": r["last_error"] or ""} for r in rows]


# ---- notes: learned once per run, reported once ---------------------------------------


async def record_note(
    conn: asyncpg.Connection, run_id: int, shard: int, kind: str, message: str
) -> bool:
    """Record `kind` for the run unless a shard did already; True when this was first."""
    done = await conn.fetchval(
        """INSERT INTO scrape_notes (run_id, kind, shard, message) VALUES ($1, $2, $3, $4)
           ON CONFLICT (run_id, kind) DO NOTHING RETURNING true""",
        run_id,
        kind,
        shard,
        message[:1000],
    )
    return bool(done)


async def read_notes(conn: asyncpg.Connection, run_id: int) -> dict[str, Note]:
    rows = await conn.fetch(
        """SELECT kind, shard, message, recorded_at, announced FROM scrape_notes
            WHERE run_id = $1""",
        run_id,
    )
    return {r["kind"]: Note(**dict(r)) for r in rows}


async def claim_announcements(conn: asyncpg.Connection, run_id: int) -> list[Note]:
    """The notes no Event was sent for yet, marked as sent (each is announced once)."""
    rows = await conn.fetch(
        """UPDATE scrape_notes SET announced = true
            WHERE run_id = $1 AND NOT announced
        RETURNING kind, shard, message, recorded_at, announced""",
        run_id,
    )
    return [Note(**dict(r)) for r in rows]
