"""A run asking for more shard pods than its database has connections for: the
operator caps the Job's parallelism with a condition saying so, and no pod meets a
refused connection (Postgres would log "sorry, too many clients already")."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from analyzer_runtime.db import embedded
from analyzer_runtime.db.budget import SHARD_POD_CONNECTIONS
from analyzer_runtime.db.connect import create_pool
from analyzer_runtime.db.migrate import migrate
from analyzer_runtime.seed import seed
from tests.e2e.runs.operator_env import Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e

MAX_CONNECTIONS = 30
TRACKS = 800
# 30 - 3 superuser-reserved - the operator's default reserve of 10, at 2 per pod.
EXPECTED_PODS = (MAX_CONNECTIONS - 3 - 10) // SHARD_POD_CONNECTIONS


@pytest.fixture(scope="module")
def small_pg() -> Iterator[Any]:
    """A Postgres of its own with max_connections = 30 (a small managed plan's size)."""
    from pgserver._commands import pg_ctl

    home = Path(tempfile.mkdtemp(prefix="rap-pg-small-"))
    server = embedded.start(home / "pgdata")

    async def limit() -> None:
        conn = await asyncpg.connect(server.get_uri())
        await conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
        await conn.close()

    asyncio.run(limit())
    # max_connections takes a restart; pg_ctl keeps the socket options of the start.
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)

    async def prepare() -> None:
        conn = await asyncpg.connect(server.get_uri())
        assert await conn.fetchval("SHOW max_connections") == str(MAX_CONNECTIONS)
        await migrate(conn)
        await conn.close()
        pool = await create_pool(server.get_uri())
        await seed(pool, TRACKS)
        await pool.close()

    asyncio.run(prepare())
    yield server
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


class Peaks:
    """Samples Postgres' client connections and the Job's active pods until stopped."""

    def __init__(self, env: Env, url: str, namespace: str) -> None:
        self.env, self.url, self.namespace = env, url, namespace
        self.connections = self.active = 0
        self.parallelism: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                n = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                )
                self.connections = max(self.connections, int(n))
                for job in self.env.kube.get(f"/apis/batch/v1/namespaces/{self.namespace}/jobs")[
                    "items"
                ]:
                    self.active = max(self.active, int(job.get("status", {}).get("active") or 0))
                    self.parallelism.add(int(job["spec"]["parallelism"]))
                await asyncio.sleep(0.2)  # a sampling period, not a wait for a condition
        finally:
            await conn.close()


def test_parallelism_is_capped_to_the_connection_budget(
    env: Env, namespace: str, small_pg: Any
) -> None:
    url = small_pg.get_uri()
    env.db_secret(namespace, url)
    log = Path(small_pg.log)
    refused_before = log.read_text().count("too many clients")
    with Peaks(env, url, namespace) as peaks:
        res = env.apply(namespace, run_manifest("wide", shards=40, parallelism=40, batchSize=5))
        assert res.returncode == 0, res.stderr

        def capped(st: dict[str, Any]) -> bool:
            return any(
                c["type"] == "ParallelismCapped" and c["status"] == "True"
                for c in st.get("conditions") or []
            )

        st = env.wait_status(namespace, "wide", capped, timeout=120, what="ParallelismCapped")
        cond = next(c for c in st["conditions"] if c["type"] == "ParallelismCapped")
        assert cond["reason"] == "ConnectionBudget"
        assert cond["message"].startswith(f"{EXPECTED_PODS} of 40 shard pods at once"), cond
        assert f"max_connections {MAX_CONNECTIONS}" in cond["message"]
        st = env.wait_status(namespace, "wide", phase("Succeeded"), timeout=600)

    assert (st["processed"], st["failed"], st["total"]) == (TRACKS, 0, TRACKS)
    exact(env, url, TRACKS)
    # The Job ran at the cap, never more pods at once, and none failed.
    assert EXPECTED_PODS in peaks.parallelism, peaks.parallelism
    assert 0 < peaks.active <= EXPECTED_PODS, peaks.active
    job = env.jobs(namespace, env.get(namespace, "wide")["metadata"]["uid"])[0]
    assert not job["status"].get("failed"), job["status"]
    assert env.sql(url, "SELECT count(*) FROM run_shards WHERE last_error IS NOT NULL") == 0
    assert log.read_text().count("too many clients") == refused_before
    # Shard pods, the operator's pool, this sampler: within what the server allows.
    assert peaks.connections <= MAX_CONNECTIONS - 3, peaks.connections
    reasons = [e["reason"] for e in env.events(namespace, "wide")]
    assert "ParallelismCapped" in reasons, reasons
