"""Kueue without a cluster (queue.py, and what decide/manifests do with it): the Job a
queued run gets, the Job patches the operator no longer makes, and the status and
Events from Kueue's Workload as it waits, is admitted (partially), is preempted and
is readmitted. The Workloads are shaped as Kueue v0.17 writes them (its
apis/kueue/v1beta2 types; seen on the kind tier's real Kueue)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from rap_operator import manifests, queue
from rap_operator.config import OperatorConfig
from rap_operator.decide import job_action

from tests.operator.test_decide import NOW, UID, _body, _decide, _job, _obs, _run, _shard

JSON = dict[str, Any]
CONFIG = OperatorConfig(image="rap-analyzer:test")
PENDING_MSG = (
    "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor"
    " default, 1 more needed"
)
PREEMPT_MSG = (
    "Preempted to accommodate a workload (UID: 1f, JobUID: 2e) due to prioritization in the"
    " ClusterQueue"
)


def _workload(*conds: tuple[str, str, str, str], admitted: int | None = None, **spec: Any) -> JSON:
    status: JSON = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": "x"}
            for t, s, r, m in conds
        ]
    }
    if admitted is not None:
        status["admission"] = {
            "clusterQueue": "cq",
            "podSetAssignments": [{"name": "main", "count": admitted, "flavors": {"cpu": "f"}}],
        }
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {
            "name": "job-r-job-5d2f1",
            "namespace": "ns",
            "uid": "wl-1",
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "r-job", "uid": "job-1"}
            ],
        },
        "spec": {"active": True, "queueName": "team", "podSets": [{"name": "main", "count": 6}]}
        | spec,
        "status": status,
    }


WAITING = _workload(("QuotaReserved", "False", "Pending", PENDING_MSG))
NO_QUEUE = _workload(("QuotaReserved", "False", "Inadmissible", "LocalQueue nope doesn't exist"))
ADMITTED = _workload(
    ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
    ("Admitted", "True", "Admitted", "The workload is admitted"),
    admitted=2,
)
PREEMPTING = _workload(  # decided; the Job's pods are still going
    ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
    ("Admitted", "True", "Admitted", "The workload is admitted"),
    ("Evicted", "True", "Preempted", PREEMPT_MSG),
    admitted=2,
)
PREEMPTED = _workload(
    ("QuotaReserved", "False", "Pending", PREEMPT_MSG),
    ("Admitted", "False", "NoReservation", "The workload has no reservation"),
    ("Evicted", "True", "Preempted", PREEMPT_MSG),
    ("Requeued", "True", "Preempted", PREEMPT_MSG),
)


def _queued_job(suspend: bool, parallelism: int = 6) -> JSON:
    job = _job(completions=6)
    job["metadata"]["uid"] = "job-1"
    job["spec"] |= {"suspend": suspend, "parallelism": parallelism}
    return job


def _cond(status: JSON, kind: str) -> JSON:
    return next(c for c in status["conditions"] if c["type"] == kind)


# --- the queue a run names and the Job it gets -------------------------------------


def test_the_queue_comes_from_spec_or_the_pod_template_label() -> None:
    assert queue.queue_name({"queueName": "team"}) == "team"
    assert queue.queue_name({"podTemplate": {"labels": {queue.QUEUE_LABEL: "lab"}}}) == "lab"
    assert queue.queue_name({"podTemplate": {"labels": {"x": "y"}}}) is None


def _job_of(**spec: Any) -> JSON:
    body = _body(shards=6, **spec)
    return manifests.run_job(body, CONFIG, subcommand="shard")


def test_a_queued_job_is_labelled_created_suspended_and_allows_partial_admission() -> None:
    job = _job_of(queueName="team", podTemplate={"labels": {queue.PASSED_LABELS[1]: "high"}})
    assert job["metadata"]["labels"][queue.QUEUE_LABEL] == "team"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"] == {queue.MIN_PARALLELISM_ANNOTATION: "1"}
    # The run's own labels still win (the run-uid label is how the Job is found).
    assert job["metadata"]["labels"][manifests.LABEL_RUN_UID] == UID


def test_without_a_queue_nothing_changes() -> None:
    job = _job_of()
    assert queue.QUEUE_LABEL not in job["metadata"]["labels"]
    assert "annotations" not in job["metadata"]
    assert job["spec"]["suspend"] is False


@pytest.mark.parametrize(("shards", "parallelism"), [(1, 1), (6, 1), (2, 2)])
def test_min_parallelism_only_where_kueue_accepts_it(shards: int, parallelism: int) -> None:
    # Kueue refuses the annotation unless 0 < N < min(parallelism, completions).
    got = queue.job_annotations({"queueName": "q", "shards": shards}, parallelism)
    assert got == ({queue.MIN_PARALLELISM_ANNOTATION: "1"} if min(shards, parallelism) > 1 else {})


def test_the_operator_never_patches_a_queued_jobs_suspend_or_parallelism() -> None:
    run = _run(shards=6, queueName="team")
    body = _body(shards=6, queueName="team", suspend=True, activeDeadlineSeconds=60)
    job = _queued_job(suspend=False, parallelism=2)  # Kueue admitted 2 of 6
    assert job_action(body, run, job, parallelism=6) == {"patch": {"activeDeadlineSeconds": 60}}
    job["spec"]["activeDeadlineSeconds"] = 60
    assert job_action(body, run, job, parallelism=6) is None
    # Without a queue the same spec suspends the Job and restores its parallelism.
    plain = job_action(_body(shards=6, suspend=True), _run(shards=6), _queued_job(False, 2), 6)
    assert plain == {"patch": {"suspend": True, "parallelism": 6, "activeDeadlineSeconds": None}}


def test_a_queued_job_waits_for_a_share_of_the_budget_rather_than_ask_for_zero_pods() -> None:
    run = _run(shards=6, queueName="team")
    assert job_action(_body(shards=6, queueName="team"), run, None, parallelism=0) is None
    assert "create" in (job_action(_body(shards=6, queueName="team"), run, None, 2) or {})


# --- where the Workload stands ---------------------------------------------------


def test_standing_reads_kueues_conditions_and_admission() -> None:
    assert queue.standing("team", None).workload is None
    w = queue.standing("team", WAITING)
    assert (w.admitted, w.waiting_reason, w.waiting_message) == (False, "Pending", PENDING_MSG)
    a = queue.standing("team", ADMITTED)
    assert (a.admitted, a.cluster_queue, a.admitted_pods, a.requested_pods) == (True, "cq", 2, 6)
    assert a.partial
    p = queue.standing("team", PREEMPTING)
    assert (p.admitted, p.preempted) == (False, True)
    # Kueue v0.9+ also says it with a Preempted condition of its own.
    newer = _workload(("Preempted", "True", "InClusterQueue", PREEMPT_MSG))
    assert queue.standing("team", newer).preempted


def test_essentials_keep_what_the_status_needs_only() -> None:
    kept = queue.essentials({**ADMITTED, "spec": {**ADMITTED["spec"], "podSets": [
        {"name": "main", "count": 6, "template": {"spec": {"containers": [{"name": "x"}]}}}]}})  # fmt: skip
    assert kept["spec"]["podSets"] == [{"count": 6}]
    assert queue.standing("team", kept) == queue.standing("team", ADMITTED)
    assert queue.owner_job_uid(kept) == "job-1"


def test_active_patch_deactivates_the_workload_for_spec_suspend() -> None:
    st = queue.standing("team", ADMITTED)
    assert queue.active_patch({"suspend": True}, st) == {"spec": {"active": False}}
    assert queue.active_patch({}, st) is None
    inactive = queue.standing("team", _workload(active=False))
    assert queue.active_patch({}, inactive) == {"spec": {"active": True}}
    assert queue.active_patch({"suspend": True}, queue.standing("team", None)) is None


# --- the run's status and Events through decide ----------------------------------


def _queued(
    workload: JSON | None,
    held: bool,
    previous: JSON | None = None,
    processed: int = 0,
    **spec: Any,
) -> Any:
    """decide() for a 6-shard run in LocalQueue team; `held`: the Job is suspended."""
    run = _run(total=60, shards=6, queueName="team")
    shards = [_shard(i, 10, processed if i == 0 else 0, state="pending") for i in range(6)]
    if not processed:
        shards = [dataclasses.replace(s, started_at=None, heartbeat_at=None) for s in shards]
    obs = _obs(run, shards, _queued_job(held, 6 if workload is not ADMITTED else 2),
               workload=workload)  # fmt: skip
    return _decide(obs, previous or {}, _body(shards=6, queueName="team", **spec))


def test_a_run_waiting_for_quota_is_pending_and_queued_with_kueues_reason() -> None:
    d = _queued(WAITING, held=True)
    assert d.phase == "Pending"
    queued = _cond(d.status | {"conditions": d.extra_conditions}, "Queued")
    assert (queued["status"], queued["reason"]) == ("True", "Pending")
    assert PENDING_MSG in queued["message"] and "LocalQueue team" in queued["message"]
    assert [(e.type, e.reason) for e in d.before_patch] == [("Normal", "Queued")]


def test_a_queue_that_does_not_exist_is_queued_not_failed() -> None:
    d = _queued(NO_QUEUE, held=True)
    assert d.phase == "Pending" and not d.terminal
    admitted = _cond({"conditions": d.extra_conditions}, "QueueAdmitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Inadmissible")
    assert "LocalQueue nope doesn't exist" in admitted["message"]


def test_no_workload_yet_says_what_kueue_has_not_done() -> None:
    d = _queued(None, held=True)
    assert d.phase == "Pending"
    assert "is Kueue installed" in _cond({"conditions": d.extra_conditions}, "Queued")["message"]


def test_partial_admission_is_shown_and_announced_once() -> None:
    before = _queued(WAITING, held=True)
    previous = before.status | {
        "conditions": [*before.status["conditions"], *before.extra_conditions]
    }
    d = _queued(ADMITTED, held=False, previous=previous, processed=3)
    assert d.phase == "Running"
    admitted = _cond({"conditions": d.extra_conditions}, "QueueAdmitted")
    assert admitted["status"] == "True"
    assert "2 of 6 shard pods" in admitted["message"] and "partial admission" in admitted["message"]
    assert [(e.type, e.reason) for e in d.before_patch] == [("Normal", "QueueAdmitted")]
    again = d.status | {"conditions": [*d.status["conditions"], *d.extra_conditions]}
    assert _queued(ADMITTED, held=False, previous=again, processed=4).before_patch == []


def test_preemption_suspends_the_run_and_readmission_resumes_it() -> None:
    running = _queued(ADMITTED, held=False, processed=3)
    prev = running.status | {
        "conditions": [*running.status["conditions"], *running.extra_conditions]
    }
    d = _queued(PREEMPTED, held=True, previous=prev, processed=3)
    assert d.phase == "Suspended"
    suspended = _cond(d.status, "Suspended")
    assert (suspended["reason"], suspended["message"]) == (
        "Preempted",
        f"preempted by Kueue: {PREEMPT_MSG}",
    )
    preempted = _cond({"conditions": d.extra_conditions}, "Preempted")
    assert (preempted["status"], preempted["message"]) == ("True", PREEMPT_MSG)
    assert [(e.type, e.reason) for e in d.before_patch] == [("Warning", "Preempted")]

    prev = d.status | {"conditions": [*d.status["conditions"], *d.extra_conditions]}
    back = _queued(ADMITTED, held=False, previous=prev, processed=5)
    assert back.phase == "Running"
    assert _cond({"conditions": back.extra_conditions}, "Preempted")["status"] == "False"
    assert [(e.type, e.reason) for e in back.before_patch] == [("Normal", "Readmitted")]


def test_spec_suspend_of_a_queued_run_is_suspend_requested_not_queued() -> None:
    d = _queued(_workload(active=False), held=True, suspend=True)
    assert d.phase == "Suspended"
    assert _cond(d.status, "Suspended")["reason"] == "SuspendRequested"


def test_a_finished_run_keeps_its_queue_conditions_as_they_were() -> None:
    run = _run(total=60, shards=6, queueName="team", state="succeeded")
    shards = [_shard(i, 10, 10, state="done") for i in range(6)]
    prev = {"conditions": [{"type": "QueueAdmitted", "status": "True", "reason": "Admitted",
                            "message": "admitted", "lastTransitionTime": "t"}]}  # fmt: skip
    done = _queued_job(False, 2)
    done["status"] = {"succeeded": 6, "completedIndexes": "0-5",
                      "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
    d = _decide(_obs(run, shards, done, workload=ADMITTED), prev, _body(shards=6, queueName="team"))
    assert d.phase == "Succeeded"
    assert [c["type"] for c in d.extra_conditions] == ["QueueAdmitted"]
    assert d.before_patch == []


def test_now_is_used_for_new_transitions() -> None:
    d = _queued(WAITING, held=True)
    assert _cond({"conditions": d.extra_conditions}, "Queued")[
        "lastTransitionTime"
    ] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_each_move_is_told_once_even_from_a_status_older_than_the_last_patch() -> None:
    """A pass may read the run before its own last status patch came back on the
    watch: the operator's memory of what it told wins over that stale status (seen
    on kind: QueueAdmitted posted twice)."""
    from rap_operator.decide import decide

    run = _run(total=60, shards=6, queueName="team")
    shards = [_shard(i, 10, 3 if i == 0 else 0, state="pending") for i in range(6)]
    obs = _obs(run, shards, _queued_job(False, 2), workload=ADMITTED)
    body = _body(shards=6, queueName="team")
    first = decide(obs, body, {}, last_phase=None, capped_at=None)
    assert [e.reason for e in first.before_patch] == ["QueueAdmitted"]
    assert first.queue_state == "admitted"
    again = decide(obs, body, {}, last_phase="Running", capped_at=None, last_queue="admitted")
    assert again.before_patch == [] and again.queue_state == "admitted"
    # Preempted, then readmitted: told once each, from memory alone.
    gone = _obs(run, shards, _queued_job(True, 6), workload=PREEMPTED)
    d = decide(gone, body, {}, last_phase="Running", capped_at=None, last_queue="admitted")
    assert [e.reason for e in d.before_patch] == ["Preempted"] and d.queue_state == "preempted"
    back = decide(obs, body, {}, last_phase="Suspended", capped_at=None, last_queue="preempted")
    assert [e.reason for e in back.before_patch] == ["Readmitted"]
