"""kopf handlers for every kind of run (AnalysisRun, ScrapeJob): plan → Job → status,
suspend/resume, deletion. One flow; what differs per kind is in kinds.py.

The flow per resource:
- create/resume: validate (models, Secrets, the kind's inputs) → plan in Postgres by
  uid (idempotent) → create the Indexed Job (idempotent) → first status.
- timer: status from the per-shard counters + the Job (refresh.py); stops
  patching once the run is terminal (a succeeded ScrapeJob first chains its analysis).
- spec update: suspend/parallelism go to the Job; other changes after planning are
  refused with a condition (the planned spec in Postgres is the reference).
- delete: the Job goes with its owner; the run is marked cancelled in Postgres.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from analyzer_runtime import protocol
from analyzer_runtime.db.connect import DatabaseUnavailable
from analyzer_runtime.planner import OverlapError
from analyzer_runtime.status import compute_status, is_terminal
from rap_operator import database, kinds, kube, manifests, metrics, refresh
from rap_operator.config import OperatorConfig
from rap_operator.validation import InvalidRun, check_secrets

GROUP, VERSION = "rapanalyzer.io", "v1alpha1"
PLURALS = tuple(k.plural for k in kinds.registry().values())
CONFIG = OperatorConfig.from_env()
log = logging.getLogger(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler bookkeeping in annotations keeps .status ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.reporting_component = "rap-analyzer-operator"
    settings.watching.server_timeout = 120
    metrics.serve(CONFIG.metrics_port)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    await database.close_all()
    await kube.close()


def _invalid_status(
    body: kopf.Body,
    message: str,
    previous: dict[str, Any],
    *,
    reason: str = "InvalidSpec",
    until_fixed: bool = True,
) -> dict[str, Any]:
    return compute_status(
        generation=body.metadata.get("generation") or 1, shards=[], job=None,
        previous=previous, now=datetime.now(UTC), valid=False, invalid_message=message,
        invalid_reason=reason, invalid_until_fixed=until_fixed, wording=kinds.of(body).wording,
    )  # fmt: skip


async def _plan_and_start(body: kopf.Body, patch: kopf.Patch) -> None:
    status = dict(body.get("status") or {})
    if is_terminal(status.get("phase")):
        return  # a finished run stays finished across operator restarts
    raw = dict(body)
    kind = kinds.of(raw)
    try:
        manifest = kind.check_spec(raw)
        url = await check_secrets(raw, CONFIG, kind.secret_refs(raw.get("spec") or {}))
        # Inputs read from the cluster (a ScrapeJob's artist ConfigMap) matter only
        # until the run is planned: a resumed run must not fail because one went away.
        inputs = None if status.get("jobName") else await kind.prepare(raw, manifest)
    except InvalidRun as exc:
        msg = str(exc)
        if status.get("conditions") != _invalid_status(body, msg, status)["conditions"]:
            kopf.warn(raw, reason="InvalidSpec", message=msg)
        patch.status.update(_invalid_status(body, msg, status))
        metrics.set_phase(body.metadata.uid, "Failed")
        return
    uid = body.metadata.uid
    try:
        pool = await database.pool(url)
        async with pool.acquire() as conn:
            plan = await kind.plan(conn, manifest, uid, inputs)
    except DatabaseUnavailable as exc:
        raise kopf.TemporaryError(str(exc), delay=10) from None
    except OverlapError as exc:
        # Not the spec's fault: it plans by itself once the other run is finished.
        waiting = _invalid_status(body, str(exc), status, reason="OverlapsRun", until_fixed=False)
        if status.get("conditions") != waiting["conditions"]:
            kopf.warn(raw, reason="OverlapsRun", message=str(exc))
        patch.status.update(waiting)
        metrics.set_phase(body.metadata.uid, "Pending")
        raise kopf.TemporaryError(str(exc), delay=CONFIG.status_interval * 5) from None
    if plan.created:
        kopf.info(raw, reason="Planned", message=kind.planned_message(plan.run))
    if kind.dry_run(raw.get("spec") or {}):
        # Planned and estimated (status.estimate); a dry run never gets a Job.
        await refresh.refresh(raw, patch, url=url, run=plan.run)
        return
    job, created = await kube.create_job(manifests.kind_job(raw, CONFIG, kind))
    if created:
        kopf.info(raw, reason="JobCreated", message=f"Indexed Job {job['metadata']['name']}")
    await refresh.refresh(raw, patch, url=url, run=plan.run, job=job)


async def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    t0 = time.perf_counter()
    try:
        await _plan_and_start(body, patch)
    finally:
        metrics.RECONCILE_SECONDS.labels("reconcile").observe(time.perf_counter() - t0)


async def spec_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    t0 = time.perf_counter()
    try:
        status = body.get("status") or {}
        if not status.get("jobName"):
            # Never planned (e.g. it was invalid): the new spec gets a full reconcile.
            await _plan_and_start(body, patch)
            return
        if is_terminal(status.get("phase")):
            return
        # suspend and parallelism follow the spec; refresh() reports any other change.
        await kube.patch_job(
            body.metadata.namespace,
            status["jobName"],
            manifests.job_patch_for_spec(dict(body.spec)),
        )
        await refresh.refresh(dict(body), patch)
    finally:
        metrics.RECONCILE_SECONDS.labels("update").observe(time.perf_counter() - t0)


async def refresh_status(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    status = body.get("status") or {}
    if is_terminal(status.get("phase")) or not status.get("jobName"):
        return
    await refresh.refresh(dict(body), patch)


async def deleted(body: kopf.Body, **_: Any) -> None:
    """Stop the work now (the Job's garbage collection would too) and record the cancel."""
    raw = dict(body)
    status = body.get("status") or {}
    metrics.set_phase(body.metadata.uid, None)
    if job_name := status.get("jobName"):
        await kube.delete_job(body.metadata.namespace, job_name)
    if is_terminal(status.get("phase")) or not status.get("jobName"):
        return
    try:
        url = await check_secrets(raw, CONFIG)  # the database URL only
        pool = await database.pool(url)
        async with pool.acquire() as conn:
            run = await protocol.find_run(conn, body.metadata.uid)
            if run is not None:
                await protocol.set_run_state(conn, run.id, "cancelled")
    except (InvalidRun, DatabaseUnavailable) as exc:
        # Never block deletion on a database we cannot reach; the results stay either way.
        log.warning("could not mark run %s cancelled: %s", body.metadata.name, exc)


# The same handlers for every kind (kopf matches them by resource).
for _plural in PLURALS:
    kopf.on.create(GROUP, VERSION, _plural)(reconcile)
    kopf.on.resume(GROUP, VERSION, _plural)(reconcile)
    kopf.on.update(GROUP, VERSION, _plural, field="spec")(spec_changed)
    kopf.timer(GROUP, VERSION, _plural, interval=CONFIG.status_interval)(refresh_status)
    kopf.on.delete(GROUP, VERSION, _plural)(deleted)
