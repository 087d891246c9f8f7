"""`rap-analyzer db gc` against a real Postgres: finished runs older than the retention
keep only their failed items; status, results and unfinished runs are untouched."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer_runtime import localrun
from analyzer_runtime.ledger import gc as ledger_gc
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.shards import Claimer, ItemUpdate
from analyzer_runtime.seed import seed
from tests import builders
from tests.integration.clirun import ROOT, cli
from tests.integration.conftest import insert_tracks


async def _age(conn: asyncpg.Connection, run_id: int, days: float) -> None:
    await conn.execute(
        "UPDATE runs SET finished_at = now() - make_interval(secs => $2) WHERE id = $1",
        run_id,
        days * 86400,
    )


async def _work(
    conn: asyncpg.Connection, uid: str, track_ids: list[int], outcome: dict[int, str]
) -> shard_ledger.Run:
    """Plan a 2-shard run over `track_ids` and work it through the protocol: each item
    ends as `outcome` says (done writes a result), then the run is finished."""
    plan = await shard_ledger.record_plan(
        conn, uid=uid, name=uid, namespace=None, kind="AnalysisRun", spec={"analyzer": "x"},
        shards=2, analyzer_type="x", model_version=uid, item_ids=track_ids,
    )  # fmt: skip
    run = plan.run
    await shard_ledger.set_run_state(conn, run.id, "running")
    for shard in (0, 1):
        await shard_ledger.claim_shard(conn, run.id, shard)
        c = Claimer.new(30)
        while batch := await shard_ledger.next_batch(conn, run.id, shard, 3, c):
            ups = [
                ItemUpdate(
                    b.item_id,
                    # the outcomes are item state names (done/failed), typed str here
                    outcome[b.item_id],  # type: ignore[arg-type]
                    f"boom on {b.item_id}" if outcome[b.item_id] == "failed" else None,
                )
                for b in batch
            ]

            async def write(w: asyncpg.Connection, ids: frozenset[int]) -> None:
                done = [i for i in sorted(ids) if outcome[i] == "done"]
                await w.executemany(
                    """INSERT INTO analysis_results (track_id, analyzer_type, model_version)
                       VALUES ($1, 'x', $2)""",
                    [(i, uid) for i in done],
                )

            await shard_ledger.commit_batch(conn, run.id, shard, ups, c, write=write)
        assert await shard_ledger.finish_shard(conn, run.id, shard)
    await shard_ledger.set_run_state(conn, run.id, "succeeded")
    found = await shard_ledger.find_run(conn, uid)
    assert found is not None
    return found


def _timeless(st: dict[str, Any]) -> dict[str, Any]:
    """A status without the conditions' lastTransitionTime: with no previous status to
    keep it from, every computation stamps it `now` (gc or not)."""
    conds = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in st["conditions"]]
    return {**st, "conditions": conds}


async def _computed(conn: asyncpg.Connection, run: shard_ledger.Run) -> dict[str, Any]:
    """The status the operator and the local runner compute, at a fixed `now`."""
    shards = await shard_ledger.read_shards(conn, run.id)
    return builders.status(shards, generation=3, now=datetime(2030, 1, 1, tzinfo=UTC),
                           planned_total=run.total, schema=None)  # fmt: skip


async def _items(conn: asyncpg.Connection, run_id: int) -> dict[int, tuple[str, str | None]]:
    rows = await conn.fetch(
        "SELECT item_id, state, last_error FROM run_items WHERE run_id = $1", run_id
    )
    return {r["item_id"]: (r["state"], r["last_error"]) for r in rows}


async def test_gc_compacts_a_finished_run_and_its_status_reads_the_same(
    pool: asyncpg.Pool, db_url: str
) -> None:
    ids = await insert_tracks(pool, [("A", f"t{i}", "some words here") for i in range(40)])
    outcome = {t: ("failed" if i % 7 == 3 else "skipped" if i % 11 == 5 else "done")
               for i, t in enumerate(ids)}  # fmt: skip
    async with pool.acquire() as conn:
        old = await _work(conn, "old-run", ids[:30], outcome)
        young = await _work(conn, "young-run", ids[30:], outcome)
        # An unfinished run, as old as they come: never touched.
        plan = await shard_ledger.record_plan(
            conn, uid="running-run", name="running-run", namespace=None, kind="AnalysisRun",
            spec={"analyzer": "x"}, shards=1, analyzer_type="x", model_version="r", item_ids=ids,
        )  # fmt: skip
        running = plan.run
        await shard_ledger.set_run_state(conn, running.id, "running")
        await conn.execute(
            "UPDATE runs SET created_at = now() - interval '400 days' WHERE id = $1", running.id
        )
        await _age(conn, old.id, 40)
        await _age(conn, young.id, 3)
        before_items = {r.uid: await _items(conn, r.id) for r in (old, young, running)}
        results_before = await conn.fetch("SELECT * FROM analysis_results ORDER BY id")
        computed_before = await _computed(conn, old)
    status_before = await localrun.status_of(pool, "old-run")
    text_before = await asyncio.to_thread(cli, "status", "old-run", db_url=db_url)
    json_before = await asyncio.to_thread(cli, "status", "old-run", "--json", db_url=db_url)
    assert text_before.returncode == 0, text_before.stderr
    failed = {i for i, (s, _) in before_items["old-run"].items() if s == "failed"}
    assert failed and len(failed) < 30

    # --dry-run counts and removes nothing.
    dry = await asyncio.to_thread(
        cli, "db", "gc", "--older-than", "30d", "--dry-run", "--json", db_url=db_url
    )
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    assert doc["dryRun"] and doc["runsCompacted"] == 1
    assert (doc["itemsRemoved"], doc["itemsKept"]) == (30 - len(failed), len(failed))
    assert [r["uid"] for r in doc["runs"]] == ["old-run"]
    async with pool.acquire() as conn:
        assert await _items(conn, old.id) == before_items["old-run"]
        assert await conn.fetchval("SELECT compacted_at FROM runs WHERE id = $1", old.id) is None

    # The real thing, in small batches (several transactions).
    res = await asyncio.to_thread(
        cli, "db", "gc", "--older-than", "30d", "--batch-size", "4", db_url=db_url
    )
    assert res.returncode == 0, res.stderr
    assert re.search(
        rf"compacted 1 finished run\(s\).*removed {30 - len(failed)} item\(s\),"
        rf" kept {len(failed)} failed",
        " ".join(res.stdout.split()),
    ), res.stdout
    async with pool.acquire() as conn:
        after = await _items(conn, old.id)
        # Exactly the failed items are left, each with its error.
        assert after == {i: before_items["old-run"][i] for i in failed}
        assert all(err == f"boom on {i}" for i, (_, err) in after.items())
        assert await _items(conn, young.id) == before_items["young-run"]
        assert await _items(conn, running.id) == before_items["running-run"]
        assert await conn.fetch("SELECT * FROM analysis_results ORDER BY id") == results_before
        compacted = await shard_ledger.find_run(conn, "old-run")
        assert compacted is not None and compacted.compacted_at is not None
        assert compacted.state == "succeeded"

    # Status reads the same: computed and as `rap-analyzer status` prints it.
    async with pool.acquire() as conn:
        assert await _computed(conn, old) == computed_before
    status_after = await localrun.status_of(pool, "old-run")
    assert status_before is not None and status_after is not None
    assert _timeless(status_after) == _timeless(status_before)
    text_after = await asyncio.to_thread(cli, "status", "old-run", db_url=db_url)
    json_after = await asyncio.to_thread(cli, "status", "old-run", "--json", db_url=db_url)
    assert text_after.stdout == text_before.stdout
    assert _timeless(json.loads(json_after.stdout)) == _timeless(json.loads(json_before.stdout))
    assert "30/30 (100.0%)" in text_after.stdout, text_after.stdout

    # A second gc is a no-op.
    again = await asyncio.to_thread(cli, "db", "gc", "--older-than", "30d", "--json", db_url=db_url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["runsCompacted"] == 0
    async with pool.acquire() as conn:
        assert await _items(conn, old.id) == after


async def test_a_compacted_run_is_not_resumed(pool: asyncpg.Pool, db_url: str) -> None:
    await seed(pool, 60)
    res = await asyncio.to_thread(
        cli, "run", "examples/analysisrun.yaml", "--no-progress", db_url=db_url
    )
    assert res.returncode == 0, res.stdout + res.stderr
    async with pool.acquire() as conn:
        uid, run_id = await conn.fetchrow("SELECT uid, id FROM runs")
        await _age(conn, run_id, 31)
        results = await conn.fetchval("SELECT count(*) FROM analysis_results")
    before = await asyncio.to_thread(cli, "status", uid, db_url=db_url)
    gc = await asyncio.to_thread(cli, "db", "gc", "--older-than", "30d", db_url=db_url)
    assert gc.returncode == 0 and "removed 60 item(s)" in gc.stdout, gc.stdout + gc.stderr
    after = await asyncio.to_thread(cli, "status", uid, db_url=db_url)
    assert after.stdout == before.stdout and "60/60" in after.stdout

    resume = await asyncio.to_thread(cli, "run", "--uid", uid, "--no-progress", db_url=db_url)
    text = " ".join(resume.stdout.split())
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert "already succeeded; nothing to resume" in text
    assert "compacted by `rap-analyzer db gc`" in text and "can never run again" in text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM runs") == "succeeded"
        assert await conn.fetchval("SELECT count(*) FROM run_items") == 0
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == results


async def test_train_and_llm_report_refuse_a_compacted_run(pool: asyncpg.Pool) -> None:
    from analyzer_runtime.quality.training import TrainingError, read_labels
    from analyzer_runtime.reports import ReportError
    from analyzer_runtime.reports.collect import llm_report

    ids = await insert_tracks(pool, [("A", f"t{i}", "w") for i in range(5)])
    async with pool.acquire() as conn:
        plan = await shard_ledger.record_plan(
            conn, uid="llm-old", name="llm-old", namespace=None, kind="AnalysisRun",
            spec={"analyzer": "llm"}, shards=1, analyzer_type="llm", model_version="v",
            item_ids=ids,
        )  # fmt: skip
        await shard_ledger.set_run_state(conn, plan.run.id, "succeeded")
        await _age(conn, plan.run.id, 90)
        report = await ledger_gc.gc(conn, timedelta(days=30))
        assert [r.uid for r in report.runs] == ["llm-old"] and report.removed == 5
        with pytest.raises(TrainingError, match="compacted by `rap-analyzer db gc`"):
            await read_labels(conn, "llm-old")
        with pytest.raises(ReportError, match="compacted by `rap-analyzer db gc`"):
            await llm_report(conn, "llm-old")


def test_bad_retention_is_exit_2(db_url: str) -> None:
    res = cli("db", "gc", "--older-than", "thirty days", db_url=db_url)
    assert res.returncode == 2 and "--older-than" in res.stderr, res.stderr


# -- property: gc never removes an item of an unfinished run --------------------------

STATES = ("planned", "running", "interrupted", "succeeded", "failed", "cancelled")
ITEM_STATES = ("pending", "done", "failed", "skipped")
TRACKS = 12

runs_strategy = st.lists(
    st.tuples(
        st.sampled_from(STATES),
        # hours since it finished (None: never finished); +0.5 keeps clear of the cutoff
        st.one_of(st.none(), st.integers(0, 24 * 60)),
        st.lists(st.sampled_from(ITEM_STATES), min_size=0, max_size=TRACKS),
    ),
    min_size=1,
    max_size=6,
)
_uids = itertools.count()


async def _gc_scenario(
    url: str,
    runs: list[tuple[str, int | None, list[str]]],
    retention_days: int,
    batch_size: int,
    dry_first: bool,
) -> None:
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT count(*) FROM tracks"):
            await conn.executemany(
                "INSERT INTO tracks (title, artist, lyrics, genius_id) VALUES ($1, 'A', 'x', $2)",
                [(f"t{i}", i) for i in range(TRACKS)],
            )
        track_ids = [r["id"] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id")]
        mine: list[tuple[int, str, int | None]] = []
        for state, hours, items in runs:
            uid = f"p{next(_uids)}"
            run_id = await conn.fetchval(
                """INSERT INTO runs (uid, name, spec, shards, total, state, finished_at,
                                     created_at)
                   VALUES ($1, $1, '{}', 1, $2, $3,
                           CASE WHEN $4::float8 IS NULL THEN NULL
                                ELSE now() - make_interval(secs => $4::float8) END,
                           now() - interval '400 days')
                RETURNING id""",
                uid, len(items), state, None if hours is None else (hours + 0.5) * 3600,
            )  # fmt: skip
            await conn.copy_records_to_table(
                "run_items",
                records=[
                    (run_id, track_ids[i], 0, s, f"err {i}" if s == "failed" else None)
                    for i, s in enumerate(items)
                ],
                columns=["run_id", "item_id", "shard", "state", "last_error"],
            )
            await conn.executemany(
                """INSERT INTO analysis_results (track_id, analyzer_type, model_version)
                   VALUES ($1, 'gc', $2)""",
                [(track_ids[i], uid) for i, s in enumerate(items) if s == "done"],
            )
            mine.append((run_id, state, hours))
        before = {rid: await _items(conn, rid) for rid, _, _ in mine}
        results = await conn.fetch("SELECT * FROM analysis_results ORDER BY id")
        retention = timedelta(days=retention_days)

        if dry_first:
            await ledger_gc.gc(conn, retention, dry_run=True, batch_size=batch_size)
            assert {rid: await _items(conn, rid) for rid, _, _ in mine} == before
        await ledger_gc.gc(conn, retention, batch_size=batch_size)

        for rid, state, hours in mine:
            after = await _items(conn, rid)
            finished = state in ("succeeded", "failed", "cancelled")
            old = hours is not None and hours + 0.5 > retention_days * 24
            if finished and old:  # keeps exactly its failed items, with their errors
                assert after == {i: v for i, v in before[rid].items() if v[0] == "failed"}
            else:  # unfinished, never finished, or younger: keeps everything
                assert after == before[rid], (state, hours)
            compacted = await conn.fetchval("SELECT compacted_at FROM runs WHERE id = $1", rid)
            assert (compacted is not None) == (finished and old)
        # Results are never removed (nor changed).
        assert await conn.fetch("SELECT * FROM analysis_results ORDER BY id") == results
        # A second gc removes nothing.
        snapshot = {rid: await _items(conn, rid) for rid, _, _ in mine}
        second = await ledger_gc.gc(conn, retention, batch_size=batch_size)
        assert {r.id for r in second.runs}.isdisjoint({rid for rid, _, _ in mine})
        assert {rid: await _items(conn, rid) for rid, _, _ in mine} == snapshot
    finally:
        await conn.close()


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    runs=runs_strategy,
    retention_days=st.integers(1, 60),
    batch_size=st.integers(1, 5),
    dry_first=st.booleans(),
)
def test_gc_never_removes_items_of_unfinished_runs_nor_results(
    db_url: str,
    runs: list[tuple[str, int | None, list[str]]],
    retention_days: int,
    batch_size: int,
    dry_first: bool,
) -> None:
    asyncio.run(_gc_scenario(db_url, runs, retention_days, batch_size, dry_first))


def test_the_example_yaml_exists() -> None:
    assert (ROOT / "examples/analysisrun.yaml").exists()
