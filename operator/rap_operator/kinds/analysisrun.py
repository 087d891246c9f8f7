"""The AnalysisRun kind: its parts of the shared run flow (the RunKind protocol, base.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from analyzer_runtime.contract import AnalysisRunManifest, AnalysisRunSpec, immutable_changes
from analyzer_runtime.contract.llm_presets import API_KEY_ENV, cascade_of_spec, pricing_for_spec
from analyzer_runtime.contract.status import StatusOptions
from analyzer_runtime.contract.wording import ANALYSIS_WORDING
from analyzer_runtime.ledger import batch_status, estimates, models, planner
from analyzer_runtime.ledger import shards as shard_ledger
from rap_operator.kinds.base import JSON, KindEvent, SecretRef
from rap_operator.validation import MissingInput, check_spec


def analysis_secrets(spec: JSON) -> list[SecretRef]:
    ref = (spec.get("llm") or {}).get("apiKeySecretRef")
    return [(ref["name"], ref["key"])] if spec.get("analyzer") == "llm" and ref else []


class AnalysisRun:
    """The AnalysisRun kind (implements base.RunKind)."""

    kind = "AnalysisRun"
    plural = "analysisruns"
    subcommand = "analyze"
    wording = ANALYSIS_WORDING

    def check_spec(self, body: JSON) -> AnalysisRunManifest:
        return check_spec(body)

    def secret_refs(self, spec: JSON) -> list[SecretRef]:
        return analysis_secrets(spec)

    async def prepare(self, body: JSON, manifest: Any) -> None:
        return None  # everything an AnalysisRun needs is in its spec or in Postgres

    async def plan(
        self, conn: asyncpg.Connection, manifest: Any, uid: str, inputs: Any
    ) -> shard_ledger.PlanResult:
        if manifest.spec.analyzer == "quality":
            await _require_model(conn, manifest.spec.model_version)
        cascade = manifest.spec.llm.cascade if manifest.spec.llm is not None else None
        if (
            manifest.spec.analyzer == "llm"
            and cascade is not None
            and cascade.analyzer == "quality"
        ):
            await _require_model(conn, None, cascade=True)  # the latest, with the sentiment head
        try:
            return await planner.plan_manifest(conn, manifest, uid)
        except models.ModelNotFound as exc:  # trained away between the check and planning
            raise MissingInput(str(exc)) from None

    def planned_message(self, run: shard_ledger.Run) -> str:
        return (
            f"{run.total} tracks in {run.shards} shards ({run.analyzer_type} {run.model_version})"
        )

    def pod_env(self, spec: JSON) -> list[JSON]:
        # The LLM API key goes from its Secret straight into the pod's environment: never
        # into the Job spec, the status or an Event (validation only checks it exists).
        return [
            {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
            for name, key in analysis_secrets(spec)
        ]

    def refused_changes(self, planned: JSON, current: JSON) -> str | None:
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

    def dry_run(self, spec: JSON) -> bool:
        return bool(spec.get("dryRun"))

    def status_args(self, run: shard_ledger.Run) -> StatusOptions:
        return {
            "pricing": pricing_for_spec(run.spec),
            "dry_run": bool(run.spec.get("dryRun")),
            "failure_threshold": run.spec.get("failureThreshold"),
            "cascade": cascade_of_spec(run.spec),
        }

    async def extra_status(
        self, conn: asyncpg.Connection, run: shard_ledger.Run, status: JSON
    ) -> JSON:
        out: JSON = {}
        if (estimate := await estimates.read(conn, run.id)) is not None:
            out["estimate"] = estimate
        # Batch mode: the shards' provider batches, read back whatever operator process
        # shows them (the operator never submits: a restart cannot submit twice).
        if (batches := await batch_status.read(conn, run.id)) is not None:
            out["llmBatches"] = batches
        return out

    async def claim_events(
        self, conn: asyncpg.Connection, run: shard_ledger.Run
    ) -> list[KindEvent]:
        return []  # an AnalysisRun's pods note nothing to announce

    async def on_succeeded(self, body: JSON, status: JSON) -> JSON:
        return {}  # nothing follows an AnalysisRun


async def _require_model(
    conn: asyncpg.Connection, version: int | None, *, cascade: bool = False
) -> None:
    """A quality run (and an llm run whose cascade starts with quality) needs its
    trained model (the latest, or spec.modelVersion): until it exists the run stays
    Pending (Valid=False) naming the command that trains it, and is planned by itself
    once it does (MissingInput is level-triggered)."""
    try:
        model = await models.find(conn, models.QUALITY_MODEL, version)
        if cascade:
            models.require_head(model)
    except models.ModelNotFound as exc:
        raise MissingInput(str(exc)) from None


ANALYSIS = AnalysisRun()
