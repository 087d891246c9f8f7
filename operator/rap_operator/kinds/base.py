"""What differs between the kinds of run the operator reconciles - and nothing else:
the `RunKind` description every kind fills in (one module per kind in this package).

The flow is ONE mechanism for every kind (handlers.py, reconcile.py, manifests.py):
validate → plan in Postgres by uid → one Indexed Job → status from per-shard
counters + the Job → Events → suspend/parallelism → delete. A `RunKind` supplies
only the kind-specific parts: how to validate and plan it, which runtime subcommand
and extra environment its pods get, which Secrets they need, which spec changes a
planned run refuses, the words its status uses, extra status fields, and what to do
once it succeeded (a ScrapeJob chains an AnalysisRun). AnalysisRun is described in
analysisrun.py, ScrapeJob in scrapejob.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from analyzer_runtime import protocol
from analyzer_runtime.spec.status_format import Wording

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
    # Called by the reconcile pass that first sees Succeeded; returns status fields.
    on_succeeded: Callable[[JSON, JSON], Awaitable[JSON]] | None = None
