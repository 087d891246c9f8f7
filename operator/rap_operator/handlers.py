"""kopf wiring: watch the runs (every kind) and their Jobs, and keep one reconcile
loop per unfinished run (reconcile.py does the work).

Like the dask-kubernetes operator, children are watched, not polled: a Job's watch
event wakes its run's loop, and so does any change of the run itself; otherwise a
loop wakes every `status_interval` seconds to read the shard counters. One loop per
run is the only writer of that run's status and phase Events. Loops exist only for
unfinished runs, and for a finished run whose Job still lacks its TTL. There is no
finalizer: deleting a run (or its namespace) never waits for the operator - the Job
goes with its owner, and the run is marked cancelled in Postgres when the deletion
is seen, or by the sweep (sweep.py) when it was not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from analyzer_runtime.contract.labels import LABEL_RUN_UID, OLD_FINALIZER
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import DatabaseUnavailable
from rap_operator import budget, database, kinds, kube, manifests, metrics, queue, sweep
from rap_operator.config import OperatorConfig
from rap_operator.reconcile import (
    RunMemory,
    finished,
    planned_database,
    reconcile,
    report_error,
    ttl_patch,
)
from rap_operator.validation import MissingInput

GROUP, VERSION = "rapanalyzer.io", "v1alpha1"
PLURALS = tuple(k.plural for k in kinds.registry().values())
CONFIG = OperatorConfig.from_env()
log = logging.getLogger(__name__)
# A pass that raised a temporary or unexpected error (errors.py) is retried after
# this many seconds, doubling up to the maximum; a permanent one waits for a new spec.
RETRY_SECONDS, MAX_RETRY_SECONDS = 2.0, 60.0


@dataclass
class RunLoop:
    body: dict[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    memory: RunMemory = field(default_factory=RunMemory)
    task: asyncio.Task[None] | None = None


_loops: dict[str, RunLoop] = {}
_jobs: dict[str, dict[str, Any]] = {}  # run uid -> its Job, from the watch
# Kueue's Workloads by the uid of the Job they belong to (what the status needs of
# each), and the runs of the Jobs: a Workload's event wakes its run's loop.
_workloads: dict[str, dict[str, Any]] = {}
_job_runs: dict[str, str] = {}  # Job uid -> run uid
# The memory of loops that ended, so that a loop started again for the same run (a
# change seen while finishing, or a watch event older than the final patch) knows
# which phase Event and warnings were already posted: a run says Succeeded once.
_ended: dict[str, RunMemory] = {}
MAX_ENDED = 10_000
# Finished runs with a TTL whose Job was not seen yet (the watch lists runs and Jobs
# in no set order): the Job's event gives it the TTL if it lacks it.
_ttl_waiting: dict[str, dict[str, Any]] = {}


_background: set[asyncio.Task[None]] = set()


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.reporting_component = "rap-analyzer-operator"
    settings.watching.server_timeout = 120
    metrics.serve(CONFIG.metrics_port)
    _background.add(asyncio.create_task(_evict_idle_pools()))
    sweep.on_cancelled[:] = [_forget]
    _background.add(asyncio.create_task(sweep.run_forever(CONFIG)))


async def _evict_idle_pools() -> None:
    """Close the pools of databases no run has used for a while (finished tenants)."""
    while True:
        await asyncio.sleep(60)
        with contextlib.suppress(Exception):
            await database.evict_idle()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in _background:
        task.cancel()
    for lp in list(_loops.values()):
        if lp.task is not None:
            lp.task.cancel()
    await database.close_all()
    await kube.close()


async def _loop(uid: str) -> None:
    backoff = RETRY_SECONDS
    while (lp := _loops.get(uid)) is not None:
        lp.wake.clear()
        wait: float | None = CONFIG.status_interval
        mem = lp.memory
        if mem.failed_generation is not None:
            if mem.failed_generation == (lp.body["metadata"].get("generation") or 1):
                # A permanent error: nothing to retry until the spec changes (a new
                # generation or a deletion wakes the loop).
                await lp.wake.wait()
                continue
            mem.failed_generation = None
        try:
            job = _jobs.get(uid)
            workload = _workloads.get(job["metadata"].get("uid", "")) if job else None
            if not await reconcile(lp.body, job, mem, CONFIG, workload):
                break
            backoff = RETRY_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # errors.py: temporary, permanent or unexpected
            verdict = await report_error(lp.body, mem, exc)
            if verdict.retry:
                wait, backoff = backoff, min(backoff * 2, MAX_RETRY_SECONDS)
            else:
                continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lp.wake.wait(), wait)
    lp = _loops.pop(uid, None)
    if lp is None:
        return
    _ended[uid] = lp.memory
    while len(_ended) > MAX_ENDED:
        del _ended[next(iter(_ended))]
    if lp.wake.is_set():  # changed while finishing: look again
        _watch(lp.body)


def _forget(uid: str) -> None:
    """Drop what the operator holds for a run that no longer exists."""
    lp = _loops.pop(uid, None)
    if lp is not None and lp.task is not None:
        lp.task.cancel()
    if (job := _jobs.pop(uid, None)) is not None:
        _job_runs.pop(job["metadata"].get("uid", ""), None)
        _workloads.pop(job["metadata"].get("uid", ""), None)
    _ended.pop(uid, None)
    _ttl_waiting.pop(uid, None)
    budget.LEDGER.release(uid)
    metrics.set_phase(uid, None)


def _watch(body: dict[str, Any], *, finishing: bool = False) -> None:
    """Start the loop of an unfinished run (or, `finishing`, of a finished one with
    something left to do: its Job's TTL), or hand it the newest body - waking it
    only for a change it did not make itself (a new generation of the spec, a
    deletion): its own status patches must not make it spin."""
    uid = body["metadata"]["uid"]
    lp = _loops.get(uid)
    if lp is None:
        if finished(body) and not finishing:
            return
        lp = _loops[uid] = RunLoop(body, memory=_ended.pop(uid, RunMemory()))
        lp.task = asyncio.create_task(_loop(uid))
        lp.wake.set()
        return
    old, lp.body = lp.body, body
    if _cause(old) != _cause(body):
        lp.wake.set()


def _cause(body: dict[str, Any]) -> tuple[Any, ...]:
    meta = body.get("metadata") or {}
    return meta.get("generation"), meta.get("deletionTimestamp")


async def run_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    raw = dict(body)
    uid = body.metadata.uid
    if type == "DELETED":
        lp = _loops.get(uid)
        _forget(uid)
        await _cancelled(raw, lp.memory.url if lp else None)
        return
    if finished(raw):
        metrics.set_phase(uid, (raw.get("status") or {}).get("phase"))
        if OLD_FINALIZER in (body.metadata.get("finalizers") or []):
            await kube.remove_finalizer(kinds.of(raw).plural, raw, OLD_FINALIZER)
        _finished_ttl(raw)
        return
    _watch(raw)


def _finished_ttl(body: dict[str, Any]) -> None:
    """A finished run whose Job lacks the spec's TTL gets a loop that applies it
    (level-triggered: an earlier patch may have failed, or the operator restarted
    between the final phase and the TTL); one whose Job was not seen yet waits for
    the Job's event."""
    uid = body["metadata"]["uid"]
    _ttl_waiting.pop(uid, None)
    spec = body.get("spec") or {}
    if manifests.job_patch_after_finish(spec) is None:
        _watch(body)  # hands the newest body to a loop that is still finishing
        return
    job = _jobs.get(uid)
    if job is None and uid not in _loops:
        _ttl_waiting[uid] = body
        while len(_ttl_waiting) > MAX_ENDED:
            del _ttl_waiting[next(iter(_ttl_waiting))]
        return
    _watch(body, finishing=ttl_patch(spec, job) is not None)


async def job_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    uid = (body.metadata.labels or {}).get(LABEL_RUN_UID)
    if not uid:
        return
    if type == "DELETED":
        _jobs.pop(uid, None)
        _job_runs.pop(body.metadata.uid, None)
        _workloads.pop(body.metadata.uid, None)
        budget.LEDGER.observe_job(uid, None)
    else:
        _jobs[uid] = dict(body)
        _job_runs[body.metadata.uid] = uid
        budget.LEDGER.observe_job(uid, _jobs[uid])
        if (run := _ttl_waiting.pop(uid, None)) is not None:
            _finished_ttl(run)
    if (lp := _loops.get(uid)) is not None:
        lp.wake.set()


async def workload_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    """Kueue's Workload of a Job: kept (what the status needs of it) by the Job's uid,
    and its run's loop woken - admission, preemption and readmission show at once."""
    raw = dict(body)
    job_uid = queue.owner_job_uid(raw)
    if job_uid is None:
        return
    if type == "DELETED":
        # Kueue replaces the Workload of a changed Job: only the one gone is dropped.
        kept = _workloads.get(job_uid)
        if kept is not None and kept["metadata"].get("uid") == body.metadata.uid:
            del _workloads[job_uid]
    else:
        _workloads[job_uid] = queue.essentials(raw)
    run_uid = _job_runs.get(job_uid)
    if run_uid is not None and (lp := _loops.get(run_uid)) is not None:
        lp.wake.set()


async def _cancelled(body: dict[str, Any], url: str | None) -> None:
    """Record the cancel; results already written stay. Never blocks the deletion."""
    status = body.get("status") or {}
    if not status.get("runId") or finished(body):
        return
    try:
        url = url or await planned_database(body, CONFIG)
        pool = await database.pool(url)
        async with database.acquire(pool) as conn:
            run = await shard_ledger.find_run(conn, body["metadata"]["uid"])
            if run is not None:
                await shard_ledger.set_run_state(conn, run.id, "cancelled")
    except (MissingInput, DatabaseUnavailable, database.NotMigrated, OSError) as exc:
        log.warning("could not mark run %s cancelled: %s", body["metadata"]["name"], exc)


for _plural in PLURALS:
    kopf.on.event(GROUP, VERSION, _plural)(run_event)
kopf.on.event("batch", "v1", "jobs", labels={LABEL_RUN_UID: kopf.PRESENT})(job_event)
# Only where Kueue is installed (kopf watches a resource once its CRD exists), at the
# version the API server prefers.
kopf.on.event(f"workloads.{queue.GROUP}")(workload_event)
