"""Leases on claimed items against a real Postgres: concurrent claimers never share an
item, only the holder completes it, crashes are charged per item and only on lease
expiry, and suspects go alone. Lease expiry is simulated by moving `lease_expires`
into the past: the same row state a real expiry leaves, without waiting for it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.shards import Claimer, ItemUpdate


async def _plan(conn: asyncpg.Connection, uid: str, n: int, shards: int = 1) -> int:
    res = await shard_ledger.record_plan(
        conn, uid=uid, name=uid, namespace=None, kind="AnalysisRun", spec={"analyzer": "x"},
        shards=shards, analyzer_type="x", model_version="1", item_ids=list(range(1, n + 1)),
    )  # fmt: skip
    return res.run.id


async def _expire(conn: asyncpg.Connection, run_id: int) -> None:
    """Time passes: every lease on an unfinished item runs out."""
    await conn.execute(
        """UPDATE run_items SET lease_expires = now() - interval '1 second'
            WHERE run_id = $1 AND claimed_by IS NOT NULL AND state = 'pending'""",
        run_id,
    )


def _ids(items: list[shard_ledger.ClaimedItem]) -> list[int]:
    return [c.item_id for c in items]


async def test_concurrent_claimers_take_disjoint_items(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rid = await _plan(conn, "disjoint", 100)
    claimers = [Claimer.new(30) for _ in range(4)]

    async def claim(c: Claimer) -> list[int]:
        async with pool.acquire() as conn:
            return _ids(await shard_ledger.next_batch(conn, rid, 0, 30, c))

    got = await asyncio.gather(*(claim(c) for c in claimers))
    flat = [i for g in got for i in g]
    assert len(flat) == len(set(flat)) == 100  # every item once, nobody twice
    async with pool.acquire() as conn:
        # Nothing claimable while every lease is live: a fifth claimer gets nothing...
        assert await shard_ledger.next_batch(conn, rid, 0, 30, Claimer.new(30)) == []
        # ...and waits, it does not finish the shard.
        assert not await shard_ledger.finish_shard(conn, rid, 0)
        wait = await shard_ledger.seconds_to_next_lease(conn, rid, 0)
        assert wait is not None and 25 < wait <= 30


async def test_only_the_holder_completes_and_writes(pool: asyncpg.Pool) -> None:
    written: list[frozenset[int]] = []

    async def write(_: asyncpg.Connection, ids: frozenset[int]) -> None:
        written.append(ids)

    async with pool.acquire() as conn:
        rid = await _plan(conn, "holder", 4)
        a, b = Claimer.new(30), Claimer.new(30)
        assert _ids(await shard_ledger.next_batch(conn, rid, 0, 2, a)) == [1, 2]
        ups = [ItemUpdate(1, "done"), ItemUpdate(2, "done")]
        # B never held them: nothing moves, nothing is written, nothing counted.
        assert await shard_ledger.commit_batch(conn, rid, 0, ups, b, write=write) == {
            "done": 0, "failed": 0, "skipped": 0,
        }  # fmt: skip
        assert written == []
        # A's lease expires and B takes the items over: A's late commit is refused too.
        await _expire(conn, rid)
        assert _ids(await shard_ledger.next_batch(conn, rid, 0, 2, b)) == [1]  # a suspect: alone
        moved = await shard_ledger.commit_batch(conn, rid, 0, ups, a, write=write)
        assert moved["done"] == 1 and written == [frozenset({2})]  # 2 was still A's
        moved = await shard_ledger.commit_batch(conn, rid, 0, ups[:1], b, write=write)
        assert moved["done"] == 1 and written[-1] == frozenset({1})
        (s,) = await shard_ledger.read_shards(conn, rid)
        assert s.processed == 2


async def test_crashes_are_charged_on_expiry_only_and_suspects_go_alone(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        rid = await _plan(conn, "suspects", 8)
        dead = Claimer.new(30)
        assert _ids(await shard_ledger.next_batch(conn, rid, 0, 5, dead)) == [1, 2, 3, 4, 5]
        # A released lease (a stop, not a crash) charges nothing.
        polite = Claimer.new(30)
        await shard_ledger.release_leases(conn, rid, dead)
        first = await shard_ledger.next_batch(conn, rid, 0, 5, polite)
        assert _ids(first) == [1, 2, 3, 4, 5] and all(c.crashes == 0 for c in first)
        # The holder dies: its leases expire with the items unfinished.
        await _expire(conn, rid)
        heir = Claimer.new(30)
        for expected in (1, 2, 3, 4, 5):  # each suspect alone, charged one crash
            (c,) = await shard_ledger.next_batch(conn, rid, 0, 5, heir)
            assert (c.item_id, c.crashes, c.attempts) == (expected, 1, 3 if expected else 0)
            await shard_ledger.commit_batch(conn, rid, 0, [ItemUpdate(c.item_id, "done")], heir)
        # Healthy items after the suspects go in one batch again, uncharged.
        rest = await shard_ledger.next_batch(conn, rid, 0, 5, heir)
        assert _ids(rest) == [6, 7, 8] and all(c.crashes == 0 for c in rest)


async def test_suspect_batches_stop_before_the_next_suspect(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rid = await _plan(conn, "prefix", 6)
        a = Claimer.new(30)
        await shard_ledger.next_batch(conn, rid, 0, 6, a)
        await shard_ledger.commit_batch(conn, rid, 0, [ItemUpdate(i, "done") for i in (1, 2, 3)], a)
        await shard_ledger.release_leases(conn, rid, a)  # give back 4, 5 and 6
        b = Claimer.new(30)
        assert _ids(await shard_ledger.next_batch(conn, rid, 0, 1, b)) == [4]
        await _expire(conn, rid)  # B dies holding 4
        c = Claimer.new(30)
        (suspect,) = await shard_ledger.next_batch(conn, rid, 0, 6, c)
        assert (suspect.item_id, suspect.crashes) == (4, 1)
        assert _ids(await shard_ledger.next_batch(conn, rid, 0, 6, c)) == [5, 6]


async def test_heartbeat_renews_and_notices_lost_leases(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rid = await _plan(conn, "renew", 3)
        a = Claimer.new(5)
        await shard_ledger.next_batch(conn, rid, 0, 3, a)
        before = await conn.fetchval("SELECT max(lease_expires) FROM run_items")
        a.lease_seconds = 60
        assert await shard_ledger.renew_leases(conn, rid, 0, a) == 3
        after = await conn.fetchval("SELECT min(lease_expires) FROM run_items")
        assert after > before
        hb = await conn.fetchval("SELECT heartbeat_at FROM run_shards WHERE run_id = $1", rid)
        assert hb is not None
        await _expire(conn, rid)
        b = Claimer.new(30)
        await shard_ledger.next_batch(conn, rid, 0, 3, b)  # takes item 1 (a suspect)
        assert await shard_ledger.renew_leases(conn, rid, 0, a) == 2


async def test_work_on_an_item_no_longer_held_raises_lease_lost(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        rid = await _plan(conn, "lost", 1)
        a, b = Claimer.new(30), Claimer.new(30)
        await shard_ledger.next_batch(conn, rid, 0, 1, a)
        wrote: list[frozenset[int]] = []

        async def write(_: asyncpg.Connection, ids: frozenset[int]) -> None:
            wrote.append(ids)

        await shard_ledger.commit_batch(conn, rid, 0, [], a, write=write, holding=[1])
        assert wrote == [frozenset({1})]
        await _expire(conn, rid)
        await shard_ledger.next_batch(conn, rid, 0, 1, b)
        with pytest.raises(shard_ledger.LeaseLost):
            await shard_ledger.commit_batch(conn, rid, 0, [], a, write=write, holding=[1])
        assert len(wrote) == 1


# ---- random interleavings ------------------------------------------------------------

ITEMS = 12
MAX_CRASHES = 2

ops = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.integers(0, 2), st.integers(1, 5)),
        st.tuples(st.just("complete"), st.integers(0, 2), st.sampled_from(["done", "failed"])),
        st.tuples(st.just("crash"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("release"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("expire"), st.just(0), st.just(0)),
    ),
    max_size=30,
)


@dataclass
class Model:
    """The protocol as the test understands it, kept beside the database: who holds
    each unfinished item, whose lease ran out, and the crashes charged so far."""

    holder: dict[int, str] = field(default_factory=dict)
    expired: set[int] = field(default_factory=set)
    crashes: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)

    def claimed(self, item: int, who: str) -> int:
        if item in self.expired:  # its lease ran out unfinished: that is a crash
            self.crashes[item] = self.crashes.get(item, 0) + 1
            self.expired.discard(item)
        self.holder[item] = who
        return self.crashes.get(item, 0)

    def moves(self, items: set[int], who: str) -> set[int]:
        moved = {i for i in items if self.holder.get(i) == who and i not in self.finished}
        for i in moved:
            self.finished.add(i)
            del self.holder[i]
            self.expired.discard(i)
        return moved


async def _scenario(url: str, uid: str, steps: list[tuple[str, int, object]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS prop_results (run text, item bigint, PRIMARY KEY (run, item))"
        )
        rid = await _plan(conn, uid, ITEMS)
        claimers = [Claimer.new(30) for _ in range(3)]
        model = Model()

        async def claim(c: Claimer, size: int) -> list[shard_ledger.ClaimedItem]:
            got = await shard_ledger.next_batch(conn, rid, 0, size, c)
            # Suspects go alone; the charges are exactly the expiries of unfinished items.
            assert len(got) <= 1 or all(x.crashes == 0 for x in got), got
            for x in got:
                assert x.crashes == model.claimed(x.item_id, c.identity), x
            return got

        async def commit(c: Claimer, ups: list[ItemUpdate]) -> None:
            done = {u.item_id for u in ups if u.state == "done"}

            async def write(w: asyncpg.Connection, ids: frozenset[int]) -> None:
                # A plain INSERT: a second write of an item violates the primary key.
                await w.executemany(
                    "INSERT INTO prop_results VALUES ($1, $2)",
                    [(uid, i) for i in sorted(ids & done)],
                )

            moved = await shard_ledger.commit_batch(conn, rid, 0, ups, c, write=write)
            expected = model.moves({u.item_id for u in ups}, c.identity)
            assert sum(moved.values()) == len(expected)  # only the holder's items move

        for op, who, arg in steps:
            c = claimers[who]
            if op == "claim":
                # the step table's args are str | int; a claim step holds an int
                await claim(c, int(arg))  # type: ignore[call-overload]
            elif op == "complete":
                # a complete step's arg is an item state name (done/failed)
                await commit(c, [ItemUpdate(i, str(arg)) for i in sorted(c.held)])  # type: ignore[arg-type]
            elif op == "release":
                for i in c.held:
                    if model.holder.get(i) == c.identity:
                        del model.holder[i]
                        model.expired.discard(i)
                await shard_ledger.release_leases(conn, rid, c)
            elif op == "crash":  # the process dies: its leases stay until they expire
                claimers[who] = Claimer.new(30)
            elif op == "expire":
                model.expired |= set(model.holder) - model.finished
                await _expire(conn, rid)
        # Drain: every live claimer finishes what it still holds, as a worker would;
        # then a last worker takes everything left over once the leases ran out.
        for c in claimers:
            await commit(c, [ItemUpdate(i, "done") for i in sorted(c.held)])
        model.expired |= set(model.holder) - model.finished
        await _expire(conn, rid)
        last = Claimer.new(30)
        while batch := await claim(last, 5):
            await commit(
                last,
                [
                    ItemUpdate(x.item_id, "failed" if x.crashes >= MAX_CRASHES else "done")
                    for x in batch
                ],
            )
        assert await shard_ledger.finish_shard(conn, rid, 0)

        states = dict(
            await conn.fetch(
                "SELECT state, count(*) FROM run_items WHERE run_id = $1 GROUP BY 1", rid
            )
        )
        assert "pending" not in states and sum(states.values()) == ITEMS
        results = await conn.fetchval("SELECT count(*) FROM prop_results WHERE run = $1", uid)
        (s,) = await shard_ledger.read_shards(conn, rid)
        # Counters equal the rows; exactly one result per item that ended done.
        assert (s.processed, s.failed, s.skipped) == (
            states.get("done", 0), states.get("failed", 0), states.get("skipped", 0),
        )  # fmt: skip
        assert results == s.processed
        charged = dict(
            await conn.fetch("SELECT item_id, crashes FROM run_items WHERE run_id = $1", rid)
        )
        assert {i: n for i, n in charged.items() if n} == {
            i: n for i, n in model.crashes.items() if n
        }
    finally:
        await conn.close()


_n = iter(range(10**6))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_random_interleavings_keep_the_invariants(
    db_url: str, steps: list[tuple[str, int, object]]
) -> None:
    asyncio.run(_scenario(db_url, f"prop-{next(_n)}", steps))
