"""One reconcile pass over one run, level-triggered: observe the resource, the
database and the Job, then create what is missing, then write the status.

- Not planned yet: validate the spec (an invalid spec is permanent until a new
  generation), find the Secrets/ConfigMaps and the database (missing ones keep the
  run Pending saying what is missing; the next pass tries again), plan by uid.
- Planned: the Job is owned state - created when missing while work is unfinished
  (recreated with an Event if it was deleted; the shards resume from Postgres), and
  kept at the spec's suspend/parallelism/deadline. A run that selected nothing, or a
  dry run, gets no Job. Its TTL is set only after the final phase is recorded, and
  level-triggered: a finished run whose Job lacks it gets it on any later pass.
- Planning that overlaps a run whose resource is gone (deleted while the operator
  was away) cancels that run (sweep.py) and plans again in the same pass.
- Status, in three steps: observe (the per-shard counters, O(shards), the Job, what
  the pods say), decide (pure, decide.py: phase, counts, conditions, Events, ledger
  writes), act (write the ledger, patch what changed, post the Events, the TTL); an
  Event once per phase change. A cause time fixes (the database down or frozen, its
  Secret gone) keeps the status as it was with `Valid=False` saying why, as before
  planning; the next good refresh clears it.
- A pass that raises is classified by errors.py (report_error): temporary causes
  show on `Valid` too and are retried with backoff, a permanent one waits for a new
  spec, an unexpected one (a bug) is logged with its traceback and told by a
  rate-limited `ReconcileError` Warning Event.

This is the only writer of a run's status and phase Events (handlers.py runs one
pass at a time per run).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from analyzer_runtime.contract import reasons
from analyzer_runtime.contract.labels import DATABASE_ANNOTATION, OLD_FINALIZER
from analyzer_runtime.contract.status import (
    RunObservation,
    compute_status,
    format_time,
    is_terminal,
)
from analyzer_runtime.ledger import budget as db_budget
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import DatabaseUnavailable, host_of
from analyzer_runtime.ledger.planner import OverlapError
from rap_operator import (
    budget,
    database,
    decide,
    errors,
    events,
    kinds,
    kube,
    manifests,
    metrics,
    pods,
    queue,
    sweep,
)
from rap_operator.config import OperatorConfig, database_secret
from rap_operator.decide import LIVE_FIELDS, Decision, Event, Observation, job_body, ttl_patch
from rap_operator.validation import (
    InvalidRun,
    MissingInput,
    PolicyDenied,
    check_policy,
    check_secrets,
)

__all__ = ["LIVE_FIELDS", "RunMemory", "finished", "reconcile", "report_error", "ttl_patch"]
JSON = dict[str, Any]
log = logging.getLogger(__name__)
# Overlapping runs whose resource is gone that one planning pass cancels at most.
MAX_SWEPT_PER_PASS = 8

# Every kind and reason at 0 from the start, so that rate() and increase() of
# rap_operator_reconcile_errors_total answer before the first error.
for _kind in kinds.registry():
    for _reason in errors.REASONS:
        metrics.RECONCILE_ERRORS.labels(_kind, _reason)


@dataclass
class RunMemory:
    """What the operator remembers of one run between passes (lost on restart, and
    rebuilt from the resource and Postgres)."""

    url: str | None = None  # the database the run was planned in
    phase: str | None = None  # the last phase an Event was posted for
    warned: set[str] = field(default_factory=set)  # Warning Events already posted
    capped_at: int | None = None  # the capped parallelism a ParallelismCapped Event told
    queue_state: str | None = None  # where in its queue the last queue Events left the run
    # When the last Warning Event about an unexpected error was posted (monotonic).
    error_event_at: float | None = None
    # The generation a permanent error was reported for: no retry until it changes.
    failed_generation: int | None = None


def finished(body: JSON) -> bool:
    """Nothing more to do: a final phase after planning, or a refused spec whose
    generation was already seen (a new generation is looked at again)."""
    status = body.get("status") or {}
    if not is_terminal(status.get("phase")):
        return False
    planned = bool(status.get("runId") or status.get("jobName"))
    if not planned and _valid_reason(status) == reasons.POLICY_DENIED:
        # Judged again by every operator process: one restarted with a looser
        # policy plans what the old one refused (level-triggered).
        return False
    gen = (body.get("metadata") or {}).get("generation") or 1
    return planned or status.get("observedGeneration") == gen


def _valid_reason(status: JSON) -> str | None:
    valid = next((c for c in status.get("conditions") or [] if c.get("type") == "Valid"), None)
    return valid.get("reason") if valid and valid.get("status") == "False" else None


def _warn_once(body: JSON, mem: RunMemory, reason: str, message: str) -> None:
    if f"{reason}:{message}" not in mem.warned:
        mem.warned.add(f"{reason}:{message}")
        events.warn(body, reason=reason, message=message)


# Derived from the clock as much as from the work: rewritten only when work moved.
_CLOCK_FIELDS = ("throughput", "eta")
_WORK_FIELDS = ("phase", "processed", "failed", "skipped", "total")


async def _patch(body: JSON, status: JSON, previous: JSON) -> None:
    """Patch what changed; nothing at all when no work moved (a suspended or waiting
    run costs no write, however often it is looked at)."""
    changed = {k: v for k, v in status.items() if previous.get(k) != v}
    if all(status.get(k) == previous.get(k) for k in _WORK_FIELDS):
        for k in _CLOCK_FIELDS:
            if k in previous:
                changed.pop(k, None)
    if changed:
        meta = body["metadata"]
        await kube.patch_status(kinds.of(body).plural, meta["namespace"], meta["name"], changed)
    metrics.set_phase(body["metadata"]["uid"], status.get("phase"))


async def _not_ready(
    body: JSON,
    mem: RunMemory,
    reason: str,
    message: str,
    *,
    permanent: bool = False,
    count: bool = True,
) -> bool:
    """Pending (or Failed when `permanent`) with Valid=False saying why; returns
    whether to keep reconciling. `count`: in rap_operator_reconcile_errors_total
    (report_error has counted it already)."""
    if count:
        metrics.RECONCILE_ERRORS.labels(kinds.of(body).kind, reason).inc()
    previous = dict(body.get("status") or {})
    status = compute_status(RunObservation(
        generation=body["metadata"].get("generation") or 1, shards=[], job=None,
        previous=previous, now=datetime.now(UTC), valid=False, invalid_message=message,
        invalid_reason=reason, invalid_until_fixed=permanent, wording=kinds.of(body).wording,
    )).to_json()  # fmt: skip
    _warn_once(body, mem, reason, message)
    await _patch(body, status, previous)
    return not permanent


async def reconcile(
    body: JSON,
    job: JSON | None,
    mem: RunMemory,
    config: OperatorConfig,
    workload: JSON | None = None,
) -> bool:
    """One pass; returns whether the run still needs reconciling. `workload`: Kueue's
    Workload of the Job, for a queued run."""
    t0 = time.perf_counter()
    try:
        return await _reconcile(body, job, mem, config, workload)
    finally:
        metrics.RECONCILE_SECONDS.labels("reconcile").observe(time.perf_counter() - t0)


async def _reconcile(
    body: JSON, job: JSON | None, mem: RunMemory, config: OperatorConfig, workload: JSON | None
) -> bool:
    kind = kinds.of(body)
    meta = body["metadata"]
    if OLD_FINALIZER in (meta.get("finalizers") or []):
        await kube.remove_finalizer(kind.plural, body, OLD_FINALIZER)
    if finished(body):
        await _apply_ttl(body, job)
        return False
    status = body.get("status") or {}
    run: shard_ledger.Run | None = None
    if not status.get("runId"):  # not planned (as far as the resource knows)
        try:
            manifest = kind.check_spec(body)
        except InvalidRun as exc:
            return await _not_ready(body, mem, "InvalidSpec", str(exc), permanent=True)
        try:
            # Before any Secret is read or anything is created: a denied run gets nothing.
            await check_policy(body, config)
            url = await check_secrets(body, config, kind.secret_refs(body.get("spec") or {}))
            inputs = await kind.prepare(body, manifest)
            await database.pool(url)  # opened once: checks the schema
            plan = await _plan(kind, url, manifest, meta["uid"], inputs, config)
        except PolicyDenied as exc:
            return await _not_ready(body, mem, reasons.POLICY_DENIED, str(exc), permanent=True)
        except MissingInput as exc:
            return await _not_ready(body, mem, "InputMissing", str(exc))
        except DatabaseUnavailable as exc:
            return await _not_ready(body, mem, "DatabaseUnavailable", str(exc))
        except database.NotMigrated as exc:
            return await _not_ready(body, mem, "DatabaseNotMigrated", str(exc))
        except OverlapError as exc:
            return await _not_ready(body, mem, "OverlapsRun", str(exc))
        mem.url, run = url, plan.run
        name, key = database_secret(body.get("spec") or {}, config)
        if (meta.get("annotations") or {}).get(DATABASE_ANNOTATION) != f"{name}/{key}":
            await kube.annotate(kind.plural, body, {DATABASE_ANNOTATION: f"{name}/{key}"})
        if plan.created:
            events.info(body, reason="Planned", message=kind.planned_message(plan.run))
    return await _refresh(body, job, mem, config, run, workload)


async def _plan(
    kind: kinds.RunKind,
    url: str,
    manifest: Any,
    uid: str,
    inputs: Any,
    config: OperatorConfig,
) -> shard_ledger.PlanResult:
    """Plan the run; an overlap with a run whose resource is gone (deleted while the
    operator was away) cancels that run in the ledger, and the run is planned again."""
    # Planning's statements grow with the selection: a connection with the long timeout.
    for _ in range(MAX_SWEPT_PER_PASS):
        async with database.long_connection(url) as conn:
            try:
                return await kind.plan(conn, manifest, uid, inputs)
            except OverlapError as exc:
                if not await sweep.cancel_if_gone(conn, exc.other, config):
                    raise
    async with database.long_connection(url) as conn:
        return await kind.plan(conn, manifest, uid, inputs)


def waiting_status(
    previous: JSON, reason: str, message: str, generation: int, now: datetime
) -> JSON:
    """A planned run that waits for a cause time fixes (its database down, its Secret
    gone): the last status as it was, with `Valid=False` saying why - the condition
    the run has before planning for the same causes. The next good refresh sets
    Valid=True again."""
    conditions = list(previous.get("conditions") or [])
    old = next((c for c in conditions if c.get("type") == "Valid"), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == "False" else None
    valid = {
        "type": "Valid",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or format_time(now),
        "observedGeneration": generation,
    }
    if old is None:
        conditions.insert(0, valid)
    else:
        conditions[conditions.index(old)] = valid
    return {**previous, "conditions": conditions}


@contextlib.asynccontextmanager
async def _database(url: str) -> AsyncIterator[Any]:
    """A connection to the run's database, for database work only (nothing else in
    the block): a lost or refused connection is DatabaseUnavailable."""
    async with database.connection(await database.pool(url), url) as conn:
        yield conn


async def _share(
    body: JSON,
    url: str,
    run: shard_ledger.Run,
    shards: list[Any],
    job: JSON | None,
    config: OperatorConfig,
) -> budget.Share:
    """This run's share of its database's connection budget, recorded in budget.LEDGER."""
    spec = job_body(body, run)["spec"]
    requested = manifests.parallelism(spec)
    unfinished = sum(1 for s in shards if s.state not in ("done", "failed"))
    if job is not None:
        # A shard done in Postgres may still have its pod (and connections) exiting:
        # the Job counts it only once the pod is gone.
        left = int(job["spec"].get("completions") or 0)
        unfinished = max(unfinished, left - int((job.get("status") or {}).get("succeeded") or 0))
    # A suspended Job runs no pods: it holds nothing, and takes its share on resume.
    wanted = 0 if spec.get("suspend") else min(requested, unfinished)
    if job is not None and queue.queue_name(spec) is not None:
        # Kueue may have admitted fewer pods (its parallelism): never more than asked.
        wanted = min(wanted, int(job["spec"].get("parallelism") or 0))
    if config.connection_budget is not None:
        limit = db_budget.configured(config.connection_budget)
    else:
        limit = db_budget.from_server(await database.limits(url), config.reserved_connections)
    server = host_of(url)
    granted = budget.LEDGER.grant(run.uid, server, wanted, limit.pods)
    others = budget.LEDGER.held_by_others(run.uid, server)
    return budget.Share(requested, wanted, granted, others, limit, server)


async def _act_on_job(
    body: JSON, job: JSON | None, run: shard_ledger.Run, config: OperatorConfig, parallelism: int
) -> tuple[JSON | None, str | None]:
    """Carry out decide.job_action: the Job at `parallelism`, created when missing;
    (job, why it could not be created)."""
    action = decide.job_action(body, run, job, parallelism)
    if action is None:
        return job, None
    if "patch" in action:
        assert job is not None
        meta = job["metadata"]
        await kube.patch_job(meta["namespace"], meta["name"], {"spec": action["patch"]})
        return job, None
    kind = kinds.of(body)
    try:
        job, created = await kube.create_job(manifests.kind_job(action["create"], config, kind))
    except ApiException as exc:
        if exc.status in (403, 409, 422):  # forbidden (RBAC, admission), invalid
            return None, f"cannot create the Job ({exc.status}): {_api_message(exc)}"
        raise
    if created:
        status = body.get("status") or {}
        if status.get("jobName"):
            events.warn(
                body,
                reason="JobRecreated",
                message=f"the Job {job['metadata']['name']} was gone with"
                f" {status.get('progress') or 'work'} done; recreated, the shards resume"
                " from Postgres",
            )
        else:
            events.info(body, reason="JobCreated", message=f"Indexed Job {job['metadata']['name']}")
    return job, None


def _api_message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


# Causes time fixes, after planning as before it: the Valid=False reason for each.
WAITING_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (MissingInput, reasons.INPUT_MISSING),
    (DatabaseUnavailable, reasons.DATABASE_UNAVAILABLE),
    (database.NotMigrated, reasons.DATABASE_NOT_MIGRATED),
)


async def _refresh(
    body: JSON,
    job: JSON | None,
    mem: RunMemory,
    config: OperatorConfig,
    run: shard_ledger.Run | None,
    workload: JSON | None = None,
) -> bool:
    """A planned run's status: observe → decide (pure, decide.py) → act. A cause time
    fixes shows as Valid=False on the status as it was (waiting_status)."""
    t0 = time.perf_counter()
    try:
        obs = await observe(body, job, mem, config, run, workload)
        if obs is None:
            return True
        previous = dict(body.get("status") or {})
        decision = decide.decide(
            obs, body, previous, last_phase=mem.phase, capped_at=mem.capped_at,
            last_queue=mem.queue_state,
        )  # fmt: skip
        keep_going = await act(body, mem, obs, decision, previous)
    except (MissingInput, DatabaseUnavailable, database.NotMigrated) as exc:
        reason = next(r for cls, r in WAITING_REASONS if isinstance(exc, cls))
        metrics.RECONCILE_ERRORS.labels(kinds.of(body).kind, reason).inc()
        await _waiting(body, mem, reason, str(exc))
        return True
    metrics.STATUS_REFRESH_SECONDS.observe(time.perf_counter() - t0)
    return keep_going


async def _waiting(body: JSON, mem: RunMemory, reason: str, message: str) -> None:
    previous = dict(body.get("status") or {})
    generation = body["metadata"].get("generation") or 1
    status = waiting_status(previous, reason, message, generation, datetime.now(UTC))
    _warn_once(body, mem, reason, message)
    await _patch(body, status, previous)


async def observe(
    body: JSON,
    job: JSON | None,
    mem: RunMemory,
    config: OperatorConfig,
    run: shard_ledger.Run | None,
    workload: JSON | None = None,
) -> Observation | None:
    """Everything the status is computed from: the run and its per-shard counters
    from the ledger (O(shards)), the connection budget's share, the Job - brought to
    what decide.job_action says first, since the status reports the Job as it now is
    - and, while the run is unfinished, what its pods say is wrong. None: the run is
    not in its database (replaced or wiped: nothing to report from)."""
    meta = body["metadata"]
    if mem.url is None:
        mem.url = await planned_database(body, config)
    async with _database(mem.url) as conn:
        run = run or await shard_ledger.find_run(conn, meta["uid"])
        if run is None:
            log.warning("run %s/%s is not in its database", meta["namespace"], meta["name"])
            return None
        shards = await shard_ledger.read_shards(conn, run.id)
    no_job = kinds.of(body).dry_run(run.spec) or run.total == 0
    share: budget.Share | None = None
    problem: str | None = None
    troubles: list[pods.PodProblem] = []
    unfinished = run.state not in shard_ledger.TERMINAL_RUN_STATES
    if not no_job and unfinished:
        share = await _share(body, mem.url, run, shards, job, config)
        job, problem = await _act_on_job(body, job, run, config, share.parallelism)
        if job is None:  # refused (RBAC, quota, admission): no pods hold anything
            budget.LEDGER.release(run.uid)
        # Looked at only for an unfinished run (decide ignores them once the phase is
        # final); pods.problems reads the API only when the Job's counts say trouble.
        troubles = await pods.problems(job)
        await _hold_workload(body, run, job, workload)
    return Observation(
        run=run, shards=shards, job=job, now=datetime.now(UTC), no_job=no_job, share=share,
        job_problem=problem, troubles=troubles, workload=workload,
    )  # fmt: skip


async def _hold_workload(
    body: JSON, run: shard_ledger.Run, job: JSON | None, workload: JSON | None
) -> None:
    """spec.suspend of a queued run: its Workload deactivated (or active again)."""
    name = queue.queue_name(run.spec)
    if name is None or job is None or workload is None:
        return
    patch = queue.active_patch(job_body(body, run)["spec"], queue.standing(name, workload))
    if patch is not None:
        await kube.patch_workload(workload, patch)


async def act(body: JSON, mem: RunMemory, obs: Observation, d: Decision, previous: JSON) -> bool:
    """Carry out a decision: the ledger writes and the kind's extra status fields (one
    connection), the kind's on-succeeded action, the status patch, the Events, the
    Job's TTL once the final phase is recorded. Returns whether to keep reconciling."""
    kind = kinds.of(body)
    meta = body["metadata"]
    status = d.status
    assert mem.url is not None
    async with _database(mem.url) as conn:
        status.update(await kind.extra_status(conn, obs.run, status))
        announced = await kind.claim_events(conn, obs.run)
        if d.failed_indexes:
            await shard_ledger.mark_shards_failed(conn, obs.run.id, d.failed_indexes)
        if d.run_state is not None:
            await shard_ledger.set_run_state(conn, obs.run.id, d.run_state)
    status["conditions"] = [*status["conditions"], *d.extra_conditions]
    for event in d.before_patch:
        if event.type == "Warning":
            _warn_once(body, mem, event.reason, event.message)
        else:
            _post(body, event)
    for note in announced:  # claimed once per run in the ledger: posted as they come
        _post(body, Event(note.type, note.reason, note.message))
    mem.capped_at = d.capped_at
    mem.queue_state = d.queue_state
    if d.phase == "Succeeded":
        # Before the patch: if this fails, the run is not terminal yet and the next
        # pass tries again (the kind's action must be idempotent).
        status.update(await kind.on_succeeded(body, status))
    await _patch(body, status, previous)
    if d.phase_changed_from is not None:
        _post(body, decide.phase_event(d.phase_changed_from, status))
        mem.phase = d.phase
    for event in d.after_patch:
        _warn_once(body, mem, event.reason, event.message)
    metrics.observe_run(body, status, obs.job)
    if d.terminal:
        budget.LEDGER.release(meta["uid"])
        await _apply_ttl(body, obs.job)
        return False
    return True


# At most one Warning Event about unexpected errors per run in this many seconds.
ERROR_EVENT_INTERVAL = 300.0


async def report_error(body: JSON, mem: RunMemory, exc: Exception) -> errors.Verdict:
    """A pass raised `exc`: classify it (errors.py), count it, log it (the traceback
    for an unexpected one), post the rate-limited Warning Event of an unexpected
    error, and show a temporary or permanent cause on the run's Valid condition
    (the next good pass clears it). Never raises: the API may be what failed."""
    verdict = errors.classify(exc)
    kind = kinds.of(body)
    meta = body["metadata"]
    metrics.RECONCILE_ERRORS.labels(kind.kind, verdict.reason).inc()
    where = f"{kind.kind} {meta['namespace']}/{meta['name']}"
    if verdict.kind == "unexpected":
        log.exception("reconcile of %s failed unexpectedly; retrying with backoff", where)
        now = time.monotonic()
        if mem.error_event_at is None or now - mem.error_event_at >= ERROR_EVENT_INTERVAL:
            mem.error_event_at = now
            with contextlib.suppress(Exception):
                events.warn(
                    body,
                    reason="ReconcileError",
                    message=errors.unexpected_event_message(kind.kind, verdict),
                )
        return verdict
    log.warning(
        "reconcile of %s: %s (%s, %s)", where, verdict.message, verdict.kind, verdict.reason
    )
    generation = meta.get("generation") or 1
    if verdict.kind == "permanent":
        mem.failed_generation = generation
    if finished(body):  # only its Job's TTL was left to do: no pass would clear a condition
        return verdict
    try:
        if verdict.kind == "permanent" and not (body.get("status") or {}).get("runId"):
            await _not_ready(
                body, mem, verdict.reason, verdict.message, permanent=True, count=False
            )
        else:
            await _waiting(body, mem, verdict.reason, verdict.message)
    except Exception as again:  # the API server in trouble: the log says it already
        log.warning("could not show %s on %s: %s", verdict.reason, where, again)
    return verdict


async def planned_database(body: JSON, config: OperatorConfig) -> str:
    """The URL of the database the run was planned in (its annotation), else the one
    the spec names."""
    planned = ((body["metadata"].get("annotations") or {}).get(DATABASE_ANNOTATION) or "").split(
        "/", 1
    )
    if len(planned) == 2:
        name, key = planned
        try:
            return await kube.secret_value(body["metadata"]["namespace"], name, key)
        except kube.SecretProblem as exc:
            raise MissingInput(str(exc)) from None
    return await check_secrets(body, config)


async def _apply_ttl(body: JSON, job: JSON | None) -> None:
    """ttlSecondsAfterFinished reaches the Job only once the final phase is recorded:
    after the final patch, and on any later pass that finds the Job without it (a
    failed patch raises, and the loop tries again)."""
    patch = ttl_patch(body.get("spec") or {}, job)
    if patch is None:
        return
    assert job is not None
    meta = job["metadata"]
    try:
        await kube.patch_job(meta["namespace"], meta["name"], patch)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _post(body: JSON, event: Event) -> None:
    if event.type == "Warning":
        events.warn(body, reason=event.reason, message=event.message)
    else:
        events.info(body, reason=event.reason, message=event.message)
