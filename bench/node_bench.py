"""Issue-12 benchmarks: the chart on the real node (kubelet + containerd).

    python -m bench.node_bench [N]      (N tracks; default 57,718)

Needs root, the node binaries (`make node`) and the images (`make image
postgres-image`); `make bench-node` does all of it.

1. apply -> first shard pod Running: 10 one-shard runs applied one after the
   other; from `kubectl apply` returning to the pod's phase Running (p50/p95).
2. throughput: one algorithmic run over N tracks (2 shards) through the operator
   on the real node, then the local runner on the same Postgres (the chart's, in
   the node's network namespace) after deleting the results, so both do the
   same work on the same machine in one session. Ratio = local / operator time.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rap_devtools import chart_demo as demo
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

from bench.operator_bench import timed_local_run

NS = demo.NAMESPACE
IMAGES = (*demo.app_images("dev"), ":".join(demo.POSTGRES_IMAGE))


def _run(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
                       "metadata": {"name": name, "namespace": NS},
                       "spec": {"analyzer": "algorithmic", **spec}})  # fmt: skip


def _pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def apply_to_pod_running(c: RealNodeCluster, runs: int = 10) -> dict[str, float]:
    from kubernetes import client

    api = c.api_client()
    core = client.CoreV1Api(api)
    latencies = []
    for i in range(runs):
        name = f"lat-{i}"
        manifest = _run(name, shards=1, selection={"onlyMissing": False,
                                                   "idRange": {"from": i * 50 + 1, "to": i * 50 + 50}})  # fmt: skip
        c.kubectl("apply", "-f", "-", input=manifest, check=True)
        t0 = time.monotonic()

        def running(name: str = name) -> bool:
            pods = core.list_namespaced_pod(NS, label_selector="batch.kubernetes.io/job-name").items
            return any(p.metadata.labels["batch.kubernetes.io/job-name"].startswith(name)
                       and p.status.phase in ("Running", "Succeeded") for p in pods)  # fmt: skip

        wait_for(running, timeout=120, interval=0.05, what=f"{name}'s pod Running")
        latencies.append(time.monotonic() - t0)
        demo.wait_for_phase(c, NS, name, ("Succeeded",), 300)
        c.kubectl("-n", NS, "delete", "analysisrun", name, "--wait", check=True)
    api.close()
    return {"runs": runs, "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(_pctl(latencies, 0.95), 2), "max_s": round(max(latencies), 2)}  # fmt: skip


def database_url_in_node(c: RealNodeCluster) -> str:
    """The chart's database URL with the Postgres pod's IP for its host, for a
    process in the node's network namespace (on the pods' bridge; the namespace
    has no route to Service IPs of its own)."""
    secret = json.loads(c.kubectl("-n", NS, "get", "secret", "rap-analyzer-db", "-o", "json",
                                  check=True).stdout)  # fmt: skip
    url = base64.b64decode(secret["data"]["url"]).decode()
    ip = c.kubectl("-n", NS, "get", "pod", "rap-analyzer-postgres-0", "-o",
                   "jsonpath={.status.podIP}", check=True).stdout.strip()  # fmt: skip
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@{ip}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def throughput(c: RealNodeCluster, n: int) -> dict[str, Any]:
    spec = {"shards": 2, "parallelism": 2, "batchSize": 200}
    t0 = time.monotonic()
    c.kubectl("apply", "-f", "-", input=_run("eff", **spec), check=True)
    demo.wait_for_phase(c, NS, "eff", ("Succeeded",), 1800)
    operator_s = time.monotonic() - t0
    url = database_url_in_node(c)
    env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0"}
    reset = "DELETE FROM analysis_results WHERE analyzer_type = 'algorithmic'"
    # The URL travels in the environment, never on a command line.
    subprocess.run([*c.network.nsenter(), sys.executable, "-c",
                    "import asyncio, asyncpg, os\nasync def m():\n"
                    " c = await asyncpg.connect(os.environ['DATABASE_URL'])\n"
                    f" await c.execute({reset!r})\n await c.close()\nasyncio.run(m())"],
                   check=True, env=env)  # fmt: skip
    local_s = timed_local_run(_run("eff-local", **spec), env, prefix=c.network.nsenter())
    return {"tracks": n, "operator_wall_s": round(operator_s, 1), "local_wall_s": round(local_s, 1),
            "operator_vs_local": round(local_s / operator_s, 3)}  # fmt: skip


def main(n: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    with RealNodeCluster(max_pods=40) as c:
        result["node_start_s"] = round(c.start_seconds or 0, 1)
        t0 = time.monotonic()
        c.load_docker_images(IMAGES)
        result["image_load_s"] = round(time.monotonic() - t0, 1)
        demo.create_restricted_namespace(c, NS)
        t0 = time.monotonic()
        demo.install(c, "dev", NS)
        result["helm_install_wait_s"] = round(time.monotonic() - t0, 1)
        demo.seed(c, n)
        result["apply_to_pod_running"] = apply_to_pod_running(c)
        c.kubectl("-n", NS, "exec", "rap-analyzer-postgres-0", "--", "sh", "-c",
                  'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER" '
                  '-d "$POSTGRES_DB" -c "DELETE FROM analysis_results"', check=True)  # fmt: skip
        result["throughput"] = throughput(c, n)
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 57718), indent=2))
