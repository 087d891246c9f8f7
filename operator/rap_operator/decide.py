"""The decide step of a planned run's status refresh (observe → decide → act): pure
functions from what was observed (reconcile.observe) to what to write and post
(reconcile.act). No I/O here, so every phase, condition, count, Event and Job
action is table-tested without a cluster (tests/operator/test_decide.py).

- `job_action`: what the run's Job needs (created, or its spec patched to the live
  suspend/parallelism/deadline at the budget's parallelism);
- `decide`: the new status (phase, counts, conditions: Valid, the kind's, the
  connection budget's ParallelismCapped, PodsReady), the ledger writes (failed shard
  indexes, the run's final state), the Events (warn-once problems, ParallelismCapped,
  the refused spec change), whether the phase changed, and whether the run is done;
- `phase_event`: the phase-change Event, from the status as finally patched;
- `ttl_patch`: the Job TTL a finished run still needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analyzer_runtime.contract.status import (
    JobObservation,
    RunObservation,
    ShardCounters,
    compute_status,
    is_terminal,
)
from analyzer_runtime.ledger import shards as shard_ledger
from rap_operator import budget, kinds, manifests, pods, queue

JSON = dict[str, Any]
# Spec fields a planned run takes from the live resource; everything else comes
# from the spec planned in Postgres.
LIVE_FIELDS = ("suspend", "parallelism", "ttlSecondsAfterFinished", "activeDeadlineSeconds")


@dataclass(frozen=True)
class Observation:
    """What one refresh saw of a planned run: the ledger's counters, the Job (after
    job_action was carried out), the connection budget's share and the pods' problems."""

    run: shard_ledger.Run
    shards: list[ShardCounters]
    job: JSON | None
    now: datetime
    no_job: bool = False  # a dry run, or nothing selected: never a Job
    share: budget.Share | None = None  # None: no Job wanted (finished, dry run, empty)
    job_problem: str | None = None  # why the Job could not be created
    troubles: list[pods.PodProblem] = field(default_factory=list)
    workload: JSON | None = None  # Kueue's Workload of the Job (a queued run's)

    @property
    def unfinished(self) -> bool:
        return self.run.state not in shard_ledger.TERMINAL_RUN_STATES


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: JSON  # the new status, before the kind's extra fields
    # Appended after the kind's extra fields (which may replace the conditions).
    extra_conditions: list[JSON]
    failed_indexes: list[int]  # shards the Job gave up on, to mark failed in the ledger
    run_state: shard_ledger.RunState | None  # the ledger state of a run that reached a final phase
    before_patch: list[Event]  # ParallelismCapped, then the problems (warn once)
    after_patch: list[Event]  # the refused spec change (warn once)
    capped_at: int | None  # the parallelism a ParallelismCapped Event told
    phase_changed_from: str | None  # the phase an Event was last posted for ("" = none)
    terminal: bool
    queue_state: str | None = None  # queue.state_of the conditions written (a queued run)

    @property
    def phase(self) -> str:
        return str(self.status["phase"])


def job_body(body: JSON, run: shard_ledger.Run) -> JSON:
    """The resource as the Job must see it: the planned spec, with the fields that may
    change after planning taken from the live spec."""
    live = body.get("spec") or {}
    spec = {**run.spec, **{k: live[k] for k in LIVE_FIELDS if k in live}}
    return {**body, "spec": spec}


def job_action(
    body: JSON, run: shard_ledger.Run, job: JSON | None, parallelism: int
) -> JSON | None:
    """The Job the run should have, at `parallelism`: the whole resource to build it
    from when there is no Job ({"create": body}), the spec patch when the Job differs
    ({"patch": spec}), None when it is as it should be."""
    want = job_body(body, run)
    want["spec"] = {**want["spec"], "parallelism": parallelism}
    if job is None:
        if parallelism == 0 and queue.queue_name(want["spec"]) is not None:
            # A queued Job's size is fixed once created (Kueue's to change): it waits
            # for a share of the connection budget rather than ask Kueue for 0 pods.
            return None
        return {"create": want}
    desired = manifests.job_patch_for_spec(want["spec"])["spec"]
    current = job.get("spec") or {}
    if any(current.get(k) != v for k, v in desired.items()):
        return {"patch": desired}
    return None


def decide(
    obs: Observation,
    body: JSON,
    previous: JSON,
    *,
    last_phase: str | None,
    capped_at: int | None,
    last_queue: str | None = None,
) -> Decision:
    """The refresh's outcome from the observation, the status as it was, and the
    live spec. `last_phase`: the phase the last phase Event was posted for (the
    operator's memory, else the previous status); `capped_at`: the parallelism the
    last ParallelismCapped Event told; `last_queue`: where in its queue the last queue
    Events left the run (queue.state_of), else read from the previous status."""
    kind = kinds.of(body)
    meta, spec = body["metadata"], body.get("spec") or {}
    run = obs.run
    generation = meta.get("generation") or 1
    job_obs = None if obs.no_job else JobObservation.from_job_status(obs.job)
    refusal = kind.refused_changes(run.spec, spec)
    name = queue.queue_name(run.spec)
    standing = queue.standing(name, obs.workload) if name and obs.job is not None else None
    status = compute_status(RunObservation(
        generation=generation, shards=obs.shards, job=job_obs, previous=previous,
        now=obs.now, valid=refusal is None, invalid_reason="SpecChangeRefused",
        invalid_message=refusal, planned_total=run.total, suspend=bool(spec.get("suspend")),
        job_name=None if obs.no_job else manifests.job_name(meta["name"], meta["uid"]),
        wording=kind.wording, held=queue.held(standing) if standing else None,
        **kind.status_args(run),
    )).to_json()  # fmt: skip
    phase = status["phase"]
    terminal = is_terminal(phase)
    status["runId"] = meta["uid"]
    extra = budget_condition(obs.share, previous, generation)
    before: list[Event] = []
    queue_state = last_queue or queue.state_of(previous.get("conditions") or [])
    if standing is not None and not terminal:
        queued = queue.conditions(standing, previous, obs.now, generation)
        extra += queued
        before += [Event(e.type, e.reason, e.message) for e in queue.events(queued, queue_state)]
        queue_state = queue.state_of(queued)
    else:  # as they last were (a finished run keeps how it was admitted)
        extra += [c for c in previous.get("conditions") or [] if c.get("type") in queue.CONDITIONS]
    share = obs.share
    if share is not None and share.capped and capped_at != share.granted:
        before.append(Event("Normal", "ParallelismCapped", share.message()))
    troubles = [pods.PodProblem("JobNotCreated", obs.job_problem)] if obs.job_problem else []
    if not terminal:
        troubles += obs.troubles
    before += [Event("Warning", t.reason, t.message) for t in troubles]
    if troubles:
        extra.append(pods_condition(troubles, previous, obs.now))
    last = last_phase or previous.get("phase")
    return Decision(
        status=status,
        extra_conditions=extra,
        failed_indexes=sorted(job_obs.failed_indexes) if job_obs is not None else [],
        run_state=("succeeded" if phase == "Succeeded" else "failed") if terminal else None,
        before_patch=before,
        after_patch=[Event("Warning", "SpecChangeRefused", refusal)] if refusal else [],
        capped_at=share.granted if share is not None and share.capped else None,
        phase_changed_from=(last or "") if last != phase else None,
        terminal=terminal,
        queue_state=queue_state,
    )


def budget_condition(share: budget.Share | None, previous: JSON, generation: int) -> list[JSON]:
    """ParallelismCapped as this pass decided, or as it last was (a finished run)."""
    if share is None:
        return [c for c in previous.get("conditions") or [] if c.get("type") == budget.CONDITION]
    cond = budget.condition(share, previous, generation)
    return [cond] if cond else []


def pods_condition(troubles: list[pods.PodProblem], previous: JSON, now: datetime) -> JSON:
    first = troubles[0]
    message = "; ".join(dict.fromkeys(t.message for t in troubles))[:1000]
    old: JSON = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == "PodsReady"), {}
    )
    since = old.get("lastTransitionTime") if old.get("reason") == first.reason else None
    return {
        "type": "PodsReady",
        "status": "False",
        "reason": first.reason,
        "message": message,
        "lastTransitionTime": since or now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def phase_event(old: str | None, status: JSON) -> Event:
    """The Event of a phase change, from the status as patched (Warning for Failed)."""
    phase = status["phase"]
    summary = next(
        (c for c in status.get("conditions", []) if c["type"] in (phase, "Succeeded")), None
    )
    message = f"{old or 'New'} → {phase}: {status.get('progress')}"
    if summary and summary.get("message"):
        message += f"; {summary['message']}"
    return Event("Warning" if phase == "Failed" else "Normal", phase, message)


def ttl_patch(spec: JSON, job: JSON | None) -> JSON | None:
    """The patch that gives a finished run's Job the spec's ttlSecondsAfterFinished;
    None when there is no Job, no TTL in the spec, or the Job has it already."""
    patch = manifests.job_patch_after_finish(spec)
    if job is None or patch is None:
        return None
    have = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return None if have == patch["spec"]["ttlSecondsAfterFinished"] else patch
