"""Issue-16 benchmark: peak connections of a 40-way run against the budget.

    python -m bench.connection_budget [N]      (N tracks; default 4,000)

On the local control plane with a process kubelet that admits 40 pods, a Postgres
with max_connections = 30 and one AnalysisRun with shards = parallelism = 40, run
twice in one session:

- budget: the operator as shipped (the budget read from the server);
- no budget: RAP_DB_CONNECTION_BUDGET=100000, i.e. what the operator did before
  (every pod the spec asks for).

For each: the Job's parallelism, peak active pods, peak client connections (all,
and the shard pods' by application_name), connections the server refused (its log),
pods failed, the outcome and the wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.corpus_db import seeded_database
from rap_devtools.limited_postgres import Peaks, limited_postgres, refused
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    create_namespace,
    install_crds,
    install_operator_rbac,
    put_db_secret,
)
from rap_devtools.waiting import wait_for

from analyzer_runtime.ledger.budget import DEFAULT_RESERVED, SHARD_POD_CONNECTIONS

MAX_CONNECTIONS = 30
SHARDS = 40


def _manifest(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name},
         "spec": {"analyzer": "algorithmic", "shards": SHARDS, "parallelism": SHARDS,
                  "batchSize": 20, "retry": {"backoffLimitPerIndex": 1}}}
    )  # fmt: skip


def scenario(
    c: LocalCluster, server: Any, sa: str, home: Path, label: str, env: dict[str, str]
) -> dict[str, Any]:
    ns = f"budget-{label}"
    url = server.get_uri(ns.replace("-", "_"))

    async def database() -> None:
        conn = await asyncpg.connect(server.get_uri())
        await conn.execute(f"CREATE DATABASE {ns.replace('-', '_')} TEMPLATE corpus")
        await conn.close()

    asyncio.run(database())
    kube = c.kube_api()
    create_namespace(kube, ns)
    put_db_secret(kube, ns, url)
    op = OperatorProcess(
        c.make_kubeconfig_for_serviceaccount(OPERATOR_NS, sa), home / f"operator-{label}.log",
        env=env,
    )  # fmt: skip
    op.start()
    before = refused(server)
    t0 = time.monotonic()
    try:
        with Peaks(c.kube_api(), url, ns) as peaks:
            c.kubectl("apply", "-n", ns, "-f", "-", input=_manifest("wide"))

            def final() -> dict[str, Any] | None:
                st = kube.get(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/analysisruns/wide")
                status = st.get("status") or {}
                return status if status.get("phase") in ("Succeeded", "Failed") else None

            status = wait_for(final, timeout=1200, interval=1, what=f"{label} run to end")
        seconds = time.monotonic() - t0
        jobs = kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
        failed_pods = sum(int((j.get("status") or {}).get("failed") or 0) for j in jobs)
    finally:
        op.stop()
        kube.close()
    return {
        "phase": status["phase"],
        "processed": status.get("processed"),
        "seconds": round(seconds, 1),
        "job_parallelism_seen": sorted(peaks.parallelism),
        "peak_active_pods": peaks.active,
        "peak_shard_connections": peaks.shard_connections,
        "peak_client_connections": peaks.connections,
        "refused_connections": refused(server) - before,
        "failed_pods": failed_pods,
    }


def main(n: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rap-bench-budget-"))
    budget_connections = MAX_CONNECTIONS - 3 - DEFAULT_RESERVED
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "tracks": n,
        "max_connections": MAX_CONNECTIONS,
        "budget_connections": budget_connections,
        "budget_pods": budget_connections // SHARD_POD_CONNECTIONS,
    }
    with limited_postgres(MAX_CONNECTIONS) as server:
        asyncio.run(seeded_database(server, n, "corpus"))
        with LocalCluster(max_pods=SHARDS) as c:
            kube = c.kube_api()
            install_crds(c.kubeconfig)
            sa = install_operator_rbac(c.kubeconfig, kube)
            kube.close()
            result["budget"] = scenario(c, server, sa, home, "on", {})
            result["no_budget"] = scenario(
                c, server, sa, home, "off", {"RAP_DB_CONNECTION_BUDGET": "100000"}
            )
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000), indent=2))
