"""Housekeeping of the run ledger (`rap-analyzer db gc`, issue 16).

A run's `run_items` (one row per track or artist) are only needed while the run works
and to answer "what failed". Once a run is finished (succeeded, failed, cancelled) and
older than the retention, gc *compacts* it: its items are deleted except the failed
ones (kept with their errors), and `runs.compacted_at` marks it so a second gc passes
it by. Nothing else changes:

- status is read from `run_shards` counters (shards.read_shards, contract/status.py), which
  gc never touches, so a compacted run's status reads the same;
- results (`analysis_results`, `tracks`, embeddings) are never touched; the batch
  lane's `llm_batch_items` of the deleted items go with them (`llm_batches` stays);
- an unfinished run (planned, running, interrupted) is never touched, however old.

Deletes go in bounded transactions (`batch_size` rows each), so a million-item run
never holds one giant lock. The rules (which runs, which items) are the pure functions
below; the SQL applies them and re-checks them in every batch.

Concurrent gcs (a CronJob and a person by hand) are safe, also through PgBouncer in
transaction pooling (where a session-level advisory lock would be taken on one server
connection and released on another): every batch transaction takes a
transaction-scoped advisory lock, so batches of two gcs never interleave inside a
transaction, and each batch adds its deletions to `runs.compacted_removed` in the same
transaction, so the count is right whichever gc (or how many, or a gc killed halfway
and run again) removed them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from analyzer_runtime.ledger.shards import TERMINAL_RUN_STATES

DEFAULT_BATCH_SIZE = 10_000
# Item states a compacted run keeps: "what failed" stays answerable.
KEPT_ITEM_STATES = ("failed",)
# Serialises the batches of concurrent gcs (a CronJob and a person by hand); held for
# one batch transaction (pg_advisory_xact_lock), which PgBouncer's transaction pooling
# keeps on one server connection.
_LOCK_KEY = 0x7261705F6763  # "rap_gc"

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)\s*([wdhms])")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w`, or combinations (`1d12h`); at least a minute."""
    s = text.strip().lower()
    if not s or _DURATION.sub("", s).strip():
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 30d, 12h, 90m")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(s))
    if seconds < 60:
        raise ValueError(f"{text!r} is too short a retention: at least 1m")
    return timedelta(seconds=seconds)


def run_is_collectable(
    state: str, finished_at: datetime | None, compacted_at: datetime | None, cutoff: datetime
) -> bool:
    """A run gc compacts: finished, finished before `cutoff`, not compacted yet."""
    return (
        state in TERMINAL_RUN_STATES
        and finished_at is not None
        and finished_at < cutoff
        and compacted_at is None
    )


def item_is_kept(state: str) -> bool:
    """Whether a compacted run keeps an item: only failed ones (with their errors)."""
    return state in KEPT_ITEM_STATES


@dataclass(slots=True)
class RunGc:
    id: int
    uid: str
    name: str
    kind: str
    state: str
    finished_at: datetime
    removed: int = 0
    kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "name": self.name, "kind": self.kind, "state": self.state,
                "finishedAt": self.finished_at.isoformat(), "itemsRemoved": self.removed,
                "itemsKept": self.kept}  # fmt: skip


@dataclass(slots=True)
class GcReport:
    cutoff: datetime
    dry_run: bool
    runs: list[RunGc] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(r.removed for r in self.runs)

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run, "cutoff": self.cutoff.isoformat(),
                "runsCompacted": len(self.runs), "itemsRemoved": self.removed,
                "itemsKept": self.kept, "runs": [r.to_dict() for r in self.runs]}  # fmt: skip

    def summary(self) -> str:
        verb = "would compact" if self.dry_run else "compacted"
        removed = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {len(self.runs)} finished run(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC:"
            f" {removed} {self.removed} item(s), kept {self.kept} failed item(s);"
            " results untouched"
        )


# The guard every statement repeats (run_is_collectable in SQL): $1 the terminal
# states, $2 the cutoff.
_COLLECTABLE = """state = ANY($1::text[]) AND finished_at IS NOT NULL AND finished_at < $2
                  AND compacted_at IS NULL"""


async def collectable_runs(conn: asyncpg.Connection, cutoff: datetime) -> list[RunGc]:
    """The runs to compact, oldest first (the SQL guard, and the rule once more)."""
    rows = await conn.fetch(
        f"""SELECT id, uid, name, kind, state, finished_at, compacted_at FROM runs
             WHERE {_COLLECTABLE} ORDER BY finished_at, id""",
        list(TERMINAL_RUN_STATES),
        cutoff,
    )
    return [
        RunGc(r["id"], r["uid"], r["name"], r["kind"], r["state"], r["finished_at"])
        for r in rows
        if run_is_collectable(r["state"], r["finished_at"], r["compacted_at"], cutoff)
    ]


async def _count(conn: asyncpg.Connection, run: RunGc) -> None:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE state = ANY($2::text[])) AS kept,
                  count(*) FILTER (WHERE NOT state = ANY($2::text[])) AS removed
             FROM run_items WHERE run_id = $1""",
        run.id,
        list(KEPT_ITEM_STATES),
    )
    run.kept, run.removed = row["kept"], row["removed"]


async def compact_run(
    conn: asyncpg.Connection, run: RunGc, cutoff: datetime, batch_size: int
) -> bool:
    """Delete the run's items that are not kept, `batch_size` per transaction, in item
    order; then mark the run compacted. Each batch re-checks (and locks) the run row, so
    a run that is not collectable is never touched (False)."""
    after = -(2**63)
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            ok = await conn.fetchval(
                f"SELECT true FROM runs WHERE {_COLLECTABLE} AND id = $3 FOR UPDATE",
                list(TERMINAL_RUN_STATES),
                cutoff,
                run.id,
            )
            if not ok:
                return False
            row = await conn.fetchrow(
                """WITH doomed AS (
                       SELECT item_id FROM run_items
                        WHERE run_id = $1 AND item_id > $2 AND NOT state = ANY($3::text[])
                        ORDER BY item_id LIMIT $4),
                   gone AS (
                       DELETE FROM run_items i USING doomed d
                        WHERE i.run_id = $1 AND i.item_id = d.item_id
                    RETURNING i.item_id),
                   -- The batch lane's per-item rows go with their items (its
                   -- llm_batches rows, the status's source, stay).
                   unbatched AS (
                       DELETE FROM llm_batch_items b USING doomed d
                        WHERE b.run_id = $1 AND b.item_id = d.item_id)
                   SELECT count(*) AS n, max(item_id) AS last FROM gone""",
                run.id,
                after,
                list(KEPT_ITEM_STATES),
                batch_size,
            )
            run.removed += row["n"]
            done = row["n"] < batch_size
            # The count accumulates in the row, batch by batch: another gc (or an
            # earlier, killed one) may have removed some of the run's items.
            await conn.execute(
                """UPDATE runs SET compacted_removed = coalesce(compacted_removed, 0) + $2,
                                  compacted_at = CASE WHEN $3 THEN now() END
                    WHERE id = $1""",
                run.id,
                row["n"],
                done,
            )
            if done:
                run.kept = await conn.fetchval(
                    "SELECT count(*) FROM run_items WHERE run_id = $1", run.id
                )
                return True
            after = row["last"]


async def gc(
    conn: asyncpg.Connection,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> GcReport:
    """Compact every finished run that finished more than `older_than` ago (the
    database's clock decides); with `dry_run`, only count what would go."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff: datetime = await conn.fetchval(
        "SELECT now() - make_interval(secs => $1)", older_than.total_seconds()
    )
    report = GcReport(cutoff=cutoff, dry_run=dry_run)
    for run in await collectable_runs(conn, cutoff):
        if dry_run:
            await _count(conn, run)
        elif not await compact_run(conn, run, cutoff, batch_size) and not run.removed:
            # Not collectable (any more), and nothing of it removed here. A run another
            # gc finished after this one removed some of its items is still reported.
            continue
        report.runs.append(run)
    return report
