"""The decide step of a planned run's refresh (decide.py), without a cluster: from
an observation (ledger counters, Job, budget share, pod problems), the previous
status and the live spec to the new status, the ledger writes, the Events and the
Job actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rap_operator import budget, pods
from rap_operator.decide import (
    Decision,
    Event,
    Observation,
    decide,
    job_action,
    phase_event,
    ttl_patch,
)

from analyzer_runtime.contract.status import ShardCounters
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.budget import Budget

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
UID = "6a7b0c3e-0000-4000-8000-0000000dec1d"
JSON = dict[str, Any]


def _run(
    total: int = 100, shards: int = 2, state: str = "running", **spec: Any
) -> shard_ledger.Run:
    return shard_ledger.Run(
        id=7, uid=UID, kind="AnalysisRun", namespace="ns", name="r", analyzer_type="algorithmic",
        model_version="1.0.0", spec={"analyzer": "algorithmic", "shards": shards, **spec},
        shards=shards, total=total, state=state, created_at=NOW - timedelta(minutes=5),
        finished_at=None,
    )  # fmt: skip


def _shard(i: int, total: int, processed: int, state: str = "running", **kw: Any) -> ShardCounters:
    return ShardCounters(
        shard=i, total=total, processed=processed, failed=kw.pop("failed", 0),
        skipped=0, state=state, attempt=1, heartbeat_at=NOW, started_at=NOW - timedelta(minutes=4),
        finished_at=NOW if state == "done" else None, **kw,
    )  # fmt: skip


def _body(generation: int = 1, **spec: Any) -> JSON:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": UID, "generation": generation},
        "spec": {"analyzer": "algorithmic", "shards": 2, **spec},
    }


def _job(completions: int = 2, **status: Any) -> JSON:
    return {
        "metadata": {"name": "r-job", "namespace": "ns"},
        "spec": {"completions": completions, "parallelism": 2, "suspend": False},
        "status": status,
    }


def _share(wanted: int = 2, granted: int = 2, requested: int = 2) -> budget.Share:
    return budget.Share(
        requested=requested, wanted=wanted, granted=granted, others=3,
        budget=Budget(connections=20, explanation="max_connections 25 - 5 reserved"),
        server="db:5432",
    )  # fmt: skip


def _obs(
    run: shard_ledger.Run, shards: list[ShardCounters], job: JSON | None, **kw: Any
) -> Observation:
    return Observation(run=run, shards=shards, job=job, now=NOW, **kw)


def _decide(obs: Observation, previous: JSON | None = None, body: JSON | None = None,
            last_phase: str | None = None, capped_at: int | None = None) -> Decision:  # fmt: skip
    return decide(obs, body or _body(), previous or {}, last_phase=last_phase, capped_at=capped_at)


def _cond(d: Decision | JSON, type_: str) -> JSON | None:
    status = d.status if isinstance(d, Decision) else d
    conds = status.get("conditions") or []
    if isinstance(d, Decision):
        conds = [*conds, *d.extra_conditions]
    return next((c for c in conds if c["type"] == type_), None)


# ---- phases, counts, ledger writes, phase Events ---------------------------------


PHASES = [
    # (what, shards, job status, previous phase, phase, run_state)
    ("working", [(50, 20, "running"), (50, 10, "running")], {"active": 2}, "Running",
     "Running", None),
    ("all done, Job complete", [(50, 50, "done"), (50, 50, "done")],
     {"succeeded": 2, "completedIndexes": "0-1",
      "conditions": [{"type": "Complete", "status": "True"}]}, "Running", "Succeeded",
     "succeeded"),
    ("a shard failed for good", [(50, 50, "done"), (50, 10, "running")],
     {"failed": 3, "completedIndexes": "0", "failedIndexes": "1",
      "conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes",
                      "message": "Job has failed indexes"}]}, "Running", "Failed", "failed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "shards", "job_status", "before", "after", "run_state"),
    PHASES,
    ids=[p[0] for p in PHASES],
)
def test_phases_counts_and_ledger_writes(
    what: str,
    shards: list[tuple[int, int, str]],
    job_status: JSON,
    before: str,
    after: str,
    run_state: str | None,
) -> None:
    counters = [_shard(i, t, p, s) for i, (t, p, s) in enumerate(shards)]
    d = _decide(_obs(_run(), counters, _job(**job_status), share=_share()), {"phase": before})
    assert d.phase == after
    assert d.status["processed"] == sum(p for _, p, _ in shards)
    assert d.status["total"] == 100
    assert d.status["runId"] == UID and d.status["jobName"]
    assert d.run_state == run_state
    assert d.terminal == (run_state is not None)
    assert d.failed_indexes == ([1] if after == "Failed" else [])
    assert d.phase_changed_from == (None if before == after else before)


def test_the_first_refresh_posts_the_phase_it_finds() -> None:
    d = _decide(_obs(_run(), [_shard(0, 50, 1), _shard(1, 50, 0)], _job(active=2)))
    assert d.phase == "Running" and d.phase_changed_from == ""
    ev = phase_event(d.phase_changed_from, d.status)
    assert (ev.type, ev.reason) == ("Normal", "Running")
    assert ev.message.startswith("New → Running")


def test_the_phase_event_is_posted_once_per_change() -> None:
    obs = _obs(_run(), [_shard(0, 50, 1), _shard(1, 50, 0)], _job(active=2))
    # The memory (the last Event posted) wins over the previous status.
    assert _decide(obs, {"phase": "Pending"}, last_phase="Running").phase_changed_from is None
    assert _decide(obs, {"phase": "Running"}).phase_changed_from is None


def test_a_failed_run_is_announced_as_a_warning() -> None:
    ev = phase_event("Running", {"phase": "Failed", "progress": "60/100", "conditions": []})
    assert (ev.type, ev.reason) == ("Warning", "Failed")
    assert ev.message == "Running → Failed: 60/100"


def test_suspended() -> None:
    job = _job(active=0)
    job["spec"]["suspend"] = True
    obs = _obs(_run(), [_shard(0, 50, 5), _shard(1, 50, 0, "pending")], job, share=_share(0, 0))
    d = _decide(obs, {"phase": "Running"}, _body(suspend=True))
    assert d.phase == "Suspended"
    assert d.run_state is None


def test_a_dry_run_has_no_job_and_finishes_at_once() -> None:
    run = _run(dryRun=True)
    d = _decide(_obs(run, [_shard(0, 50, 0, "pending"), _shard(1, 50, 0, "pending")], None,
                     no_job=True))  # fmt: skip
    assert "jobName" not in d.status or d.status["jobName"] is None
    assert d.terminal and d.phase == "Succeeded"


def test_an_empty_selection_succeeds_without_a_job() -> None:
    d = _decide(_obs(_run(total=0, shards=0), [], None, no_job=True))
    assert (d.phase, d.run_state) == ("Succeeded", "succeeded")


# ---- conditions and Events -------------------------------------------------------


def test_a_refused_spec_change_is_valid_false_and_warned_after_the_patch() -> None:
    obs = _obs(_run(), [_shard(0, 50, 1), _shard(1, 50, 0)], _job(active=2))
    d = _decide(obs, {"phase": "Running"}, _body(generation=2, shards=3))
    valid = _cond(d, "Valid")
    assert valid is not None
    assert (valid["status"], valid["reason"]) == ("False", "SpecChangeRefused")
    assert [e.reason for e in d.after_patch] == ["SpecChangeRefused"]
    assert d.phase == "Running"  # the run continues with the planned spec


def test_valid_again_after_a_waiting_cause() -> None:
    waiting = {
        "phase": "Running",
        "conditions": [
            {"type": "Valid", "status": "False", "reason": "DatabaseUnavailable", "message": "x"}
        ],
    }
    d = _decide(_obs(_run(), [_shard(0, 50, 1), _shard(1, 50, 0)], _job(active=2)), waiting)
    valid = _cond(d, "Valid")
    assert valid is not None and valid["status"] == "True"  # fmt: skip


def test_parallelism_capped_condition_and_one_event_per_cap() -> None:
    run, shards = _run(), [_shard(0, 50, 1), _shard(1, 50, 0)]
    d = _decide(_obs(run, shards, _job(active=1), share=_share(wanted=2, granted=1)))
    cap = _cond(d, budget.CONDITION)
    assert cap is not None and (cap["status"], cap["reason"]) == ("True", "ConnectionBudget")
    assert [e.reason for e in d.before_patch] == ["ParallelismCapped"]
    assert d.capped_at == 1
    # The same cap again: no second Event.
    again = _decide(_obs(run, shards, _job(active=1), share=_share(2, 1)), capped_at=1)
    assert again.before_patch == []
    # No longer capped: the condition says so, the memory is cleared.
    patched = {**d.status, "conditions": [*d.status["conditions"], *d.extra_conditions]}
    free = _decide(_obs(run, shards, _job(active=2), share=_share(2, 2)), patched, capped_at=1)
    cap = _cond(free, budget.CONDITION)
    assert cap is not None and (cap["status"], cap["reason"]) == ("False", "WithinBudget")
    assert free.capped_at is None


def test_a_run_never_capped_has_no_budget_condition() -> None:
    d = _decide(_obs(_run(), [_shard(0, 50, 1), _shard(1, 50, 0)], _job(), share=_share()))
    assert _cond(d, budget.CONDITION) is None


def test_a_finished_run_keeps_its_last_budget_condition() -> None:
    cap = {"type": budget.CONDITION, "status": "False", "reason": "WithinBudget"}
    done = [_shard(0, 50, 50, "done"), _shard(1, 50, 50, "done")]
    job = _job(succeeded=2, completedIndexes="0-1",
               conditions=[{"type": "Complete", "status": "True"}])  # fmt: skip
    d = _decide(_obs(_run(state="succeeded"), done, job), {"conditions": [cap]})
    assert _cond(d, budget.CONDITION) == cap


def test_pod_problems_are_a_condition_and_warnings_while_unfinished() -> None:
    troubles = [pods.PodProblem("ImagePullBackOff", "pod p0: back-off pulling nope:1"),
                pods.PodProblem("OOMKilled", "pod p1 was killed")]  # fmt: skip
    shards = [_shard(0, 50, 1), _shard(1, 50, 0)]
    d = _decide(_obs(_run(), shards, _job(active=2), troubles=troubles))
    pods_ready = _cond(d, "PodsReady")
    assert pods_ready is not None
    assert (pods_ready["status"], pods_ready["reason"]) == ("False", "ImagePullBackOff")
    assert "nope:1" in pods_ready["message"] and "p1" in pods_ready["message"]
    assert [e for e in d.before_patch if e.type == "Warning"] == [
        Event("Warning", t.reason, t.message) for t in troubles
    ]
    # The same problem later keeps its transition time.
    patched = {**d.status, "conditions": [*d.status["conditions"], *d.extra_conditions]}
    an_hour_later = Observation(
        run=_run(), shards=shards, job=_job(active=2), now=NOW + timedelta(hours=1),
        troubles=troubles,
    )  # fmt: skip
    later = _decide(an_hour_later, patched)
    again = _cond(later, "PodsReady")
    assert again is not None and again["lastTransitionTime"] == pods_ready["lastTransitionTime"]


def test_pod_problems_no_longer_matter_once_the_run_is_final() -> None:
    done = [_shard(0, 50, 50, "done"), _shard(1, 50, 50, "done")]
    job = _job(succeeded=2, completedIndexes="0-1",
               conditions=[{"type": "Complete", "status": "True"}])  # fmt: skip
    d = _decide(_obs(_run(), done, job, troubles=[pods.PodProblem("OOMKilled", "p")]))
    assert d.phase == "Succeeded" and _cond(d, "PodsReady") is None and d.before_patch == []


def test_a_job_that_cannot_be_created_says_why() -> None:
    d = _decide(_obs(_run(), [_shard(0, 50, 0, "pending"), _shard(1, 50, 0, "pending")], None,
                     job_problem="cannot create the Job (403): forbidden"))  # fmt: skip
    cond = _cond(d, "PodsReady")
    assert cond is not None and cond["reason"] == "JobNotCreated"
    assert d.before_patch == [Event("Warning", "JobNotCreated", cond["message"])]


# ---- Job actions -----------------------------------------------------------------


def test_job_actions() -> None:
    run = _run(batchSize=10)
    created = job_action(_body(parallelism=2), run, None, 2)
    assert created is not None and set(created) == {"create"}
    assert created["create"]["spec"]["parallelism"] == 2
    assert created["create"]["spec"]["batchSize"] == 10  # the planned spec
    job = _job()
    assert job_action(_body(parallelism=2), run, job, 2) is None
    # The budget caps it, the live spec suspends it: a patch of the Job's spec.
    capped = job_action(_body(parallelism=2), run, job, 1)
    assert capped is not None and capped["patch"]["parallelism"] == 1
    suspended = job_action(_body(parallelism=2, suspend=True), run, job, 2)
    assert suspended is not None and suspended["patch"]["suspend"] is True


def test_ttl_only_for_a_job_that_lacks_it() -> None:
    assert ttl_patch({"ttlSecondsAfterFinished": 60}, _job()) == {
        "spec": {"ttlSecondsAfterFinished": 60}
    }
    with_ttl = _job()
    with_ttl["spec"]["ttlSecondsAfterFinished"] = 60
    assert ttl_patch({"ttlSecondsAfterFinished": 60}, with_ttl) is None
    assert ttl_patch({}, _job()) is None and ttl_patch({"ttlSecondsAfterFinished": 1}, None) is None
