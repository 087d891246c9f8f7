"""One ScrapeJob shard: `python -m analyzer_runtime scrape --run-id UID` in each Job pod.

The shard protocol (ledger/shards.py) with artists as the work items, one at a time:
claim the shard; take the next pending artist; resolve it on Genius; walk its song
listing and, every `batchSize` songs, commit ONE transaction with the tracks, the
song ledger, the scrape counters and the heartbeat (`commit_batch` with no item
moving); when the listing is through, commit the artist done (or failed, with the
reason). The artist is leased to the shard process while it works on it (the
heartbeat renews the lease), and every song commit checks the lease is still held. A
pod killed mid-artist leaves the artist pending: once its lease expires, its
replacement takes it again and skips the songs the ledger already has - nothing
fetched twice that was committed, nothing counted twice. SIGTERM finishes the song
batch in flight, gives the artist back (no crash charged), and the process exits 143
(the Job retries the index).

Upstreams as they really behave: a song whose page keeps answering a Cloudflare
challenge is recorded failed with reason `blocked` (counted apart, never as a page
without lyrics). A Spotify app that is refused (SpotifyUnavailable) stops the
Spotify part of this shard - the songs are still stored from Genius - and is noted
once for the run (store.record_note: the operator turns it into the
SpotifyUnavailable condition and a Warning Event), as are audio features turned off
by a 403 and the first blocked song.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from analyzer_runtime import metrics
from analyzer_runtime.contract import env as env_names
from analyzer_runtime.contract import scrape_status
from analyzer_runtime.ledger import scrape_store as store
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ratelimit import GlobalRateLimiter, Limiter
from analyzer_runtime.scrape.genius import (
    ArtistNotFound,
    AuthError,
    GeniusClient,
    SongEntry,
    SongUnavailable,
)
from analyzer_runtime.scrape.http import Blocked, RetrySettings, Upstream, UpstreamError
from analyzer_runtime.scrape.spotify import SpotifyClient, SpotifyError, SpotifyUnavailable
from analyzer_runtime.shard_steps import finish_or_wait, gave_up
from analyzer_runtime.worker import FatalError, ShardReport, StopFlag

log = logging.getLogger(__name__)

GENIUS_TOKEN_ENV = env_names.GENIUS_ACCESS_TOKEN
SPOTIFY_ID_ENV = env_names.SPOTIFY_CLIENT_ID
SPOTIFY_SECRET_ENV = env_names.SPOTIFY_CLIENT_SECRET

METRIC_NAME = "scrape"  # the `analyzer` label of the shared item metrics


@dataclass(slots=True)
class _Shard:
    """Everything one shard's artists share."""

    pool: asyncpg.Pool
    run: shard_ledger.Run
    shard: int
    genius: GeniusClient
    spotify: SpotifyClient | None
    batch_size: int
    max_songs: int
    refresh: bool
    sem: asyncio.Semaphore
    stop: StopFlag
    claimer: shard_ledger.Claimer
    spotify_down: str | None = None  # why Spotify is not asked any more
    noted: set[str] = field(default_factory=set)  # note kinds this process recorded

    async def note(self, kind: str, message: str) -> None:
        """Record a run note once per process (the table keeps the run's first)."""
        if kind in self.noted:
            return
        self.noted.add(kind)
        async with self.pool.acquire() as conn:
            await store.record_note(conn, self.run.id, self.shard, kind, message)


async def _limiter(
    pool: asyncpg.Pool,
    run_id: int,
    spec: Mapping[str, Any],
    api: str,
    request_timeout: float,
    window: float,
) -> Limiter:
    rate = ((spec.get("rateLimit") or {}).get(api) or {}).get("requestsPerMinute")
    if not rate:
        return Limiter()
    lim = GlobalRateLimiter(
        pool, run_id, int(rate), window_seconds=window, request_timeout=request_timeout, budget=api
    )
    await lim.setup()
    return lim


async def run_scrape_shard(
    pool: asyncpg.Pool,
    run_uid: str,
    shard: int,
    *,
    stop: StopFlag | None = None,
    env: Mapping[str, str] | None = None,
    window_seconds: float = 60.0,
) -> ShardReport:
    """Scrape the shard's pending artists; `env` supplies the credentials (the pod's
    environment by default); `window_seconds` is the rate limits' window (tests)."""
    stop = stop or StopFlag()
    env = os.environ if env is None else env
    async with pool.acquire() as conn:
        run = await shard_ledger.find_run(conn, run_uid)
        if run is None:
            raise FatalError(f"run {run_uid!r} is not planned in this database")
        if run.kind != "ScrapeJob":
            raise FatalError(f"run {run.name} is a {run.kind}, not a ScrapeJob")
        if not 0 <= shard < run.shards:
            raise FatalError(f"shard {shard} is out of range: run {run.name} has {run.shards}")
        report = ShardReport(run_uid, shard, attempt=0)
        if run.state == "cancelled":
            report.finished = True
            return report
        report.attempt = await shard_ledger.claim_shard(conn, run.id, shard)
    spec = run.spec
    token = env.get(GENIUS_TOKEN_ENV)
    if not token:
        raise FatalError(f"${GENIUS_TOKEN_ENV} is not set (spec.genius.tokenSecretRef)")
    g_opts, s_opts = spec.get("genius") or {}, spec.get("spotify")
    retry = RetrySettings.from_spec(spec.get("retry"))
    concurrency = int(spec.get("concurrency") or 4)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, follow_redirects=True) as http:
        g_timeout = float(g_opts.get("timeoutSeconds") or 20)
        genius = GeniusClient(
            Upstream(
                "genius", http, retry=retry, timeout=g_timeout,
                limiter=await _limiter(pool, run.id, spec, "genius", g_timeout, window_seconds),
            ),
            token, str(g_opts.get("apiBaseURL") or "https://api.genius.com"),
        )  # fmt: skip
        spotify = None
        if s_opts:
            cid, secret = env.get(SPOTIFY_ID_ENV), env.get(SPOTIFY_SECRET_ENV)
            if not cid or not secret:
                raise FatalError(f"${SPOTIFY_ID_ENV} and ${SPOTIFY_SECRET_ENV} must be set")
            s_timeout = float(s_opts.get("timeoutSeconds") or 20)
            spotify = SpotifyClient(
                Upstream(
                    "spotify", http, retry=retry, timeout=s_timeout,
                    limiter=await _limiter(pool, run.id, spec, "spotify", s_timeout, window_seconds),
                ),
                client_id=cid, client_secret=secret, api_base=s_opts["apiBaseURL"],
                token_url=s_opts["tokenURL"], audio_features=bool(s_opts.get("audioFeatures", False)),
            )  # fmt: skip
        ctx = _Shard(
            pool, run, shard, genius, spotify,
            batch_size=int(spec.get("batchSize") or 20),
            max_songs=int(spec.get("maxSongsPerArtist") or 50),
            refresh=bool(spec.get("refreshExisting")),
            sem=asyncio.Semaphore(concurrency), stop=stop, claimer=shard_ledger.Claimer.new(),
        )  # fmt: skip
        max_attempts = int((spec.get("retry") or {}).get("maxItemAttempts") or 3)
        async with shard_ledger.holding_leases(pool, run.id, shard, ctx.claimer):
            await _artists(ctx, report, max_attempts)
    report.stopped = stop.set and not report.finished
    return report


async def _artists(ctx: _Shard, report: ShardReport, max_attempts: int) -> None:
    run, shard = ctx.run, ctx.shard
    while not ctx.stop.set:
        async with ctx.pool.acquire() as conn:
            claimed = await shard_ledger.next_batch(conn, run.id, shard, 1, ctx.claimer)
            if not claimed:
                if await finish_or_wait(conn, run.id, shard, ctx.stop):
                    report.finished = True
                    return
                continue
        item = claimed[0]
        name = item.payload or ""
        update: shard_ledger.ItemUpdate | None
        if item.crashes >= max_attempts:
            update = shard_ledger.ItemUpdate(
                item.item_id, "failed", gave_up(max_attempts, "scraping")
            )
        else:
            try:
                update = await _artist(ctx, item.item_id, name)
            except AuthError as exc:
                raise FatalError(str(exc)) from None
            except shard_ledger.LeaseLost as exc:
                # Another claimer took the artist (our lease expired): it is theirs now.
                log.warning("artist %r: %s", name, exc)
                ctx.claimer.held.discard(item.item_id)
                continue
            if update is None:  # stopped mid-artist: it stays pending for the next pod
                return
        async with ctx.pool.acquire() as conn:
            moved = await shard_ledger.commit_batch(conn, run.id, shard, [update], ctx.claimer)
        report.batches += 1
        report.done += moved["done"]
        report.failed += moved["failed"]
        for state, n in moved.items():
            metrics.ITEMS.labels(METRIC_NAME, state).inc(n)
        if update.state == "failed":
            log.warning("artist %r failed: %s", name, update.error)


async def _artist(ctx: _Shard, item_id: int, name: str) -> shard_ledger.ItemUpdate | None:
    """Scrape one artist; None when stopped before its listing was through."""
    try:
        match = await ctx.genius.find_artist(name)
    except ArtistNotFound as exc:
        return shard_ledger.ItemUpdate(item_id, "failed", str(exc))
    except (UpstreamError, SongUnavailable) as exc:
        return shard_ledger.ItemUpdate(item_id, "failed", f"artist search failed: {exc}")
    async with ctx.pool.acquire() as conn:
        await store.record_artist(conn, ctx.run.id, item_id, match)
    if match.ambiguous:
        log.warning("artist %r is ambiguous on Genius; took id %s", name, match.artist_id)
    songs = 0
    seen: set[int] = set()
    batch: list[SongEntry] = []
    try:
        async for entry in ctx.genius.artist_songs(match.artist_id):
            if entry.genius_id in seen:
                continue
            # Features of other artists belong to their own artist's listing.
            if entry.artist_id is not None and entry.artist_id != match.artist_id:
                continue
            seen.add(entry.genius_id)
            batch.append(entry)
            if entry.is_song:
                songs += 1
            if len(batch) >= ctx.batch_size:
                await _commit_songs(ctx, item_id, match.name, batch)
                batch = []
                if ctx.stop.set:
                    return None
            if songs >= ctx.max_songs:
                break
        await _commit_songs(ctx, item_id, match.name, batch)
    except (UpstreamError, SongUnavailable) as exc:
        # Songs committed so far stay; the artist is failed with the reason.
        return shard_ledger.ItemUpdate(item_id, "failed", f"song listing failed: {exc}")
    async with ctx.pool.acquire() as conn:
        await store.set_songs_listed(conn, ctx.run.id, item_id, songs)
    return shard_ledger.ItemUpdate(item_id, "done")


async def _commit_songs(ctx: _Shard, item_id: int, artist: str, entries: list[SongEntry]) -> None:
    if not entries:
        return
    async with ctx.pool.acquire() as conn:
        done, existing = await store.already_handled(
            conn, ctx.run.id, [e.genius_id for e in entries]
        )
    todo = [e for e in entries if e.genius_id not in done]
    results = await asyncio.gather(*(_song(ctx, e, artist, existing) for e in todo))

    async def write(conn: asyncpg.Connection, _held: frozenset[int]) -> None:
        await store.write_songs(conn, ctx.run.id, ctx.shard, item_id, results)

    async with ctx.pool.acquire() as conn:
        # No item moves: the artist is still in progress. The ledger, counters and
        # heartbeat commit together with the tracks, while we still hold the artist.
        await shard_ledger.commit_batch(
            conn, ctx.run.id, ctx.shard, [], ctx.claimer, write=write, holding=[item_id]
        )


async def _song(
    ctx: _Shard, e: SongEntry, artist: str, existing: dict[int, int]
) -> store.SongResult:
    if not e.is_song:
        return store.SongResult(e.genius_id, "not_song", detail=e.title)
    if e.genius_id in existing and not ctx.refresh:
        return store.SongResult(e.genius_id, "duplicate", track_id=existing[e.genius_id])
    if e.instrumental:
        return store.SongResult(e.genius_id, "skipped", detail="instrumental")
    async with ctx.sem:
        try:
            song = await ctx.genius.song(e, artist)
        except Blocked as exc:
            log.warning("song %s: %s", e.genius_id, exc)
            await ctx.note(scrape_status.GENIUS_BLOCKED, f"song {e.url or e.genius_id}: {exc}")
            return store.SongResult(e.genius_id, "failed", detail=str(exc)[:500], reason="blocked")
        except (UpstreamError, SongUnavailable) as exc:
            return store.SongResult(e.genius_id, "failed", detail=str(exc)[:500])
        if song is None:
            return store.SongResult(e.genius_id, "skipped", detail="no lyrics on the page")
        if ctx.spotify is None or e.genius_id in existing or ctx.spotify_down:
            return store.SongResult(e.genius_id, "fetched", song)
        year = song.release_date.year if song.release_date else None
        try:
            enrichment = await ctx.spotify.enrich(
                song.title, song.artist, album=song.album, year=year
            )
        except SpotifyUnavailable as exc:
            # Loud, once: the app is refused, so no further Spotify request is sent.
            # The track is stored from Genius, and it is not counted as a miss.
            if ctx.spotify_down is None:
                ctx.spotify_down = str(exc)
                log.error("Spotify is unavailable, enrichment stops: %s", exc)
            await ctx.note(scrape_status.SPOTIFY_UNAVAILABLE, str(exc))
            return store.SongResult(e.genius_id, "fetched", song)
        except (UpstreamError, SpotifyError) as exc:
            # The track is kept without Spotify data; the miss is recorded.
            return store.SongResult(e.genius_id, "fetched", song, spotify_error=str(exc)[:500])
        finally:
            if ctx.spotify.audio_features_off:
                await ctx.note(scrape_status.AUDIO_FEATURES_OFF, ctx.spotify.audio_features_off)
        return store.SongResult(e.genius_id, "fetched", song, enrichment)
