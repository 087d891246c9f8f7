"""Planning-time estimates of runs (`status.estimate`), stored once per run.

The planner asks the analyzer for an estimate right after planning; it is written
whenever it is missing, so a planner that died between planning and estimating
(planning is idempotent by uid) still leaves one behind on the next attempt.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from analyzer_runtime.analyzers.base import Analyzer
from analyzer_runtime.ledger.shards import Run


async def ensure(conn: asyncpg.Connection, analyzer: Analyzer, run: Run) -> dict[str, Any] | None:
    existing = await read(conn, run.id)
    if existing is not None:
        return existing
    est = await analyzer.estimate(conn, run)
    if est is None:
        return None
    await conn.execute(
        """INSERT INTO run_estimates (run_id, estimate) VALUES ($1, $2::jsonb)
           ON CONFLICT (run_id) DO NOTHING""",
        run.id,
        json.dumps(est),
    )
    return est


async def read(conn: asyncpg.Connection, run_id: int) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT estimate FROM run_estimates WHERE run_id = $1", run_id)
    if raw is None:
        return None
    return dict(json.loads(raw) if isinstance(raw, str) else raw)
