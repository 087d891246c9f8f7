"""The batch lane's part of the run ledger (`spec.llm.mode: batch`): shards.py's
sibling and the only writer of `llm_batches` / `llm_batch_items` (migration 0016).

Protocol's lease rules, applied to a batch that holds its items for hours:

- `record_batch` writes the batch row (state `submitting`, no provider id yet) and
  its items, and hands the items' leases from the shard's claimer to the claimer
  `batch:<row id>` with a lease as long as the completion window and a margin - in
  ONE transaction. The row exists before the provider's batch does, and the batch is
  created with the row's id in its metadata: a crash in between is adopted by
  looking the batch up (analyzers/llm/batch_api.py), never submitted twice.
- While the batch is in flight no other claimer takes its items (their lease has not
  expired), no crash is charged, and whichever pod runs the shard next collects them
  with the same `batch:<id>` claimer.
- `collect` writes the results of the items still held (shard_ledger.commit_batch, so a
  line for an item that is no longer pending or held is ignored), gives the rest back
  for another submission, and marks the row collected - in ONE transaction, and only
  once: a second collection of the same row finds it collected and writes nothing.
- Readers (`batch_summary`) group the run's batch rows: O(batches), never items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from analyzer_runtime.ledger import shards as shard_ledger

# How long past its completion window a batch keeps its items: time to notice the
# window ended, read the partial output and collect it.
LEASE_MARGIN_SECONDS = 3600.0
WINDOW_SECONDS = {"24h": 86_400.0, "48h": 172_800.0}
# Provider states after which nothing changes (OpenAI's batch object lifecycle).
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})
# `submitting`: recorded here, not created at the provider yet.
SUBMITTING = "submitting"


def claimer_for(batch_id: int, lease_seconds: float = 0.0) -> shard_ledger.Claimer:
    """The claimer a batch's items are leased to: any pod builds the same one."""
    return shard_ledger.Claimer(f"batch:{batch_id}", lease_seconds)


def lease_seconds(window: str) -> float:
    return WINDOW_SECONDS.get(window, WINDOW_SECONDS["48h"]) + LEASE_MARGIN_SECONDS


@dataclass(frozen=True, slots=True)
class ItemEntry:
    """An item as it goes into a batch: its request and the key the model sees."""

    item_id: int
    custom_id: str
    key: str
    position: int


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: int
    run_id: int
    shard: int
    provider_batch_id: str | None
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    state: str
    items: int
    created_at: datetime
    expires_at: datetime | None
    collected_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Submissions:
    """An item's history in batches: how often it was sent, and whether the last
    answer to its pack was unusable or not trusted (then it goes alone)."""

    count: int
    alone: bool
    last: str | None = None  # why its latest batch did not answer it


_ROW_COLUMNS = (
    "id, run_id, shard, provider_batch_id, input_file_id, output_file_id, error_file_id,"
    " state, items, created_at, expires_at, collected_at"
)


async def record_batch(
    conn: asyncpg.Connection,
    run_id: int,
    shard: int,
    claimer: shard_ledger.Claimer,
    entries: Sequence[ItemEntry],
    *,
    requests: int,
    window: str,
) -> int:
    """The batch row and its items, and the items' leases handed to `batch:<id>`;
    returns the row's id. Raises shard_ledger.LeaseLost (and writes nothing) when
    `claimer` no longer holds one of the items."""
    ids = [e.item_id for e in entries]
    async with conn.transaction():
        batch_id = await conn.fetchval(
            """INSERT INTO llm_batches (run_id, shard, items, requests_total)
               VALUES ($1, $2, $3, $4) RETURNING id""",
            run_id,
            shard,
            len(entries),
            requests,
        )
        await conn.execute(
            """INSERT INTO llm_batch_items (batch_id, run_id, item_id, custom_id, key, position)
               SELECT $1, $2, u.item_id, u.custom_id, u.key, u.position
                 FROM unnest($3::bigint[], $4::text[], $5::text[], $6::int[])
                      AS u(item_id, custom_id, key, position)""",
            batch_id,
            run_id,
            ids,
            [e.custom_id for e in entries],
            [e.key for e in entries],
            [e.position for e in entries],
        )
        handed = await conn.fetch(
            """UPDATE run_items SET claimed_by = $4, lease_expires = now() + make_interval(secs => $5)
                WHERE run_id = $1 AND item_id = ANY($2::bigint[]) AND claimed_by = $3
                  AND state = 'pending'
            RETURNING item_id""",
            run_id,
            ids,
            claimer.identity,
            claimer_for(batch_id).identity,
            lease_seconds(window),
        )
        if len(handed) != len(set(ids)):
            raise shard_ledger.LeaseLost(f"shard {shard} lost the lease on items it was batching")
    claimer.held.difference_update(ids)
    return int(batch_id)


async def set_input_file(conn: asyncpg.Connection, batch_id: int, file_id: str) -> None:
    await conn.execute(
        "UPDATE llm_batches SET input_file_id = $2, updated_at = now() WHERE id = $1",
        batch_id,
        file_id,
    )


async def record_state(
    conn: asyncpg.Connection,
    batch_id: int,
    *,
    state: str,
    provider_batch_id: str | None = None,
    total: int | None = None,
    completed: int | None = None,
    failed: int | None = None,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    expires_at: datetime | None = None,
    last_error: str | None = None,
) -> None:
    """What the provider said of the batch (on creation and every poll). The provider
    id is set once: a row never changes the batch it names."""
    await conn.execute(
        """UPDATE llm_batches
              SET provider_batch_id = coalesce(provider_batch_id, $2), state = $3,
                  requests_total = coalesce($4, requests_total),
                  requests_completed = coalesce($5, requests_completed),
                  requests_failed = coalesce($6, requests_failed),
                  output_file_id = coalesce($7, output_file_id),
                  error_file_id = coalesce($8, error_file_id),
                  expires_at = coalesce($9, expires_at),
                  last_error = $10, updated_at = now()
            WHERE id = $1 AND collected_at IS NULL""",
        batch_id,
        provider_batch_id,
        state,
        total,
        completed,
        failed,
        output_file_id,
        error_file_id,
        expires_at,
        last_error[:1000] if last_error else None,
    )


async def record_error(conn: asyncpg.Connection, batch_id: int, error: str) -> None:
    """Why the last call about this batch failed (it is tried again at the next poll)."""
    await conn.execute(
        "UPDATE llm_batches SET last_error = $2, updated_at = now() WHERE id = $1",
        batch_id,
        error[:1000],
    )


async def open_batches(conn: asyncpg.Connection, run_id: int, shard: int) -> list[BatchRow]:
    """The shard's batches not collected yet, oldest first (what a new pod resumes)."""
    rows = await conn.fetch(
        f"""SELECT {_ROW_COLUMNS} FROM llm_batches
             WHERE run_id = $1 AND shard = $2 AND collected_at IS NULL ORDER BY id""",
        run_id,
        shard,
    )
    return [BatchRow(*r) for r in rows]


async def batch_entries(conn: asyncpg.Connection, batch_id: int) -> list[ItemEntry]:
    rows = await conn.fetch(
        """SELECT item_id, custom_id, key, position FROM llm_batch_items
            WHERE batch_id = $1 ORDER BY custom_id, position""",
        batch_id,
    )
    return [ItemEntry(*r) for r in rows]


async def submissions(
    conn: asyncpg.Connection, run_id: int, item_ids: Sequence[int]
) -> dict[int, Submissions]:
    """Per item that was in a batch before: how often, and whether it goes alone."""
    rows = await conn.fetch(
        """SELECT item_id, count(*) AS n,
                  bool_or(outcome IN ('unusable', 'untrusted')) AS alone,
                  (array_agg(coalesce(reason, outcome) ORDER BY batch_id DESC))[1] AS last
             FROM llm_batch_items WHERE run_id = $1 AND item_id = ANY($2::bigint[])
            GROUP BY item_id""",
        run_id,
        list(item_ids),
    )
    return {r["item_id"]: Submissions(int(r["n"]), bool(r["alone"]), r["last"]) for r in rows}


# Called inside collect's transaction with the ids that moved and those given back:
# writes the results, and sets the extras (tokens of the lines that were used).
CollectWriter = Callable[
    [asyncpg.Connection, frozenset[int], frozenset[int], shard_ledger.BatchExtras], Any
]


@dataclass(frozen=True, slots=True)
class Collected:
    moved: dict[str, int]
    released: frozenset[int]
    already: bool = False  # another pod collected this batch first: nothing was written


async def collect(
    conn: asyncpg.Connection,
    run_id: int,
    shard: int,
    batch_id: int,
    updates: Sequence[shard_ledger.ItemUpdate],
    release: Sequence[int],
    outcomes: dict[int, str],
    write: CollectWriter,
    reasons: dict[int, str] | None = None,
) -> Collected:
    """One transaction: the row locked (and left alone when already collected), the
    items of `release` given back unleased for another submission, `updates` committed
    for `batch:<id>` with `write`'s results (shard_ledger.commit_batch: only items still
    pending and held move), every item's outcome, the row marked collected."""
    claimer = claimer_for(batch_id)
    async with conn.transaction():
        done_at = await conn.fetchval(
            "SELECT collected_at FROM llm_batches WHERE id = $1 FOR UPDATE", batch_id
        )
        if done_at is not None:
            return Collected({"done": 0, "failed": 0, "skipped": 0}, frozenset(), already=True)
        given_back = await conn.fetch(
            """UPDATE run_items SET claimed_by = NULL, lease_expires = NULL
                WHERE run_id = $1 AND item_id = ANY($2::bigint[]) AND claimed_by = $3
                  AND state = 'pending'
            RETURNING item_id""",
            run_id,
            list(release),
            claimer.identity,
        )
        released = frozenset(r["item_id"] for r in given_back)
        extras = shard_ledger.BatchExtras()
        seen: dict[str, frozenset[int]] = {}

        async def commit_write(c: asyncpg.Connection, ids: frozenset[int]) -> None:
            seen["moved"] = ids
            await write(c, ids, released, extras)

        moved = await shard_ledger.commit_batch(
            conn, run_id, shard, updates, claimer, write=commit_write, extras=extras
        )
        if "moved" not in seen and released:  # nothing moved: the lines given back still cost
            await write(conn, frozenset(), released, extras)
            await _add_tokens(conn, run_id, shard, extras)
        kept = seen.get("moved", frozenset()) | released
        why = reasons or {}
        await conn.execute(
            """UPDATE llm_batch_items b
                  SET outcome = CASE WHEN b.item_id = ANY($3::bigint[]) THEN u.outcome
                                     ELSE 'ignored' END,
                      reason = u.reason
                 FROM unnest($2::bigint[], $4::text[], $5::text[]) AS u(item_id, outcome, reason)
                WHERE b.batch_id = $1 AND b.item_id = u.item_id""",
            batch_id,
            list(outcomes),
            list(kept),
            list(outcomes.values()),
            [why.get(i) for i in outcomes],
        )
        await conn.execute(
            "UPDATE llm_batches SET collected_at = now(), updated_at = now() WHERE id = $1",
            batch_id,
        )
    return Collected(moved, released)


async def _add_tokens(
    conn: asyncpg.Connection, run_id: int, shard: int, ex: shard_ledger.BatchExtras
) -> None:
    await conn.execute(
        """UPDATE run_shards SET tokens_prompt = tokens_prompt + $3,
                  tokens_completion = tokens_completion + $4, tokens_cached = tokens_cached + $5
            WHERE run_id = $1 AND shard = $2""",
        run_id,
        shard,
        ex.tokens_prompt,
        ex.tokens_completion,
        ex.tokens_cached,
    )


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """A run's batches for its status: counts by state, requests, the open ones."""

    by_state: dict[str, int]
    collected: int
    requests_total: int
    requests_completed: int
    requests_failed: int
    open: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


# In-flight batches a status names (the rest are counted).
OPEN_SHOWN = 5


async def batch_summary(conn: asyncpg.Connection, run_id: int) -> BatchSummary | None:
    """The run's batch rows grouped (O(batches), on the run index); None: no batch."""
    rows = await conn.fetch(
        """SELECT state, count(*) AS n, count(collected_at) AS collected,
                  sum(requests_total) AS total, sum(requests_completed) AS completed,
                  sum(requests_failed) AS failed
             FROM llm_batches WHERE run_id = $1 GROUP BY state""",
        run_id,
    )
    if not rows:
        return None
    open_rows = await conn.fetch(
        """SELECT id, shard, provider_batch_id, state, requests_total, requests_completed,
                  requests_failed, expires_at
             FROM llm_batches WHERE run_id = $1 AND collected_at IS NULL
            ORDER BY id LIMIT $2""",
        run_id,
        OPEN_SHOWN,
    )
    return BatchSummary(
        by_state={r["state"]: int(r["n"]) for r in rows},
        collected=sum(int(r["collected"]) for r in rows),
        requests_total=sum(int(r["total"] or 0) for r in rows),
        requests_completed=sum(int(r["completed"] or 0) for r in rows),
        requests_failed=sum(int(r["failed"] or 0) for r in rows),
        open=[dict(r) for r in open_rows],
    )
