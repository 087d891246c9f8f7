"""The AnalysisRun kind: its parts of the shared run flow (see base.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from analyzer_runtime import batch_status, estimates, planner, protocol
from analyzer_runtime.analyzers.llm.cascade import cascade_of_spec
from analyzer_runtime.analyzers.llm.presets import API_KEY_ENV, pricing_for_spec
from analyzer_runtime.spec import AnalysisRunSpec, immutable_changes
from analyzer_runtime.spec.status_format import ANALYSIS_WORDING
from rap_operator.kinds.base import JSON, RunKind, SecretRef
from rap_operator.validation import MissingInput, check_spec


def analysis_secrets(spec: JSON) -> list[SecretRef]:
    ref = (spec.get("llm") or {}).get("apiKeySecretRef")
    return [(ref["name"], ref["key"])] if spec.get("analyzer") == "llm" and ref else []


def _analysis_env(spec: JSON) -> list[JSON]:
    # The LLM API key goes from its Secret straight into the pod's environment: never
    # into the Job spec, the status or an Event (validation only checks it exists).
    return [
        {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        for name, key in analysis_secrets(spec)
    ]


def _analysis_refused(planned: JSON, current: JSON) -> str | None:
    try:
        changes = immutable_changes(
            AnalysisRunSpec.model_validate(planned), AnalysisRunSpec.model_validate(current)
        )
    except ValueError:
        return "the spec no longer validates; revert it or create a new AnalysisRun"
    if not changes:
        return None
    return (
        f"{', '.join(changes)} cannot change after planning; the run continues with the"
        " planned spec. Revert the change, or create a new AnalysisRun for a new selection"
    )


async def _analysis_plan(
    conn: asyncpg.Connection, manifest: Any, uid: str, inputs: Any
) -> protocol.PlanResult:
    if manifest.spec.analyzer == "quality":
        await _require_model(conn, manifest.spec.model_version)
    cascade = manifest.spec.llm.cascade if manifest.spec.llm is not None else None
    if manifest.spec.analyzer == "llm" and cascade is not None and cascade.analyzer == "quality":
        await _require_model(conn, None, cascade=True)  # the latest, with the sentiment head
    try:
        return await planner.plan_manifest(conn, manifest, uid)
    except ValueError as exc:
        from analyzer_runtime.quality.storage import ModelNotFound

        if isinstance(exc, ModelNotFound):  # trained away between the check and planning
            raise MissingInput(str(exc)) from None
        raise


async def _require_model(
    conn: asyncpg.Connection, version: int | None, *, cascade: bool = False
) -> None:
    """A quality run (and an llm run whose cascade starts with quality) needs its
    trained model (the latest, or spec.modelVersion): until it exists the run stays
    Pending (Valid=False) naming the command that trains it, and is planned by itself
    once it does (MissingInput is level-triggered)."""
    from analyzer_runtime.analyzers.llm.cascade import require_head
    from analyzer_runtime.quality import MODEL_NAME, storage

    try:
        model = await storage.find(conn, MODEL_NAME, version)
        if cascade:
            require_head(model)
    except storage.ModelNotFound as exc:
        raise MissingInput(str(exc)) from None


async def _analysis_extra(conn: asyncpg.Connection, run: protocol.Run, status: JSON) -> JSON:
    out: JSON = {}
    if (estimate := await estimates.read(conn, run.id)) is not None:
        out["estimate"] = estimate
    # Batch mode: the shards' provider batches, read back whatever operator process
    # shows them (the operator never submits: a restart cannot submit twice).
    if (batches := await batch_status.read(conn, run.id)) is not None:
        out["llmBatches"] = batches
    return out


ANALYSIS = RunKind(
    kind="AnalysisRun",
    plural="analysisruns",
    subcommand="analyze",
    wording=ANALYSIS_WORDING,
    check_spec=check_spec,
    secret_refs=analysis_secrets,
    plan=_analysis_plan,
    planned_message=lambda run: (
        f"{run.total} tracks in {run.shards} shards ({run.analyzer_type} {run.model_version})"
    ),
    pod_env=_analysis_env,
    refused_changes=_analysis_refused,
    dry_run=lambda spec: bool(spec.get("dryRun")),
    status_args=lambda run: {
        "pricing": pricing_for_spec(run.spec),
        "dry_run": bool(run.spec.get("dryRun")),
        "failure_threshold": run.spec.get("failureThreshold"),
        "cascade": cascade_of_spec(run.spec),
    },
    extra_status=_analysis_extra,
)
