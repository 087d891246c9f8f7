"""A run asking for more shard pods than its database has connections for (40 pods
of 2 connections on max_connections 20): the operator caps the Job's parallelism
with a condition saying so, and no pod meets a refused connection (Postgres would
log "sorry, too many clients already")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from rap_devtools.limited_postgres import Peaks, limited_postgres, refused

from analyzer_runtime.ledger.budget import SHARD_POD_CONNECTIONS
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.migrate import migrate
from analyzer_runtime.seed import seed
from tests.e2e.runs.operator_env import Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e

# Low enough that the budget (3 pods) is below the test kubelet's 8 pods, and that
# 8 pods (16 connections) + the operator's 5 would be refused: 20 - 3 reserved = 17.
MAX_CONNECTIONS = 20
TRACKS = 800
# 20 - 3 superuser-reserved - the operator's default reserve of 10, at 2 per pod.
EXPECTED_PODS = (MAX_CONNECTIONS - 3 - 10) // SHARD_POD_CONNECTIONS


@pytest.fixture(scope="module")
def small_pg() -> Iterator[Any]:
    with limited_postgres(MAX_CONNECTIONS) as server:

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


def test_parallelism_is_capped_to_the_connection_budget(
    env: Env, namespace: str, small_pg: Any
) -> None:
    url = small_pg.get_uri()
    env.db_secret(namespace, url)
    refused_before = refused(small_pg)
    sampler_api = env.cluster.kube_api()  # its own client: the sampler is another thread
    with Peaks(sampler_api, url, namespace) as peaks:
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
    sampler_api.close()

    assert (st["processed"], st["failed"], st["total"]) == (TRACKS, 0, TRACKS)
    exact(env, url, TRACKS)
    # The Job ran at the cap, never more pods at once, and none failed.
    assert EXPECTED_PODS in peaks.parallelism, peaks.parallelism
    assert 0 < peaks.active <= EXPECTED_PODS, peaks.active
    job = env.jobs(namespace, env.get(namespace, "wide")["metadata"]["uid"])[0]
    assert not job["status"].get("failed"), job["status"]
    assert env.sql(url, "SELECT count(*) FROM run_shards WHERE last_error IS NOT NULL") == 0
    assert refused(small_pg) == refused_before
    # Each pod holds its two; all of them together never more than the budget.
    assert 0 < peaks.shard_connections <= EXPECTED_PODS * SHARD_POD_CONNECTIONS, peaks
    assert peaks.connections <= MAX_CONNECTIONS - 3, peaks
    reasons = [e["reason"] for e in env.events(namespace, "wide")]
    assert "ParallelismCapped" in reasons, reasons
