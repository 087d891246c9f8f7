"""Issue-10 benchmark: 100 AnalysisRuns applied at once, before and after the
reconcile rewrite, in one session on the local control plane.

    python -m bench.operator_scale [RUNS] [BASELINE]     (100; b0bcd7a)

For each operator - BASELINE's (checked out with `git worktree`, run with PYTHONPATH
from a neutral directory) and this tree's - on the same cluster, Postgres and chart
RBAC, in a namespace of its own:

Each operator watches only its namespace (RAP_NAMESPACES) and gets its own checkout's
CRDs (the status schema changed between the two).

1. apply→Job: RUNS AnalysisRuns (4 shards, `suspend: true`, disjoint 12-track id
   ranges) in ONE `kubectl apply`; a watch thread timestamps each run's ADDED and
   its Job's ADDED; p50/p95/max of the difference.
2. steady state: every run is planned, has its (suspended) Job and is unfinished, so
   the operator keeps reconciling it. API requests per run per minute = the
   apiserver's `apiserver_request_total` over 60 s, minus the same count over 30 s
   with that operator stopped (the cluster's own traffic), per run.
3. operator RSS: peak over the whole variant, sampled every 0.5 s.
The status interval is the chart's default, 5 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    install_crds,
    install_operator_rbac,
    put_db_secret,
)

from analyzer_runtime.db import embedded
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.migrate import migrate
from analyzer_runtime.seed import seed
from bench.operator_bench import _pctl

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "b0bcd7a"
INTERVAL = 5.0
PER_RUN = 12


def _manifests(ns: str, runs: int) -> str:
    docs = [
        {
            "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": f"scale-{i}", "namespace": ns},
            "spec": {
                "analyzer": "algorithmic", "shards": 4, "suspend": True,
                "selection": {"idRange": {"from": i * PER_RUN + 1, "to": (i + 1) * PER_RUN}},
            },
        }
        for i in range(runs)
    ]  # fmt: skip
    return yaml.safe_dump_all(docs)


def _requests_total(c: LocalCluster) -> float:
    kube = c.kube_api()
    try:
        text = kube._http.get("/metrics").text
    finally:
        kube.close()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M)
    )


class _Watcher(threading.Thread):
    """First-seen times of runs and of their Jobs in one namespace."""

    def __init__(self, c: LocalCluster, ns: str) -> None:
        super().__init__(daemon=True)
        self.c, self.ns = c, ns
        self.runs: dict[str, float] = {}
        self.jobs: dict[str, float] = {}
        self.stop = threading.Event()

    def _follow(self, path: str, seen: dict[str, float], key: Any) -> None:
        kube = self.c.kube_api()
        rv = kube.get(path)["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            for ev in kube.watch(path, rv, timeout_seconds=2):
                obj = ev["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if ev["type"] == "ADDED":
                    seen.setdefault(key(obj), time.monotonic())
        kube.close()

    def run(self) -> None:
        t = threading.Thread(
            target=self._follow,
            args=(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{self.ns}/analysisruns", self.runs,
                  lambda o: o["metadata"]["name"]),
            daemon=True,
        )  # fmt: skip
        t.start()
        self._follow(
            f"/apis/batch/v1/namespaces/{self.ns}/jobs",
            self.jobs,
            lambda o: o["metadata"]["labels"].get("rapanalyzer.io/run", ""),
        )


def _variant(
    c: LocalCluster, url: str, sa: str, ns: str, runs: int, home: Path, code: Path | None
) -> dict[str, Any]:
    kube = c.kube_api()
    kube.post("/api/v1/namespaces", {"metadata": {"name": ns}})
    time.sleep(1)  # the namespace's default ServiceAccount (pods are never created here)
    put_db_secret(kube, ns, url)
    # Each operator with its own CRDs (the status schema changed) and watching only
    # its namespace.
    install_crds(c.kubeconfig, (code or ROOT) / "crds")
    env = {"RAP_NAMESPACES": ns}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(code / p) for p in (".", "operator", "devtools"))
    op = OperatorProcess(
        c.make_kubeconfig_for_serviceaccount(OPERATOR_NS, sa), home / f"operator-{ns}.log",
        interval=INTERVAL, env=env, cwd=home,
    )  # fmt: skip
    op.start()
    rss: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        proc = psutil.Process(op.pid)
        while not sampling.is_set():
            rss.append(proc.memory_info().rss / 2**20)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watcher = _Watcher(c, ns)
    watcher.start()
    time.sleep(1)
    try:
        res = c.kubectl("apply", "-f", "-", input=_manifests(ns, runs))
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 600
        while len(watcher.jobs) < runs and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(watcher.jobs) == runs, f"{len(watcher.jobs)}/{runs} Jobs\n{op.tail()}"
        lat = [watcher.jobs[n] - watcher.runs[n] for n in watcher.jobs if n in watcher.runs]

        def suspended() -> int:
            items = kube.get(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/analysisruns")
            return sum((i.get("status") or {}).get("phase") == "Suspended" for i in items["items"])

        while suspended() < runs and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2 * INTERVAL)  # past the first refreshes
        before = _requests_total(c)
        time.sleep(60)
        busy = _requests_total(c) - before
    finally:
        sampling.set()
        op.stop()
        watcher.stop.set()
    before = _requests_total(c)
    time.sleep(30)
    idle = (_requests_total(c) - before) * 2  # per minute
    kube.close()
    return {
        "apply_to_job_p50_s": round(_pctl(lat, 0.5), 3),
        "apply_to_job_p95_s": round(_pctl(lat, 0.95), 3),
        "apply_to_job_max_s": round(max(lat), 3),
        "api_requests_per_min_with_operator": round(busy),
        "api_requests_per_min_without": round(idle),
        "api_requests_per_run_per_min": round((busy - idle) / runs, 2),
        "operator_peak_rss_mb": round(max(rss), 1),
    }


def main(runs: int, baseline: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rap-bench-scale-"))
    tree = home / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), baseline],
        check=True, capture_output=True,
    )  # fmt: skip
    server = embedded.start(home / "pgdata")
    try:

        async def prepare(db: str) -> str:
            import asyncpg

            conn = await asyncpg.connect(server.get_uri())
            await conn.execute(f"CREATE DATABASE {db}")
            await conn.close()
            url = str(server.get_uri(db))
            conn = await asyncpg.connect(url)
            await migrate(conn)
            await conn.close()
            pool = await create_pool(url)
            await seed(pool, runs * PER_RUN)
            await pool.close()
            return url

        with LocalCluster(max_pods=4) as c:
            kube = c.kube_api()
            sa = install_operator_rbac(c.kubeconfig, kube)
            kube.close()
            out: dict[str, Any] = {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {os.cpu_count()} cores,"
                f" {platform.python_version()}",
                "runs": runs,
                "baseline": baseline,
                "status_interval_s": INTERVAL,
            }
            url = asyncio.run(prepare("scale_before"))
            out["before"] = _variant(c, url, sa, "scale-before", runs, home, tree)
            url = asyncio.run(prepare("scale_after"))
            out["after"] = _variant(c, url, sa, "scale-after", runs, home, None)
            return out
    finally:
        server.cleanup()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    print(
        json.dumps(
            main(int(args[0]) if args else 100, args[1] if len(args) > 1 else BASELINE), indent=2
        )
    )
