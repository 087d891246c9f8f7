"""Claims under contention (issue 16): 64 concurrent claimers, each on its own
connection, loop next_batch -> commit_batch over one run. No item is held by two
live claimers at once, no deadlock, every item done exactly once. bench/million.py
measures the same at a million items."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.shards import Claimer, ItemUpdate

CLAIMERS = 64
BATCH = 5


async def _deadlocks(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
    )


@pytest.mark.parametrize(("items", "shards"), [(1600, 4), (800, 1)], ids=["4-shards", "1-shard"])
async def test_64_concurrent_claimers_take_every_item_exactly_once(
    db_url: str, items: int, shards: int
) -> None:
    admin = await asyncpg.connect(db_url)
    plan = await shard_ledger.record_plan(
        admin, uid="contention", name="contention", namespace=None, kind="AnalysisRun",
        spec={}, shards=shards, analyzer_type="x", model_version="1",
        item_ids=range(1, items + 1),
    )  # fmt: skip
    rid = plan.run.id
    # What the commits wrote: one row per item per write, so a double write shows.
    await admin.execute("CREATE TABLE written (item_id bigint NOT NULL, claimer text NOT NULL)")
    deadlocks_before = await _deadlocks(admin)

    conns = [await asyncpg.connect(db_url) for _ in range(CLAIMERS)]
    # Heartbeats share a small pool, as `holding_leases` does in a shard process; they
    # renew far more often than in production, to race renewals against commits.
    beats = await create_pool(db_url, min_size=4, max_size=4)
    holder: dict[int, str] = {}  # item -> the claimer holding it right now
    double_holds: list[tuple[int, str, str]] = []
    errors: list[BaseException] = []
    claimed = Counter[int]()
    stop = asyncio.Event()

    async def write(conn: asyncpg.Connection, ids: frozenset[int], who: str) -> None:
        await conn.executemany("INSERT INTO written VALUES ($1, $2)", [(i, who) for i in ids])

    async def heartbeat(shard: int, me: Claimer) -> None:
        while not stop.is_set():
            try:
                async with beats.acquire() as conn:
                    await shard_ledger.renew_leases(conn, rid, shard, me)
            except asyncpg.PostgresError as exc:
                errors.append(exc)
            await asyncio.sleep(0.02)

    async def claimer(k: int) -> None:
        conn, me, shard = conns[k], Claimer.new(600.0), k % shards
        beat = asyncio.create_task(heartbeat(shard, me))
        try:
            await shard_ledger.claim_shard(conn, rid, shard)
            while True:
                batch = await shard_ledger.next_batch(conn, rid, shard, BATCH, me)
                if not batch:
                    return
                for c in batch:
                    claimed[c.item_id] += 1
                    if c.item_id in holder:
                        double_holds.append((c.item_id, holder[c.item_id], me.identity))
                    holder[c.item_id] = me.identity
                moved = await shard_ledger.commit_batch(
                    conn, rid, shard, [ItemUpdate(c.item_id, "done") for c in batch], me,
                    write=lambda c, ids, who=me.identity: write(c, ids, who),
                )  # fmt: skip
                assert moved["done"] == len(batch)
                for c in batch:
                    del holder[c.item_id]
        except asyncpg.PostgresError as exc:
            errors.append(exc)
        finally:
            beat.cancel()

    try:
        await asyncio.wait_for(asyncio.gather(*(claimer(k) for k in range(CLAIMERS))), 120)
    finally:
        stop.set()
        for c in conns:
            await c.close()  # a backend reports its statistics (deadlocks) as it exits
        await beats.close()

    assert not errors, errors[:3]  # a deadlock would show here as DeadlockDetectedError
    assert not double_holds, double_holds[:5]
    assert sorted(claimed) == list(range(1, items + 1))
    assert set(claimed.values()) == {1}  # leases never expired: each item claimed once
    written = await admin.fetch("SELECT item_id, count(*) AS n FROM written GROUP BY item_id")
    assert len(written) == items and all(r["n"] == 1 for r in written)
    states = await admin.fetch(
        "SELECT state, count(*), max(attempts) FROM run_items WHERE run_id = $1 GROUP BY state",
        rid,
    )
    assert [tuple(r) for r in states] == [("done", items, 1)]
    shard_rows = await shard_ledger.read_shards(admin, rid)
    assert sum(s.processed for s in shard_rows) == items
    # Several claimers really did work on each shard at once (otherwise this tests nothing).
    by_claimer = await admin.fetchval("SELECT count(DISTINCT claimer) FROM written")
    assert by_claimer > shards
    # A backstop for `errors`: the server's own count (backends flush it as they exit).
    assert await _deadlocks(admin) == deadlocks_before
    await admin.close()
