"""A run naming a Kueue queue on a cluster without Kueue (a real API server, no
Workloads CRD): its Job is created as Kueue expects it - labelled, suspended,
partial admission allowed - and left suspended (the operator never starts a queued
Job itself), and the run waits in `Pending` saying Kueue made no Workload. With
Kueue (tests/node/test_kueue_runs_on_kind.py) the same Job is admitted."""

from __future__ import annotations

from typing import Any

from tests.e2e.runs.operator_env import Env, run_manifest


def test_a_queued_run_waits_for_kueue_with_its_job_suspended(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    m = run_manifest("queued", shards=3, queueName="team-batch")
    assert env.apply(namespace, m).returncode == 0

    def queued(st: dict[str, Any]) -> bool:
        conds = {c["type"]: c for c in st.get("conditions") or []}
        return st.get("phase") == "Pending" and "Queued" in conds

    st = env.wait_status(namespace, "queued", queued, timeout=90)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Queued"]["status"] == "True"
    assert conds["QueueAdmitted"]["status"] == "False"
    assert "LocalQueue team-batch and has no Workload yet" in conds["Queued"]["message"]
    assert "is Kueue installed" in conds["Queued"]["message"]
    uid = env.get(namespace, "queued")["metadata"]["uid"]
    [job] = env.jobs(namespace, uid)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-batch"
    assert job["metadata"]["annotations"]["kueue.x-k8s.io/job-min-parallelism"] == "1"
    assert job["spec"]["suspend"] is True
    assert env.pods(namespace, uid) == []
    assert "Queued" in [e["reason"] for e in env.events(namespace, "queued")]

    # spec.suspend and parallelism changes do not reach a queued Job (Kueue's fields).
    env.patch_spec(namespace, "queued", {"parallelism": 1})
    env.wait_status(namespace, "queued", lambda st: st.get("observedGeneration") == 2, timeout=60)
    [job] = env.jobs(namespace, uid)
    assert job["spec"]["parallelism"] == 2 and job["spec"]["suspend"] is True
