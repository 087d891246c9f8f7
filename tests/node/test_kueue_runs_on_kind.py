"""AnalysisRuns admitted by a real Kueue (v0.17.0, our build, installed in a kind
cluster as users install it; the chart as users install it): a queue with room for
2 shard pods admits a 6-pod run partially, a higher-priority Job preempts a working
run and the run resumes, a run naming a queue that does not exist waits. Every run
ends with each track analyzed exactly once and no item charged a crash.

The tests run in order on one installation (module fixture)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from rap_devtools import chart_demo, kueue
from rap_devtools import queued_runs as q
from rap_devtools.cluster import REPO_ROOT
from rap_devtools.kind import KindCluster
from rap_devtools.waiting import wait_for

TRACKS = 15000


@pytest.fixture(scope="module")
def queued(kind_cluster: KindCluster) -> Iterator[KindCluster]:
    q.setup(kind_cluster, TRACKS)
    yield kind_cluster
    q.teardown(kind_cluster)


def _conditions(c: KindCluster, run: str) -> dict[str, dict]:
    return {x["type"]: x for x in q.status(c, run).get("conditions") or []}


def test_a_six_pod_run_in_a_two_pod_queue_is_admitted_partially(queued: KindCluster) -> None:
    run = "queued-partial"
    q.apply_run(queued, run, shards=6, parallelism=6, queueName=q.QUEUE)
    admitted = wait_for(
        lambda: (c := _conditions(queued, run).get("QueueAdmitted")) and c["status"] == "True" and c,
        timeout=180, interval=0.5, what="the run admitted by Kueue",
        describe=lambda: json.dumps(q.status(queued, run), indent=1),
    )  # fmt: skip
    assert "with 2 of 6 shard pods at once" in admitted["message"], admitted
    assert "partial admission" in admitted["message"]
    job = q.run_job(queued, run)
    assert job is not None
    # Kueue, not the operator, set the Job's size: the admitted count.
    assert job["spec"]["parallelism"] == 2
    assert job["metadata"]["annotations"][kueue.MIN_PARALLELISM] == "1"
    workload = kueue.job_workload(queued, q.NS, job["metadata"]["name"])
    assert workload is not None and kueue.admitted_counts(workload) == {"main": 2}

    most = 0

    def finished() -> str | None:
        nonlocal most
        pods = json.loads(q.kubectl(queued, "get", "pods", "-l",
                                    f"batch.kubernetes.io/job-name={job['metadata']['name']}",
                                    "-o", "json"))["items"]  # fmt: skip
        running = sum(1 for p in pods if p["status"].get("phase") == "Running")
        most = max(most, running)
        phase = chart_demo.run_phase(queued, q.NS, run)
        return phase if phase in ("Succeeded", "Failed") else None

    assert (
        wait_for(finished, timeout=900, interval=1, what="the partial run to finish") == "Succeeded"
    )
    assert 1 <= most <= 2, most  # never more pods than the queue admitted
    got = q.ledger(queued, run)
    assert (got.results, got.distinct_tracks, got.done, got.crashes) == (TRACKS, TRACKS, TRACKS, 0)
    reasons = [r for r, _ in q.events(queued, run)]
    assert "Queued" in reasons or "QueueAdmitted" in reasons
    assert reasons.count("QueueAdmitted") == 1


def test_preemption_gives_the_leases_back_shows_and_resumes(queued: KindCluster) -> None:
    run = "queued-preempted"
    q.psql(queued, "DELETE FROM analysis_results WHERE analyzer_type = 'emotion'")
    q.apply_run(queued, run, shards=2, queueName=q.QUEUE)
    wait_for(lambda: q.processed(queued, run) >= 200, timeout=300, interval=0.5,
             what="the run to be working",
             describe=lambda: json.dumps(q.status(queued, run), indent=1))  # fmt: skip
    held: dict[str, Any] = {}

    def while_held() -> None:
        """The status while the urgent Job has the quota: Suspended by a preemption."""
        held.update(wait_for(
            lambda: (s := q.status(queued, run)).get("phase") == "Suspended" and s,
            timeout=60, interval=0.5, what="the run Suspended by the preemption",
            describe=lambda: json.dumps(q.status(queued, run), indent=1),
        ))  # fmt: skip
        # Waiting costs no crash: the preempted pods gave their leases back.
        wait_for(lambda: q.leases_held(queued, run) == 0, timeout=60, interval=0.5,
                 what="the leases given back")  # fmt: skip
        assert q.ledger(queued, run).crashes == 0

    timings = q.preempt(queued, run, "urgent", seconds=30, while_held=while_held)
    print(f"preemption timings: {timings}")
    conds = {c["type"]: c for c in held["conditions"]}
    assert conds["Suspended"]["reason"] == "Preempted"
    assert "Preempted to accommodate a workload" in conds["Preempted"]["message"], conds
    assert conds["Preempted"]["status"] == "True"
    assert conds["Queued"]["status"] == "True"
    assert conds["QueueAdmitted"]["status"] == "False"
    assert 0 < held["processed"] < TRACKS  # the work done so far stays done

    assert chart_demo.wait_for_phase(queued, q.NS, run, ("Succeeded", "Failed"), 900) == "Succeeded"
    reasons = [r for r, _ in q.events(queued, run)]
    assert "Preempted" in reasons and "Readmitted" in reasons, reasons
    conds = _conditions(queued, run)
    assert conds["Preempted"]["status"] == "False" and conds["Preempted"]["reason"] == "Readmitted"
    assert conds["QueueAdmitted"]["status"] == "True"
    got = q.ledger(queued, run)
    # Exactly once, and the preempted pods' items were given back, not expired:
    # no item was charged a crash.
    assert (got.results, got.distinct_tracks, got.done, got.crashes) == (TRACKS, TRACKS, TRACKS, 0)
    # No shard was charged a pod failure for being preempted.
    job = q.run_job(queued, run)
    assert job is not None and not (job.get("status") or {}).get("failedIndexes"), job.get("status")


def test_spec_suspend_of_a_queued_run_deactivates_its_workload(queued: KindCluster) -> None:
    """Kueue would unsuspend an admitted Job the operator suspended: spec.suspend
    deactivates the Workload instead, and resuming makes it active again."""
    run = "queued-paused"
    q.psql(queued, "DELETE FROM analysis_results WHERE analyzer_type = 'emotion'")
    q.apply_run(queued, run, shards=2, queueName=q.QUEUE)
    wait_for(lambda: q.processed(queued, run) >= 200, timeout=300, interval=0.5,
             what="the run to be working")  # fmt: skip
    q.kubectl(
        queued, "patch", "analysisrun", run, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    st = wait_for(lambda: (s := q.status(queued, run)).get("phase") == "Suspended" and s,
                  timeout=120, interval=0.5, what="the run Suspended")  # fmt: skip
    assert {c["type"]: c for c in st["conditions"]}["Suspended"]["reason"] == "SuspendRequested"
    job = q.run_job(queued, run)
    assert job is not None
    workload = kueue.job_workload(queued, q.NS, job["metadata"]["name"])
    assert workload is not None and workload["spec"]["active"] is False
    wait_for(lambda: ((q.run_job(queued, run) or {}).get("spec") or {}).get("suspend") is True,
             timeout=60, interval=0.5, what="Kueue to suspend the Job")  # fmt: skip
    wait_for(lambda: q.leases_held(queued, run) == 0, timeout=60, interval=0.5,
             what="the leases given back")  # fmt: skip
    paused_at = q.processed(queued, run)
    assert paused_at < TRACKS
    q.kubectl(
        queued, "patch", "analysisrun", run, "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    assert chart_demo.wait_for_phase(queued, q.NS, run, ("Succeeded", "Failed"), 900) == "Succeeded"
    got = q.ledger(queued, run)
    assert (got.results, got.distinct_tracks, got.done, got.crashes) == (TRACKS, TRACKS, TRACKS, 0)


def test_a_queue_that_does_not_exist_keeps_the_run_queued_not_failed(queued: KindCluster) -> None:
    run = "queued-nowhere"
    # algorithmic: the earlier runs left every track with an emotion result (onlyMissing).
    q.apply_run(queued, run, analyzer="algorithmic", shards=2, queueName="no-such-queue")
    cond = wait_for(
        lambda: (c := _conditions(queued, run).get("Queued")) and c.get("reason") not in
        (None, "Pending") and c,
        timeout=120, interval=0.5, what="Kueue's reason on the run",
        describe=lambda: json.dumps(q.status(queued, run), indent=1),
    )  # fmt: skip
    st = q.status(queued, run)
    assert st["phase"] == "Pending", st
    assert cond["status"] == "True" and cond["reason"] == "Inadmissible", cond
    assert "no-such-queue" in cond["message"], cond
    job = q.run_job(queued, run)
    assert job is not None and job["spec"]["suspend"] is True
    q.kubectl(queued, "delete", "analysisrun", run, "--wait")


def test_the_shipped_queue_example_is_what_kueue_accepts(queued: KindCluster) -> None:
    """examples/kueue/queues.yaml and examples/analysisrun-queued.yaml against the real
    Kueue CRDs and webhooks (server-side dry run: nothing is stored)."""
    out = q.kubectl(queued, "apply", "--dry-run=server", "-f", str(REPO_ROOT / "examples/kueue/queues.yaml"),
                    "-f", str(REPO_ROOT / "examples/analysisrun-queued.yaml"))  # fmt: skip
    for name in ("resourceflavor.kueue.x-k8s.io/default-flavor",
                 "clusterqueue.kueue.x-k8s.io/rap-analyzer", "localqueue.kueue.x-k8s.io/batch",
                 "workloadpriorityclass.kueue.x-k8s.io/rap-analyzer-batch",
                 "analysisrun.rapanalyzer.io/emotion-queued"):  # fmt: skip
        assert name in out, out
