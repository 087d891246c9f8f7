"""Through a real PgBouncer (Debian's, `make pgbouncer`) in transaction pooling, with
fewer server connections than clients: migrations, the shard protocol with real
shard processes, and `db gc` stay exact; without DATABASE_POOL_MODE the error says
what to set."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from rap_devtools.pgbouncer import PGBOUNCER, PgBouncer, pgbouncer
from rap_devtools.procs import ManagedProcess, free_port
from rap_devtools.waiting import wait_for

from analyzer_runtime.ledger import gc as ledger_gc
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import POOL_MODE_ENV, PoolModeMismatch, create_pool
from analyzer_runtime.ledger.migrate import available, migrate
from analyzer_runtime.ledger.planner import Selection
from analyzer_runtime.seed import seed
from tests.integration.conftest import insert_tracks
from tests.integration.test_ledger_gc import _age, _work

# Server connections per database: fewer than the clients below, so transactions of
# different clients share server connections (what transaction pooling is for).
POOL_SIZE = 2


@pytest.fixture(scope="module")
def bouncer(pg_server: Any) -> Iterator[PgBouncer]:
    with pgbouncer(pg_server.get_uri(), pool_size=POOL_SIZE) as b:
        yield b


@pytest.fixture
def via(bouncer: PgBouncer, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test database's URL through PgBouncer, with DATABASE_POOL_MODE=transaction."""
    monkeypatch.setenv(POOL_MODE_ENV, "transaction")
    return bouncer.url(_dbname(db_url))


@pytest.fixture
async def bpool(via: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(via, max_size=4)
    yield p
    await p.close()


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _xacts(bouncer: PgBouncer, database: str) -> int:
    """Transactions PgBouncer has pooled for `database` (SHOW STATS)."""
    rows = [r for r in bouncer.admin("SHOW STATS") if r["database"] == database]
    return int(rows[0]["total_xact_count"]) if rows else 0


async def test_without_the_pool_mode_the_error_names_it(
    bouncer: PgBouncer, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POOL_MODE_ENV, raising=False)
    url = bouncer.url(_dbname(db_url))
    with pytest.raises(PoolModeMismatch) as err:
        await create_pool(url)
    msg = str(err.value)
    assert f"{POOL_MODE_ENV}=transaction" in msg and "unsupported startup parameter" in msg
    assert bouncer.password not in msg

    # A shard process says the same, in one line, exit 3 (a database it cannot use).
    res = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", "x", "--shard", "0"],
        env={**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0", "DB_CONNECT_TIMEOUT": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert f"{POOL_MODE_ENV}=transaction" in res.stderr and "Traceback" not in res.stderr
    assert bouncer.password not in res.stderr + res.stdout


async def test_seed_through_pgbouncer(
    pool: asyncpg.Pool, bouncer: PgBouncer, bpool: asyncpg.Pool, via: str
) -> None:
    """Seeding stages each chunk in a temp table of its own transaction: a session's
    temp table would be missing when the next transaction lands on another server
    connection. Three seeders at once share POOL_SIZE server connections."""
    counts = await asyncio.gather(*(seed(bpool, 2500) for _ in range(3)))
    assert sum(counts) == 2500  # the conflict clause: each track inserted once
    assert await pool.fetchval("SELECT count(*) FROM tracks") == 2500
    assert _xacts(bouncer, _dbname(via)) > 0


async def test_concurrent_migrations_through_pgbouncer_apply_each_once(
    pg_server: Any, bouncer: PgBouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POOL_MODE_ENV, "transaction")
    name = f"pgb_mig_{os.getpid()}"
    admin = await asyncpg.connect(pg_server.get_uri())
    try:
        await admin.execute(f"CREATE DATABASE {name}")  # empty: no migration yet
    finally:
        await admin.close()
    # Four migrators at once, each its own client connection, sharing POOL_SIZE
    # server connections: the advisory lock must hold across PgBouncer.
    pools = [await create_pool(bouncer.url(name), min_size=1, max_size=1) for _ in range(4)]
    try:

        async def one(p: asyncpg.Pool) -> list[int]:
            async with p.acquire() as conn:
                return [m.version for m in await migrate(conn)]

        applied = await asyncio.gather(*(one(p) for p in pools))
    finally:
        for p in pools:
            await p.close()
    versions = [m.version for m in available()]
    # Every migration applied by exactly one of them.
    assert sorted(v for a in applied for v in a) == versions
    direct = await asyncpg.connect(pg_server.get_uri(name))
    try:
        recorded = [r[0] for r in await direct.fetch("SELECT version FROM schema_migrations")]
        assert sorted(recorded) == versions
    finally:
        await direct.close()
    assert _xacts(bouncer, name) > 0


async def test_three_shard_processes_through_pgbouncer_write_each_result_once(
    pool: asyncpg.Pool, bouncer: PgBouncer, via: str
) -> None:
    await seed(pool, 600)
    from analyzer_runtime.analyzers import registry

    a = registry.create("algorithmic")
    async with pool.acquire() as conn:
        res = await planner.plan_analysis(
            conn, uid="pgb", name="pgb", namespace=None,
            spec={"analyzer": "algorithmic", "shards": 3, "batchSize": 20},
            selection=Selection(), shards=3,
            analyzer_type=a.analyzer_type, model_version=a.version,
        )  # fmt: skip
    run = res.run
    before = _xacts(bouncer, _dbname(via))
    env = {**os.environ, "DATABASE_URL": via, "METRICS_PORT": "0"}  # DATABASE_POOL_MODE set

    def shard(i: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", run.uid,
             "--shard", str(i)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    results = await asyncio.gather(*(asyncio.to_thread(shard, i) for i in range(3)))
    for r in results:
        assert r.returncode == 0, r.stderr
    async with pool.acquire() as conn:  # counted directly on the server
        shards = await shard_ledger.read_shards(conn, run.id)
        rows = await conn.fetchval("SELECT count(*) FROM analysis_results")
        distinct = await conn.fetchval("SELECT count(DISTINCT track_id) FROM analysis_results")
        pending = await conn.fetchval("SELECT count(*) FROM run_items WHERE state <> 'done'")
    assert [s.state for s in shards] == ["done"] * 3
    assert rows == distinct == sum(s.processed for s in shards) == 600 and pending == 0
    # The traffic went through PgBouncer: one transaction per batch at least.
    assert _xacts(bouncer, _dbname(via)) - before >= 600 // 20
    pools = [p for p in bouncer.admin("SHOW POOLS") if p["database"] == _dbname(via)]
    assert pools and pools[0]["pool_mode"] == "transaction"


async def test_concurrent_gcs_through_pgbouncer_compact_exactly(
    pool: asyncpg.Pool, bpool: asyncpg.Pool
) -> None:
    ids = await insert_tracks(pool, [("A", f"t{i}", "some words") for i in range(60)])
    outcome = {t: ("failed" if i % 9 == 4 else "done") for i, t in enumerate(ids)}
    async with bpool.acquire() as conn:  # the protocol itself through PgBouncer
        run = await _work(conn, "gc-me", ids, outcome)
        await _age(conn, run.id, 40)
    failed = sum(1 for s in outcome.values() if s == "failed")

    async def gc() -> ledger_gc.GcReport:
        async with bpool.acquire() as conn:
            return await ledger_gc.gc(conn, ledger_gc.parse_duration("30d"), batch_size=5)

    reports = await asyncio.gather(gc(), gc())
    # Between them they removed every item but the failed ones, each item once.
    assert sum(r.removed for r in reports) == 60 - failed
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT compacted_at, compacted_removed FROM runs WHERE id = $1", run.id
        )
        states = [r[0] for r in await conn.fetch("SELECT state FROM run_items")]
        results = await conn.fetchval("SELECT count(*) FROM analysis_results")
    assert row["compacted_at"] is not None and row["compacted_removed"] == 60 - failed
    assert states == ["failed"] * failed and results == 60 - failed


def test_the_charts_pgbouncer_ini_runs(
    pg_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The chart's pgbouncer.ini (ConfigMap), its host and auth file pointed at the test
    server, starts the real pgbouncer and carries a transaction-mode pool, with the
    connect_query's client check on the server connection."""
    from rap_devtools.helm import only, render_chart

    password = "chart-pw"
    values = {"pgbouncer": {"enabled": True}, "postgres": {"auth": {"password": password}}}
    ini = only(render_chart(values), "ConfigMap", "rap-analyzer-pgbouncer")["data"]["pgbouncer.ini"]
    socket_dir = Path(parse_qs(urlsplit(pg_server.get_uri()).query)["host"][0])
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="rap-pgb-ini-"))
    auth = work / "userlist.txt"
    auth.write_text(f'"postgres" "{password}"\n')
    local = (
        ini.replace("host=rap-analyzer-postgres.rap.svc port=5432", f"host={socket_dir}")
        .replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
        .replace("listen_port = 6432", f"listen_port = {port}")
        .replace("/var/run/pgbouncer/userlist.txt", str(auth))
    )
    assert str(socket_dir) in local and str(auth) in local and f"= {port}" in local
    (work / "pgbouncer.ini").write_text(local)
    argv = [str(PGBOUNCER)]
    if os.geteuid() == 0:  # pgbouncer refuses root: the socket's owner, as rap_devtools does
        owner = pwd.getpwuid(socket_dir.stat().st_uid)
        for f in (work, auth, work / "pgbouncer.ini"):
            os.chown(f, owner.pw_uid, owner.pw_gid)
        argv += ["-u", owner.pw_name]
    proc = ManagedProcess("pgbouncer", [*argv, str(work / "pgbouncer.ini")], work / "out.log")
    proc.start()
    try:

        def up() -> bool:
            assert proc.running(), proc.log_tail()
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True

        wait_for(up, timeout=30, what="pgbouncer with the chart's ini", describe=proc.log_tail)

        async def go() -> tuple[str, int]:
            pool = await create_pool(
                f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres", max_size=2
            )
            try:
                return (
                    await pool.fetchval("SHOW client_connection_check_interval"),
                    await pool.fetchval("SELECT $1::int * 2", 21),
                )
            finally:
                await pool.close()

        os.environ[POOL_MODE_ENV] = "transaction"
        try:
            assert asyncio.run(go()) == ("2s", 42)
        finally:
            os.environ.pop(POOL_MODE_ENV, None)
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)
