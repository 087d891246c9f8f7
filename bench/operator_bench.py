"""Issue-4 benchmarks: the operator on the local control plane (real apiserver,
controller-manager, process kubelet) with the chart's RBAC and the embedded Postgres.

    python -m bench.operator_bench [N]      (N tracks for the efficiency run; default 57,718)

1. apply → Job latency: time from `kubectl apply` to the Job's ADDED event (p50/p95).
2. status lag: how long after the shard counters in Postgres reach a value the
   resource's status shows it (status interval 1 s).
3. status-refresh cost with 57,718 vs 577,180 planned items (O(shards) by design).
4. efficiency: the same algorithmic run through the operator and through the local
   runner, on the same corpus, in this session.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.corpus_db import seeded_database
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    install_crds,
    install_operator_rbac,
    put_db_secret,
)

from analyzer_runtime.contract.status import JobObservation, RunObservation, compute_status
from analyzer_runtime.db import embedded
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import create_pool

NS = "bench"


def _manifest(name: str, **spec: Any) -> str:
    body = {"analyzer": "algorithmic", "shards": 2, "parallelism": 2, **spec}
    return yaml.safe_dump(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name, "namespace": NS}, "spec": body}
    )  # fmt: skip


def _pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def apply_to_job_latency(c: LocalCluster, runs: int = 20) -> dict[str, float]:
    """Watch Jobs in a thread; timestamp each ADDED against its apply's start."""
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        kube = c.kube_api()
        rv = kube.get(f"/apis/batch/v1/namespaces/{NS}/jobs")["metadata"]["resourceVersion"]
        while not stop.is_set():
            for ev in kube.watch(f"/apis/batch/v1/namespaces/{NS}/jobs", rv, timeout_seconds=5):
                obj = ev["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if ev["type"] == "ADDED":
                    run = obj["metadata"]["labels"].get("rapanalyzer.io/run", "")
                    seen.setdefault(run, time.monotonic())
        kube.close()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.5)  # let the watch establish before the first apply
    started: dict[str, float] = {}
    for i in range(runs):
        name = f"lat-{i}"
        started[name] = time.monotonic()
        # selection.limit 1: the work is trivial; we time the control path only.
        res = c.kubectl("apply", "-f", "-", input=_manifest(name, selection={"limit": 1}))
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 30
        while name not in seen and time.monotonic() < deadline:
            time.sleep(0.005)
    stop.set()
    lat = [seen[n] - started[n] for n in started if n in seen]
    assert len(lat) == runs, f"only {len(lat)}/{runs} Jobs appeared"
    return {"runs": runs, "p50_s": round(_pctl(lat, 0.5), 3), "p95_s": round(_pctl(lat, 0.95), 3),
            "max_s": round(max(lat), 3)}  # fmt: skip


def status_lag(c: LocalCluster, url: str, interval: float) -> dict[str, float]:
    """Sample Postgres counters and the resource status side by side during a run."""
    res = c.kubectl("apply", "-f", "-", input=_manifest("lag", batchSize=10))
    assert res.returncode == 0, res.stderr
    kube = c.kube_api()
    path = f"/apis/rapanalyzer.io/v1alpha1/namespaces/{NS}/analysisruns/lag"

    async def sample() -> list[tuple[float, int, int]]:
        conn = await asyncpg.connect(url)
        out: list[tuple[float, int, int]] = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            db = await conn.fetchval(
                "SELECT coalesce(sum(s.processed + s.failed + s.skipped), 0) FROM run_shards s"
                " JOIN runs r ON r.id = s.run_id WHERE r.name = 'lag'"
            )
            st = kube.get(path).get("status") or {}
            shown = st.get("processed", 0) + st.get("failed", 0) + st.get("skipped", 0)
            out.append((time.monotonic(), int(db), int(shown)))
            if st.get("phase") in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(0.05)
        await conn.close()
        return out

    samples = asyncio.run(sample())
    kube.close()
    # For each counter value Postgres reached: how long until the status showed at least it.
    first_in_db: dict[int, float] = {}
    for t, db, _ in samples:
        first_in_db.setdefault(db, t)
    per_value = [
        next(t for t, _, shown in samples if shown >= v) - t_db
        for v, t_db in first_in_db.items()
        if v > 0 and any(shown >= v for _, _, shown in samples)
    ]
    return {"interval_s": interval, "updates": len(per_value),
            "max_lag_s": round(max(per_value), 3), "mean_lag_s": round(statistics.mean(per_value), 3)}  # fmt: skip


async def refresh_cost(
    url: str, sizes: tuple[int, ...] = (57718, 577180), shards: int = 4
) -> dict[str, Any]:
    """read_shards + compute_status (the refresh's database and CPU part) per plan size."""
    pool = await create_pool(url)
    out: dict[str, Any] = {}
    async with pool.acquire() as conn:
        for n in sizes:
            plan = await shard_ledger.record_plan(
                conn, uid=f"refresh-{n}", name=f"refresh-{n}", namespace=None, kind="AnalysisRun",
                spec={}, shards=shards, analyzer_type="x", model_version="1",
                item_ids=range(1, n + 1),
            )  # fmt: skip
            await conn.execute("ANALYZE run_items")
            times = []
            for _ in range(300):
                t0 = time.perf_counter()
                rows = await shard_ledger.read_shards(conn, plan.run.id)
                compute_status(
                    RunObservation(generation=1, shards=rows, job=JobObservation(exists=True),
                                   previous=None, now=datetime.now(UTC), planned_total=n)
                ).to_json()  # fmt: skip
                times.append(time.perf_counter() - t0)
            out[str(n)] = round(statistics.median(times) * 1000, 3)
    await pool.close()
    big, small = out[str(sizes[1])], out[str(sizes[0])]
    return {"median_ms": out, "ratio": round(big / small, 3)}


def efficiency(c: LocalCluster, url: str, n: int) -> dict[str, Any]:
    """The same algorithmic run (2 shards, parallelism 2) through the operator, then
    locally after deleting its results, so both do exactly the same work."""
    t0 = time.monotonic()
    res = c.kubectl("apply", "-f", "-", input=_manifest("eff", batchSize=200))
    assert res.returncode == 0, res.stderr
    wait = c.kubectl("wait", "--for=condition=Succeeded", "ar/eff", "-n", NS, "--timeout=1200s",
                     timeout=1300)  # fmt: skip
    assert wait.returncode == 0, wait.stderr
    operator_s = time.monotonic() - t0

    async def reset() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute("DELETE FROM analysis_results WHERE analyzer_type = 'algorithmic'")
        await conn.close()

    asyncio.run(reset())
    env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0"}
    local_s = timed_local_run(_manifest("eff-local", batchSize=200), env)
    return {"tracks": n, "operator_wall_s": round(operator_s, 1), "local_wall_s": round(local_s, 1),
            "operator_vs_local": round(local_s / operator_s, 3)}  # fmt: skip


def timed_local_run(manifest: str, env: dict[str, str], prefix: list[str] | None = None) -> float:
    """Seconds `rap-analyzer run MANIFEST` takes (``prefix``: e.g. nsenter into
    the node's network namespace); the operator-vs-local ratios' other half."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(manifest)
    t0 = time.monotonic()
    local = subprocess.run([*(prefix or []), sys.executable, "-m", "analyzer_runtime", "run",
                            f.name, "--no-progress"], env=env, capture_output=True, text=True)  # fmt: skip
    seconds = time.monotonic() - t0
    os.unlink(f.name)
    assert local.returncode == 0, local.stderr
    return seconds


def main(n: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rap-bench-op-"))
    server = embedded.start(home / "pgdata")
    url = server.get_uri()

    asyncio.run(seeded_database(server, n))
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    result["refresh_cost"] = asyncio.run(refresh_cost(url))
    interval = 1.0
    with LocalCluster(max_pods=4) as c:
        kube = c.kube_api()
        install_crds(c.kubeconfig)
        sa = install_operator_rbac(c.kubeconfig, kube)
        kube.post("/api/v1/namespaces", {"metadata": {"name": NS}})
        put_db_secret(kube, NS, url)
        kube.close()
        op = OperatorProcess(c.make_kubeconfig_for_serviceaccount(OPERATOR_NS, sa),
                             home / "operator.log", interval=interval)  # fmt: skip
        op.start()
        try:
            result["apply_to_job"] = apply_to_job_latency(c)
            result["status_lag"] = status_lag(c, url, interval)
            asyncio.run(_clear(url))
            result["efficiency"] = efficiency(c, url, n)
        finally:
            op.stop()
    server.cleanup()
    return result


async def _clear(url: str) -> None:
    """The latency and lag runs analyzed tracks; the efficiency runs start from none."""
    conn = await asyncpg.connect(url)
    await conn.execute("DELETE FROM analysis_results")
    await conn.close()


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 57718), indent=2))
