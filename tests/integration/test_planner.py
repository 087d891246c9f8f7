"""Planning: selection filters, even shards, idempotent re-planning by uid."""

import itertools

import asyncpg

from analyzer_runtime import planner, protocol
from analyzer_runtime.planner import Selection

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
        shards = await protocol.read_shards(conn, first.run.id)
        assert sorted(s.total for s in shards) == [7, 7, 8, 8]
        assert sum(s.total for s in shards) == first.run.total == len(ids)
        per_shard = await conn.fetch(
            "SELECT shard, min(item_id), max(item_id), count(*) FROM run_items GROUP BY shard ORDER BY shard"
        )
        # contiguous blocks: each shard's ids come after the previous shard's
        assert all(a["max"] < b["min"] for a, b in itertools.pairwise(per_shard))
        assert await conn.fetchval("SELECT count(*) FROM runs") == 1
