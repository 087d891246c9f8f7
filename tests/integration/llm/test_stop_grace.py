"""A shard stopped (SIGTERM: Kueue preempting its Job, a drain) while the provider is
slow gives its items back within the stop grace: nothing charged as a crash, no
result written twice, and the next pod finishes them."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.waiting import wait_for_async

from analyzer_runtime import worker
from analyzer_runtime.seed import seed
from tests.integration.llm.support import analyzer_for, manifest, plan, status

pytestmark = pytest.mark.timeout(180)


async def _held(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval("SELECT count(*) FROM run_items WHERE claimed_by IS NOT NULL")
        )


async def test_a_stop_mid_batch_gives_the_leases_back_within_the_grace(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    await seed(pool, 12)
    fake.configure(latency_p50=60.0, latency_p95=60.0)  # the batch cannot finish in time
    m = manifest("stop", fake.url, batchSize=4, llm={"concurrency": 4})
    run = await plan(pool, m, "uid-stop")
    stop = worker.StopFlag(grace=0.5)
    shard = asyncio.create_task(
        worker.run_shard(pool, run.uid, 0, stop=stop, analyzer=analyzer_for(m))
    )
    # The shard leased its first batch and asks the provider.
    await wait_for_async(lambda: _held(pool), within=30, interval=0.05, what="a leased batch")
    stopped_at = time.monotonic()
    stop.event.set()
    report = await asyncio.wait_for(shard, 30)
    elapsed = time.monotonic() - stopped_at
    assert report.stopped and not report.finished
    # The grace (0.5 s) plus giving the leases back; never the 60 s answer.
    assert elapsed < 10, elapsed
    assert await _held(pool) == 0
    async with pool.acquire() as conn:
        crashes = await conn.fetchval("SELECT sum(crashes) FROM run_items")
        results = await conn.fetchval("SELECT count(*) FROM analysis_results")
    assert crashes == 0
    assert results == 0

    # The next pod (the readmitted Job) finishes every item, each once.
    fake.configure(latency_p50=0.0, latency_p95=0.0)
    report = await worker.run_shard(pool, run.uid, 0, analyzer=analyzer_for(m))
    assert report.finished
    st = await status(pool, run.uid)
    assert (st["processed"], st["failed"]) == (12, 0)
    async with pool.acquire() as conn:
        per_track = await conn.fetch(
            "SELECT track_id, count(*) AS n FROM analysis_results GROUP BY track_id"
        )
        crashes = await conn.fetchval("SELECT sum(crashes) FROM run_items")
    assert len(per_track) == 12 and {r["n"] for r in per_track} == {1}
    assert crashes == 0
