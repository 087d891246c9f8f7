"""ScrapeJob shards against the fake Genius/Spotify over real HTTP and a real Postgres:
exact tracks and counters, dedup on reruns, resume after a kill mid-artist, 429/500
handling within a global rate limit, Spotify enrichment, and the chained selection."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from rap_devtools.fake_genius import FakeConfig, FakeGenius
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.contract import load_scrape_manifest
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.scrape_planning import plan_scrape
from analyzer_runtime.ratelimit import max_in_window
from analyzer_runtime.scrape.worker import run_scrape_shard
from analyzer_runtime.worker import FatalError

pytestmark = pytest.mark.timeout(180)
TOKEN = "genius-test-token"
ENV = {"GENIUS_ACCESS_TOKEN": TOKEN, "SPOTIFY_CLIENT_ID": "spotify-id",
       "SPOTIFY_CLIENT_SECRET": "spotify-secret"}  # fmt: skip
FAST_RETRY = {"initialBackoffSeconds": 0.05, "maxBackoffSeconds": 0.2}


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[tuple[FakeGenius, str]]:
    server = FakeGenius(FakeConfig(n_tracks=1500))
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield server, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def gen(fake: tuple[FakeGenius, str]) -> FakeGenius:
    server = fake[0]
    server.log.clear()
    server.counts.clear()
    server.config = FakeConfig(n_tracks=1500)
    return server


def manifest(base: str, artists: list[str], **spec: Any) -> Any:
    body = {"artists": artists, "genius": {"tokenSecretRef": {"name": "g", "key": "t"},
                                           "apiBaseURL": f"{base}/genius-api"}, **spec}  # fmt: skip
    if body.pop("with_spotify", False):
        body["spotify"] = {
            "clientIdSecretRef": {"name": "s", "key": "id"},
            "clientSecretSecretRef": {"name": "s", "key": "secret"},
            "apiBaseURL": f"{base}/spotify/v1",
            "tokenURL": f"{base}/spotify/api/token",
        }
    return load_scrape_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "ScrapeJob",
         "metadata": {"name": "sj", "namespace": "it"}, "spec": body}
    )  # fmt: skip


async def scrape(
    pool: asyncpg.Pool, m: Any, *, env: dict[str, str] = ENV, window: float = 60.0
) -> shard_ledger.Run:
    uid = str(uuid.uuid4())
    async with pool.acquire() as conn:
        run = (await plan_scrape(conn, m, uid, m.spec.artists)).run
    await asyncio.gather(
        *(run_scrape_shard(pool, uid, s, env=env, window_seconds=window)
          for s in range(run.shards))
    )  # fmt: skip
    return run


async def totals(pool: asyncpg.Pool, run_id: int) -> dict[str, int]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT sum(songs_found) AS found, sum(tracks_new) AS new,
                      sum(tracks_updated) AS updated, sum(duplicates) AS dup,
                      sum(songs_skipped) AS skipped, sum(songs_failed) AS failed,
                      sum(non_songs) AS non_songs, sum(spotify_matched) AS matched,
                      sum(spotify_missed) AS missed
                 FROM scrape_counters WHERE run_id = $1""",
            run_id,
        )
        artists = await conn.fetchrow(
            "SELECT sum(processed) AS done, sum(failed) AS failed FROM run_shards WHERE run_id = $1",
            run_id,
        )
    out = {k: int(v or 0) for k, v in dict(row).items()}
    return out | {"artists_done": int(artists["done"]), "artists_failed": int(artists["failed"])}


async def test_exact_tracks_counters_and_an_ambiguous_artist(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(8)
    want = cat.expected(names, 6)
    run = await scrape(pool, manifest(base, names, maxSongsPerArtist=6, shards=3, batchSize=4))
    got = await totals(pool, run.id)
    new: dict[int, Any] = want["new"]
    assert got == {"found": want["songs_found"], "new": len(new), "updated": 0, "dup": 0,
                   "skipped": want["skipped"], "failed": 0, "non_songs": want["non_songs"],
                   "matched": 0, "missed": 0, "artists_done": 8, "artists_failed": 0}  # fmt: skip
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM tracks")
        amb = await conn.fetchrow("SELECT * FROM scrape_artists WHERE name = $1", names[2])
        pending = await conn.fetchval("SELECT count(*) FROM run_items WHERE state <> 'done'")
    assert {r["genius_id"] for r in rows} == set(new) and pending == 0
    for r in rows:
        s = new[r["genius_id"]]
        assert [line for line in r["lyrics"].split("\n") if line] == s.lyrics.split("\n")
        assert (r["title"], r["artist"], r["album"], r["release_date"]) == (
            s.title, s.artist_name, s.album, s.release_date)  # fmt: skip
        assert r["url"].endswith(s.path) and r["song_art_url"] and r["language"] == "en"
        assert r["word_count"] > 100
    # The exact-name artist, not the first hit (a decoy), and the namesake recorded.
    assert amb["genius_artist_id"] == cat.artists[2].id and amb["ambiguous"] is True
    cand = {c["id"] for c in json.loads(amb["candidates"])}
    assert {cat.decoy.id, cat.namesake.id, cat.artists[2].id} <= cand
    # Non-songs and instrumental entries were never fetched.
    fetched = {e["path"] for e in gen.log}
    odd = [s for s in cat.songs.values() if s.kind in ("non_song", "instrumental")]
    assert not any(s.path in fetched for s in odd)


async def test_reruns_are_duplicates_and_refresh_updates_only_what_changed(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(3)
    want = cat.expected(names, 5)
    n_new = len(want["new"])
    first = await scrape(pool, manifest(base, names, maxSongsPerArtist=5))
    gen.log.clear()
    again = await scrape(pool, manifest(base, names, maxSongsPerArtist=5, shards=2))
    got = await totals(pool, again.id)
    assert (got["new"], got["updated"], got["dup"], got["found"]) == (
        0, 0, n_new, want["songs_found"])  # fmt: skip
    # Songs already in the corpus cost no request: only pages without lyrics are re-read.
    pages = [gen.paths[e["path"]] for e in gen.log if e["path"].endswith("-lyrics")]
    assert all(s.kind == "empty" for s in pages)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == n_new
        changed = await conn.fetchval(
            "UPDATE tracks SET lyrics = 'old text' WHERE id = (SELECT min(id) FROM tracks)"
            " RETURNING id"
        )
    refresh = await scrape(pool, manifest(base, names, maxSongsPerArtist=5, refreshExisting=True))
    got = await totals(pool, refresh.id)
    assert (got["new"], got["updated"], got["dup"]) == (0, 1, n_new - 1)
    # The chained selection: exactly the tracks a job inserted or updated.
    async with pool.acquire() as conn:
        for run, expect in ((first, n_new), (refresh, 1), (again, 0)):
            sel = planner.Selection(scrape_run=run.uid)
            ids = await planner.select_track_ids(conn, sel, "algorithmic", "x")
            assert len(ids) == expect
        assert await planner.select_track_ids(
            conn, planner.Selection(scrape_run=refresh.uid), "a", "v"
        ) == [changed]


async def test_killed_mid_artist_resumes_without_double_counting(
    db_url: str, pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(2)
    want = cat.expected(names, 12)
    gen.config.page_latency = 0.03
    m = manifest(base, names, maxSongsPerArtist=12, batchSize=2, concurrency=1)
    uid = str(uuid.uuid4())
    async with pool.acquire() as conn:
        run = (await plan_scrape(conn, m, uid, m.spec.artists)).run
    doomed = await create_pool(db_url, max_size=4)
    task = asyncio.create_task(run_scrape_shard(doomed, uid, 0, env=ENV))

    async def mid_artist() -> bool:
        async with pool.acquire() as conn:
            return bool(await conn.fetchval(
                """SELECT count(*) >= 4 FROM scrape_songs s JOIN run_items i
                     ON i.run_id = s.run_id AND i.item_id = s.artist_item
                    WHERE s.run_id = $1 AND i.state = 'pending'""", run.id))  # fmt: skip

    await wait_for_async(mid_artist, within=30, interval=0.01, what="a shard mid-artist",
                         give_up=lambda: "the shard ended" if task.done() else None)  # fmt: skip
    task.cancel()  # the process dies: the batch in flight is rolled back
    with pytest.raises(asyncio.CancelledError):
        await task
    doomed.terminate()
    gen.config.page_latency = 0.0
    report = await run_scrape_shard(pool, uid, 0, env=ENV)
    assert report.finished and report.attempt == 2
    got = await totals(pool, run.id)
    assert (got["found"], got["new"], got["dup"], got["non_songs"]) == (
        want["songs_found"], len(want["new"]), 0, want["non_songs"])  # fmt: skip
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tracks") == len(want["new"])
        assert await conn.fetchval("SELECT max(attempts) FROM run_items") == 2


async def test_429_and_500_within_a_global_rate_limit(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(4)
    want = cat.expected(names, 5)
    gen.config.update({"throttle_every": 9, "fail_every": 13, "retry_after": 1.0})
    budget, window = 20, 2.0
    m = manifest(base, names, maxSongsPerArtist=5, shards=2, concurrency=4, retry=FAST_RETRY,
                 rateLimit={"genius": {"requestsPerMinute": budget}})  # fmt: skip
    run = await scrape(pool, m, window=window)
    got = await totals(pool, run.id)
    assert (got["new"], got["failed"], got["artists_done"]) == (len(want["new"]), 0, 4)
    statuses = [e["status"] for e in gen.log]
    assert statuses.count(429) >= 3 and statuses.count(500) >= 3
    times = [e["t"] for e in gen.log if e["upstream"] == "genius"]
    assert len(times) > 2 * budget  # the budget had to be reused
    assert max_in_window(times, window) <= budget


async def test_spotify_enrichment_matches_and_records_misses(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    cat, base = gen.catalog, fake[1]
    names = cat.names(3)
    new: dict[int, Any] = cat.expected(names, 6)["new"]
    run = await scrape(pool, manifest(base, names, maxSongsPerArtist=6, with_spotify=True))
    got = await totals(pool, run.id)
    on_spotify = {gid for gid, s in new.items() if s.on_spotify}
    assert 0 < len(on_spotify) < len(new)
    assert (got["matched"], got["missed"]) == (len(on_spotify), len(new) - len(on_spotify))
    async with pool.acquire() as conn:
        rows = {r["genius_id"]: r for r in await conn.fetch("SELECT * FROM tracks")}
    for gid, r in rows.items():
        data = json.loads(r["spotify_data"])
        if gid in on_spotify:
            assert data["matched"] and data["id"] == f"sp{gid}"  # never the decoy cover
            assert r["popularity_score"] == new[gid].popularity
            assert r["explicit"] is new[gid].explicit
        else:
            assert data == {"matched": False, "query": data["query"], "results": 1}
            assert r["popularity_score"] is None


async def test_unknown_artist_and_a_dead_upstream_fail_only_artists(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    base = fake[1]
    name = gen.catalog.names(1)[0]
    run = await scrape(pool, manifest(base, ["Nobody Known Here", name], maxSongsPerArtist=2))
    async with pool.acquire() as conn:
        items = {r["payload"]: r for r in await conn.fetch("SELECT * FROM run_items")}
    assert items[name]["state"] == "done"
    assert items["Nobody Known Here"]["state"] == "failed"
    assert (
        "no Genius artist named exactly 'Nobody Known Here'"
        in items["Nobody Known Here"]["last_error"]
    )
    assert (await totals(pool, run.id))["artists_failed"] == 1
    gen.config.fail_next = 10_000  # Genius is down for good
    m = manifest(base, [name], retry=FAST_RETRY | {"requestRetries": 1})
    down = await scrape(pool, m)
    async with pool.acquire() as conn:
        err = await conn.fetchval("SELECT last_error FROM run_items WHERE run_id = $1", down.id)
    assert err.startswith("artist search failed: genius: HTTP 500")


async def test_a_refused_token_stops_the_shard(
    pool: asyncpg.Pool, fake: tuple[FakeGenius, str], gen: FakeGenius
) -> None:
    with pytest.raises(FatalError, match="refused the access token"):
        await scrape(
            pool, manifest(fake[1], gen.catalog.names(1)), env={"GENIUS_ACCESS_TOKEN": "x"}
        )
    with pytest.raises(FatalError, match="GENIUS_ACCESS_TOKEN is not set"):
        await scrape(pool, manifest(fake[1], gen.catalog.names(1)), env={})
