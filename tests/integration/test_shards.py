"""The shard protocol end to end with real shard processes (`python -m analyzer_runtime`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.contract.status import ShardCounters
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.planner import Selection
from analyzer_runtime.seed import seed

ANALYZER = "algorithmic"


def _shard_cmd(uid: str, shard: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "analyzer_runtime",
        "analyze",
        "--run-id",
        uid,
        "--shard",
        str(shard),
    ]


def _env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": db_url, "METRICS_PORT": "0"}


async def _plan(
    pool: asyncpg.Pool, uid: str, shards: int, batch: int = 50, **sel: object
) -> shard_ledger.Run:
    from analyzer_runtime.analyzers import registry

    a = registry.create(ANALYZER)
    async with pool.acquire() as conn:
        res = await planner.plan_analysis(
            conn, uid=uid, name=uid, namespace=None,
            spec={"analyzer": ANALYZER, "shards": shards, "batchSize": batch},
            # the parametrized selection is a dict of Selection's fields
            selection=Selection(**sel), shards=shards,  # type: ignore[arg-type]
            analyzer_type=a.analyzer_type, model_version=a.version,
        )  # fmt: skip
    return res.run


async def _counts(pool: asyncpg.Pool, run: shard_ledger.Run) -> tuple[int, int, int, int]:
    async with pool.acquire() as conn:
        shards = await shard_ledger.read_shards(conn, run.id)
        rows = await conn.fetchval(
            "SELECT count(*) FROM analysis_results WHERE analyzer_type = $1", run.analyzer_type
        )
    return (
        sum(s.processed for s in shards),
        sum(s.failed for s in shards),
        sum(s.skipped for s in shards),
        rows,
    )


async def _run(db_url: str, uid: str, shard: int) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        _shard_cmd(uid, shard),
        env=_env(db_url),
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_two_parallel_shards_write_one_result_per_track(
    pool: asyncpg.Pool, db_url: str
) -> None:
    await seed(pool, 400)
    run = await _plan(pool, "two-shards", shards=2)
    assert run.total == 400
    a, b = await asyncio.gather(_run(db_url, run.uid, 0), _run(db_url, run.uid, 1))
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    processed, failed, skipped, rows = await _counts(pool, run)
    assert processed + failed + skipped == 400
    assert rows == processed
    async with pool.acquire() as conn:
        distinct = await conn.fetchval("SELECT count(DISTINCT track_id) FROM analysis_results")
        pending = await conn.fetchval("SELECT count(*) FROM run_items WHERE state = 'pending'")
        states = [s.state for s in await shard_ledger.read_shards(conn, run.id)]
    assert distinct == rows and pending == 0 and states == ["done", "done"]

    # Running a finished shard again changes nothing.
    again = await _run(db_url, run.uid, 0)
    assert again.returncode == 0, again.stderr
    assert await _counts(pool, run) == (processed, failed, skipped, rows)

    # A new run over the same analyzer with onlyMissing (the default) selects nothing.
    second = await _plan(pool, "after-finished", shards=2)
    assert second.total == 0


async def _shards_reach(
    pool: asyncpg.Pool, run: shard_ledger.Run, pred: Callable[[list[ShardCounters]], bool]
) -> None:
    async def reached() -> bool:
        async with pool.acquire() as conn:
            return pred(await shard_ledger.read_shards(conn, run.id))

    await wait_for_async(reached, within=120, interval=0.02, what="the shards' counters")


async def test_sigkill_mid_run_then_resume_is_exact(pool: asyncpg.Pool, db_url: str) -> None:
    await seed(pool, 1500)
    run = await _plan(pool, "killed", shards=1, batch=10)
    proc = subprocess.Popen(_shard_cmd(run.uid, 0), env=_env(db_url), stderr=subprocess.PIPE)
    try:
        await _shards_reach(pool, run, lambda s: s[0].processed >= 30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    processed, failed, skipped, rows = await _counts(pool, run)
    assert 30 <= processed + failed + skipped < 1500, "kill came too late to test a resume"
    assert rows == processed  # the counters and the rows agree even after the kill

    resumed = await _run(db_url, run.uid, 0)
    assert resumed.returncode == 0, resumed.stderr
    processed, failed, skipped, rows = await _counts(pool, run)
    assert processed + failed + skipped == 1500
    assert rows == processed
    async with pool.acquire() as conn:
        (shard,) = await shard_ledger.read_shards(conn, run.id)
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT track_id FROM analysis_results GROUP BY 1 HAVING count(*) > 1) d"
        )
    assert shard.attempt == 2 and shard.state == "done" and dupes == 0


async def test_sigterm_finishes_the_batch_and_exits_unfinished(
    pool: asyncpg.Pool, db_url: str
) -> None:
    await seed(pool, 1500)
    run = await _plan(pool, "terminated", shards=1, batch=10)
    proc = subprocess.Popen(
        _shard_cmd(run.uid, 0), env=_env(db_url), stderr=subprocess.PIPE, text=True
    )
    try:
        await _shards_reach(pool, run, lambda s: s[0].processed >= 20)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # 143: not finished, so a Job would retry this index rather than count it complete.
    assert proc.returncode == 143, stderr
    processed, failed, skipped, rows = await _counts(pool, run)
    assert processed + failed + skipped < 1500
    assert rows == processed
    async with pool.acquire() as conn:
        # No batch half-done: every item is either pending or finished with its counter.
        finished = await conn.fetchval("SELECT count(*) FROM run_items WHERE state <> 'pending'")
    assert finished == processed + failed + skipped


async def test_unknown_run_is_a_fatal_error_with_one_line(db_url: str) -> None:
    res = await _run(db_url, "no-such-run", 0)
    assert res.returncode == 1
    assert "not planned" in res.stderr and "Traceback" not in res.stderr


async def test_unreachable_database_exits_3_without_secrets(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://bob:s3cretpw@127.0.0.1:1/nope",
        "DB_CONNECT_TIMEOUT": "1",
        "METRICS_PORT": "0",
    }
    res = await asyncio.to_thread(
        subprocess.run, _shard_cmd("x", 0), env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 3
    assert "cannot connect" in res.stderr and "s3cretpw" not in res.stderr
