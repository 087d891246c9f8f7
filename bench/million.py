"""Issue-16 benchmark: planning, selection, claims and status refresh at a million tracks.

    python -m bench.million [N] [--json OUT] [--explain OUT] [--keep DIR]

N = 1,000,000 tracks (and 3 x N analysis_results). Not part of CI: seeding and
measuring take a few minutes. The database is a fresh embedded Postgres in a
temporary data directory (`--keep DIR` keeps it there and reuses an already seeded
one), or `DATABASE_URL` (a database this bench may fill and wipe: it truncates the
corpus and the run ledger).

Seeding is set-based (generate_series, one INSERT ... SELECT per table). The corpus:

- tracks 1..N (artist `artist <i mod 5000>`, word_count 20..419, short lyrics: the
  measured queries read ids, artist and word_count only);
- results: (`algorithmic`, `1.0.0`) for even ids, (`algorithmic`, `0.9`) for odd ids,
  `emotion` and `quality` for every id — 3 x N rows, so an `onlyMissing` selection of
  algorithmic 1.0.0 is the N/2 odd ids and one of `llm` is all N.

What is measured, in this order, on the same database:

1. selection: the `onlyMissing` query of algorithmic 1.0.0 (count on the server, and
   fetched into Python as before issue 16);
2. planning a 1 M-track run (`llm`, onlyMissing, 1,000 shards) with today's
   set-based planner, and the pre-issue-16 way (ids into Python, COPY, overlap check
   with an N-element array) on the same selection;
3. the overlap check when an active run holds the same tracks (the plan is refused
   and rolled back), set-based join vs the N-element array;
4. status refresh of the 1,000-shard run (read_shards + compute_status, median of 300);
5. claims: 64 concurrent claimers (one asyncpg connection each) doing next_batch +
   commit_batch, (a) one per shard of a 64-shard run, (b) all on one shard; claims/s,
   deadlocks (pg_stat_database and errors), exactly-once checks;
6. EXPLAIN (ANALYZE, BUFFERS) of planning, selection, claim, complete and refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from analyzer_runtime.contract.status import JobObservation, RunObservation, compute_status
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.migrate import migrate
from analyzer_runtime.ledger.planner import Selection
from analyzer_runtime.ledger.shards import Claimer, ItemUpdate

CLAIMERS = 64
CLAIM_BATCH = 10
CLAIM_SECONDS = 20.0
REFRESH_SHARDS = 1000


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = await fn()
    return time.perf_counter() - t0, out


# --- seeding -------------------------------------------------------------------------


async def seed(conn: asyncpg.Connection, n: int) -> dict[str, float]:
    """N tracks and 3N results, set-based. A seeded database (same N) is reused."""
    have = await conn.fetchval("SELECT count(*) FROM tracks")
    if have == n and await conn.fetchval("SELECT count(*) FROM analysis_results") == 3 * n:
        log(f"reusing the seeded corpus ({n} tracks)")
        return {}
    await conn.execute(
        "TRUNCATE tracks, analysis_results, runs, run_shards, run_items RESTART IDENTITY CASCADE"
    )
    t_tracks, _ = await timed(
        lambda: conn.execute(
            """INSERT INTO tracks (id, title, artist, lyrics, genius_id, word_count)
               SELECT i, 'song ' || i, 'artist ' || (i % 5000),
                      'synthetic lyrics of track ' || i, i, 20 + (i::bigint * 7919 % 400)::int
                 FROM generate_series(1, $1) AS i""",
            n,
        )
    )
    await conn.execute("SELECT setval('tracks_id_seq', $1)", n)
    log(f"seeded {n} tracks in {t_tracks:.1f} s")
    # One statement: four (analyzer, version) sets over the ids, 3N rows in all.
    t_results, _ = await timed(
        lambda: conn.execute(
            """INSERT INTO analysis_results (track_id, analyzer_type, model_version, sentiment,
                                             confidence)
               SELECT i, a.analyzer_type, a.model_version, 'neutral', 0.5
                 FROM generate_series(1, $1) AS i
                 JOIN (VALUES ('algorithmic', '1.0.0', 0), ('algorithmic', '0.9', 1),
                              ('emotion', '1.0.0', NULL), ('quality', '1.0.0', NULL))
                      AS a (analyzer_type, model_version, parity)
                   ON a.parity IS NULL OR a.parity = i % 2""",
            n,
        )
    )
    log(f"seeded {3 * n} results in {t_results:.1f} s")
    t_vacuum, _ = await timed(lambda: conn.execute("VACUUM ANALYZE"))
    return {
        "seed_tracks_s": round(t_tracks, 1),
        "seed_results_s": round(t_results, 1),
        "vacuum_analyze_s": round(t_vacuum, 1),
    }


# --- planning and selection ----------------------------------------------------------


async def old_plan(
    conn: asyncpg.Connection, uid: str, sel: Selection, shards: int, at: str, mv: str
) -> tuple[shard_ledger.PlanResult, float]:
    """Planning as before issue 16: ids into Python, the overlap check with an array
    of all of them, then COPY. Returns the plan and the seconds the overlap check took."""
    async with conn.transaction():
        ids = await planner.select_track_ids(conn, sel, at, mv)
        t_overlap, _ = await timed(lambda: old_overlap(conn, at, mv, ids))
        plan = await shard_ledger.record_plan(
            conn, uid=uid, name=uid, namespace=None, kind="AnalysisRun", spec={},
            shards=shards, analyzer_type=at, model_version=mv, item_ids=ids,
        )  # fmt: skip
    return plan, t_overlap


async def old_overlap(conn: asyncpg.Connection, at: str, mv: str, ids: list[int]) -> Any:
    """The pre-issue-16 overlapping_run: an EXISTS with `item_id = ANY(<N ids>)`."""
    return await conn.fetchrow(
        """SELECT r.* FROM runs r
            WHERE r.analyzer_type = $1 AND r.model_version = $2 AND r.state = ANY($4::text[])
              AND EXISTS (SELECT 1 FROM run_items i
                           WHERE i.run_id = r.id AND i.state = 'pending'
                             AND i.item_id = ANY($3::bigint[]))
            ORDER BY r.created_at, r.id LIMIT 1""",
        at,
        mv,
        ids,
        list(shard_ledger.ACTIVE_RUN_STATES),
    )


async def before_0011(conn: asyncpg.Connection) -> tuple[dict[str, Any], str]:
    """The onlyMissing selection with the indexes as they were before migration 0011
    (the (analyzer_type) index instead of (analyzer_type, model_version, track_id)),
    in a transaction rolled back: the same data, the same session."""
    sql, args = planner.selection_query(Selection())
    out: dict[str, Any] = {}
    plan = ""
    try:
        async with conn.transaction():
            await conn.execute("DROP INDEX analysis_results_version_track_idx")
            await conn.execute(
                "CREATE INDEX analysis_results_analyzer_type_idx ON analysis_results (analyzer_type)"
            )
            t, count = await timed(
                lambda: conn.fetchval(
                    f"SELECT count(*) FROM ({sql}) q", "algorithmic", "1.0.0", *args
                )
            )
            out = {"tracks": count, "count_on_server_s": round(t, 2)}
            plan = await explain(conn, sql, "algorithmic", "1.0.0", *args)
            raise _Rollback
    except _Rollback:
        pass
    log(f"selection before 0011: {out}")
    return out, plan


async def new_plan(
    conn: asyncpg.Connection, uid: str, sel: Selection, shards: int, at: str, mv: str
) -> shard_ledger.PlanResult:
    return await planner.plan_analysis(
        conn, uid=uid, name=uid, namespace=None, spec={}, selection=sel, shards=shards,
        analyzer_type=at, model_version=mv,
    )  # fmt: skip


async def drop_run(conn: asyncpg.Connection, run_id: int) -> None:
    await conn.execute("DELETE FROM runs WHERE id = $1", run_id)  # cascades to its items


async def planning(conn: asyncpg.Connection, n: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    missing = Selection()  # onlyMissing
    sql, args = planner.selection_query(missing)
    t, count = await timed(
        lambda: conn.fetchval(f"SELECT count(*) FROM ({sql}) q", "algorithmic", "1.0.0", *args)
    )
    out["selection_only_missing"] = {"tracks": count, "count_on_server_s": round(t, 2)}
    t, ids = await timed(lambda: planner.select_track_ids(conn, missing, "algorithmic", "1.0.0"))
    out["selection_only_missing"]["fetch_into_python_s"] = round(t, 2)
    assert len(ids) == count == n - n // 2, (len(ids), count)
    del ids
    log(f"selection: {out['selection_only_missing']}")
    out["selection_before_0011"], out["_explain_selection_before_0011"] = await before_0011(conn)

    # Each measured three times, alternating old and new, so both see similar cache states.
    runs: dict[str, list[float]] = {"new": [], "old": [], "old_overlap_check": []}
    for k in range(3):
        t, plan = await timed(lambda k=k: new_plan(conn, f"new-{k}", missing, 1000, "llm", "m"))
        assert plan.created and plan.run.total == n
        runs["new"].append(t)
        await drop_run(conn, plan.run.id)
        await conn.execute("VACUUM run_items, run_shards, runs")
        t, (plan, t_ov) = await timed(
            lambda k=k: old_plan(conn, f"old-{k}", missing, 1000, "llm", "m")
        )
        assert plan.run.total == n
        runs["old"].append(t)
        runs["old_overlap_check"].append(t_ov)
        await drop_run(conn, plan.run.id)
        await conn.execute("VACUUM run_items, run_shards, runs")
        log(f"plan 1M: new {runs['new'][-1]:.2f} s, old {runs['old'][-1]:.2f} s")
    out["plan_1M_1000_shards_s"] = {k: [round(x, 2) for x in v] for k, v in runs.items()}

    t, plan = await timed(lambda: new_plan(conn, "missing", missing, 64, "algorithmic", "1.0.0"))
    out["plan_only_missing_s"] = {"tracks": plan.run.total, "s": round(t, 2)}
    await drop_run(conn, plan.run.id)

    # The run the rest measures against: 1M items, 1,000 shards, active (planned).
    big = await new_plan(conn, "big", missing, REFRESH_SHARDS, "llm", "m")
    await conn.execute("VACUUM ANALYZE run_items, run_shards, runs")
    # A second run of the same analyzer over the same tracks: refused, rolled back.
    t_new_refused = await refused(lambda: new_plan(conn, "again", missing, 4, "llm", "m"))
    ids = [r[0] for r in await conn.fetch("SELECT id FROM tracks ORDER BY id")]
    t_old_check, other = await timed(lambda: old_overlap(conn, "llm", "m", ids))
    assert other is not None and other["id"] == big.run.id
    # The new check alone (the refused plan above includes writing the items), in a
    # transaction rolled back like the refused plan.
    try:
        async with conn.transaction():
            mine = await shard_ledger.record_plan(
                conn, uid="check", name="check", namespace=None, kind="AnalysisRun", spec={},
                shards=4, analyzer_type="llm", model_version="m",
                item_ids=shard_ledger.ItemQuery(sql, ["llm", "m", *args]),
            )  # fmt: skip
            t_new_check, other = await timed(
                lambda: shard_ledger.overlapping_run(conn, "llm", "m", mine.run.id)
            )
            assert other is not None and other.id == big.run.id
            explain_overlap = await explain(
                conn,
                shard_ledger.OVERLAP_SQL,
                "llm",
                "m",
                mine.run.id,
                list(shard_ledger.ACTIVE_RUN_STATES),
            )
            raise _Rollback
    except _Rollback:
        pass
    out["overlap_1M"] = {
        "refused_plan_total_s": round(t_new_refused, 2),
        "check_set_based_s": round(t_new_check, 3),
        "check_array_of_1M_s": round(t_old_check, 3),
    }
    log(f"overlap: {out['overlap_1M']}")
    out["_explain_overlap"] = explain_overlap
    out["overlap_disjoint"], out["_explain_overlap_disjoint"] = await disjoint_overlap(conn, n)
    return out, big.run.id


async def disjoint_overlap(conn: asyncpg.Connection, n: int) -> tuple[dict[str, Any], str]:
    """The common case: an active run of the same analyzer over other tracks (ids
    1..N/2 pending), and a new run over N/2+1..N. The check must look at every pair
    to say "no overlap"."""
    half = n // 2
    first = await new_plan(conn, "half-a", Selection(id_to=half), 500, "disjoint", "d")
    await conn.execute("VACUUM ANALYZE run_items")
    sel = Selection(id_from=half + 1)
    sql, args = planner.selection_query(sel)
    out: dict[str, Any] = {"active_pending": first.run.total}
    try:
        async with conn.transaction():
            mine = await shard_ledger.record_plan(
                conn, uid="half-b", name="half-b", namespace=None, kind="AnalysisRun", spec={},
                shards=500, analyzer_type="disjoint", model_version="d",
                item_ids=shard_ledger.ItemQuery(sql, ["disjoint", "d", *args]),
            )  # fmt: skip
            out["new_items"] = mine.run.total
            t, other = await timed(
                lambda: shard_ledger.overlapping_run(conn, "disjoint", "d", mine.run.id)
            )
            assert other is None
            out["check_set_based_s"] = round(t, 3)
            plan = await explain(
                conn,
                shard_ledger.OVERLAP_SQL,
                "disjoint",
                "d",
                mine.run.id,
                list(shard_ledger.ACTIVE_RUN_STATES),
            )
            raise _Rollback
    except _Rollback:
        pass
    ids = await planner.select_track_ids(conn, sel, "disjoint", "d")
    t, other = await timed(lambda: old_overlap(conn, "disjoint", "d", ids))
    assert other is None
    out["check_array_s"] = round(t, 3)
    t, plan_b = await timed(lambda: new_plan(conn, "half-b", sel, 500, "disjoint", "d"))
    assert plan_b.created and plan_b.run.total == n - half
    out["plan_with_check_s"] = round(t, 2)
    await drop_run(conn, plan_b.run.id)
    await drop_run(conn, first.run.id)
    log(f"overlap, disjoint: {out}")
    return out, plan


async def refused(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    try:
        await fn()
    except planner.OverlapError:
        return time.perf_counter() - t0
    raise AssertionError("the overlapping plan was not refused")


# --- status refresh ------------------------------------------------------------------


async def refresh(conn: asyncpg.Connection, run_id: int, n: int) -> dict[str, Any]:
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        rows = await shard_ledger.read_shards(conn, run_id)
        compute_status(
            RunObservation(generation=1, shards=rows, job=JobObservation(exists=True),
                           previous=None, now=datetime.now(UTC), planned_total=n)
        ).to_json()  # fmt: skip
        times.append(time.perf_counter() - t0)
    db_times = []
    for _ in range(300):
        t0 = time.perf_counter()
        await shard_ledger.read_shards(conn, run_id)
        db_times.append(time.perf_counter() - t0)
    assert len(rows) == REFRESH_SHARDS
    return {
        "shards": len(rows),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "p95_ms": round(sorted(times)[int(0.95 * len(times))] * 1000, 2),
        "read_shards_median_ms": round(statistics.median(db_times) * 1000, 2),
    }


# --- claims under contention ---------------------------------------------------------


async def claims(url: str, run_id: int, spread: bool, seconds: float) -> dict[str, Any]:
    """CLAIMERS connections loop next_batch + commit_batch for `seconds`: over shards
    0..63 (one each) when `spread`, else all on shard 0. Every claim is checked
    against the others held at that moment; the write callback logs each completed
    item, so exactly-once is checked on what the database kept."""
    admin = await asyncpg.connect(url)
    await admin.execute("DROP TABLE IF EXISTS bench_done")
    await admin.execute("CREATE UNLOGGED TABLE bench_done (item_id bigint, claimer text)")
    before = await admin.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    conns = [await asyncpg.connect(url) for _ in range(CLAIMERS)]
    held: dict[int, str] = {}
    overlaps = 0
    errors: list[str] = []
    batches = 0
    deadline = time.monotonic() + seconds

    async def write(c: asyncpg.Connection, ids: frozenset[int], who: str) -> None:
        await c.executemany(
            "INSERT INTO bench_done VALUES ($1, $2)", [(i, who) for i in sorted(ids)]
        )

    async def claimer(k: int) -> int:
        nonlocal overlaps, batches
        conn, me, shard = conns[k], Claimer.new(600.0), k if spread else 0
        await shard_ledger.claim_shard(conn, run_id, shard)
        done = 0
        while time.monotonic() < deadline:
            try:
                batch = await shard_ledger.next_batch(conn, run_id, shard, CLAIM_BATCH, me)
                if not batch:
                    break
                for c in batch:
                    if c.item_id in held:
                        overlaps += 1
                    held[c.item_id] = me.identity
                ups = [ItemUpdate(c.item_id, "done") for c in batch]
                moved = await shard_ledger.commit_batch(
                    conn, run_id, shard, ups, me,
                    write=lambda c, ids, who=me.identity: write(c, ids, who),
                )  # fmt: skip
                for c in batch:
                    del held[c.item_id]
                done += moved["done"]
                batches += 1
            except asyncpg.PostgresError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        return done

    t0 = time.perf_counter()
    done = await asyncio.gather(*(claimer(k) for k in range(CLAIMERS)))
    wall = time.perf_counter() - t0
    after = await admin.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    rows, distinct = await admin.fetchrow(
        "SELECT count(*), count(DISTINCT item_id) FROM bench_done"
    )
    processed = await admin.fetchval(
        "SELECT sum(processed) FROM run_shards WHERE run_id = $1", run_id
    )
    done_items = await admin.fetchval(
        "SELECT count(*) FROM run_items WHERE run_id = $1 AND state = 'done'", run_id
    )
    for c in conns:
        await c.close()
    await admin.close()
    total = sum(done)
    result = {
        "claimers": CLAIMERS,
        "shards": CLAIMERS if spread else 1,
        "batch": CLAIM_BATCH,
        "seconds": round(wall, 1),
        "items_done": total,
        "claims_per_s": round(batches / wall, 1),
        "items_per_s": round(total / wall, 1),
        "deadlocks_pg_stat": after - before,
        "errors": errors[:5],
        "error_count": len(errors),
        "overlapping_claims": overlaps,
        "exactly_once": rows == distinct == total == done_items == processed,
    }
    log(f"claims ({'spread' if spread else 'one shard'}): {result}")
    return result


# --- EXPLAIN -------------------------------------------------------------------------


async def explain(conn: asyncpg.Connection, sql: str, *args: Any) -> str:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    return "\n".join(r[0] for r in rows)


class _Rollback(Exception):
    pass


async def explain_rolled_back(conn: asyncpg.Connection, sql: str, *args: Any) -> str:
    """EXPLAIN ANALYZE of a statement that writes, in a transaction rolled back."""
    plan = ""
    try:
        async with conn.transaction():
            plan = await explain(conn, sql, *args)
            raise _Rollback
    except _Rollback:
        pass
    return plan


async def explains(conn: asyncpg.Connection, run_id: int) -> dict[str, str]:
    out: dict[str, str] = {}
    sql, args = planner.selection_query(Selection())
    out["selection_only_missing"] = await explain(conn, sql, "algorithmic", "1.0.0", *args)
    # Planning: the INSERT ... SELECT record_plan sends, for a 1M-track (llm) run.
    run = await conn.fetchval(
        """INSERT INTO runs (uid, name, spec, shards) VALUES ('explain', 'explain', '{}', 1000)
           RETURNING id"""
    )
    n = len(args) + 2
    out["planning_insert"] = await explain_rolled_back(
        conn,
        f"""INSERT INTO run_items (run_id, item_id, shard)
            SELECT ${n + 1}::bigint, q.id, {shard_ledger._SHARD_SQL.format(shards=f"${n + 2}")}
              FROM ({sql}) AS q (id)""",
        "llm", "m", *args, run, 1000,
    )  # fmt: skip
    await conn.execute("DELETE FROM runs WHERE id = $1", run)
    # Claim and complete on shard 500 of the 1,000-shard run (still all pending).
    out["claim"] = await explain_rolled_back(
        conn,
        """SELECT item_id, crashes + (claimed_by IS NOT NULL)::int AS crashes
             FROM run_items
            WHERE run_id = $1 AND shard = $2 AND state = 'pending'
              AND (lease_expires IS NULL OR lease_expires <= now())
            ORDER BY item_id LIMIT $3
              FOR UPDATE SKIP LOCKED""",
        run_id, 500, 200,
    )  # fmt: skip
    ids = [r[0] for r in await conn.fetch(
        "SELECT item_id FROM run_items WHERE run_id = $1 AND shard = 500 ORDER BY item_id LIMIT 200",
        run_id,
    )]  # fmt: skip
    out["claim_update"] = await explain_rolled_back(
        conn,
        """UPDATE run_items i
              SET attempts = i.attempts + 1, crashes = u.crashes, claimed_by = $4,
                  lease_expires = now() + make_interval(secs => $5)
             FROM unnest($2::bigint[], $3::int[]) AS u(item_id, crashes)
            WHERE i.run_id = $1 AND i.item_id = u.item_id""",
        run_id, ids, [0] * len(ids), "explain", 30.0,
    )  # fmt: skip
    out["complete"] = await explain_rolled_back(
        conn,
        """UPDATE run_items i
              SET state = u.state, last_error = u.error, updated_at = now(),
                  claimed_by = NULL, lease_expires = NULL
             FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(item_id, state, error)
            WHERE i.run_id = $1 AND i.item_id = u.item_id AND i.state = 'pending'
              AND i.claimed_by IS NULL""",
        run_id, ids, ["done"] * len(ids), [None] * len(ids),
    )  # fmt: skip
    out["complete_counters"] = await explain_rolled_back(
        conn,
        """UPDATE run_shards SET processed = processed + 200, heartbeat_at = now()
            WHERE run_id = $1 AND shard = $2""",
        run_id, 500,
    )  # fmt: skip
    out["refresh"] = await explain(
        conn,
        """SELECT shard, total, processed, failed, skipped, state, attempt, heartbeat_at,
                  started_at, finished_at, tokens_prompt, tokens_completion, fallback_used,
                  last_error
             FROM run_shards WHERE run_id = $1 ORDER BY shard""",
        run_id,
    )
    return out


# --- main ----------------------------------------------------------------------------


async def measure(url: str, n: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    t, _ = await timed(lambda: migrate(conn))
    log(f"migrated in {t:.1f} s")
    out: dict[str, Any] = {"n_tracks": n}
    out["seed"] = await seed(conn, n)
    await conn.execute("TRUNCATE runs, run_shards, run_items RESTART IDENTITY CASCADE")
    out["sizes"] = dict(
        await conn.fetchrow(
            """SELECT pg_size_pretty(pg_total_relation_size('tracks')) AS tracks,
                      pg_size_pretty(pg_total_relation_size('analysis_results')) AS results"""
        )
    )
    plan_out, big = await planning(conn, n)
    explain_overlap = plan_out.pop("_explain_overlap")
    explain_before = plan_out.pop("_explain_selection_before_0011")
    explain_disjoint = plan_out.pop("_explain_overlap_disjoint")
    out.update(plan_out)
    out["refresh_1000_shards"] = await refresh(conn, big, n)
    log(f"refresh: {out['refresh_1000_shards']}")
    plans = await explains(conn, big)
    plans["selection_only_missing_before_0011"] = explain_before
    plans["overlap_check_found"] = explain_overlap
    plans["overlap_check_disjoint"] = explain_disjoint
    # Claims: a 64-shard run over the same million, then a fresh one for one shard.
    await drop_run(conn, big)
    sel = Selection(only_missing=False)
    spread = await new_plan(conn, "claims-64", sel, CLAIMERS, "claims", "spread")
    await conn.execute("VACUUM ANALYZE run_items")
    await conn.close()
    out["claims_64_shards"] = await claims(url, spread.run.id, True, CLAIM_SECONDS)
    conn = await asyncpg.connect(url)
    one = await new_plan(conn, "claims-1", sel, 1, "claims", "one")
    await conn.execute("VACUUM ANALYZE run_items")
    await conn.close()
    out["claims_one_shard"] = await claims(url, one.run.id, False, CLAIM_SECONDS)
    out["explain"] = plans
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=1_000_000)
    ap.add_argument("--json", type=Path, help="write the figures (and plans) here")
    ap.add_argument("--explain", type=Path, help="write the EXPLAIN plans here as text")
    ap.add_argument("--keep", type=Path, help="embedded data dir to keep (and reuse)")
    a = ap.parse_args()
    url = os.environ.get("DATABASE_URL")
    server, tmp = None, None
    if not url:
        from analyzer_runtime.db import embedded

        tmp = None if a.keep else Path(tempfile.mkdtemp(prefix="rap-bench-million-"))
        root = a.keep or tmp
        assert root is not None  # --keep, or the temporary directory
        server = embedded.start(root / "pgdata")
        url = server.get_uri()
    try:
        t0 = time.perf_counter()
        out = asyncio.run(measure(url, a.n))
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        out["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        out["date"] = datetime.now(UTC).date().isoformat()
    finally:
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    plans = out.pop("explain")
    if a.explain:
        a.explain.write_text("".join(f"== {k}\n{v}\n\n" for k, v in plans.items()))
    if a.json:
        a.json.write_text(json.dumps({**out, "explain": plans}, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
