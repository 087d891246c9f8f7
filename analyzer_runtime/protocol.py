"""The shard protocol (DESIGN.md, "Work, shards and progress") — the only module that
writes the run ledger.

- `record_plan` writes a run, its shards and its items in one transaction, keyed by
  the resource's uid: planning again is a no-op.
- A shard worker `claim_shard`s, then loops `next_batch` → work → `commit_batch`.
  `commit_batch` runs the caller's result writes, marks the items and increments the
  shard's counters in ONE transaction. Items move only from `pending`, and counters
  grow by the rows that actually moved, so a batch replayed after a killed pod, or
  raced by a stale pod, is never counted twice.
- Readers (`read_shards`) look at `run_shards` only: O(shards), never a count over items.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from analyzer_runtime.status import ShardCounters

ItemState = Literal["done", "failed", "skipped"]
RunState = Literal["planned", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    uid: str
    kind: str
    namespace: str | None
    name: str
    analyzer_type: str | None
    model_version: str | None
    spec: dict[str, Any]
    shards: int
    total: int
    state: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlanResult:
    run: Run
    created: bool  # False when the uid was planned before (nothing was written)


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    item_id: int
    attempts: int
    payload: str | None


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    item_id: int
    state: ItemState
    error: str | None = None


@dataclass(slots=True)
class BatchExtras:
    """Counters that are not item states: LLM tokens and fallback use."""

    tokens_prompt: int = 0
    tokens_completion: int = 0
    fallback_used: int = 0


def _run(row: asyncpg.Record) -> Run:
    spec = row["spec"]
    return Run(
        id=row["id"],
        uid=row["uid"],
        kind=row["kind"],
        namespace=row["namespace"],
        name=row["name"],
        analyzer_type=row["analyzer_type"],
        model_version=row["model_version"],
        spec=json.loads(spec) if isinstance(spec, str) else spec,
        shards=row["shards"],
        total=row["total"],
        state=row["state"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


async def find_run(conn: asyncpg.Connection, uid: str) -> Run | None:
    row = await conn.fetchrow("SELECT * FROM runs WHERE uid = $1", uid)
    return _run(row) if row else None


async def find_run_by_name(
    conn: asyncpg.Connection, name: str, namespace: str | None = None
) -> Run | None:
    """The newest run with that name (a resource deleted and re-applied is a new run)."""
    row = await conn.fetchrow(
        """SELECT * FROM runs WHERE name = $1 AND ($2::text IS NULL OR namespace = $2)
           ORDER BY created_at DESC, id DESC LIMIT 1""",
        name,
        namespace,
    )
    return _run(row) if row else None


def assign_shards(n_items: int, shards: int) -> list[int]:
    """Contiguous, even blocks: shard sizes differ by at most one, and each shard's
    items are neighbours in id order (good locality for its index scans)."""
    return [i * shards // n_items for i in range(n_items)] if n_items else []


async def record_plan(
    conn: asyncpg.Connection,
    *,
    uid: str,
    name: str,
    namespace: str | None,
    kind: str,
    spec: dict[str, Any],
    shards: int,
    analyzer_type: str | None,
    model_version: str | None,
    item_ids: Sequence[int],
    payloads: Sequence[str | None] | None = None,
) -> PlanResult:
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO runs (uid, kind, namespace, name, analyzer_type, model_version,
                                 spec, shards, total)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
               ON CONFLICT (uid) DO NOTHING RETURNING *""",
            uid,
            kind,
            namespace,
            name,
            analyzer_type,
            model_version,
            json.dumps(spec),
            shards,
            len(item_ids),
        )
        if row is None:  # planned before (maybe by a previous operator process)
            existing = await find_run(conn, uid)
            assert existing is not None
            return PlanResult(existing, created=False)
        run = _run(row)
        shard_of = assign_shards(len(item_ids), shards)
        sizes = [0] * shards
        for s in shard_of:
            sizes[s] += 1
        await conn.executemany(
            "INSERT INTO run_shards (run_id, shard, total, state) VALUES ($1, $2, $3, $4)",
            [(run.id, s, sizes[s], "pending" if sizes[s] else "done") for s in range(shards)],
        )
        pl = payloads if payloads is not None else [None] * len(item_ids)
        await conn.copy_records_to_table(
            "run_items",
            records=zip([run.id] * len(item_ids), item_ids, shard_of, pl, strict=True),
            columns=["run_id", "item_id", "shard", "payload"],
        )
        return PlanResult(run, created=True)


async def claim_shard(conn: asyncpg.Connection, run_id: int, shard: int) -> int:
    """Mark the shard running for a new attempt; returns the attempt number."""
    attempt = await conn.fetchval(
        """UPDATE run_shards
              SET attempt = attempt + 1, heartbeat_at = now(),
                  started_at = coalesce(started_at, now()),
                  state = CASE WHEN state = 'done' THEN 'done' ELSE 'running' END
            WHERE run_id = $1 AND shard = $2 RETURNING attempt""",
        run_id,
        shard,
    )
    if attempt is None:
        raise LookupError(f"run {run_id} has no shard {shard}")
    return int(attempt)


async def next_batch(
    conn: asyncpg.Connection, run_id: int, shard: int, size: int
) -> list[ClaimedItem]:
    """The shard's next pending items in id order, with their attempt counted.

    Counting attempts when an item is taken (not when it is committed) is what lets a
    poison item that kills the process be given up after `maxItemAttempts`."""
    rows = await conn.fetch(
        """UPDATE run_items i SET attempts = i.attempts + 1
             FROM (SELECT item_id FROM run_items
                    WHERE run_id = $1 AND shard = $2 AND state = 'pending'
                    ORDER BY item_id LIMIT $3) p
            WHERE i.run_id = $1 AND i.item_id = p.item_id
        RETURNING i.item_id, i.attempts, i.payload""",
        run_id,
        shard,
        size,
    )
    return sorted(
        (ClaimedItem(r["item_id"], r["attempts"], r["payload"]) for r in rows),
        key=lambda c: c.item_id,
    )


async def commit_batch(
    conn: asyncpg.Connection,
    run_id: int,
    shard: int,
    updates: Sequence[ItemUpdate],
    *,
    write: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    extras: BatchExtras | None = None,
) -> dict[str, int]:
    """One transaction: the caller's writes, item states, shard counters, heartbeat.
    Returns how many items actually moved to each state."""
    ex = extras or BatchExtras()
    async with conn.transaction():
        if write is not None:
            await write(conn)
        row = await conn.fetchrow(
            """WITH moved AS (
                   UPDATE run_items i
                      SET state = u.state, last_error = u.error, updated_at = now()
                     FROM unnest($3::bigint[], $4::text[], $5::text[]) AS u(item_id, state, error)
                    WHERE i.run_id = $1 AND i.item_id = u.item_id AND i.state = 'pending'
                RETURNING i.state),
               counts AS (
                   SELECT count(*) FILTER (WHERE state = 'done')    AS done,
                          count(*) FILTER (WHERE state = 'failed')  AS failed,
                          count(*) FILTER (WHERE state = 'skipped') AS skipped
                     FROM moved)
               UPDATE run_shards s
                  SET processed = s.processed + c.done,
                      failed = s.failed + c.failed,
                      skipped = s.skipped + c.skipped,
                      tokens_prompt = s.tokens_prompt + $6,
                      tokens_completion = s.tokens_completion + $7,
                      fallback_used = s.fallback_used + $8,
                      heartbeat_at = now()
                 FROM counts c
                WHERE s.run_id = $1 AND s.shard = $2
            RETURNING c.done, c.failed, c.skipped""",
            run_id,
            shard,
            [u.item_id for u in updates],
            [u.state for u in updates],
            [u.error for u in updates],
            ex.tokens_prompt,
            ex.tokens_completion,
            ex.fallback_used,
        )
    assert row is not None
    return {"done": row["done"], "failed": row["failed"], "skipped": row["skipped"]}


async def finish_shard(conn: asyncpg.Connection, run_id: int, shard: int) -> bool:
    """Mark the shard done if nothing is pending; False if items remain."""
    status = await conn.fetchval(
        """UPDATE run_shards SET state = 'done', finished_at = coalesce(finished_at, now()),
                                 heartbeat_at = now(), last_error = NULL
            WHERE run_id = $1 AND shard = $2
              AND NOT EXISTS (SELECT 1 FROM run_items
                               WHERE run_id = $1 AND shard = $2 AND state = 'pending')
        RETURNING state""",
        run_id,
        shard,
    )
    return status == "done"


async def record_shard_error(conn: asyncpg.Connection, run_id: int, shard: int, error: str) -> None:
    await conn.execute(
        "UPDATE run_shards SET last_error = $3, heartbeat_at = now() WHERE run_id = $1 AND shard = $2",
        run_id,
        shard,
        error[:1000],
    )


async def mark_shards_failed(conn: asyncpg.Connection, run_id: int, shards: Sequence[int]) -> None:
    """Shards whose Job index exhausted its retries (the operator learns it from the Job)."""
    await conn.execute(
        """UPDATE run_shards SET state = 'failed', finished_at = coalesce(finished_at, now())
            WHERE run_id = $1 AND shard = ANY($2::int[]) AND state <> 'done'""",
        run_id,
        list(shards),
    )


async def set_run_state(conn: asyncpg.Connection, run_id: int, state: RunState) -> None:
    terminal = state in ("succeeded", "failed", "cancelled")
    await conn.execute(
        """UPDATE runs SET state = $2,
                  finished_at = CASE WHEN $3 THEN coalesce(finished_at, now()) ELSE finished_at END,
                  cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
            WHERE id = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')""",
        run_id,
        state,
        terminal,
    )


async def read_shards(conn: asyncpg.Connection, run_id: int) -> list[ShardCounters]:
    rows = await conn.fetch(
        """SELECT shard, total, processed, failed, skipped, state, attempt, heartbeat_at,
                  started_at, finished_at, tokens_prompt, tokens_completion, fallback_used,
                  last_error
             FROM run_shards WHERE run_id = $1 ORDER BY shard""",
        run_id,
    )
    return [ShardCounters(**dict(r)) for r in rows]
