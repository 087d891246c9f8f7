"""The shard protocol against a real Postgres: exact counters, no double counting."""

import asyncpg
import pytest

from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.shards import BatchExtras, Claimer, ItemUpdate


@pytest.mark.parametrize(("n", "shards"), [(10, 3), (57718, 7), (5, 8), (1, 1), (0, 4)])
def test_assign_shards_is_even_and_contiguous(n: int, shards: int) -> None:
    got = shard_ledger.assign_shards(n, shards)
    assert len(got) == n
    sizes = [got.count(s) for s in range(shards)]
    assert max(sizes) - min(sizes) <= 1
    assert got == sorted(got)  # contiguous blocks in id order


async def _plan(
    conn: asyncpg.Connection, uid: str, ids: list[int], shards: int
) -> shard_ledger.PlanResult:
    return await shard_ledger.record_plan(
        conn, uid=uid, name="r", namespace="ns", kind="AnalysisRun", spec={"analyzer": "x"},
        shards=shards, analyzer_type="x", model_version="1", item_ids=ids,
    )  # fmt: skip


async def test_plan_is_recorded_once_per_uid(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await _plan(conn, "uid-1", list(range(100, 110)), 3)
        again = await _plan(conn, "uid-1", list(range(100, 200)), 5)
        assert first.created and not again.created
        assert again.run.id == first.run.id and again.run.total == 10
        assert await conn.fetchval("SELECT count(*) FROM run_items") == 10
        shards = await shard_ledger.read_shards(conn, first.run.id)
    assert [s.total for s in shards] == [4, 3, 3]  # i*3//10 -> 0,0,0,0,1,1,1,2,2,2
    assert all(s.state == "pending" and s.processed == 0 for s in shards)


async def test_empty_shards_are_done_at_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        plan = await _plan(conn, "uid-small", [7], 3)
        states = [s.state for s in await shard_ledger.read_shards(conn, plan.run.id)]
    assert states == ["pending", "done", "done"]


async def test_replayed_batch_is_counted_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        plan = await _plan(conn, "uid-2", [1, 2, 3, 4], 1)
        rid = plan.run.id
        me = Claimer.new(30)
        assert await shard_ledger.claim_shard(conn, rid, 0) == 1
        batch = await shard_ledger.next_batch(conn, rid, 0, 3, me)
        assert [c.item_id for c in batch] == [1, 2, 3] and all(c.attempts == 1 for c in batch)
        ups = [
            ItemUpdate(1, "done"),
            ItemUpdate(2, "failed", "boom"),
            ItemUpdate(3, "skipped", "empty"),
        ]
        moved = await shard_ledger.commit_batch(conn, rid, 0, ups, me, extras=BatchExtras(10, 5, 1))
        assert moved == {"done": 1, "failed": 1, "skipped": 1}
        # A stale pod commits the same batch again: items do not move, counters do not grow.
        assert await shard_ledger.commit_batch(conn, rid, 0, ups, me) == {
            "done": 0,
            "failed": 0,
            "skipped": 0,
        }
        (s,) = await shard_ledger.read_shards(conn, rid)
        assert (s.processed, s.failed, s.skipped) == (1, 1, 1)
        assert (s.tokens_prompt, s.tokens_completion, s.fallback_used) == (10, 5, 1)
        assert not await shard_ledger.finish_shard(conn, rid, 0)  # item 4 still pending
        rest = await shard_ledger.next_batch(conn, rid, 0, 3, me)
        assert [c.item_id for c in rest] == [4]
        await shard_ledger.commit_batch(conn, rid, 0, [ItemUpdate(4, "done")], me)
        assert await shard_ledger.finish_shard(conn, rid, 0)
        (s,) = await shard_ledger.read_shards(conn, rid)
        assert s.state == "done" and s.processed == 2 and s.finished_at is not None
        err = await conn.fetchval("SELECT last_error FROM run_items WHERE item_id = 2")
        assert err == "boom"


async def test_a_failed_write_rolls_back_the_whole_batch(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        plan = await _plan(conn, "uid-3", [1, 2], 1)

        me = Claimer.new(30)
        await shard_ledger.next_batch(conn, plan.run.id, 0, 2, me)

        async def bad_write(c: asyncpg.Connection, ids: frozenset[int]) -> None:
            assert ids == {1}
            await c.execute("INSERT INTO tracks (title, artist) VALUES ('x', 'y')")
            raise RuntimeError("disk full")

        with pytest.raises(RuntimeError):
            await shard_ledger.commit_batch(
                conn, plan.run.id, 0, [ItemUpdate(1, "done")], me, write=bad_write
            )
        (s,) = await shard_ledger.read_shards(conn, plan.run.id)
        assert s.processed == 0
        assert await conn.fetchval("SELECT count(*) FROM tracks") == 0
        assert await conn.fetchval("SELECT count(*) FROM run_items WHERE state = 'pending'") == 2
