"""What the status tests build: a shard's ledger counters, the Job as the status sees
it, a planned run, and the status computed from them (checked against the CRD's
status schema). One module, so that a change to these inputs (compute_status's
signature, ShardCounters' fields, the status type) is made here and nowhere else.

Times default to a fixed instant (T0), never the clock: a status's throughput, ETA
and durations are then the same on every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from analyzer_runtime.contract.status import (
    JobObservation,
    RunObservation,
    ShardCounters,
    compute_status,
)
from analyzer_runtime.contract.status_model import AnalysisRunStatus
from analyzer_runtime.ledger.shards import Run

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
UID = "6a7b0c3e-0000-4000-8000-0000000dec1d"
JSON = dict[str, Any]
_UNSET: Any = object()


def shard(
    i: int = 0,
    state: str = "running",
    total: int = 100,
    done: int = 0,
    *,
    failed: int = 0,
    skipped: int = 0,
    attempt: int = 1,
    started_at: datetime | None = _UNSET,
    heartbeat_at: datetime | None = _UNSET,
    finished_at: datetime | None = None,
    **counters: Any,
) -> ShardCounters:
    """Shard `i`'s row in the ledger: `done` items processed of `total`. Started (and
    last heard of) at T0 unless pending; `counters`: the token, fallback, cascade and
    error fields."""
    if started_at is _UNSET:
        started_at = None if state == "pending" else T0
    if heartbeat_at is _UNSET:
        heartbeat_at = started_at
    return ShardCounters(
        shard=i, total=total, processed=done, failed=failed, skipped=skipped, state=state,
        attempt=attempt, heartbeat_at=heartbeat_at, started_at=started_at,
        finished_at=finished_at, **counters,
    )  # fmt: skip


def job(**observed: Any) -> JobObservation:
    """The run's Job as the status sees it (it exists; `observed`: active, indexes,
    complete/failed and why)."""
    return JobObservation(exists=True, **observed)


def status(
    shards: list[ShardCounters],
    job: JobObservation | None = None,
    *,
    generation: int = 1,
    previous: JSON | None = None,
    now: datetime | None = None,
    schema: type[BaseModel] | None = AnalysisRunStatus,
    **inputs: Any,
) -> JSON:
    """The status compute_status makes of these shards and Job, 100 s after T0 unless
    `now`; `inputs`: its other arguments (pricing, wording, dry_run, ...). Validated
    against `schema` (the CRD's status schema; None for a test of something else)."""
    st = compute_status(RunObservation(
        generation=generation, shards=shards, job=job, previous=previous,
        now=now or T0 + timedelta(seconds=100), **inputs,
    )).to_json()  # fmt: skip
    if schema is not None:
        schema.model_validate(st)  # the CRD's status schema accepts it
    return st


def cond(st: JSON, ctype: str) -> JSON:
    """The status's condition of type `ctype` (fails when it has none)."""
    conditions: list[JSON] = st.get("conditions") or []
    found = next((c for c in conditions if c["type"] == ctype), None)
    assert found is not None, f"no {ctype} condition in {st.get('conditions')}"
    return found


def planned_run(
    total: int = 100,
    shards: int = 2,
    state: str = "running",
    *,
    analyzer: str = "algorithmic",
    created_at: datetime = T0,
    **spec: Any,
) -> Run:
    """A run as the ledger planned it: `shards` shards over `total` items, its spec the
    analyzer, the shard count and `spec`."""
    return Run(
        id=7, uid=UID, kind="AnalysisRun", namespace="ns", name="r", analyzer_type=analyzer,
        model_version="1.0.0", spec={"analyzer": analyzer, "shards": shards, **spec},
        shards=shards, total=total, state=state, created_at=created_at, finished_at=None,
    )  # fmt: skip
