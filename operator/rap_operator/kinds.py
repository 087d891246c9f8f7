"""What differs between the kinds of run the operator reconciles - and nothing else.

The flow is ONE mechanism for every kind (handlers.py, refresh.py, manifests.py):
validate → plan in Postgres by uid → one Indexed Job → status from per-shard
counters + the Job → Events → suspend/parallelism → delete. A `RunKind` supplies
only the kind-specific parts: how to validate and plan it, which runtime subcommand
and extra environment its pods get, which Secrets they need, which spec changes a
planned run refuses, the words its status uses, extra status fields, and what to do
once it succeeded (a ScrapeJob chains an AnalysisRun). AnalysisRun is described
here; ScrapeJob in scrapejob.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from analyzer_runtime import estimates, planner, protocol
from analyzer_runtime.analyzers.llm.presets import API_KEY_ENV, pricing_for_spec
from analyzer_runtime.spec import AnalysisRunSpec, immutable_changes
from analyzer_runtime.spec.status_format import ANALYSIS_WORDING, Wording
from rap_operator.validation import check_spec

JSON = dict[str, Any]
SecretRef = tuple[str, str]  # (name, key)


async def _no_inputs(body: JSON, manifest: Any) -> None:
    return None


async def _no_extra_status(conn: asyncpg.Connection, run: protocol.Run, status: JSON) -> JSON:
    return {}


@dataclass(frozen=True)
class RunKind:
    kind: str
    plural: str
    subcommand: str  # `python -m analyzer_runtime <subcommand> --run-id UID`
    wording: Wording
    # The validated manifest, or InvalidRun with a message a person can act on.
    check_spec: Callable[[JSON], Any]
    # Secrets (besides the database's) the pods read; validation checks they exist.
    secret_refs: Callable[[JSON], list[SecretRef]]
    # Plans the run (idempotent per uid) from the manifest and the resolved inputs.
    plan: Callable[[asyncpg.Connection, Any, str, Any], Awaitable[protocol.PlanResult]]
    # The Planned Event's message.
    planned_message: Callable[[protocol.Run], str]
    # Extra container env (Secret refs only: credentials never enter the Job spec).
    pod_env: Callable[[JSON], list[JSON]]
    # Why a changed spec cannot be applied to the planned run (None: it can).
    refused_changes: Callable[[JSON, JSON], str | None]
    # Inputs read from the cluster at planning time (ConfigMaps); may raise InvalidRun.
    prepare: Callable[[JSON, Any], Awaitable[Any]] = _no_inputs
    # Planned but never given a Job (AnalysisRun's dryRun).
    dry_run: Callable[[JSON], bool] = lambda spec: False
    # Extra keyword arguments of compute_status for a planned run (pricing, dry run).
    status_args: Callable[[protocol.Run], JSON] = lambda run: {}
    # Extra status fields, read with the same connection (O(shards) too).
    extra_status: Callable[[asyncpg.Connection, protocol.Run, JSON], Awaitable[JSON]] = (
        _no_extra_status
    )
    # Called by the refresh that first sees Succeeded; returns status fields.
    on_succeeded: Callable[[JSON, JSON], Awaitable[JSON]] | None = None


# ---- AnalysisRun -------------------------------------------------------------------


def _analysis_secrets(spec: JSON) -> list[SecretRef]:
    ref = (spec.get("llm") or {}).get("apiKeySecretRef")
    return [(ref["name"], ref["key"])] if spec.get("analyzer") == "llm" and ref else []


def _analysis_env(spec: JSON) -> list[JSON]:
    # The LLM API key goes from its Secret straight into the pod's environment: never
    # into the Job spec, the status or an Event (validation only checks it exists).
    return [
        {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        for name, key in _analysis_secrets(spec)
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
    return await planner.plan_manifest(conn, manifest, uid)


async def _analysis_extra(conn: asyncpg.Connection, run: protocol.Run, status: JSON) -> JSON:
    estimate = await estimates.read(conn, run.id)
    return {"estimate": estimate} if estimate is not None else {}


ANALYSIS = RunKind(
    kind="AnalysisRun",
    plural="analysisruns",
    subcommand="analyze",
    wording=ANALYSIS_WORDING,
    check_spec=check_spec,
    secret_refs=_analysis_secrets,
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
    },
    extra_status=_analysis_extra,
)


def registry() -> dict[str, RunKind]:
    """Kind name -> description; imported lazily so scrapejob.py may import this module."""
    from rap_operator.scrapejob import SCRAPE

    return {k.kind: k for k in (ANALYSIS, SCRAPE)}


def of(body: Mapping[str, Any]) -> RunKind:
    return registry()[str(body.get("kind"))]
