"""Issue-22 benchmark: operator failover time with two replicas electing a leader.

    python -m bench.failover [TRIALS] [--json PATH]     (default 10 trials per mode)

On the local control plane (process kubelet) with the chart's RBAC, two operator
processes with leader election on (the chart's settings: RAP_LEADER_ELECTION, the
Lease rap-analyzer-operator, a status interval of 5 s), a real Postgres. Each trial
starts an AnalysisRun on a fresh copy of the corpus, waits until it is Running with
progress, then signals the leader:

- SIGKILL (a crash): the follower takes the Lease once it expires (15 s after the
  last renewal it saw);
- SIGTERM (a rollout, a drain): the leader stops kopf and releases the Lease.

Measured from the signal: `lease`, until the Lease names the follower; `write`, until
the run's .status first changes by the new leader's hand (after a SIGKILL any change
is; after a SIGTERM, the first change seen once the Lease changed hands, since the
old leader may still write while it stops). Sampled every 50 ms. The run must then
end Succeeded with every track processed once; the killed process is started again
(as the next follower) for the next trial.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.corpus_db import seeded_database
from rap_devtools.kubeapi import KubeApi
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    create_namespace,
    election_env,
    install_crds,
    install_operator_rbac,
    lease_holder,
    put_db_secret,
)
from rap_devtools.waiting import wait_for

from analyzer_runtime.db import embedded

TRACKS = 2400
NS = "failover"
STATUS_INTERVAL = 5.0  # the chart's operator.statusInterval
GOALS = {"SIGKILL": 20.0, "SIGTERM": 3.0}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def _run_path(name: str) -> str:
    return f"/apis/rapanalyzer.io/v1alpha1/namespaces/{NS}/analysisruns/{name}"


class Pair:
    def __init__(self, c: LocalCluster, kubeconfig: Path, home: Path) -> None:
        self.c, self.kubeconfig, self.home = c, kubeconfig, home
        self.ops: dict[str, OperatorProcess] = {}

    def start(self, name: str) -> None:
        op = OperatorProcess(
            self.kubeconfig, self.home / f"{name}.log", STATUS_INTERVAL, env=election_env(name)
        )
        op.start()
        self.ops[name] = op

    def roles(self, kube: KubeApi) -> tuple[str, str]:
        """(leader, follower) names once one of the two holds the Lease."""

        def held() -> str | None:
            h = lease_holder(kube)
            return next((n for n in self.ops if h.startswith(n + "_")), None)

        leader = wait_for(held, timeout=60, interval=0.1, what="a leader")
        (follower,) = [n for n in self.ops if n != leader]
        return leader, follower

    def stop(self) -> None:
        for op in self.ops.values():
            op.stop()


def trial(pair: Pair, kube: KubeApi, server: Any, sig: signal.Signals, i: int) -> dict[str, Any]:
    leader, follower = pair.roles(kube)
    name = f"{sig.name.lower()}-{i}"
    db = name.replace("-", "_")

    async def database() -> None:
        conn = await asyncpg.connect(server.get_uri())
        await conn.execute(f"CREATE DATABASE {db} TEMPLATE corpus")
        await conn.close()

    asyncio.run(database())
    put_db_secret(kube, NS, server.get_uri(db), name=f"db-{name}")
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": "algorithmic", "shards": 4, "parallelism": 1, "batchSize": 5,
                 "database": {"secretRef": {"name": f"db-{name}"}}},
    }  # fmt: skip
    res = pair.c.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(run))
    assert res.returncode == 0, res.stderr

    def status() -> dict[str, Any]:
        return dict(kube.get(_run_path(name)).get("status") or {})

    wait_for(
        lambda: status().get("phase") == "Running" and status().get("processed", 0) > 0,
        timeout=180, interval=0.2, what=f"{name} running",
    )  # fmt: skip
    before = status()
    t0 = time.monotonic()
    pair.ops[leader].signal(sig)
    lease_s = write_s = None
    last = before
    while write_s is None and time.monotonic() - t0 < 120:
        if lease_s is None and lease_holder(kube).startswith(follower + "_"):
            lease_s = time.monotonic() - t0
        st = status()
        counts = sig is signal.SIGKILL or lease_s is not None
        if st != last and counts:
            write_s = time.monotonic() - t0
        last = st
        time.sleep(0.05)
    assert lease_s is not None and write_s is not None, f"{name}: no failover in 120 s"
    exit_code = pair.ops[leader].wait_exit(timeout=60)
    final = wait_for(
        lambda: (st := status()).get("phase") in ("Succeeded", "Failed") and st,
        timeout=300, interval=0.5, what=f"{name} finished",
    )  # fmt: skip
    pair.start(leader)  # the next follower
    kube.delete(_run_path(name))
    return {
        "signal": sig.name,
        "lease_s": round(lease_s, 3),
        "write_s": round(write_s, 3),
        "processed_at_signal": before.get("processed"),
        "phase": final["phase"],
        "processed": final.get("processed"),
        "old_leader_exit": exit_code,
    }


def summary(trials: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    w = [t["write_s"] for t in trials]
    lease = [t["lease_s"] for t in trials]
    return {
        "trials": len(trials),
        "write_p50_s": round(statistics.median(w), 2),
        "write_p95_s": round(percentile(w, 95), 2),
        "write_max_s": round(max(w), 2),
        "lease_p50_s": round(statistics.median(lease), 2),
        "lease_p95_s": round(percentile(lease, 95), 2),
        "goal_p95_s": goal,
        "goal_met": percentile(w, 95) < goal,
        "all_succeeded_exactly": all(
            t["phase"] == "Succeeded" and t["processed"] == TRACKS for t in trials
        ),
    }


def main(n_trials: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="rap-bench-failover-"))
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "tracks": TRACKS,
        "status_interval_s": STATUS_INTERVAL,
    }
    server = embedded.start(home / "pgdata")
    try:
        asyncio.run(seeded_database(server, TRACKS, "corpus"))
        with LocalCluster(max_pods=4) as c:
            kube = c.kube_api()
            install_crds(c.kubeconfig)
            sa = install_operator_rbac(c.kubeconfig, kube)
            create_namespace(kube, NS)
            pair = Pair(c, c.make_kubeconfig_for_serviceaccount(OPERATOR_NS, sa), home)
            try:
                pair.start("op-a")
                pair.start("op-b")
                for sig in (signal.SIGKILL, signal.SIGTERM):
                    trials = [trial(pair, kube, server, sig, i) for i in range(n_trials)]
                    result[sig.name] = {
                        "summary": summary(trials, GOALS[sig.name]),
                        "trials": trials,
                    }
            finally:
                pair.stop()
                kube.close()
    finally:
        server.cleanup()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", nargs="?", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    out = main(args.trials)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
