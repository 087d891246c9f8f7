"""What differs between the kinds of run the operator reconciles - and nothing else:
the `RunKind` protocol every kind implements (one class per kind in this package).

The flow is ONE mechanism for every kind (handlers.py, reconcile.py, manifests.py):
validate → plan in Postgres by uid → one Indexed Job → status from per-shard
counters + the Job → Events → suspend/parallelism → delete. A kind supplies only
the kind-specific parts: how to validate and plan it, which runtime subcommand and
extra environment its pods get, which Secrets they need, which spec changes a
planned run refuses, the words its status uses, extra status fields, and what to do
once it succeeded (a ScrapeJob chains an AnalysisRun). AnalysisRun is implemented in
analysisrun.py, ScrapeJob in scrapejob.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import asyncpg

from analyzer_runtime.contract.status import StatusOptions
from analyzer_runtime.contract.wording import Wording
from analyzer_runtime.ledger import shards as shard_ledger

JSON = dict[str, Any]
SecretRef = tuple[str, str]  # (name, key)


@dataclass(frozen=True, slots=True)
class KindEvent:
    """An Event a kind wants on its run; reconcile.act posts it (kinds post nothing)."""

    type: str  # Normal | Warning
    reason: str
    message: str


@runtime_checkable
class RunKind(Protocol):
    """One kind of run. A Protocol rather than a base class: each kind is a plain
    class, and mypy checks that it has every member (tests/operator/test_kinds.py)."""

    kind: str
    plural: str
    subcommand: str  # `python -m analyzer_runtime <subcommand> --run-id UID`
    wording: Wording

    def check_spec(self, body: JSON) -> Any:
        """The validated manifest, or InvalidRun with a message a person can act on."""
        ...

    def secret_refs(self, spec: JSON) -> list[SecretRef]:
        """Secrets (besides the database's) the pods read; validation checks they exist."""
        ...

    async def prepare(self, body: JSON, manifest: Any) -> Any:
        """Inputs read from the cluster at planning time (ConfigMaps); may raise
        MissingInput. Handed to `plan` as `inputs`."""
        ...

    async def plan(
        self, conn: asyncpg.Connection, manifest: Any, uid: str, inputs: Any
    ) -> shard_ledger.PlanResult:
        """Plans the run (idempotent per uid) from the manifest and the inputs."""
        ...

    def planned_message(self, run: shard_ledger.Run) -> str:
        """The Planned Event's message."""
        ...

    def pod_env(self, spec: JSON) -> list[JSON]:
        """Extra container env (Secret refs only: credentials never enter the Job spec)."""
        ...

    def refused_changes(self, planned: JSON, current: JSON) -> str | None:
        """Why a changed spec cannot be applied to the planned run (None: it can)."""
        ...

    def dry_run(self, spec: JSON) -> bool:
        """Planned but never given a Job (AnalysisRun's dryRun)."""
        ...

    def status_args(self, run: shard_ledger.Run) -> StatusOptions:
        """What the run's observation takes from its planned spec (pricing, dry run)."""
        ...

    async def extra_status(
        self, conn: asyncpg.Connection, run: shard_ledger.Run, status: JSON
    ) -> JSON:
        """Extra status fields, read with the same connection (O(shards) too); reads
        only."""
        ...

    async def claim_events(
        self, conn: asyncpg.Connection, run: shard_ledger.Run
    ) -> list[KindEvent]:
        """Events that what the run's pods recorded calls for, claimed through the
        ledger (each once per run, whichever operator process claims it first)."""
        ...

    async def on_succeeded(self, body: JSON, status: JSON) -> JSON:
        """Called by the reconcile pass that first sees Succeeded, before the status
        patch (so it must be idempotent: a failed patch calls it again); returns
        status fields."""
        ...
