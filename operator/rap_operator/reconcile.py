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
- Status: from the per-shard counters (O(shards)) + the Job + what the pods say,
  patched only where it changed; an Event once per phase change. A cause time fixes
  (the database down, its Secret gone) keeps the status as it was with `Valid=False`
  saying why, as before planning; the next good refresh clears it.

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

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from analyzer_runtime import protocol
from analyzer_runtime.db import budget as db_budget
from analyzer_runtime.db.connect import DatabaseUnavailable, host_of, is_connection_error
from analyzer_runtime.planner import OverlapError
from analyzer_runtime.status import JobObservation, compute_status, format_time, is_terminal
from rap_operator import budget, database, kinds, kube, manifests, metrics, pods, sweep
from rap_operator.config import OperatorConfig, database_secret
from rap_operator.validation import InvalidRun, MissingInput, check_secrets

JSON = dict[str, Any]
log = logging.getLogger(__name__)
# The finalizer older versions put on every run; removed on sight, so that deleting
# a run (or its namespace) never waits for an operator that may be gone.
OLD_FINALIZER = "rapanalyzer.io/finalizer"
# Spec fields a planned run takes from the live resource; everything else comes
# from the spec planned in Postgres.
LIVE_FIELDS = ("suspend", "parallelism", "ttlSecondsAfterFinished", "activeDeadlineSeconds")
# The database Secret (name/key) a run was planned with: after an operator restart the
# status is read from that database, whatever a (refused) spec change says now.
DATABASE_ANNOTATION = "rapanalyzer.io/database-secret"
# Overlapping runs whose resource is gone that one planning pass cancels at most.
MAX_SWEPT_PER_PASS = 8


@dataclass
class RunMemory:
    """What the operator remembers of one run between passes (lost on restart, and
    rebuilt from the resource and Postgres)."""

    url: str | None = None  # the database the run was planned in
    phase: str | None = None  # the last phase an Event was posted for
    warned: set[str] = field(default_factory=set)  # Warning Events already posted
    capped_at: int | None = None  # the capped parallelism a ParallelismCapped Event told


def finished(body: JSON) -> bool:
    """Nothing more to do: a final phase after planning, or a refused spec whose
    generation was already seen (a new generation is looked at again)."""
    status = body.get("status") or {}
    if not is_terminal(status.get("phase")):
        return False
    planned = bool(status.get("runId") or status.get("jobName"))
    gen = (body.get("metadata") or {}).get("generation") or 1
    return planned or status.get("observedGeneration") == gen


def _warn_once(body: JSON, mem: RunMemory, reason: str, message: str) -> None:
    if f"{reason}:{message}" not in mem.warned:
        mem.warned.add(f"{reason}:{message}")
        kopf.warn(body, reason=reason, message=message)


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
    body: JSON, mem: RunMemory, reason: str, message: str, *, permanent: bool = False
) -> bool:
    """Pending (or Failed when `permanent`) with Valid=False saying why; returns
    whether to keep reconciling."""
    previous = dict(body.get("status") or {})
    status = compute_status(
        generation=body["metadata"].get("generation") or 1, shards=[], job=None,
        previous=previous, now=datetime.now(UTC), valid=False, invalid_message=message,
        invalid_reason=reason, invalid_until_fixed=permanent, wording=kinds.of(body).wording,
    )  # fmt: skip
    _warn_once(body, mem, reason, message)
    await _patch(body, status, previous)
    return not permanent


async def reconcile(body: JSON, job: JSON | None, mem: RunMemory, config: OperatorConfig) -> bool:
    """One pass; returns whether the run still needs reconciling."""
    t0 = time.perf_counter()
    try:
        return await _reconcile(body, job, mem, config)
    finally:
        metrics.RECONCILE_SECONDS.labels("reconcile").observe(time.perf_counter() - t0)


async def _reconcile(body: JSON, job: JSON | None, mem: RunMemory, config: OperatorConfig) -> bool:
    kind = kinds.of(body)
    meta = body["metadata"]
    if OLD_FINALIZER in (meta.get("finalizers") or []):
        await kube.remove_finalizer(kind.plural, body, OLD_FINALIZER)
    if finished(body):
        await _apply_ttl(body, job)
        return False
    status = body.get("status") or {}
    run: protocol.Run | None = None
    if not status.get("runId"):  # not planned (as far as the resource knows)
        try:
            manifest = kind.check_spec(body)
        except InvalidRun as exc:
            return await _not_ready(body, mem, "InvalidSpec", str(exc), permanent=True)
        try:
            url = await check_secrets(body, config, kind.secret_refs(body.get("spec") or {}))
            inputs = await kind.prepare(body, manifest)
            plan = await _plan(
                kind, await database.pool(url), manifest, meta["uid"], inputs, config
            )
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
            kopf.info(body, reason="Planned", message=kind.planned_message(plan.run))
    return await _refresh(body, job, mem, config, run)


async def _plan(
    kind: kinds.RunKind,
    pool: Any,
    manifest: Any,
    uid: str,
    inputs: Any,
    config: OperatorConfig,
) -> protocol.PlanResult:
    """Plan the run; an overlap with a run whose resource is gone (deleted while the
    operator was away) cancels that run in the ledger, and the run is planned again."""
    for _ in range(MAX_SWEPT_PER_PASS):
        async with pool.acquire() as conn:
            try:
                return await kind.plan(conn, manifest, uid, inputs)
            except OverlapError as exc:
                if not await sweep.cancel_if_gone(conn, exc.other, config):
                    raise
    async with pool.acquire() as conn:
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
    pool = await database.pool(url)
    try:
        async with pool.acquire() as conn:
            yield conn
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise DatabaseUnavailable(f"database at {host_of(url)}: {exc}") from exc
        raise


def _job_body(body: JSON, run: protocol.Run) -> JSON:
    """The resource as the Job must see it: the planned spec, with the fields that may
    change after planning taken from the live spec."""
    live = body.get("spec") or {}
    spec = {**run.spec, **{k: live[k] for k in LIVE_FIELDS if k in live}}
    return {**body, "spec": spec}


async def _share(
    body: JSON,
    url: str,
    run: protocol.Run,
    shards: list[Any],
    job: JSON | None,
    config: OperatorConfig,
) -> budget.Share:
    """This run's share of its database's connection budget, recorded in budget.LEDGER."""
    spec = _job_body(body, run)["spec"]
    requested = manifests.parallelism(spec)
    unfinished = sum(1 for s in shards if s.state not in ("done", "failed"))
    if job is not None:
        # A shard done in Postgres may still have its pod (and connections) exiting:
        # the Job counts it only once the pod is gone.
        left = int(job["spec"].get("completions") or 0)
        unfinished = max(unfinished, left - int((job.get("status") or {}).get("succeeded") or 0))
    # A suspended Job runs no pods: it holds nothing, and takes its share on resume.
    wanted = 0 if spec.get("suspend") else min(requested, unfinished)
    if config.connection_budget is not None:
        limit = db_budget.configured(config.connection_budget)
    else:
        limit = db_budget.from_server(await database.limits(url), config.reserved_connections)
    server = host_of(url)
    granted = budget.LEDGER.grant(run.uid, server, wanted, limit.pods)
    others = budget.LEDGER.held_by_others(run.uid, server)
    return budget.Share(requested, wanted, granted, others, limit, server)


async def _ensure_job(
    body: JSON,
    job: JSON | None,
    run: protocol.Run,
    config: OperatorConfig,
    mem: RunMemory,
    parallelism: int,
) -> tuple[JSON | None, str | None]:
    """The Job at `parallelism`, created when missing; (job, why it could not be created)."""
    kind = kinds.of(body)
    want = _job_body(body, run)
    want["spec"] = {**want["spec"], "parallelism": parallelism}
    if job is None:
        try:
            job, created = await kube.create_job(manifests.kind_job(want, config, kind))
        except ApiException as exc:
            if exc.status in (403, 409, 422):  # forbidden (RBAC, admission), invalid
                return None, f"cannot create the Job ({exc.status}): {_api_message(exc)}"
            raise
        if created:
            status = body.get("status") or {}
            if status.get("jobName"):
                kopf.warn(
                    body,
                    reason="JobRecreated",
                    message=f"the Job {job['metadata']['name']} was gone with"
                    f" {status.get('progress') or 'work'} done; recreated, the shards resume"
                    " from Postgres",
                )
            else:
                kopf.info(
                    body, reason="JobCreated", message=f"Indexed Job {job['metadata']['name']}"
                )
        return job, None
    desired = manifests.job_patch_for_spec(want["spec"])["spec"]
    current = job.get("spec") or {}
    if any(current.get(k) != v for k, v in desired.items()):
        meta = job["metadata"]
        await kube.patch_job(meta["namespace"], meta["name"], {"spec": desired})
    return job, None


def _api_message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


# Causes time fixes, after planning as before it: the Valid=False reason for each.
WAITING_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (MissingInput, "InputMissing"),
    (DatabaseUnavailable, "DatabaseUnavailable"),
    (database.NotMigrated, "DatabaseNotMigrated"),
)


async def _refresh(
    body: JSON,
    job: JSON | None,
    mem: RunMemory,
    config: OperatorConfig,
    run: protocol.Run | None,
) -> bool:
    try:
        return await _observe_and_patch(body, job, mem, config, run)
    except (MissingInput, DatabaseUnavailable, database.NotMigrated) as exc:
        reason = next(r for cls, r in WAITING_REASONS if isinstance(exc, cls))
        previous = dict(body.get("status") or {})
        generation = body["metadata"].get("generation") or 1
        status = waiting_status(previous, reason, str(exc), generation, datetime.now(UTC))
        _warn_once(body, mem, reason, str(exc))
        await _patch(body, status, previous)
        return True


async def _observe_and_patch(
    body: JSON,
    job: JSON | None,
    mem: RunMemory,
    config: OperatorConfig,
    run: protocol.Run | None,
) -> bool:
    t0 = time.perf_counter()
    kind = kinds.of(body)
    meta, spec = body["metadata"], body.get("spec") or {}
    previous = dict(body.get("status") or {})
    if mem.url is None:
        mem.url = await planned_database(body, config)
    async with _database(mem.url) as conn:
        run = run or await protocol.find_run(conn, meta["uid"])
        if run is None:  # the database was replaced or wiped: nothing to report from
            log.warning("run %s/%s is not in its database", meta["namespace"], meta["name"])
            return True
        shards = await protocol.read_shards(conn, run.id)
    no_job = kind.dry_run(run.spec) or run.total == 0
    job_name = None if no_job else manifests.job_name(meta["name"], meta["uid"])
    problem, share = None, None
    unfinished = run.state not in protocol.TERMINAL_RUN_STATES
    if not no_job and unfinished:
        share = await _share(body, mem.url, run, shards, job, config)
        job, problem = await _ensure_job(body, job, run, config, mem, share.parallelism)
        if job is None:  # refused (RBAC, quota, admission): no pods hold anything
            budget.LEDGER.release(run.uid)
    obs = JobObservation.from_job_status(job) if not no_job else None
    refusal = kind.refused_changes(run.spec, spec)
    status = compute_status(
        generation=meta.get("generation") or 1, shards=shards, job=obs, previous=previous,
        now=datetime.now(UTC), valid=refusal is None, invalid_reason="SpecChangeRefused",
        invalid_message=refusal, planned_total=run.total, suspend=bool(spec.get("suspend")),
        job_name=job_name, wording=kind.wording, **kind.status_args(run),
    )  # fmt: skip
    async with _database(mem.url) as conn:
        status.update(await kind.extra_status(conn, run, status))
        phase = status["phase"]
        if obs is not None and obs.failed_indexes:
            await protocol.mark_shards_failed(conn, run.id, sorted(obs.failed_indexes))
        if is_terminal(phase):
            await protocol.set_run_state(
                conn, run.id, "succeeded" if phase == "Succeeded" else "failed"
            )
    status["runId"] = meta["uid"]
    status["conditions"] = [*status["conditions"], *_budget_condition(body, share, previous)]
    if share is not None and share.capped and mem.capped_at != share.granted:
        kopf.info(body, reason="ParallelismCapped", message=share.message())
    mem.capped_at = share.granted if share is not None and share.capped else None
    troubles = [pods.PodProblem("JobNotCreated", problem)] if problem else []
    if not is_terminal(phase):
        troubles += await pods.problems(job)
    for t in troubles:
        _warn_once(body, mem, t.reason, t.message)
    if troubles:
        status["conditions"] = [*status["conditions"], _pods_condition(troubles, previous)]
    if phase == "Succeeded" and kind.on_succeeded is not None:
        # Before the patch: if this fails, the run is not terminal yet and the next
        # pass tries again (the kind's action must be idempotent).
        status.update(await kind.on_succeeded(body, status))
    await _patch(body, status, previous)
    last = mem.phase or previous.get("phase")
    if last != phase:
        _event(body, last, status)
        mem.phase = phase
    if refusal:
        _warn_once(body, mem, "SpecChangeRefused", refusal)
    metrics.observe_run(body, status, job)
    metrics.STATUS_REFRESH_SECONDS.observe(time.perf_counter() - t0)
    if is_terminal(phase):
        budget.LEDGER.release(meta["uid"])
        await _apply_ttl(body, job)
        return False
    return True


def _budget_condition(body: JSON, share: budget.Share | None, previous: JSON) -> list[JSON]:
    """ParallelismCapped as this pass decided, or as it last was (a finished run)."""
    if share is None:
        return [c for c in previous.get("conditions") or [] if c.get("type") == budget.CONDITION]
    cond = budget.condition(share, previous, body["metadata"].get("generation") or 1)
    return [cond] if cond else []


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


def _pods_condition(troubles: list[pods.PodProblem], previous: JSON) -> JSON:
    first = troubles[0]
    message = "; ".join(dict.fromkeys(t.message for t in troubles))[:1000]
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == "PodsReady"), {})
    since = old.get("lastTransitionTime") if old.get("reason") == first.reason else None
    return {
        "type": "PodsReady",
        "status": "False",
        "reason": first.reason,
        "message": message,
        "lastTransitionTime": since or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def ttl_patch(spec: JSON, job: JSON | None) -> JSON | None:
    """The patch that gives a finished run's Job the spec's ttlSecondsAfterFinished;
    None when there is no Job, no TTL in the spec, or the Job has it already."""
    patch = manifests.job_patch_after_finish(spec)
    if job is None or patch is None:
        return None
    have = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return None if have == patch["spec"]["ttlSecondsAfterFinished"] else patch


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


def _event(body: JSON, old: str | None, status: JSON) -> None:
    phase = status["phase"]
    summary = next(
        (c for c in status.get("conditions", []) if c["type"] in (phase, "Succeeded")), None
    )
    message = f"{old or 'New'} → {phase}: {status.get('progress')}"
    if summary and summary.get("message"):
        message += f"; {summary['message']}"
    if phase == "Failed":
        kopf.warn(body, reason="Failed", message=message)
    else:
        kopf.info(body, reason=phase, message=message)
