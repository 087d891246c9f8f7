"""Planning-time estimates of runs (`status.estimate`), stored once per run.

The planner (ledger/planner.py) computes an llm run's estimate right after planning
and stores it whenever it is missing, so a planner that died between planning and
estimating (planning is idempotent by uid) still leaves one behind on the next attempt.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def store(conn: asyncpg.Connection, run_id: int, estimate: dict[str, Any]) -> None:
    """Store run `run_id`'s estimate unless it has one (the first one stays)."""
    await conn.execute(
        """INSERT INTO run_estimates (run_id, estimate) VALUES ($1, $2::jsonb)
           ON CONFLICT (run_id) DO NOTHING""",
        run_id,
        json.dumps(estimate),
    )


async def read(conn: asyncpg.Connection, run_id: int) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT estimate FROM run_estimates WHERE run_id = $1", run_id)
    if raw is None:
        return None
    return dict(json.loads(raw) if isinstance(raw, str) else raw)
