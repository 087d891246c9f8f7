"""Status refresh of any kind of run: per-shard counters (O(shards)) + the Job → the
resource's status; the kind (kinds.py) adds its own fields and wording."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import kopf

from analyzer_runtime import protocol
from analyzer_runtime.status import JobObservation, compute_status, is_terminal
from rap_operator import database, kinds, kube, manifests, metrics
from rap_operator.config import OperatorConfig

CONFIG = OperatorConfig.from_env()


async def refresh(
    body: dict[str, Any],
    patch: kopf.Patch,
    *,
    url: str | None = None,
    run: protocol.Run | None = None,
    job: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    kind = kinds.of(body)
    meta, spec = body["metadata"], body.get("spec") or {}
    previous = dict(body.get("status") or {})
    if url is None:
        name, key = manifests.database_secret(spec, CONFIG)
        url = await kube.secret_value(meta["namespace"], name, key)
    pool = await database.pool(url)
    async with pool.acquire() as conn:
        run = run or await protocol.find_run(conn, meta["uid"])
        if run is None:
            return None
        shards = await protocol.read_shards(conn, run.id)
        dry_run = kind.dry_run(run.spec)  # planned (and estimated) only: no Job
        job_name = None if dry_run else manifests.job_name(meta["name"], meta["uid"])
        if job is None and job_name is not None:
            job = await kube.read_job(meta["namespace"], job_name)
        obs = JobObservation.from_job_status(job)
        refusal = kind.refused_changes(run.spec, spec)
        status = compute_status(
            generation=meta.get("generation") or 1, shards=shards, job=obs, previous=previous,
            now=datetime.now(UTC), valid=refusal is None, invalid_reason="SpecChangeRefused",
            invalid_message=refusal, planned_total=run.total, suspend=bool(spec.get("suspend")),
            job_name=job_name, wording=kind.wording, **kind.status_args(run),
        )  # fmt: skip
        status.update(await kind.extra_status(conn, run, status))
        status["runId"] = meta["uid"]
        if obs.failed_indexes:
            await protocol.mark_shards_failed(conn, run.id, sorted(obs.failed_indexes))
        phase = status["phase"]
        if is_terminal(phase):
            await protocol.set_run_state(
                conn, run.id, "succeeded" if phase == "Succeeded" else "failed"
            )
    if phase == "Succeeded" and kind.on_succeeded is not None:
        # Before the patch: if this fails, the run is not terminal yet and the next
        # refresh tries again (the kind's action must be idempotent).
        status.update(await kind.on_succeeded(body, status))
    changed = {k: v for k, v in status.items() if previous.get(k) != v}
    patch.status.update(changed)
    if previous.get("phase") != phase:
        _event(body, previous.get("phase"), status)
    if refusal and "SpecChangeRefused" not in str(previous.get("conditions")):
        kopf.warn(body, reason="SpecChangeRefused", message=refusal)
    metrics.set_phase(meta["uid"], phase)
    metrics.STATUS_REFRESH_SECONDS.observe(time.perf_counter() - t0)
    return status


def _event(body: dict[str, Any], old: str | None, status: dict[str, Any]) -> None:
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
