"""`rap-analyzer db adopt`: bring a database in the original platform's schema to this
project's schema in place, losing nothing.

The target is what the baseline migration (0001) creates, described from that SQL
itself (schema_shape.baseline_shapes); after adoption 0001 is recorded as applied and
the later migrations run as usual, so `db migrate` is then a no-op.

Steps, each safe to repeat, so an adoption stopped anywhere resumes where it was:

1. prepare: the vector extension, the tables that keep what the new rules leave out
   (migration 0012, idempotent), and the columns the legacy tables lack (nullable,
   no default: a catalogue change, no table rewrite).
2. orphans and duplicate analyses move to `analysis_results_legacy_duplicates`, whole,
   in transactions of `batch_size` tracks: the newest row per (track, analyzer_type,
   model_version) stays (NULL model_version counts as `legacy`).
3. values that break the new rules are normalised in transactions of `batch_size` rows,
   the original kept in `analysis_data.legacy`: themes text becomes a JSON array,
   out-of-range scores become NULL, over-long values NULL.
4. tracks sharing a Genius id: the first keeps it, the others' go to
   `tracks_legacy_genius_ids`.
5. finalize, one transaction: steps 2-4 again for rows written meanwhile (no-ops
   otherwise), NULLs filled where the new schema says NOT NULL, column types, defaults,
   constraints and indexes as 0001 has them, 0001 recorded. Then `migrate` applies the
   rest.

`--dry-run` runs the same code inside one transaction and rolls it back, so the plan it
prints is what adoption does, counted on the real rows.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from analyzer_runtime.db.adopt_fixes import (
    FILL,
    LEGACY_VERSION,
    UNKNOWN_ANALYZER,
    fix_sql,
    value_fixes,
    varchar_width,
)
from analyzer_runtime.db.adopt_report import DUPLICATES, GENIUS_IDS, Report, counts, has_table
from analyzer_runtime.db.schema_shape import TableShape, baseline_shapes, describe
from analyzer_runtime.ledger import migrate as migrations

TABLES = ["tracks", "analysis_results"]
ACTIVE_STATES = ("planned", "running", "interrupted")


class AdoptRefused(Exception):
    """Adoption cannot start (active runs, a layout it does not know); nothing changed."""


class _DryRun(Exception):
    pass


async def layout(conn: asyncpg.Connection) -> str:
    """'current' (0001 recorded), 'legacy' (the platform's tables, not ours) or 'empty'."""
    if 1 in await migrations.applied(conn):
        return "current"
    if await has_table(conn, "tracks") or await has_table(conn, "analysis_results"):
        return "legacy"
    return "empty"


async def _refuse_active_runs(conn: asyncpg.Connection) -> None:
    if not await has_table(conn, "runs"):
        return
    rows = await conn.fetch(
        "SELECT kind, namespace, name, state FROM runs WHERE state = ANY($1::text[])"
        " ORDER BY id LIMIT 5",
        list(ACTIVE_STATES),
    )
    if rows:
        names = ", ".join(
            f"{r['kind']} {r['namespace'] + '/' if r['namespace'] else ''}{r['name']} ({r['state']})"
            for r in rows
        )
        raise AdoptRefused(f"runs are active ({names}): let them finish or delete them, then adopt")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Adoption:
    """One adoption of the database behind `conn` (a dedicated connection)."""

    def __init__(self, conn: asyncpg.Connection, *, batch_size: int, report: Report) -> None:
        self.conn = conn
        self.batch_size = batch_size
        self.report = report
        self.target: dict[str, TableShape] = {}
        self.legacy: dict[str, TableShape] = {}

    async def _lock(self) -> None:
        # Every step's transaction holds the migration lock: no `migrate` (the operator's,
        # a pod's) runs between two steps, and two adoptions take turns.
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", migrations.LOCK_KEY)

    async def _describe_legacy(self) -> None:
        schema = await self.conn.fetchval("SELECT current_schema()")
        for t in TABLES:
            shape = await describe(self.conn, schema, t)
            if shape is None:
                raise AdoptRefused(
                    f"no table {t} in schema {schema}: this is not the original platform's"
                    " schema (tracks and analysis_results)"
                )
            self.legacy[t] = shape

    async def run(self, on_step: Callable[[str], None] | None = None) -> None:
        async for name in self.steps():
            if on_step:
                on_step(name)

    async def steps(self) -> AsyncIterator[str]:
        """The adoption, one committed transaction at a time; yields after each (what
        it did). Stopping between any two leaves a database that a new adoption
        finishes the same way."""
        baseline = migrations.available()[0]
        self.target = await baseline_shapes(self.conn, baseline.sql, TABLES)
        await self.prepare()
        yield "prepare"
        await self.move_orphans()
        yield "orphans"
        bounds = await self.conn.fetchrow(
            "SELECT min(track_id), max(track_id) FROM analysis_results"
        )
        for start in range(bounds[0] or 0, (bounds[1] or 0) + 1, self.batch_size):
            async with self.conn.transaction():
                await self._lock()
                await self.move_duplicates(start, start + self.batch_size)
            yield f"duplicates of tracks {start}-{start + self.batch_size - 1}"
        # Only after every duplicate moved: those keep their values as they were.
        bounds = await self.conn.fetchrow("SELECT min(id), max(id) FROM analysis_results")
        for start in range(bounds[0] or 0, (bounds[1] or 0) + 1, self.batch_size):
            async with self.conn.transaction():
                await self._lock()
                await self.normalise(start, start + self.batch_size)
            yield f"values of analyses {start}-{start + self.batch_size - 1}"
        async with self.conn.transaction():
            await self._lock()
            await self.move_genius_ids()
        yield "genius ids"
        async with self.conn.transaction():
            await self._lock()
            await self.finalize()
        yield "finalize"
        self.report.migrations += [
            f"{m.version:04d}_{m.name}" for m in await migrations.migrate(self.conn)
        ]
        yield "migrate"

    async def prepare(self) -> None:
        async with self.conn.transaction():
            await self._lock()
            await _refuse_active_runs(self.conn)
            await self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await self._describe_legacy()
            for t in TABLES:
                for col in self.target[t].columns.values():
                    if col.name not in self.legacy[t].columns:
                        await self.conn.execute(
                            f"ALTER TABLE {t} ADD COLUMN {_q(col.name)} {col.type}"
                        )
                        self.report.schema.append(f"{t}.{col.name}: column added ({col.type})")
            adoption_sql = next(m for m in migrations.available() if m.name == "adoption").sql
            await self.conn.execute(adoption_sql)
            await self._describe_legacy()
            await self._refuse_too_long()

    async def _refuse_too_long(self) -> None:
        """A value too long for a NOT NULL varchar of the new schema (analyzer_type,
        model_version) cannot become NULL: the user shortens it, adopt does not guess."""
        legacy = self.legacy["analysis_results"].columns
        for col in self.target["analysis_results"].columns.values():
            width = varchar_width(col.type)
            if width is None or not col.not_null or varchar_width(legacy[col.name].type) == width:
                continue
            n = await self.conn.fetchval(
                f"SELECT count(*) FROM analysis_results WHERE length({_q(col.name)}) > {width}"
            )
            if n:
                raise AdoptRefused(
                    f"{n} analysis_results row(s) have a {col.name} longer than {width}"
                    " characters, which the new schema does not allow; shorten them, then adopt"
                )

    async def _move(self, where: str, reason: str, *args: Any) -> None:
        """Move the analyses `where` selects (a query of (id, kept_id)) aside, whole."""
        rows = await self.conn.fetch(
            f"""WITH pick AS ({where}),
                moved AS (DELETE FROM analysis_results a USING pick
                          WHERE a.id = pick.id RETURNING a.*, pick.kept_id AS "__kept")
                INSERT INTO {DUPLICATES}
                    (id, track_id, analyzer_type, model_version, reason, kept_id, "row")
                SELECT id, track_id, analyzer_type, model_version, $1, "__kept",
                       to_jsonb(moved) - '__kept'
                FROM moved
                RETURNING coalesce(analyzer_type, '{UNKNOWN_ANALYZER}') AS a""",
            reason,
            *args,
        )
        for analyzer, n in Counter(r["a"] for r in rows).items():
            action = (
                f"moved to {DUPLICATES} (the newest row per track, analyzer and version stays)"
                if reason == "duplicate"
                else f"moved to {DUPLICATES} (no such track)"
            )
            self.report.count("analysis_results", f"{reason} analyses: {analyzer}", n, action)

    async def move_orphans(self) -> None:
        async with self.conn.transaction():
            await self._lock()
            await self._move(
                "SELECT a.id, NULL::integer AS kept_id FROM analysis_results a"
                " WHERE a.track_id IS NULL"
                " OR NOT EXISTS (SELECT 1 FROM tracks t WHERE t.id = a.track_id)",
                "orphan",
            )

    async def move_duplicates(self, lo: int | None = None, hi: int | None = None) -> None:
        where = "" if lo is None else "WHERE track_id >= $2 AND track_id < $3"
        args = () if lo is None else (lo, hi)
        await self._move(
            f"""SELECT id, kept_id FROM (
                    SELECT id, first_value(id) OVER w AS kept_id, row_number() OVER w AS rn
                    FROM analysis_results {where}
                    WINDOW w AS (PARTITION BY track_id,
                                 coalesce(analyzer_type, '{UNKNOWN_ANALYZER}'),
                                 coalesce(model_version, '{LEGACY_VERSION}')
                                 ORDER BY created_at DESC NULLS LAST, id DESC)) r
                WHERE rn > 1""",
            "duplicate",
            *args,
        )

    async def normalise(self, lo: int | None = None, hi: int | None = None) -> None:
        fixes = value_fixes(
            self.legacy["analysis_results"].columns, self.target["analysis_results"].columns
        )
        span = "true" if lo is None else "id >= $1 AND id < $2"
        rows = await self.conn.fetch(fix_sql(fixes, span), *(() if lo is None else (lo, hi)))
        cols = list(fixes)
        for r in rows:
            column = cols[r["col"]]
            action = next(f.action for f in fixes[column] if f.kind == r["kind"])
            self.report.count("analysis_results", f"{column}: {r['kind']}", r["n"], action)

    async def move_genius_ids(self) -> None:
        if "tracks_genius_id_key" in self.legacy["tracks"].constraints:
            return
        n = await self.conn.fetchval(
            f"""WITH ranked AS (
                    SELECT id, genius_id, first_value(id) OVER (PARTITION BY genius_id ORDER BY id) AS kept_by
                    FROM tracks WHERE genius_id IS NOT NULL),
                moved AS (
                    INSERT INTO {GENIUS_IDS} (track_id, genius_id, kept_by)
                    SELECT id, genius_id, kept_by FROM ranked WHERE id <> kept_by
                    ON CONFLICT (track_id) DO NOTHING RETURNING track_id),
                upd AS (UPDATE tracks t SET genius_id = NULL FROM moved WHERE t.id = moved.track_id
                        RETURNING 1)
                SELECT count(*) FROM upd"""
        )
        self.report.count(
            "tracks",
            "genius_id shared with an earlier track",
            n,
            f"the first track keeps it; the others' moved to {GENIUS_IDS}",
        )

    async def finalize(self) -> None:
        await _refuse_active_runs(self.conn)
        await self._describe_legacy()
        await self.move_orphans()
        await self.move_duplicates()
        await self.normalise()
        await self.move_genius_ids()
        for t in TABLES:
            await self._columns(t)
        for t in TABLES:
            await self._constraints(t)
            await self._indexes(t)
        await self.conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        baseline = migrations.available()[0]
        await self.conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            baseline.version,
            baseline.name,
        )
        self.report.migrations.append(f"{baseline.version:04d}_{baseline.name} (adopted)")

    async def _columns(self, t: str) -> None:
        """NULLs filled in one UPDATE, then every type, default and NOT NULL change in one
        ALTER TABLE: Postgres rewrites (and re-indexes) the table once, not per column."""
        legacy = self.legacy[t].columns
        cols = [c for c in self.target[t].columns.values() if c.name != "id"]  # its serial stays
        tightened = [c for c in cols if c.not_null and not legacy[c.name].not_null]
        if tightened:
            nulls = await self.conn.fetchrow(
                "SELECT "
                + ", ".join(f"count(*) FILTER (WHERE {_q(c.name)} IS NULL)" for c in tightened)
                + f" FROM {t}"
            )
            sets = []
            for c, n in zip(tightened, nulls, strict=True):
                if not n:
                    continue
                fill = FILL.get((t, c.name), c.default)
                if fill is None:
                    raise AdoptRefused(f"{t}.{c.name} has {n} NULL(s) and no value to fill them")
                # Still the legacy type here (the types change below, in one rewrite).
                sets.append(
                    f"{_q(c.name)} = coalesce({_q(c.name)}, ({fill})::{legacy[c.name].type})"
                )
                self.report.count(t, f"{c.name}: NULL", n, f"set to {fill}")
            if sets:
                where = " OR ".join(f"{_q(c.name)} IS NULL" for c in tightened)
                await self.conn.execute(f"UPDATE {t} SET {', '.join(sets)} WHERE {where}")
        clauses = []
        for col in cols:
            old = legacy[col.name]
            default = old.default
            if old.type != col.type:
                if default is not None:
                    clauses.append(f"ALTER COLUMN {_q(col.name)} DROP DEFAULT")
                    default = None
                # timestamp -> timestamptz by the plain cast reads the value in the
                # session's TimeZone, what NOW() wrote it in (and with UTC, Postgres
                # skips the rewrite).
                using = f"{_q(col.name)}::{col.type}"
                note = (
                    " (read in the server's time zone)" if "without time zone" in old.type else ""
                )
                clauses.append(f"ALTER COLUMN {_q(col.name)} TYPE {col.type} USING {using}")
                self.report.schema.append(f"{t}.{col.name}: {old.type} -> {col.type}{note}")
            if col.default != default:
                clause = "DROP DEFAULT" if col.default is None else f"SET DEFAULT {col.default}"
                clauses.append(f"ALTER COLUMN {_q(col.name)} {clause}")
            if col in tightened:
                clauses.append(f"ALTER COLUMN {_q(col.name)} SET NOT NULL")
                self.report.schema.append(f"{t}.{col.name}: NOT NULL")
        if clauses:
            await self.conn.execute(f"ALTER TABLE {t} {', '.join(clauses)}")
        extra = [c for c in legacy if c not in self.target[t].columns]
        if extra:
            self.report.kept_legacy.append(f"{t} columns {', '.join(extra)} (kept as they are)")

    async def _constraints(self, t: str) -> None:
        have = await describe(self.conn, await self.conn.fetchval("SELECT current_schema()"), t)
        assert have is not None
        drops: list[str] = []
        adds: list[str] = []
        for con in self.target[t].constraints.values():
            same = [c for c in have.constraints.values() if c.definition == con.definition
                    and c.kind == con.kind]  # fmt: skip
            if same:
                if same[0].name != con.name:
                    await self.conn.execute(
                        f"ALTER TABLE {t} RENAME CONSTRAINT {_q(same[0].name)} TO {_q(con.name)}"
                    )
                continue
            # Replaced: a constraint of that name, or of the same kind on the same columns
            # (the platform's foreign key without ON DELETE CASCADE).
            for old in have.constraints.values():
                if old.name == con.name or (old.kind == con.kind and old.columns == con.columns):
                    drops.append(f"DROP CONSTRAINT {_q(old.name)}")
                    self.report.schema.append(
                        f"{t}: constraint {old.name} ({old.definition}) dropped"
                    )
            adds.append(f"ADD CONSTRAINT {_q(con.name)} {con.definition}")
            self.report.schema.append(f"{t}: constraint {con.name} {con.definition}")
        if drops or adds:  # one statement: the checks share one scan of the table
            await self.conn.execute(f"ALTER TABLE {t} {', '.join(drops + adds)}")
        kept = [c.name for c in have.constraints.values()
                if c.name not in self.target[t].constraints
                and not any(c.kind == x.kind and c.columns == x.columns
                            for x in self.target[t].constraints.values())]  # fmt: skip
        if kept:
            self.report.kept_legacy.append(f"{t} constraints {', '.join(kept)}")

    async def _indexes(self, t: str) -> None:
        have = self.legacy[t].indexes
        for idx in self.target[t].indexes.values():
            if idx.name in have and have[idx.name].method_and_columns == idx.method_and_columns:
                continue
            same = [i for i in have.values() if i.method_and_columns == idx.method_and_columns]
            if same and idx.name not in have:
                await self.conn.execute(f"ALTER INDEX {_q(same[0].name)} RENAME TO {_q(idx.name)}")
                self.report.schema.append(f"{t}: index {same[0].name} renamed {idx.name}")
                continue
            if idx.name in have:
                await self.conn.execute(f"DROP INDEX {_q(idx.name)}")
            await self.conn.execute(
                f"CREATE INDEX {_q(idx.name)} ON {t} USING {idx.method_and_columns}"
            )
            self.report.schema.append(f"{t}: index {idx.name} USING {idx.method_and_columns}")
        targets = {i.method_and_columns for i in self.target[t].indexes.values()}
        kept = [i.name for i in have.values()
                if i.name not in self.target[t].indexes and i.method_and_columns not in targets]  # fmt: skip
        if kept:
            self.report.kept_legacy.append(f"{t} indexes {', '.join(kept)}")


async def adopt(
    conn: asyncpg.Connection,
    *,
    dry_run: bool = False,
    batch_size: int = 20_000,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Adopt the database behind `conn` (see the module docstring); returns the report.

    A database already at this schema, or a new one, is only migrated: adopting twice
    is a no-op. Raises AdoptRefused, having changed nothing, while runs are active."""
    t0 = time.perf_counter()
    state = await layout(conn)
    report = Report(state="legacy" if state == "legacy" else state, dry_run=dry_run)
    if state != "legacy":
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", migrations.LOCK_KEY)
            await _refuse_active_runs(conn)
        if not dry_run:
            report.migrations = [
                f"{m.version:04d}_{m.name}" for m in await migrations.migrate(conn)
            ]
        else:
            done = await migrations.applied(conn)
            report.migrations = [
                f"{m.version:04d}_{m.name}" for m in migrations.available() if m.version not in done
            ]
        report.seconds = time.perf_counter() - t0
        return report
    report.before = await counts(conn)
    adoption = Adoption(conn, batch_size=batch_size, report=report)
    if dry_run:
        try:
            async with conn.transaction():
                await adoption.run(on_step)
                report.after = await counts(conn)
                raise _DryRun
        except _DryRun:
            pass
    else:
        await adoption.run(on_step)
        report.after = await counts(conn)
        report.state = "adopted"
        report.seconds = time.perf_counter() - t0
        await conn.execute(
            "INSERT INTO schema_adoptions (report) VALUES ($1::jsonb)", json.dumps(report.to_dict())
        )
    report.seconds = time.perf_counter() - t0
    return report
