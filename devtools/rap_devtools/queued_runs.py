"""AnalysisRuns in a Kueue queue, on a kind cluster with Kueue installed as users
install it: the steps the Kueue e2e tests (tests/node/test_kueue_runs_on_kind.py)
and the preemption benchmark (bench/kueue_preemption.py) share.

One ClusterQueue with room for 2 pods (Kueue's `pods` resource) and a LocalQueue in
the chart's namespace; a WorkloadPriorityClass `rap-high` for the Jobs that preempt.
Everything is read as a user reads it: kubectl, and psql inside the chart's Postgres.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from rap_devtools import chart_demo, kueue
from rap_devtools.cluster import ClusterAccess
from rap_devtools.waiting import wait_for

NS = chart_demo.NAMESPACE
QUEUE = "shards"
CLUSTER_QUEUE = "rap-shards"
QUEUE_PODS = 2
HIGH = "rap-high"


def setup(cluster: Any, tracks: int) -> None:
    """Kueue, the chart (its Postgres seeded with `tracks`), and the queues."""
    cluster.load_docker_images([kueue.IMAGE])
    kueue.install(cluster)
    chart_demo.create_restricted_namespace(cluster, NS)
    chart_demo.install(cluster, "dev", NS)
    chart_demo.seed(cluster, tracks)
    kueue.apply(
        cluster,
        kueue.resource_flavor(),
        kueue.cluster_queue(CLUSTER_QUEUE, {"pods": QUEUE_PODS}),
        kueue.local_queue(NS, QUEUE, CLUSTER_QUEUE),
        kueue.workload_priority_class(HIGH, 1000, "preempts analysis runs"),
    )


def teardown(cluster: Any) -> None:
    chart_demo.uninstall(cluster, NS)
    kueue.uninstall(cluster)


def kubectl(cluster: ClusterAccess, *args: str, check: bool = True, **kw: Any) -> str:
    return cluster.kubectl("-n", NS, *args, check=check, timeout=120, **kw).stdout


def psql(cluster: ClusterAccess, sql: str) -> str:
    """Through `kubectl exec` into the chart's Postgres."""
    cmd = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "$0"'
    return kubectl(cluster, "exec", "rap-analyzer-postgres-0", "--", "sh", "-c", cmd, sql).strip()


def apply_run(cluster: ClusterAccess, name: str, **spec: Any) -> None:
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": "emotion", "batchSize": 10, **spec},
    }
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(run))


def status(cluster: ClusterAccess, name: str) -> dict[str, Any]:
    got = chart_demo.get(cluster, NS, "analysisrun", name) or {}
    return dict(got.get("status") or {})


def condition(st: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c.get("type") == kind), None)


def run_job(cluster: ClusterAccess, name: str) -> dict[str, Any] | None:
    job = status(cluster, name).get("jobName")
    return chart_demo.get(cluster, NS, "job", job) if job else None


def events(cluster: ClusterAccess, name: str) -> list[tuple[str, str]]:
    out = kubectl(cluster, "get", "events", "--field-selector",
                  f"involvedObject.kind=AnalysisRun,involvedObject.name={name}", "-o", "json")  # fmt: skip
    items = sorted(json.loads(out)["items"], key=lambda e: e.get("lastTimestamp") or "")
    return [(e["reason"], e.get("message") or "") for e in items]


def leases_held(cluster: ClusterAccess, name: str) -> int:
    return int(psql(cluster, "SELECT count(*) FROM run_items i JOIN runs r ON r.id = i.run_id"
                             f" WHERE r.name = '{name}' AND i.claimed_by IS NOT NULL"))  # fmt: skip


def processed(cluster: ClusterAccess, name: str) -> int:
    return int(psql(cluster, "SELECT count(*) FROM run_items i JOIN runs r ON r.id = i.run_id"
                             f" WHERE r.name = '{name}' AND i.state <> 'pending'"))  # fmt: skip


@dataclass(frozen=True)
class Ledger:
    results: int  # analysis_results rows of the analyzer
    distinct_tracks: int
    done: int  # the run's items done
    crashes: int  # leases that expired unfinished (a crash charged to an item)


def ledger(cluster: ClusterAccess, name: str, analyzer: str = "emotion") -> Ledger:
    results, distinct = psql(cluster, "SELECT count(*), count(DISTINCT track_id) FROM"
                                      f" analysis_results WHERE analyzer_type = '{analyzer}'").split("|")  # fmt: skip
    done, crashes = psql(cluster, "SELECT count(*) FILTER (WHERE i.state = 'done'),"
                                  " coalesce(sum(i.crashes), 0) FROM run_items i JOIN runs r"
                                  f" ON r.id = i.run_id WHERE r.name = '{name}'").split("|")  # fmt: skip
    return Ledger(int(results), int(distinct), int(done), int(crashes))


def high_priority_job(name: str, pods: int, seconds: int) -> dict[str, Any]:
    """A Job of higher priority in the same queue that wants every pod of the quota
    (runs `sleep` in our image, restricted like the shard pods)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {kueue.QUEUE_LABEL: QUEUE, kueue.PRIORITY_LABEL: HIGH},
        },
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "urgent",
                            "image": f"{chart_demo.IMAGE_REPO}:dev",
                            "imagePullPolicy": "Never",
                            "command": ["sleep", str(seconds)],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                }
            },
        },
    }


@dataclass(frozen=True)
class Preemption:
    """Seconds, each from the moment the run's Job was seen suspended by Kueue."""

    suspended_after_submit: float  # from the high-priority Job's create
    leases_released: float  # until no item of the run is leased any more
    pods_gone: float  # until no shard pod of the run exists
    readmitted_to_first_item: float | None  # from the Job unsuspended again
    leases_at_suspend: int  # items leased when the Job was suspended


def preempt(cluster: ClusterAccess, run: str, urgent: str, seconds: int = 20) -> Preemption:
    """Submit a higher-priority Job that needs the whole quota while `run` works; time
    what follows (polled as a user would, ~0.3 s per look through kubectl)."""
    job = run_job(cluster, run)
    assert job is not None, "the run has no Job"
    selector = f"batch.kubernetes.io/job-name={job['metadata']['name']}"
    submitted = time.monotonic()
    kubectl(
        cluster,
        "create",
        "-f",
        "-",
        input=json.dumps(high_priority_job(urgent, QUEUE_PODS, seconds)),
    )
    wait_for(lambda: ((run_job(cluster, run) or {}).get("spec") or {}).get("suspend") is True,
             timeout=120, interval=0.2, what="Kueue to suspend the run's Job")  # fmt: skip
    suspended = time.monotonic()
    held = leases_held(cluster, run)
    wait_for(lambda: leases_held(cluster, run) == 0, timeout=120, interval=0.1,
             what="the preempted shards to give their leases back")  # fmt: skip
    released = time.monotonic()
    wait_for(lambda: not json.loads(kubectl(cluster, "get", "pods", "-l", selector, "-o", "json"))["items"],
             timeout=120, interval=0.2, what="the preempted shard pods to be gone")  # fmt: skip
    gone = time.monotonic()
    before = processed(cluster, run)
    wait_for(lambda: ((run_job(cluster, run) or {}).get("spec") or {}).get("suspend") is False,
             timeout=seconds + 180, interval=0.2, what="Kueue to readmit the run")  # fmt: skip
    readmitted = time.monotonic()
    first: float | None = None
    if chart_demo.run_phase(cluster, NS, run) != "Succeeded":
        wait_for(lambda: processed(cluster, run) > before or chart_demo.run_phase(cluster, NS, run) == "Succeeded",
                 timeout=180, interval=0.1, what="the first item after readmission")  # fmt: skip
        first = time.monotonic() - readmitted
    return Preemption(
        suspended_after_submit=round(suspended - submitted, 2),
        leases_released=round(released - suspended, 2),
        pods_gone=round(gone - suspended, 2),
        readmitted_to_first_item=round(first, 2) if first is not None else None,
        leases_at_suspend=held,
    )
