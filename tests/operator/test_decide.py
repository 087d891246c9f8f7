"""The reconcile decision of a planned run's refresh (decide.py), without a cluster:
from what one pass observed (the ledger's counters, the Job, the connection budget's
share, the pods' problems), the previous status and the live spec, to the Job action,
the new phase and conditions, the ledger writes and the Events.

One table (`CASES`) holds the decision for each kind of pass; the tests after it
cover what takes more than one pass (an Event once per change, a condition keeping
its transition time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from rap_operator import budget, kinds, pods
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
from tests.builders import T0, UID, planned_run, shard

NOW = T0 + timedelta(minutes=5)
JSON = dict[str, Any]


def _run(
    total: int = 100, shards: int = 2, state: str = "running", **spec: Any
) -> shard_ledger.Run:
    return planned_run(total, shards, state, created_at=NOW - timedelta(minutes=5), **spec)


def _shard(i: int, total: int, processed: int, state: str = "running", **kw: Any) -> ShardCounters:
    """Shard `i` as the ledger has it: started 4 minutes ago unless pending, heard of
    now, finished now if done."""
    started = None if state == "pending" else NOW - timedelta(minutes=4)
    return shard(i, state, total, processed, started_at=started,
                 heartbeat_at=started and NOW, finished_at=NOW if state == "done" else None,
                 **kw)  # fmt: skip


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


# ---- the decision table ----------------------------------------------------------

TWO_HALVES = 50  # the run's 100 items, 50 per shard
RUNNING = [_shard(0, TWO_HALVES, 20), _shard(1, TWO_HALVES, 10)]
PENDING = [_shard(0, TWO_HALVES, 0, "pending"), _shard(1, TWO_HALVES, 0, "pending")]
DONE = [_shard(0, TWO_HALVES, 50, "done"), _shard(1, TWO_HALVES, 50, "done")]
COMPLETE = {"succeeded": 2, "completedIndexes": "0-1",
            "conditions": [{"type": "Complete", "status": "True"}]}  # fmt: skip
INDEX_1_FAILED = {"failed": 3, "completedIndexes": "0", "failedIndexes": "1",
                  "conditions": [{"type": "Failed", "status": "True", "reason": "FailedIndexes",
                                  "message": "Job has failed indexes"}]}  # fmt: skip
WAS_RUNNING = {"phase": "Running", "jobName": "r-job"}
DB_WAS_DOWN = {"phase": "Running", "conditions": [
    {"type": "Valid", "status": "False", "reason": "DatabaseUnavailable", "message": "x"}]}  # fmt: skip
PULL = pods.PodProblem("ImagePullBackOff", "pod p0: back-off pulling nope:1")


@dataclass(frozen=True)
class Case:
    """One pass: what it observed, and what it must decide."""

    name: str
    # -- observed --
    shards: list[ShardCounters]
    job_status: JSON | None  # the Job's .status; None: there is no Job
    share: budget.Share | None = None  # the budget's share; None: _share() for a Job's run
    previous: JSON = field(default_factory=dict)  # the status as it was
    run_spec: JSON = field(default_factory=dict)  # planned on top of analyzer and shards
    live: JSON = field(default_factory=dict)  # the resource's spec changes since planning
    generation: int = 1
    total: int = 100
    troubles: list[pods.PodProblem] = field(default_factory=list)
    job_problem: str | None = None
    # -- decided --
    action: str | JSON | None = None  # "create", the Job spec patch's fields, or None
    phase: str = "Running"
    # type -> (status, reason); None: the run must not have that condition
    conditions: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    failed_indexes: list[int] = field(default_factory=list)  # marked failed in the ledger
    run_state: str | None = None  # the run's final state in the ledger
    events: list[tuple[str, str]] = field(default_factory=list)  # (type, reason), in order
    phase_event: tuple[str, str] | None = None  # (type, reason) of the phase change


CASES = [
    Case("new run: the Job is created", PENDING, None,
         action="create", phase="Pending",
         conditions={"Valid": ("True", "SpecValid"), "Succeeded": ("Unknown", "Pending")},
         phase_event=("Normal", "Pending")),
    Case("running", RUNNING, {"active": 2}, previous=WAS_RUNNING,
         conditions={"Running": ("True", "ShardsRunning"), "Succeeded": ("Unknown", "InProgress"),
                     budget.CONDITION: None, "PodsReady": None}),
    Case("all shards done", DONE, COMPLETE, share=_share(0, 0), previous=WAS_RUNNING,
         phase="Succeeded", conditions={"Succeeded": ("True", "AllShardsDone"),
                                        "CompletedWithErrors": ("False", "NoFailedItems")},
         run_state="succeeded", phase_event=("Normal", "Succeeded")),
    Case("a shard failed for good", [DONE[0], RUNNING[1]], INDEX_1_FAILED,
         share=_share(1, 1), previous=WAS_RUNNING,
         phase="Failed", conditions={"Failed": ("True", "ShardFailed")},
         failed_indexes=[1], run_state="failed", phase_event=("Warning", "Failed")),
    Case("track failures over spec.failureThreshold",
         [_shard(0, TWO_HALVES, 20, "done", failed=30), DONE[1]], COMPLETE,
         share=_share(0, 0), previous=WAS_RUNNING, run_spec={"failureThreshold": 0.1},
         phase="Failed", conditions={"Failed": ("True", "TooManyTrackFailures")},
         run_state="failed", phase_event=("Warning", "Failed")),
    Case("track failures under the default threshold",
         [_shard(0, TWO_HALVES, 40, "done", failed=10), DONE[1]], COMPLETE,
         share=_share(0, 0), previous=WAS_RUNNING,
         phase="Succeeded", conditions={"CompletedWithErrors": ("True", "ItemsFailed")},
         run_state="succeeded", phase_event=("Normal", "Succeeded")),
    Case("suspended by the spec", [_shard(0, TWO_HALVES, 5), PENDING[1]], {"active": 2},
         share=_share(0, 0), previous=WAS_RUNNING, live={"suspend": True},
         action={"suspend": True}, phase="Suspended",
         conditions={"Suspended": ("True", "SuspendRequested")},
         phase_event=("Normal", "Suspended")),
    Case("the Job deleted by hand mid-run: recreated, the shards resume", RUNNING, None,
         previous=WAS_RUNNING, action="create",
         conditions={"Running": ("True", "ShardsRunning")}),
    Case("the Job cannot be created", PENDING, None, previous={"phase": "Pending"},
         job_problem="cannot create the Job (403): forbidden", action="create", phase="Pending",
         conditions={"PodsReady": ("False", "JobNotCreated")},
         events=[("Warning", "JobNotCreated")]),
    Case("a refused spec change: the run goes on with the planned spec", RUNNING,
         {"active": 2}, previous=WAS_RUNNING, generation=2, live={"shards": 3},
         conditions={"Valid": ("False", "SpecChangeRefused")},
         events=[("Warning", "SpecChangeRefused")]),
    Case("valid again after the database came back", RUNNING, {"active": 2},
         previous=DB_WAS_DOWN, conditions={"Valid": ("True", "SpecValid")}),
    Case("capped by the connection budget", RUNNING, {"active": 2}, share=_share(2, 1),
         previous=WAS_RUNNING, action={"parallelism": 1},
         conditions={budget.CONDITION: ("True", "ConnectionBudget")},
         events=[("Normal", "ParallelismCapped")]),
    Case("pods that cannot run", RUNNING, {"active": 2}, previous=WAS_RUNNING,
         troubles=[PULL], conditions={"PodsReady": ("False", "ImagePullBackOff")},
         events=[("Warning", "ImagePullBackOff")]),
    Case("a dry run: no Job, finished at once", PENDING, None, run_spec={"dryRun": True},
         phase="Succeeded",
         conditions={"Succeeded": ("True", "DryRun")},
         run_state="succeeded", phase_event=("Normal", "Succeeded")),
    Case("nothing selected: no Job, finished at once", [], None, total=0,
         phase="Succeeded", conditions={"Succeeded": ("True", "NothingToDo")},
         run_state="succeeded", phase_event=("Normal", "Succeeded")),
]  # fmt: skip


def one_pass(c: Case) -> tuple[JSON | None, Decision]:
    """A planned run's refresh as reconcile.observe and decide make it, less the I/O:
    no Job for a dry run or an empty selection; otherwise the Job action at the
    share's parallelism, carried out (created with no status yet, or patched); then
    the decision on the Job as it now is."""
    run = _run(c.total, 2, **c.run_spec)
    body = _body(c.generation, **{**c.run_spec, **c.live})
    job = None if c.job_status is None else _job(**c.job_status)
    no_job = kinds.of(body).dry_run(run.spec) or run.total == 0
    share = None if no_job else (c.share or _share())
    action = None if share is None else job_action(body, run, job, share.parallelism)
    if action is not None and "create" in action:
        job = None if c.job_problem else {**_job(), "spec": action["create"]["spec"]}
    elif action is not None:
        assert job is not None
        job = {**job, "spec": {**job["spec"], **action["patch"]}}
    obs = Observation(run=run, shards=c.shards, job=job, now=NOW, no_job=no_job, share=share,
                      job_problem=c.job_problem, troubles=c.troubles)  # fmt: skip
    return action, decide(obs, body, c.previous, last_phase=None, capped_at=None)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_the_reconcile_decision(c: Case) -> None:
    action, d = one_pass(c)
    if isinstance(c.action, dict):
        assert action is not None and "patch" in action, action
        assert {k: action["patch"].get(k) for k in c.action} == c.action
    else:
        assert (action and next(iter(action))) == c.action
    assert d.phase == c.phase
    for ctype, want in c.conditions.items():
        got = _cond(d, ctype)
        assert (got and (got["status"], got["reason"])) == want, (ctype, got)
    assert d.failed_indexes == c.failed_indexes
    assert d.run_state == c.run_state and d.terminal == (c.run_state is not None)
    assert [(e.type, e.reason) for e in [*d.before_patch, *d.after_patch]] == c.events
    told = d.phase_changed_from
    event = phase_event(told, d.status) if told is not None else None
    assert (event and (event.type, event.reason)) == c.phase_event
    # The counts come from the ledger, whatever else happened.
    assert d.status["processed"] == sum(s.processed for s in c.shards)
    assert d.status["runId"] == UID


# ---- what takes more than one pass ------------------------------------------------


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


# ---- conditions and Events -------------------------------------------------------


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
