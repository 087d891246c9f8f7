"""Kueue preemption and kind vs the real node (issue 24), one invocation, one machine:

1. kind (`make kind-node-image`) with Kueue v0.17.0 and the chart, N tracks seeded:
   - an unqueued emotion run (2 shards) to `Succeeded`: tracks/s;
   - TRIALS times: a queued run (2 shards, a queue with room for 2 pods) preempted
     mid-run by a higher-priority Job: seconds from that Job's create to the run's
     Job suspended and to the last lease released (goal < 5 s; leases sampled inside
     Postgres every 50 ms), and from readmission to the first item finished; every
     run ends exactly once with 0 crashes.
2. the project's real node (kubelet + containerd) with the chart, the same N tracks
   and the same run: tracks/s, and the ratio kind/real.

    python -m bench.kueue_preemption [N] [TRIALS]   (make bench-kueue N=57718; root, Docker)

Writes bench/kueue.json; the figures go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rap_devtools import chart_demo
from rap_devtools import queued_runs as q
from rap_devtools.cluster import REPO_ROOT
from rap_devtools.kind import KindCluster
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

IMAGES = (*chart_demo.app_images("dev"), ":".join(chart_demo.POSTGRES_IMAGE))
OUT = Path(__file__).with_name("kueue.json")


def timed_run(cluster: Any, name: str, **spec: Any) -> dict[str, Any]:
    """An emotion run over every track to Succeeded: tracks/s as the status says it
    (processed over startTime..completionTime) and as the wall clock says it."""
    q.psql(cluster, "DELETE FROM analysis_results WHERE analyzer_type = 'emotion'")
    t0 = time.monotonic()
    q.apply_run(cluster, name, **spec)
    phase = chart_demo.wait_for_phase(cluster, q.NS, name, ("Succeeded", "Failed"), 1800)
    wall = time.monotonic() - t0
    st = q.status(cluster, name)
    got = q.ledger(cluster, name)
    assert phase == "Succeeded", st
    assert got.results == got.distinct_tracks == got.done and got.crashes == 0, got
    return {"tracks": got.done, "status_tracks_per_s": st.get("throughput"),
            "apply_to_succeeded_s": round(wall, 1)}  # fmt: skip


def on_kind(n: int, trials: int) -> dict[str, Any]:
    with KindCluster(name="rap-kind-bench", bin_dir=REPO_ROOT / "bin") as c:
        c.load_docker_images(IMAGES)
        q.setup(c, n)
        plain = timed_run(c, "bench-plain", shards=2)
        preemptions = []
        for i in range(trials):
            run = f"bench-queued-{i}"
            q.psql(c, "DELETE FROM analysis_results WHERE analyzer_type = 'emotion'")
            q.apply_run(c, run, shards=2, queueName=q.QUEUE)
            wait_for(lambda run=run: q.processed(c, run) >= n // 10, timeout=600, interval=0.5,
                     what="the queued run to be working")  # fmt: skip
            timing = q.preempt(c, run, f"urgent-{i}", seconds=10)
            chart_demo.wait_for_phase(c, q.NS, run, ("Succeeded", "Failed"), 1800)
            got = q.ledger(c, run)
            assert got.results == got.distinct_tracks == got.done == n and got.crashes == 0, got
            preemptions.append(asdict(timing))
            print(f"trial {i}: {timing}", flush=True)
        return {"plain": plain, "preemptions": preemptions}


def on_real_node(n: int) -> dict[str, Any]:
    with RealNodeCluster(bin_dir=REPO_ROOT / "bin") as c:
        c.load_docker_images(IMAGES)
        chart_demo.create_restricted_namespace(c, q.NS)
        chart_demo.install(c, "dev", q.NS)
        chart_demo.seed(c, n)
        return timed_run(c, "bench-plain", shards=2)


def main(n: int, trials: int) -> dict[str, Any]:
    kind = on_kind(n, trials)
    real = on_real_node(n)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} ({platform.machine()}), 2 shared cores",
        "command": f"make bench-kueue N={n} TRIALS={trials}",
        "kind": kind,
        "real_node": real,
        "kind_over_real_tracks_per_s": round(
            kind["plain"]["status_tracks_per_s"] / real["status_tracks_per_s"], 2
        ),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000,
         int(sys.argv[2]) if len(sys.argv) > 2 else 3)  # fmt: skip
