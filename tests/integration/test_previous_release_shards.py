"""Expand/contract (docs/upgrades.md): shard processes of the previous release
(v0.1.0, its own code from `git archive`) keep working while this release's
migrations are applied under them, and a run the previous release planned is
finished by this release's shards. Real Postgres, real processes.

The previous release runs with this venv's interpreter and its tree first on
PYTHONPATH: its dependencies are a subset of this release's (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from rap_devtools.previous_release import materialise
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.migrate import available, migrate

ANALYZER = "algorithmic"
TRACKS = 3000
SHARDS = 4
# Small batches: many commits, so a shard is caught between two of them.
BATCH = 10

# How the previous release's operator plans a run (reconcile -> planner.plan_analysis).
PLAN = """
import asyncio, os, sys
import asyncpg
from analyzer_runtime.ledger import planner
from analyzer_runtime.analyzers import registry
from analyzer_runtime.ledger.planner import Selection

async def main(uid, shards, batch):
    a = registry.create(sys.argv[4])
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        res = await planner.plan_analysis(
            conn, uid=uid, name=uid, namespace="upgrade-test",
            spec={"analyzer": sys.argv[4], "shards": shards, "batchSize": batch},
            selection=Selection(), shards=shards,
            analyzer_type=a.analyzer_type, model_version=a.version)
    finally:
        await conn.close()
    print(res.run.total)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.fixture(scope="module")
def previous() -> Iterator[Path]:
    with materialise() as tree:
        yield tree


def _env(db_url: str, tree: Path | None) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": db_url, "METRICS_PORT": "0"}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "operator")])
    return env


def _run(db_url: str, tree: Path | None, *args: str) -> str:
    """`python ARGS` with the previous release's code (tree) or this one's (None)."""
    proc = subprocess.run(
        [sys.executable, *args],
        env=_env(db_url, tree),
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _shard(db_url: str, tree: Path | None, uid: str, shard: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", uid,
         "--shard", str(shard)],
        env=_env(db_url, tree), cwd=tree, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out


def _prepare_with_previous_release(db_url: str, previous: Path, uid: str) -> int:
    """The previous release migrates a fresh database, seeds it and plans a run."""
    _run(db_url, previous, "-m", "analyzer_runtime", "seed", str(TRACKS))
    total = _run(db_url, previous, "-c", PLAN, uid, str(SHARDS), str(BATCH), ANALYZER)
    return int(total.strip().splitlines()[-1])


async def _versions(conn: asyncpg.Connection) -> list[int]:
    return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]  # fmt: skip


def _new_since(previous: Path) -> list[int]:
    """This release's migrations that the previous release does not have."""
    old = {int(p.name.split("_")[0]) for p in (previous / "analyzer_runtime" / "migrations").glob("*.sql")}  # fmt: skip
    return [m.version for m in available() if m.version not in old]


async def _processed(conn: asyncpg.Connection, run_id: int) -> int:
    # Raw SQL: it is read before this release's migrations add run_shards columns.
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(processed), 0) FROM run_shards WHERE run_id = $1", run_id
        )
    )


async def _assert_exactly_once(conn: asyncpg.Connection, uid: str, total: int) -> None:
    run = await shard_ledger.find_run(conn, uid)
    assert run is not None and run.total == total == TRACKS
    shards = await shard_ledger.read_shards(conn, run.id)
    assert [s.state for s in shards] == ["done"] * SHARDS
    assert sum(s.processed for s in shards) == total
    assert sum(s.failed for s in shards) == 0 and sum(s.skipped for s in shards) == 0
    assert [s.total for s in shards] == [
        await conn.fetchval("SELECT count(*) FROM run_items WHERE run_id = $1 AND shard = $2",
                            run.id, s.shard)
        for s in shards
    ]  # fmt: skip
    items = dict(
        await conn.fetch(
            "SELECT state, count(*) FROM run_items WHERE run_id = $1 GROUP BY state", run.id
        )
    )
    assert items == {"done": total}
    rows, keys, missing = await conn.fetchrow(
        """SELECT count(*),
                  count(DISTINCT (track_id, analyzer_type, model_version)),
                  (SELECT count(*) FROM tracks t WHERE NOT EXISTS (
                       SELECT 1 FROM analysis_results r
                        WHERE r.track_id = t.id AND r.analyzer_type = $1))
             FROM analysis_results WHERE analyzer_type = $1""",
        run.analyzer_type,
    )
    assert (rows, keys, missing) == (total, total, 0)


async def test_previous_release_shards_keep_working_while_this_release_migrates(
    make_empty_db: Callable[[], str], previous: Path
) -> None:
    db_url = await asyncio.to_thread(make_empty_db)
    uid = "old-shards-new-schema"
    total = await asyncio.to_thread(_prepare_with_previous_release, db_url, previous, uid)
    new = _new_since(previous)
    assert new, "no migration since the previous release: nothing to check"

    conn = await asyncpg.connect(db_url)
    holder = await asyncpg.connect(db_url)
    procs: list[subprocess.Popen[str]] = []
    try:
        assert max(await _versions(conn)) < min(new)
        run = await shard_ledger.find_run(conn, uid)
        assert run is not None and run.state == "planned"
        procs = [_shard(db_url, previous, uid, i) for i in range(SHARDS)]

        async def progressed() -> bool:
            return await _processed(conn, run.id) >= SHARDS * BATCH

        await wait_for_async(progressed, within=120, interval=0.05,
                             what="the previous release's shards' first batches",
                             give_up=lambda: "a shard exited early"
                             if any(p.poll() is not None for p in procs) else None)  # fmt: skip

        # Hold the shards between two batches (a batch's results, items and counters
        # commit together): the schema changes under processes with work left.
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE analysis_results IN SHARE MODE")
        before = await _processed(conn, run.id)
        assert before < total
        assert [p.poll() for p in procs] == [None] * SHARDS

        applied = await asyncio.wait_for(migrate(conn), timeout=60)
        assert [m.version for m in applied] == new
        assert [p.poll() for p in procs] == [None] * SHARDS
        await holder.execute("ROLLBACK")

        await asyncio.to_thread(_wait, procs)
        # The previous release's code did most of the run on the new schema.
        assert await _processed(conn, run.id) == total > before
        await _assert_exactly_once(conn, uid, total)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        await holder.close()
        await conn.close()


async def test_a_run_planned_by_the_previous_release_is_finished_by_this_one(
    make_empty_db: Callable[[], str], previous: Path
) -> None:
    """A real upgrade: the run was planned (and shard 0 run) by the previous release;
    the migration job runs; the replaced shard pods run this release's code."""
    db_url = await asyncio.to_thread(make_empty_db)
    uid = "old-plan-new-shards"
    total = await asyncio.to_thread(_prepare_with_previous_release, db_url, previous, uid)
    await asyncio.to_thread(_wait, [_shard(db_url, previous, uid, 0)])

    conn = await asyncpg.connect(db_url)
    try:
        applied = await migrate(conn)
        assert [m.version for m in applied] == _new_since(previous)
        assert await _versions(conn) == [m.version for m in available()]
        await asyncio.to_thread(_wait, [_shard(db_url, None, uid, i) for i in range(SHARDS)])
        await _assert_exactly_once(conn, uid, total)
    finally:
        await conn.close()


async def test_the_upgrade_to_database_roles_keeps_previous_release_shards_working(
    make_empty_db: Callable[[], str], previous: Path
) -> None:
    """The chart's upgrade from 0.1.0 (docs/upgrades.md): the previous release made
    the schema as the superuser and planned a run; `db roles` hands the tables to
    the owner and migrates as the owner; shard pods the previous release's Job
    starts after that read the runtime role's URL from the Secret, and its code
    finishes the run with the runtime role's rights alone, next to this release's."""
    from analyzer_runtime.db import roles as db_roles

    db_url = await asyncio.to_thread(make_empty_db)
    uid = "old-shards-runtime-role"
    total = await asyncio.to_thread(_prepare_with_previous_release, db_url, previous, uid)
    suffix = f"{os.getpid()}_{time.monotonic_ns()}"
    roles = db_roles.Roles(f"own_up_{suffix}", f"run_up_{suffix}", f"srch_up_{suffix}")
    conn = await asyncpg.connect(db_url)
    try:
        report = await db_roles.apply(conn, roles)
        assert report.reowned and report.migrated == [
            f"{m.version:04d}_{m.name}" for m in available() if m.version in _new_since(previous)
        ]
        runtime = db_url.replace("postgresql://postgres:@", f"postgresql://{roles.runtime}:@", 1)
        assert runtime != db_url
        procs = [_shard(runtime, previous, uid, i) for i in range(SHARDS - 1)]
        procs.append(_shard(runtime, None, uid, SHARDS - 1))
        await asyncio.to_thread(_wait, procs)
        await _assert_exactly_once(conn, uid, total)
    finally:
        await conn.close()
