"""`status.llmBatches` of a batch-mode run (schema: spec/status_model.LLMBatches), read
from the ledger's batch rows: O(batches), the same for the operator and the local
runner. The operator only reads it - shards submit and collect - so an operator
restart while a batch is in flight changes nothing but who shows it."""

from __future__ import annotations

from typing import Any

import asyncpg

from analyzer_runtime.contract.status_model import LLMBatchStates
from analyzer_runtime.contract.wording import format_time
from analyzer_runtime.ledger import batches as batch_ledger

# Ledger state -> status field (the model's aliases: in_progress -> inProgress).
_STATE_FIELDS = {name: (info.alias or name) for name, info in LLMBatchStates.model_fields.items()}


def render(summary: batch_ledger.BatchSummary) -> dict[str, Any]:
    states = dict.fromkeys(_STATE_FIELDS.values(), 0)
    for state, n in summary.by_state.items():
        key = _STATE_FIELDS.get(state)
        if key is not None:
            states[key] += n
    return {
        "batches": summary.total,
        "inFlight": summary.total - summary.collected,
        "collected": summary.collected,
        "states": states,
        "requests": {
            "total": summary.requests_total,
            "completed": summary.requests_completed,
            "failed": summary.requests_failed,
        },
        "open": [_detail(row) for row in summary.open],
    }


def _detail(row: dict[str, Any]) -> dict[str, Any]:
    requests = f"{row['requests_completed']}/{row['requests_total']}"
    if row["requests_failed"]:
        requests += f" ({row['requests_failed']} failed)"
    # Absent, not null, when unknown: the API server prunes nulls inside list items.
    out: dict[str, Any] = {"shard": row["shard"], "state": row["state"], "requests": requests}
    if row["provider_batch_id"]:
        out["batchId"] = row["provider_batch_id"]
    if row["expires_at"] is not None:
        out["expiresAt"] = format_time(row["expires_at"])
    return out


async def read(conn: asyncpg.Connection, run_id: int) -> dict[str, Any] | None:
    """The run's `llmBatches`, or None when it has no batch (sync runs)."""
    summary = await batch_ledger.batch_summary(conn, run_id)
    return render(summary) if summary is not None else None
