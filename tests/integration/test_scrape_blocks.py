"""ScrapeJob shards against the services as they really behave (issue 11), over real
HTTP and a real Postgres: Genius behind Cloudflare (challenged song pages are failed
as `blocked`, never skipped), Spotify's post-2024 API (403 on audio-features, no
popularity) and a Spotify app that is refused (SpotifyUnavailable, tracks stored).
The status is built by the operator's ScrapeJob kind from what the shards wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_genius import FakeGenius
from rap_operator.kinds.scrapejob import SCRAPE

from analyzer_runtime.contract import scrape_status
from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.contract.wording import SCRAPE_WORDING
from analyzer_runtime.ledger import scrape_store as store
from analyzer_runtime.ledger import shards as shard_ledger
from tests import builders
from tests.integration.test_scrape import FAST_RETRY, fake, gen, manifest, scrape, totals

__all__ = ["fake", "gen"]  # the shared fake server fixtures
pytestmark = pytest.mark.timeout(180)


def listing(g: FakeGenius, names: list[str], max_songs: int) -> list[Any]:
    """The songs a job over `names` handles (non-songs and features left out)."""
    by_name = {a.name: a for a in g.catalog.artists}
    out = []
    for name in names:
        a = by_name[name]
        songs = [s for s in a.songs if s.artist_id == a.id and s.kind != "non_song"]
        out += songs[:max_songs]
    return out


@pytest.fixture
def events() -> list[dict[str, Any]]:
    """The Events the kind hands reconcile.act to post (job_status collects them)."""
    return []


async def job_status(
    pool: asyncpg.Pool, run: shard_ledger.Run, sent: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The status the operator would patch: common status + the kind's fields."""
    async with pool.acquire() as conn:
        # the run exists: it was planned above (find_run returns Run | None)
        run = await shard_ledger.find_run(conn, run.uid)  # type: ignore[assignment]
        shards = await shard_ledger.read_shards(conn, run.id)
        status = builders.status(shards, now=datetime.now(UTC), wording=SCRAPE_WORDING,
                                 planned_total=run.total, schema=None)  # fmt: skip
        status.update(await SCRAPE.extra_status(conn, run, status))
        # reconcile.act then claims the notes' Events and posts them.
        for e in await SCRAPE.claim_events(conn, run):
            if sent is not None:
                sent.append(
                    {"kind": "ScrapeJob", "type": e.type, "reason": e.reason, "message": e.message}
                )
    ScrapeJobStatus.model_validate(status)
    return status


@pytest.mark.parametrize("mode", ["challenge", "interstitial"])
async def test_cloudflare_challenged_songs_are_blocked_not_skipped(
    pool: asyncpg.Pool,
    fake: tuple[FakeGenius, str],
    gen: FakeGenius,
    mode: str,
    events: list[dict[str, Any]],
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(4)
    gen.config.cloudflare, gen.config.cloudflare_every = mode, 3
    songs = listing(gen, names, 8)
    fetched = [s for s in songs if s.kind in ("song", "empty")]
    blocked = {s.id for s in fetched if gen.cloudflare_blocks(s.id)}
    assert 0 < len(blocked) < len(fetched)
    retry = FAST_RETRY | {"requestRetries": 2}
    run = await scrape(pool, manifest(base, names, maxSongsPerArtist=8, shards=2, retry=retry))
    got = await totals(pool, run.id)
    skipped = sum(1 for s in songs if s.kind in ("empty", "instrumental") and s.id not in blocked)
    assert got["skipped"] == skipped and got["failed"] == len(blocked)
    assert got["new"] == sum(1 for s in songs if s.kind == "song" and s.id not in blocked)
    assert got["artists_done"] == 4  # a blocked song fails the song, not the artist
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT genius_id, outcome, reason, detail FROM scrape_songs WHERE run_id = $1 AND"
            " reason = 'blocked'",
            run.id,
        )
        tracks = {r[0] for r in await conn.fetch("SELECT genius_id FROM tracks")}
    assert {r["genius_id"] for r in rows} == blocked and not blocked & tracks
    assert all(r["outcome"] == "failed" and "challenge" in r["detail"] for r in rows)
    # Retried with backoff, bounded: 1 + requestRetries requests per blocked page.
    paths = {cat.songs[i].path for i in blocked}
    hits = [e for e in gen.log if e["path"] in paths]
    assert len(hits) == 3 * len(blocked)
    assert {e["status"] for e in hits} == {403 if mode == "challenge" else 200}
    status = await job_status(pool, run, events)
    assert (status["blocked"], status["songFailures"]) == (len(blocked), len(blocked))
    assert status["songsSkipped"] == skipped
    async with pool.acquire() as conn:
        notes = await store.read_notes(conn, run.id)
    # The first blocked song is noted once for the run, and announced (an Event) once.
    assert notes[scrape_status.GENIUS_BLOCKED].announced
    await job_status(pool, run, events)
    assert [(e["type"], e["reason"], e["kind"]) for e in events] == [
        ("Warning", "GeniusBlocked", "ScrapeJob")
    ]


async def test_song_pages_are_requested_like_a_browser(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    """Bot rules challenge python-httpx's User-Agent; ours is a browser's."""
    names = gen.catalog.names(2)
    gen.config.cloudflare = "bots"
    run = await scrape(pool, manifest(fake[1], names, maxSongsPerArtist=5))
    got = await totals(pool, run.id)
    assert got["failed"] == 0 and got["new"] > 0
    assert not [e for e in gen.log if e["status"] == 403]


async def test_post_2024_spotify_stores_every_track_and_stops_audio_features(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(3)
    new: dict[int, Any] = cat.expected(names, 6)["new"]
    gen.config.spotify_api = "2024"
    m = manifest(base, names, maxSongsPerArtist=6, with_spotify=True, concurrency=8)
    assert m.spec.spotify is not None
    m.spec.spotify.audio_features = True  # asked for explicitly (the default is off)
    run = await scrape(pool, m)
    got = await totals(pool, run.id)
    on_spotify = {gid for gid, s in new.items() if s.on_spotify}
    assert got["new"] == len(new) and got["failed"] == 0
    assert (got["matched"], got["missed"]) == (len(on_spotify), len(new) - len(on_spotify))
    # One audio-features request (one shard process), answered 403, and none after it.
    af = [e for e in gen.log if "/audio-features/" in e["path"]]
    assert [e["status"] for e in af] == [403]
    async with pool.acquire() as conn:
        rows = {r["genius_id"]: r for r in await conn.fetch("SELECT * FROM tracks")}
    assert set(rows) == set(new)
    for gid in on_spotify:  # matched by name/artist without popularity
        data = json.loads(rows[gid]["spotify_data"])
        assert data["matched"] and data["id"] == f"sp{gid}" and data["popularity"] is None
        assert data["audioFeatures"] is None and rows[gid]["popularity_score"] is None
        assert rows[gid]["explicit"] is new[gid].explicit
    status = await job_status(pool, run)
    assert "403 on audio-features" in status["spotify"]["audioFeaturesOff"]
    cond = {c["type"]: c for c in status["conditions"]}["SpotifyUnavailable"]
    assert cond["status"] == "False"


async def test_default_spec_sends_no_audio_features_request(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    names = gen.catalog.names(2)
    run = await scrape(pool, manifest(fake[1], names, maxSongsPerArtist=5, with_spotify=True))
    assert (await totals(pool, run.id))["matched"] > 0
    assert not [e for e in gen.log if "/audio-features/" in e["path"]]


@pytest.mark.parametrize("where", ["token", "search"])
async def test_a_refused_spotify_app_is_loud_and_tracks_are_stored(
    pool: asyncpg.Pool,
    fake: tuple[FakeGenius, str],
    gen: FakeGenius,
    where: str,
    events: list[dict[str, Any]],
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(3)
    new: dict[int, Any] = cat.expected(names, 6)["new"]
    gen.config.spotify_blocked = where
    run = await scrape(
        pool, manifest(base, names, maxSongsPerArtist=6, shards=2, with_spotify=True)
    )
    got = await totals(pool, run.id)
    assert got["new"] == len(new) and got["failed"] == 0 and got["artists_done"] == 3
    # Not "nothing on Spotify": no track is counted as a miss.
    assert (got["matched"], got["missed"]) == (0, 0)
    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT genius_id, spotify_data FROM tracks")
    assert {r[0] for r in stored} == set(new) and all(r[1] is None for r in stored)
    # The Spotify part stopped: each shard process asked at most a few times.
    sp = [e for e in gen.log if e["upstream"] == "spotify"]
    assert all(e["status"] == 403 for e in sp if e["path"].endswith(where))
    assert len(sp) <= 2 * 8  # 2 shards, each at most its in-flight songs
    status = await job_status(pool, run, events)
    cond = {c["type"]: c for c in status["conditions"]}["SpotifyUnavailable"]
    assert (cond["status"], cond["reason"]) == ("True", "SpotifyRefused")
    assert "HTTP 403" in cond["message"] and status["spotify"]["unavailable"] == cond["message"]
    async with pool.acquire() as conn:
        notes = await store.read_notes(conn, run.id)
    assert notes[scrape_status.SPOTIFY_UNAVAILABLE].announced  # the Warning Event, sent once
    again = await job_status(pool, run, events)
    assert again["conditions"] == status["conditions"]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "SpotifyUnavailable")]
    assert "HTTP 403" in events[0]["message"]
