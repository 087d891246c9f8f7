"""Planning: selection filters, even shards, idempotent re-planning by uid."""

import itertools

import asyncpg
import pytest

from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.planner import Selection

from .conftest import insert_tracks

LYRICS = {
    "short": "one two three",
    "mid": " ".join(["word"] * 50),
    "long": " ".join(["word"] * 200),
}


async def _corpus(pool: asyncpg.Pool) -> list[int]:
    rows = []
    for i in range(30):
        artist = ["Alpha", "Beta", "Gamma"][i % 3]
        length = ["short", "mid", "long"][i // 10]
        rows.append((artist, f"song {i}", LYRICS[length]))
    return await insert_tracks(pool, rows)


async def _select(pool: asyncpg.Pool, sel: Selection) -> list[int]:
    async with pool.acquire() as conn:
        return await planner.select_track_ids(conn, sel, "algorithmic", "1.0.0")


async def test_selection_filters(pool: asyncpg.Pool) -> None:
    ids = await _corpus(pool)
    assert await _select(pool, Selection()) == ids
    alpha = await _select(pool, Selection(artists=["Alpha"]))
    assert alpha == ids[0::3]
    both = await _select(pool, Selection(artists=["Alpha", "Gamma"]))
    assert sorted(both) == sorted(ids[0::3] + ids[2::3])
    assert await _select(pool, Selection(id_from=ids[5], id_to=ids[9])) == ids[5:10]
    assert await _select(pool, Selection(limit=4)) == ids[:4]
    # word counts: 3 for the first ten, 50 for the next, 200 for the last ten
    assert await _select(pool, Selection(min_words=50)) == ids[10:]
    assert await _select(pool, Selection(min_words=51)) == ids[20:]
    combined = Selection(artists=["Beta"], min_words=50, limit=3)
    assert await _select(pool, combined) == [i for i in ids[10:] if (i - ids[0]) % 3 == 1][:3]


async def test_only_missing_skips_tracks_with_this_analyzer_version(pool: asyncpg.Pool) -> None:
    ids = await _corpus(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO analysis_results (track_id, analyzer_type, model_version)
               VALUES ($1, 'algorithmic', '1.0.0'), ($2, 'algorithmic', '0.9'),
                      ($3, 'emotion', '1.0.0')""",
            ids[0], ids[1], ids[2],
        )  # fmt: skip
    got = await _select(pool, Selection())
    assert ids[0] not in got and ids[1] in got and ids[2] in got and len(got) == 29
    assert await _select(pool, Selection(only_missing=False)) == ids


async def test_plan_assigns_even_shards_and_is_idempotent(pool: asyncpg.Pool) -> None:
    ids = await _corpus(pool)
    kw = dict(
        uid="u-1", name="run", namespace=None, spec={"analyzer": "algorithmic"},
        shards=4, analyzer_type="algorithmic", model_version="1.0.0",
    )  # fmt: skip
    async with pool.acquire() as conn:
        first = await planner.plan_analysis(conn, selection=Selection(), **kw)
        # Re-planning the same uid with another selection is a no-op.
        second = await planner.plan_analysis(conn, selection=Selection(limit=1), **kw)
        assert first.created and not second.created and second.run.id == first.run.id
        shards = await shard_ledger.read_shards(conn, first.run.id)
        assert sorted(s.total for s in shards) == [7, 7, 8, 8]
        assert sum(s.total for s in shards) == first.run.total == len(ids)
        per_shard = await conn.fetch(
            "SELECT shard, min(item_id), max(item_id), count(*) FROM run_items GROUP BY shard ORDER BY shard"
        )
        # contiguous blocks: each shard's ids come after the previous shard's
        assert all(a["max"] < b["min"] for a, b in itertools.pairwise(per_shard))
        assert await conn.fetchval("SELECT count(*) FROM runs") == 1


async def test_set_based_plan_assigns_shards_as_assign_shards(pool: asyncpg.Pool) -> None:
    """The server computes each item's shard (issue 16); it must be exactly the
    contiguous assignment of shard_ledger.assign_shards, empty shards done at once."""
    ids = await _corpus(pool)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO analysis_results (track_id, analyzer_type, model_version)"
            " SELECT unnest($1::int[]), 'algorithmic', '1.0.0'",
            ids[::4],
        )
        cases = [
            (Selection(), 4),
            (Selection(artists=["Beta"], min_words=50), 3),
            (Selection(limit=5, id_from=ids[3]), 8),  # more shards than items
            (Selection(only_missing=False), 30),
        ]
        for k, (sel, shards) in enumerate(cases):
            expected = await planner.select_track_ids(conn, sel, "algorithmic", "1.0.0")
            plan = await planner.plan_analysis(
                conn, uid=f"set-{k}", name=f"set-{k}", namespace=None, spec={},
                selection=sel, shards=shards, analyzer_type="algorithmic",
                model_version="1.0.0", allow_overlap=True,
            )  # fmt: skip
            items = await conn.fetch(
                "SELECT item_id, shard FROM run_items WHERE run_id = $1 ORDER BY item_id",
                plan.run.id,
            )
            assert [r["item_id"] for r in items] == expected
            assert [r["shard"] for r in items] == shard_ledger.assign_shards(len(expected), shards)
            assert plan.run.total == len(expected)
            assert await conn.fetchval("SELECT total FROM runs WHERE id = $1", plan.run.id) == len(
                expected
            )
            rows = await shard_ledger.read_shards(conn, plan.run.id)
            assert [s.total for s in rows] == shard_ledger.shard_sizes(len(expected), shards)
            assert [s.state for s in rows] == ["pending" if s.total else "done" for s in rows]


async def test_overlap_is_checked_set_based_and_a_refused_plan_leaves_nothing(
    pool: asyncpg.Pool,
) -> None:
    ids = await _corpus(pool)
    kw = dict(namespace=None, spec={}, shards=2, analyzer_type="algorithmic", model_version="1.0.0")

    async def plan(uid: str, sel: Selection) -> shard_ledger.PlanResult:
        return await planner.plan_analysis(conn, uid=uid, name=uid, selection=sel, **kw)

    async with pool.acquire() as conn:
        first = await plan("first", Selection(id_to=ids[9]))
        # Tracks the first run does not have: no overlap.
        disjoint = await plan("disjoint", Selection(id_from=ids[10], id_to=ids[14]))
        assert disjoint.created and disjoint.run.total == 5
        # One shared pending track is enough to refuse; the oldest such run is named.
        with pytest.raises(planner.OverlapError) as err:
            await plan("shared", Selection(id_from=ids[9], id_to=ids[12]))
        assert err.value.other.uid == "first"
        assert await shard_ledger.find_run(conn, "shared") is None
        assert await conn.fetchval("SELECT count(*) FROM run_items") == 15
        # Only pending work counts: once the first run's item is done, no overlap.
        await conn.execute(
            "UPDATE run_items SET state = 'done' WHERE run_id = $1 AND item_id = $2",
            first.run.id,
            ids[9],
        )
        shared = await plan("shared", Selection(id_from=ids[9], id_to=ids[9]))
        assert shared.created and shared.run.total == 1
        # A finished run never overlaps; another version neither.
        await conn.execute("UPDATE runs SET state = 'succeeded' WHERE uid = 'disjoint'")
        again = await plan("again", Selection(id_from=ids[10], id_to=ids[14]))
        assert again.created and again.run.total == 5
        other = await planner.plan_analysis(
            conn, uid="v2", name="v2", selection=Selection(), **{**kw, "model_version": "2"}
        )
        assert other.created and other.run.total == len(ids)


async def test_deleting_a_run_deletes_its_items_only(pool: asyncpg.Pool) -> None:
    """run_items has no foreign key since migration 0011 (its per-row check was half
    of planning a million items); a trigger keeps the cascade."""
    ids = await _corpus(pool)
    kw = dict(namespace=None, spec={}, shards=3, analyzer_type="algorithmic", allow_overlap=True)
    async with pool.acquire() as conn:
        a = await planner.plan_analysis(
            conn, uid="a", name="a", selection=Selection(), model_version="1", **kw
        )
        b = await planner.plan_analysis(
            conn, uid="b", name="b", selection=Selection(), model_version="2", **kw
        )
        c = await planner.plan_analysis(
            conn, uid="c", name="c", selection=Selection(limit=4), model_version="3", **kw
        )
        assert await conn.fetchval("SELECT count(*) FROM run_items") == 2 * len(ids) + 4
        await conn.execute("DELETE FROM runs WHERE id = ANY($1::bigint[])", [a.run.id, c.run.id])
        left = await conn.fetch("SELECT DISTINCT run_id FROM run_items")
        assert [r["run_id"] for r in left] == [b.run.id]
        assert await conn.fetchval("SELECT count(*) FROM run_items") == len(ids)
        assert await conn.fetchval("SELECT count(*) FROM run_shards") == 3
