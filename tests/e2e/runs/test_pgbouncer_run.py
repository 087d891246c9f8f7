"""A run through PgBouncer (issue 16): the operator and the shard pods reach Postgres
through a real PgBouncer (Debian's, `make pgbouncer`) in transaction pooling, with
fewer server connections than pods, configured as the chart does it:
DATABASE_POOL_MODE=transaction on the operator, which hands it to the Job pods."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from rap_devtools.operator_setup import OperatorProcess
from rap_devtools.pgbouncer import PgBouncer, pgbouncer

from analyzer_runtime.ledger.connect import POOL_MODE_ENV
from tests.e2e.runs.operator_env import CORPUS, Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e

# Server connections per database: fewer than the 3 pods x 2 connections and the
# operator's pool, so transactions share server connections.
POOL_SIZE = 3


@pytest.fixture
def bouncer(env: Env) -> Iterator[PgBouncer]:
    with pgbouncer(env.pg.get_uri(), pool_size=POOL_SIZE) as b:
        yield b


@pytest.fixture
def transaction_mode_operator(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The session's operator swapped for one configured like the chart's with
    `pgbouncer.enabled` (one operator at a time: two would both reconcile every run);
    the session's comes back afterwards for the other tests."""
    env.operator.stop()
    op = OperatorProcess(
        env.operator.kubeconfig,
        tmp_path_factory.mktemp("operator-pgbouncer") / "operator.log",
        env={POOL_MODE_ENV: "transaction"},
    )
    try:
        op.start()
        yield Env(env.cluster, env.kube, env.pg, op)
    finally:
        op.stop()
        env.operator.start()


def test_a_run_through_pgbouncer_succeeds_exactly_once(
    transaction_mode_operator: Env, bouncer: PgBouncer, namespace: str
) -> None:
    e = transaction_mode_operator
    direct = e.new_database()
    dbname = urlsplit(direct).path.lstrip("/")
    # The Secret holds PgBouncer's URL (with its password), as the chart's would.
    e.db_secret(namespace, bouncer.url(dbname))
    res = e.apply(namespace, run_manifest("pooled", shards=4, parallelism=3, batchSize=20))
    assert res.returncode == 0, res.stderr

    st = e.wait_status(
        namespace, "pooled", phase("Succeeded"), timeout=300,
        what="run through PgBouncer Succeeded",
    )  # fmt: skip
    assert (st["processed"], st["failed"], st["total"]) == (CORPUS, 0, CORPUS)
    assert st["shards"]["done"] == {"count": 4, "indexes": "0-3"}
    # Counted in Postgres directly, not through PgBouncer: one result per track.
    exact(e, direct, CORPUS)
    assert e.sql(direct, "SELECT state FROM runs") == "succeeded"

    # The pods were told the pool mode (and read the URL from the Secret only).
    uid = e.get(namespace, "pooled")["metadata"]["uid"]
    (job,) = e.jobs(namespace, uid)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    envs = {v["name"]: v for v in container["env"]}
    assert envs[POOL_MODE_ENV]["value"] == "transaction"
    assert "valueFrom" in envs["DATABASE_URL"]
    assert bouncer.password not in str(job) + str(st)

    # And the traffic really went through PgBouncer, in transaction pooling: at least
    # one transaction per batch of the run.
    (stats,) = [s for s in bouncer.admin("SHOW STATS") if s["database"] == dbname]
    assert int(stats["total_xact_count"]) >= CORPUS // 20, stats
    (pool,) = [p for p in bouncer.admin("SHOW POOLS") if p["database"] == dbname]
    assert pool["pool_mode"] == "transaction"
    servers = [s for s in bouncer.admin("SHOW SERVERS") if s["database"] == dbname]
    assert 0 < len(servers) <= POOL_SIZE, servers

    # Deleted while this operator and PgBouncer are up: its finalizer is handled here,
    # not by the session's operator after PgBouncer is gone.
    gone = e.kubectl("delete", "ar", "pooled", "-n", namespace, "--wait=true", "--timeout=60s")
    assert gone.returncode == 0, gone.stderr + e.operator.tail()
