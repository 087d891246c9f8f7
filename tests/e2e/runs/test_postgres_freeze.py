"""A frozen Postgres mid-run (issue 22): every server process of the run's database
SIGSTOPped for 20 s - TCP still accepts, nothing answers, as with a VM paused or a
network partition. The operator must not hang on it: its bounded database calls
turn the freeze into DatabaseUnavailable, shown on the run while it lasts; after
SIGCONT the condition clears and the run ends Succeeded with every track analyzed
exactly once (the shard pods just wait: their batches commit or are claimed again).

The database is a Postgres of its own (not the session's pg_e2e), so freezing it
cannot touch the other tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from analyzer_runtime.db import embedded
from analyzer_runtime.db.connect import create_pool
from analyzer_runtime.db.migrate import migrate
from analyzer_runtime.seed import seed
from tests.e2e.runs.operator_env import JSON, Env, phase, run_manifest

pytestmark = pytest.mark.e2e

TRACKS = 2000
FREEZE_SECONDS = 20.0


@pytest.fixture
def own_postgres() -> Iterator[tuple[Any, Path]]:
    """A Postgres server for this test alone (server, data directory), migrated and
    seeded with TRACKS tracks in its default database."""
    home = Path(tempfile.mkdtemp(prefix="rap-pg-freeze-"))
    pgdata = home / "pgdata"
    server = embedded.start(pgdata)

    async def prepare() -> None:
        url = server.get_uri()
        conn = await asyncpg.connect(url)
        await migrate(conn)
        await conn.close()
        pool = await create_pool(url)
        await seed(pool, TRACKS)
        await pool.close()

    try:
        asyncio.run(prepare())
        yield server, pgdata
    finally:
        _signal_all(pgdata, signal.SIGCONT)  # never leave a stopped server behind
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _server_processes(pgdata: Path) -> list[psutil.Process]:
    """The postmaster (its pid is the first line of postmaster.pid) and every process
    it forked: backends, checkpointer, WAL writer, autovacuum."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return []
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def _signal_all(pgdata: Path, sig: signal.Signals) -> int:
    sent = 0
    for p in _server_processes(pgdata):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
            sent += 1
    return sent


def _valid(st: JSON) -> JSON:
    return next((c for c in st.get("conditions") or [] if c.get("type") == "Valid"), {})


def _database_unavailable(st: JSON) -> bool:
    cond = _valid(st)
    return cond.get("status") == "False" and cond.get("reason") == "DatabaseUnavailable"


def test_a_frozen_postgres_shows_on_the_run_and_the_run_ends_exactly_once(
    env: Env, namespace: str, own_postgres: tuple[Any, Path]
) -> None:
    server, pgdata = own_postgres
    url = str(server.get_uri())
    env.db_secret(namespace, url)
    # One track per batch and one pod: slow enough that the freeze lands mid-run.
    manifest = run_manifest("frozen", batchSize=1, parallelism=1, shards=2)
    assert env.apply(namespace, manifest).returncode == 0
    st = env.wait_status(
        namespace, "frozen", lambda s: s.get("phase") == "Running" and s.get("processed", 0) > 0
    )
    total = int(st["total"])
    assert total == TRACKS

    frozen_at = time.monotonic()
    try:
        assert _signal_all(pgdata, signal.SIGSTOP) >= 2  # postmaster and its children
        # While it lasts, the run says why it does not move (within the freeze).
        st = env.wait_status(
            namespace, "frozen", _database_unavailable, timeout=FREEZE_SECONDS - 1,
            what="Valid=False DatabaseUnavailable while Postgres is frozen",
        )  # fmt: skip
        assert st["phase"] == "Running"
        assert st["processed"] < total
        assert "://" not in _valid(st)["message"]  # no URL (nor its password) in the status
        # The freeze is the scenario's length, not a wait for a condition: the run must
        # keep saying so for all of it.
        while time.monotonic() - frozen_at < FREEZE_SECONDS:
            assert _database_unavailable(env.status(namespace, "frozen"))
            time.sleep(0.5)
    finally:
        _signal_all(pgdata, signal.SIGCONT)

    # Resumed: the condition clears while the run continues, and it ends Succeeded.
    env.wait_status(
        namespace, "frozen", lambda s: _valid(s).get("status") == "True", timeout=60,
        what="Valid=True again after SIGCONT",
    )  # fmt: skip
    st = env.wait_status(namespace, "frozen", phase("Succeeded"), timeout=300)
    assert st["processed"] + st.get("failed", 0) + st.get("skipped", 0) == total
    assert st["processed"] == total
    # Exactly once: one result per planned track, none lost, none twice.
    per_track = env.sql(
        url,
        "SELECT count(*) FILTER (WHERE n > 1) FROM"
        " (SELECT track_id, count(*) AS n FROM analysis_results GROUP BY track_id) t",
    )
    assert per_track == 0
    assert env.sql(url, "SELECT count(DISTINCT track_id) FROM analysis_results") == total
    assert env.sql(url, "SELECT sum(processed) FROM run_shards") == total
    reasons = [e["reason"] for e in env.events(namespace, "frozen")]
    assert "DatabaseUnavailable" in reasons  # the Warning Event of the wait
    assert "ReconcileError" not in reasons  # an outage is no bug
