"""The `embedding` analyzer through the CLI as users run it (issue 13): 2,000 tracks in
a 2-shard run with one shard SIGKILLed mid-run end with exactly one vector per track,
and `rap-analyzer search` / `similar` answer from them - with the real model."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.embedding.model import MODEL_NAME
from analyzer_runtime.seed import seed
from tests.integration.clirun import cli, spawn
from tests.integration.test_exactly_once import _shard_pids, _yaml

N = 2000
# Real lyrics are ~3 model windows of 256 tokens each: 2,000 of them are ~15 min of
# CPU on 2 cores. The first words of each keep the test to about a minute and still
# run every part of the pipeline (tokenizer, windows, forward pass, storage).
WORDS = 14


async def _short_corpus(pool: asyncpg.Pool, n: int) -> None:
    await seed(pool, n)
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE tracks SET lyrics = array_to_string(
                   (regexp_split_to_array(trim(lyrics), '\\s+'))[1:$1], ' ')""",
            WORDS,
        )
        # Two tracks with the same text would tie for a query equal to one of them.
        await conn.execute(
            """UPDATE tracks t SET lyrics = t.lyrics || ' ' || t.id
                 FROM (SELECT lyrics FROM tracks GROUP BY lyrics HAVING count(*) > 1) d
                WHERE t.lyrics = d.lyrics"""
        )
        assert await conn.fetchval("SELECT count(DISTINCT lyrics) FROM tracks") == n


async def test_a_sigkilled_shard_leaves_exactly_one_vector_per_track_and_search_works(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await _short_corpus(pool, N)
    path = _yaml(tmp_path, "embed", "{analyzer: embedding, shards: 2, batchSize: 25}")
    # Short leases: the killed shard's batch is taken over in 2 s, not 30.
    runner = spawn("run", str(path), "--no-progress", db_url=db_url, RAP_LEASE_SECONDS="2")

    async def under_way() -> bool:
        async with pool.acquire() as conn:
            done = await conn.fetchval("SELECT coalesce(min(processed), 0) FROM run_shards")
        return bool(done >= 100) or runner.poll() is not None

    await wait_for_async(under_way, within=240, interval=0.05, what="100 tracks in every shard")
    assert runner.poll() is None, "the run ended before a shard could be killed"
    victims = _shard_pids(runner.pid)
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    out, errs = await asyncio.to_thread(runner.communicate, timeout=600)
    assert runner.returncode == 0, out + errs
    assert f"{N}/{N} (100.0%)" in out and "Succeeded" in out
    assert re.search(r"Throughput: +[0-9.]+ tracks/s", out), out

    async with pool.acquire() as conn:
        run_id, uid = await conn.fetchrow("SELECT id, uid FROM runs")
        attempts = await conn.fetchval("SELECT max(attempt) FROM run_shards")
        assert attempts >= 2, "the killed shard was never retried"
        # Exactly one vector per track, of this model, written by this run.
        assert await conn.fetchval("SELECT count(*) FROM track_embeddings") == N
        assert (
            await conn.fetchval(
                """SELECT count(DISTINCT track_id) FROM track_embeddings
                    WHERE model = $1 AND run_id = $2""",
                MODEL_NAME,
                run_id,
            )
            == N
        )
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == N
        data = json.loads(
            await conn.fetchval(
                "SELECT analysis_data FROM analysis_results WHERE analyzer_type = 'embedding'"
                " LIMIT 1"
            )
        )
        assert data == {"model": MODEL_NAME, "windows": 1, "dim": 384}
        assert await conn.fetchval("SELECT sum(processed) FROM run_shards") == N
        vec = await conn.fetchval("SELECT embedding FROM track_embeddings LIMIT 1")
        vec = vec.to_numpy()
        assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
        target_id, target_lyrics = await conn.fetchrow(
            "SELECT id, lyrics FROM tracks ORDER BY id OFFSET 777 LIMIT 1"
        )

    # Running it again finds nothing left to do and writes nothing.
    res = await asyncio.to_thread(cli, "run", "--uid", uid, "--no-progress", db_url=db_url)
    assert res.returncode == 0 and "already succeeded" in res.stdout, res.stdout + res.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM track_embeddings") == N

    res = await asyncio.to_thread(
        cli, "search", "money on my mind all night", "--json", db_url=db_url
    )
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads(res.stdout)
    assert len(got["results"]) == 10
    distances = [h["distance"] for h in got["results"]]
    assert distances == sorted(distances)

    # The query IS a track's lyrics: that track comes first, at distance ~0.
    res = await asyncio.to_thread(cli, "search", target_lyrics, "--json", db_url=db_url)
    assert res.returncode == 0, res.stdout + res.stderr
    first = json.loads(res.stdout)["results"][0]
    assert first["track_id"] == target_id and first["distance"] < 1e-4, first

    res = await asyncio.to_thread(cli, "similar", str(target_id), "--limit", "5", "--json",
                                  db_url=db_url)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    similar = json.loads(res.stdout)["results"]
    assert len(similar) == 5 and target_id not in [h["track_id"] for h in similar]

    # The table a person reads.
    res = await asyncio.to_thread(cli, "search", target_lyrics, "--limit", "3", db_url=db_url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "distance" in res.stdout and str(target_id) in res.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "   "], 2, "the query is empty"),
        (["search", "x" * 1001], 2, "at most 1000"),
        (["search", "love"], 1, "rap-analyzer run examples/embedding-run.yaml"),
        (["similar", "999999"], 1, "no track with id 999999"),
        (["similar", "0"], 2, "greater than or equal to 1"),
    ],
    ids=["empty", "too-long", "no-embeddings", "unknown-track", "bad-id"],
)
async def test_search_errors_are_one_clear_line(
    pool: asyncpg.Pool, db_url: str, args: list[str], code: int, message: str
) -> None:
    await seed(pool, 5)
    res = await asyncio.to_thread(cli, *args, db_url=db_url)
    assert res.returncode == code, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr


async def test_similar_for_a_track_without_a_vector_names_the_run_to_apply(
    pool: asyncpg.Pool, db_url: str
) -> None:
    await seed(pool, 3)
    async with pool.acquire() as conn:
        a, b = [r["id"] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id LIMIT 2")]
        await conn.execute(
            "INSERT INTO track_embeddings (track_id, model, embedding) VALUES ($1, $2, $3)",
            a,
            MODEL_NAME,
            np.eye(384, dtype=np.float32)[0],
        )
    res = await asyncio.to_thread(cli, "similar", str(b), db_url=db_url)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"track {b} has no embedding" in res.stderr
    assert "examples/embedding-run.yaml" in res.stderr
