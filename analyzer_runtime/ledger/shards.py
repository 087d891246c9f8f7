"""The shard protocol (DESIGN.md, "Work, shards and progress"): the run ledger's runs,
shards and items. The ledger package is the only writer of the run tables; its
siblings here are batches.py (the batch lane's tables, built on the leases here),
scrape_store.py, models.py (a run's model pin) and gc.py.

- `record_plan` writes a run, its shards and its items in one transaction, keyed by
  the resource's uid: planning again is a no-op.
- A shard worker `claim_shard`s, then loops `next_batch` → work → `commit_batch`
  inside `holding_leases`, whose heartbeat renews the leases of the batch in flight.
- Leases: `next_batch` takes only unleased items or items whose lease expired, and
  leases them to its `Claimer` (SKIP LOCKED, so concurrent claimers never take the
  same item). Only the holder completes an item. An expired lease on an unfinished
  item means its holder died (or hung) while working on it: that is the only time an
  item is charged a crash. Items that crashed before are claimed one at a time, so a
  track that really kills the process is the only one that runs out of attempts.
- `commit_batch` marks the items, runs the caller's result writes for the items that
  moved and increments the shard's counters in ONE transaction. Items move only from
  `pending` and only for their lease holder, and counters grow by the rows that
  actually moved, so a batch replayed after a killed pod, or raced by a stale pod,
  is never written or counted twice.
- Readers (`read_shards`) look at `run_shards` only: O(shards), never a count over items.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from analyzer_runtime.contract.status import ShardCounters

ItemState = Literal["done", "failed", "skipped"]
RunState = Literal["planned", "running", "succeeded", "failed", "cancelled", "interrupted"]
TERMINAL_RUN_STATES = ("succeeded", "failed", "cancelled")
# Runs that still have (or will have) shards working: an overlapping run would do
# their work twice. An interrupted run resumes with `run --uid`, so it counts too.
ACTIVE_RUN_STATES = ("planned", "running", "interrupted")

LEASE_SECONDS_ENV = "RAP_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 30.0
# After SIGTERM, the batch a shard is analyzing gets this many seconds to finish and
# be committed; then it is dropped and its items' leases are given back, uncharged
# (worker.StopFlag). The operator hands the chart's value on to the shard pods.
STOP_GRACE_ENV = "RAP_STOP_GRACE_SECONDS"
DEFAULT_STOP_GRACE_SECONDS = 3.0

log = logging.getLogger(__name__)


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
    driver: str | None = None
    # Set by `db gc` (ledger/gc.py): only the run's failed items are left in run_items.
    compacted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanResult:
    run: Run
    created: bool  # False when the uid was planned before (nothing was written)


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    item_id: int
    attempts: int  # claims, this one included
    payload: str | None
    crashes: int = 0  # leases that expired with the item unfinished


class LeaseLost(RuntimeError):
    """The claimer no longer holds an item it is working on (its lease expired and
    another claimer took it); its results for that item must not be written."""


@dataclass(slots=True)
class Claimer:
    """One shard process's identity on its leases: the pod (host) name, the pid and
    a random token, so two processes never pass for each other."""

    identity: str
    lease_seconds: float
    held: set[int] = field(default_factory=set)

    @classmethod
    def new(cls, lease_seconds: float | None = None) -> Claimer:
        if lease_seconds is None:
            lease_seconds = float(os.environ.get(LEASE_SECONDS_ENV) or DEFAULT_LEASE_SECONDS)
        identity = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        return cls(identity, lease_seconds)


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    item_id: int
    state: ItemState
    error: str | None = None


@dataclass(slots=True)
class BatchExtras:
    """Counters that are not item states: LLM tokens, fallback and cascade use."""

    tokens_prompt: int = 0
    tokens_completion: int = 0
    fallback_used: int = 0
    tokens_cached: int = 0  # of tokens_prompt, served from the provider's prompt cache
    cascade_kept: int = 0  # tracks labelled by the cascade's first analyzer


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
        driver=row["driver"],
        compacted_at=row.get("compacted_at"),
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


async def operator_runs(conn: asyncpg.Connection) -> list[Run]:
    """The active runs an operator drives: planned for a resource (a namespace) and
    driven by no local runner. The operator never moves a run to `running` or
    `interrupted` (only a local runner does, with its `driver`), so `planned` is all
    there is; the sweep (rap_operator/sweep.py) cancels those whose resource is gone."""
    rows = await conn.fetch(
        """SELECT * FROM runs WHERE state = 'planned' AND driver IS NULL
                                AND namespace IS NOT NULL ORDER BY id"""
    )
    return [_run(r) for r in rows]


# $1 analyzer_type, $2 model_version, $3 the new run's id, $4 ACTIVE_RUN_STATES
# (a constant so that bench/million.py explains exactly this query).
OVERLAP_SQL = """SELECT r.* FROM runs r
    WHERE r.analyzer_type = $1 AND r.model_version = $2 AND r.state = ANY($4::text[])
      AND r.id <> $3
      AND EXISTS (SELECT 1 FROM run_items i JOIN run_items mine
                         ON mine.run_id = $3 AND mine.item_id = i.item_id
                   WHERE i.run_id = r.id AND i.state = 'pending')
    ORDER BY r.created_at, r.id LIMIT 1"""


async def overlapping_run(
    conn: asyncpg.Connection, analyzer_type: str, model_version: str, run_id: int
) -> Run | None:
    """Another active run of this analyzer and version with pending work on any item of
    run `run_id` (the oldest such run), or None.

    Set-based: the planned run's items are already in `run_items`, so this is a join
    of two runs' items on the primary key — at a million items far cheaper than
    sending the ids back as an array (bench/RESULTS.md, issue 16)."""
    row = await conn.fetchrow(
        OVERLAP_SQL,
        analyzer_type,
        model_version,
        run_id,
        list(ACTIVE_RUN_STATES),
    )
    return _run(row) if row else None


def assign_shards(n_items: int, shards: int) -> list[int]:
    """Contiguous, even blocks: shard sizes differ by at most one, and each shard's
    items are neighbours in id order (good locality for its index scans).
    `ItemQuery` plans compute the same in SQL (`_SHARD_SQL`)."""
    return [i * shards // n_items for i in range(n_items)] if n_items else []


def shard_sizes(n_items: int, shards: int) -> list[int]:
    """How many of `n_items` items `assign_shards` puts in each shard, without the
    list: item i goes to shard s iff s*n <= i*shards < (s+1)*n, i.e. i in
    [ceil(s*n/shards), ceil((s+1)*n/shards))."""
    bound = [-(-s * n_items // shards) for s in range(shards + 1)]
    return [bound[s + 1] - bound[s] for s in range(shards)]


@dataclass(frozen=True, slots=True)
class ItemQuery:
    """A SELECT whose first column is the item ids of a plan (distinct), run inside the
    planning INSERT so the ids never travel through Python. `args` are its $1.. values."""

    sql: str
    args: Sequence[Any] = ()


# Shard of the i-th item (0-based, id order) of n: i * shards / n, as assign_shards.
# bigint: at a million items i * shards overflows no int4 with shards <= 1,000, but
# the CRD's limits may grow.
_SHARD_SQL = "((row_number() OVER (ORDER BY q.id) - 1) * {shards}::bigint / count(*) OVER ())::int"


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
    item_ids: Sequence[int] | ItemQuery,
    payloads: Sequence[str | None] | None = None,
) -> PlanResult:
    """Record a run, its shards and its items in one transaction (a no-op if `uid` was
    planned before). Items are either given (`item_ids`, with optional `payloads`:
    a ScrapeJob's artists; sent with one COPY) or an `ItemQuery` run by the server in
    one INSERT ... SELECT that also computes each item's shard."""
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
            0 if isinstance(item_ids, ItemQuery) else len(item_ids),
        )
        if row is None:  # planned before (maybe by a previous operator process)
            existing = await find_run(conn, uid)
            assert existing is not None
            return PlanResult(existing, created=False)
        run = _run(row)
        if isinstance(item_ids, ItemQuery):
            if payloads is not None:
                raise ValueError("payloads go with explicit item_ids, not an ItemQuery")
            n = len(item_ids.args)
            status = await conn.execute(
                f"""INSERT INTO run_items (run_id, item_id, shard)
                    SELECT ${n + 1}::bigint, q.id, {_SHARD_SQL.format(shards=f"${n + 2}")}
                      FROM ({item_ids.sql}) AS q (id)""",
                *item_ids.args,
                run.id,
                shards,
            )
            total = int(status.split()[-1])  # "INSERT 0 <rows>"
            await conn.execute("UPDATE runs SET total = $2 WHERE id = $1", run.id, total)
            run = dataclasses.replace(run, total=total)
        else:
            shard_of = assign_shards(len(item_ids), shards)
            pl = payloads if payloads is not None else [None] * len(item_ids)
            await conn.copy_records_to_table(
                "run_items",
                records=zip([run.id] * len(item_ids), item_ids, shard_of, pl, strict=True),
                columns=["run_id", "item_id", "shard", "payload"],
            )
        sizes = shard_sizes(run.total, shards)
        # One statement for the shard rows: 1,000 of them in one round trip.
        await conn.execute(
            """INSERT INTO run_shards (run_id, shard, total, state)
               SELECT $1, s - 1, n, CASE WHEN n > 0 THEN 'pending' ELSE 'done' END
                 FROM unnest($2::int[]) WITH ORDINALITY AS u (n, s)""",
            run.id,
            sizes,
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
    conn: asyncpg.Connection, run_id: int, shard: int, size: int, claimer: Claimer
) -> list[ClaimedItem]:
    """Lease the shard's next claimable items (unleased, or whose lease expired) to
    `claimer`, in id order.

    An item whose previous lease expired unfinished is charged a crash. Items that
    crashed before are suspects and go alone: the batch is either one suspect or the
    run of healthy items before the next suspect, so a crash is never charged to
    more than one suspect."""
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT item_id, crashes + (claimed_by IS NOT NULL)::int AS crashes
                 FROM run_items
                WHERE run_id = $1 AND shard = $2 AND state = 'pending'
                  AND (lease_expires IS NULL OR lease_expires <= now())
                ORDER BY item_id LIMIT $3
                  FOR UPDATE SKIP LOCKED""",
            run_id,
            shard,
            size,
        )
        if not rows:
            return []
        take = rows[:1]
        if rows[0]["crashes"] == 0:
            take = []
            for r in rows:
                if r["crashes"]:
                    break
                take.append(r)
        claimed = await conn.fetch(
            """UPDATE run_items i
                  SET attempts = i.attempts + 1, crashes = u.crashes, claimed_by = $4,
                      lease_expires = now() + make_interval(secs => $5)
                 FROM unnest($2::bigint[], $3::int[]) AS u(item_id, crashes)
                WHERE i.run_id = $1 AND i.item_id = u.item_id
            RETURNING i.item_id, i.attempts, i.crashes, i.payload""",
            run_id,
            [r["item_id"] for r in take],
            [r["crashes"] for r in take],
            claimer.identity,
            claimer.lease_seconds,
        )
    items = sorted(
        (ClaimedItem(r["item_id"], r["attempts"], r["payload"], r["crashes"]) for r in claimed),
        key=lambda c: c.item_id,
    )
    claimer.held.update(c.item_id for c in items)
    return items


async def renew_leases(conn: asyncpg.Connection, run_id: int, shard: int, claimer: Claimer) -> int:
    """The heartbeat: extend the leases `claimer` holds and stamp the shard alive.
    Returns how many leases are still held (fewer than `claimer.held`: some were lost)."""
    async with conn.transaction():
        renewed = 0
        if claimer.held:
            renewed = len(
                await conn.fetch(
                    """UPDATE run_items SET lease_expires = now() + make_interval(secs => $4)
                        WHERE run_id = $1 AND item_id = ANY($2::bigint[]) AND claimed_by = $3
                          AND state = 'pending'
                    RETURNING item_id""",
                    run_id,
                    list(claimer.held),
                    claimer.identity,
                    claimer.lease_seconds,
                )
            )
        await conn.execute(
            "UPDATE run_shards SET heartbeat_at = now() WHERE run_id = $1 AND shard = $2",
            run_id,
            shard,
        )
    return renewed


async def release_leases(conn: asyncpg.Connection, run_id: int, claimer: Claimer) -> None:
    """Give back unfinished items without charging them a crash (a stop, not a crash)."""
    if claimer.held:
        await conn.execute(
            """UPDATE run_items SET claimed_by = NULL, lease_expires = NULL
                WHERE run_id = $1 AND item_id = ANY($2::bigint[]) AND claimed_by = $3""",
            run_id,
            list(claimer.held),
            claimer.identity,
        )
    claimer.held.clear()


@contextlib.asynccontextmanager
async def holding_leases(
    pool: asyncpg.Pool, run_id: int, shard: int, claimer: Claimer
) -> AsyncIterator[Claimer]:
    """Renew `claimer`'s leases every third of their length while the block runs;
    on the way out (done, stopped, or an error) give back what it still holds."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(claimer.lease_seconds / 3)
            try:
                async with pool.acquire() as conn:
                    held = len(claimer.held)
                    if await renew_leases(conn, run_id, shard, claimer) < held:
                        log.warning("lost the lease on items of shard %d", shard)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The work loop meets the same database; it decides what to do.
                log.warning("heartbeat failed: %s", exc)

    task = asyncio.create_task(beat())
    try:
        yield claimer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if claimer.held:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                async with pool.acquire() as conn:
                    await release_leases(conn, run_id, claimer)


async def seconds_to_next_lease(conn: asyncpg.Connection, run_id: int, shard: int) -> float | None:
    """When nothing is claimable but items are pending, they are leased by another
    claimer: seconds until the first such lease expires (None: nothing pending)."""
    value = await conn.fetchval(
        """SELECT extract(epoch FROM min(coalesce(lease_expires, now())) - now())
             FROM run_items WHERE run_id = $1 AND shard = $2 AND state = 'pending'""",
        run_id,
        shard,
    )
    return None if value is None else max(0.0, float(value))


Writer = Callable[[asyncpg.Connection, frozenset[int]], Awaitable[None]]


async def commit_batch(
    conn: asyncpg.Connection,
    run_id: int,
    shard: int,
    updates: Sequence[ItemUpdate],
    claimer: Claimer,
    *,
    write: Writer | None = None,
    extras: BatchExtras | None = None,
    holding: Collection[int] = (),
) -> dict[str, int]:
    """One transaction: item states, the caller's writes, shard counters, heartbeat.

    Only items still pending and leased to `claimer` move; `write(conn, ids)` is
    called with the ids that moved (plus those of `holding` still held: work in
    progress on an item that does not move yet, e.g. an artist's songs), so results
    for an item whose lease was lost are never written. Raises LeaseLost when an
    item of `holding` is no longer held. Returns how many items moved to each state."""
    ex = extras or BatchExtras()
    async with conn.transaction():
        moved = await conn.fetch(
            """UPDATE run_items i
                  SET state = u.state, last_error = u.error, updated_at = now(),
                      claimed_by = NULL, lease_expires = NULL
                 FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(item_id, state, error)
                WHERE i.run_id = $1 AND i.item_id = u.item_id AND i.state = 'pending'
                  AND i.claimed_by = $5
            RETURNING i.item_id, i.state""",
            run_id,
            [u.item_id for u in updates],
            [u.state for u in updates],
            [u.error for u in updates],
            claimer.identity,
        )
        ids = {r["item_id"] for r in moved}
        if holding:
            held = await conn.fetch(
                """SELECT item_id FROM run_items
                    WHERE run_id = $1 AND item_id = ANY($2::bigint[]) AND claimed_by = $3
                      AND state = 'pending' FOR UPDATE""",
                run_id,
                list(holding),
                claimer.identity,
            )
            if len(held) < len(set(holding)):
                raise LeaseLost(f"shard {shard} lost the lease on an item in progress")
            ids |= {r["item_id"] for r in held}
        if write is not None and ids:
            await write(conn, frozenset(ids))
        counts = {"done": 0, "failed": 0, "skipped": 0}
        for r in moved:
            counts[r["state"]] += 1
        await conn.execute(
            """UPDATE run_shards
                  SET processed = processed + $3, failed = failed + $4, skipped = skipped + $5,
                      tokens_prompt = tokens_prompt + $6,
                      tokens_completion = tokens_completion + $7,
                      fallback_used = fallback_used + $8,
                      tokens_cached = tokens_cached + $9, cascade_kept = cascade_kept + $10,
                      heartbeat_at = now()
                WHERE run_id = $1 AND shard = $2""",
            run_id,
            shard,
            counts["done"],
            counts["failed"],
            counts["skipped"],
            ex.tokens_prompt,
            ex.tokens_completion,
            ex.fallback_used,
            ex.tokens_cached,
            ex.cascade_kept,
        )
    claimer.held.difference_update(u.item_id for u in updates)
    return counts


async def finish_shard(conn: asyncpg.Connection, run_id: int, shard: int) -> bool:
    """Mark the shard done if nothing is pending; False if items remain."""
    status: str | None = await conn.fetchval(
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


async def set_run_state(
    conn: asyncpg.Connection, run_id: int, state: RunState, *, driver: str | None = None
) -> None:
    """Move an unfinished run to `state`; `driver` records the local runner driving
    it (host:pid), cleared when the run stops being driven."""
    terminal = state in TERMINAL_RUN_STATES
    await conn.execute(
        """UPDATE runs SET state = $2, driver = $4,
                  finished_at = CASE WHEN $3 THEN coalesce(finished_at, now()) ELSE finished_at END,
                  cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END
            WHERE id = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')""",
        run_id,
        state,
        terminal,
        driver,
    )


# The columns of ShardCounters, in its field order: rows are passed positionally,
# which at 1,000 shards is 3 ms instead of 11 for `ShardCounters(**dict(row))`
# (bench/RESULTS.md, issue 16); the list follows the dataclass, so the order cannot drift.
_SHARD_COLUMNS = ", ".join(f.name for f in dataclasses.fields(ShardCounters))


async def read_shards(conn: asyncpg.Connection, run_id: int) -> list[ShardCounters]:
    """The run's per-shard counter rows, in shard order: O(shards), on the primary key."""
    rows = await conn.fetch(
        f"SELECT {_SHARD_COLUMNS} FROM run_shards WHERE run_id = $1 ORDER BY shard", run_id
    )
    return [ShardCounters(*r) for r in rows]
