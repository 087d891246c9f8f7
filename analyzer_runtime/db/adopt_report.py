"""`db adopt`'s report: what changed, the counts before and after (per table and
analyzer), and how a person reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from analyzer_runtime.db.adopt_fixes import UNKNOWN_ANALYZER

DUPLICATES = "analysis_results_legacy_duplicates"
GENIUS_IDS = "tracks_legacy_genius_ids"


@dataclass
class Change:
    table: str
    kind: str
    rows: int
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "kind": self.kind, "rows": self.rows, "action": self.action}


@dataclass
class Report:
    state: str  # legacy | adopted | empty (fresh database: migrated) | current
    dry_run: bool = False
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    schema: list[str] = field(default_factory=list)  # DDL in words: columns, types, ...
    kept_legacy: list[str] = field(default_factory=list)  # legacy constraints/indexes kept
    migrations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, table: str, kind: str, rows: int, action: str) -> None:
        if rows <= 0:
            return
        for c in self.changes:
            if (c.table, c.kind, c.action) == (table, kind, action):
                c.rows += rows
                return
        self.changes.append(Change(table, kind, rows, action))

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "dry_run": self.dry_run,
            "before": self.before,
            "after": self.after,
            "changes": [c.to_dict() for c in self.changes],
            "schema": self.schema,
            "kept_legacy": self.kept_legacy,
            "migrations": self.migrations,
            "seconds": round(self.seconds, 2),
        }


async def has_table(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def counts(conn: asyncpg.Connection) -> dict[str, Any]:
    version = (
        "coalesce(model_version, 'legacy')"
        if await column_exists(conn, "analysis_results", "model_version")
        else "'legacy'::text"
    )
    counts: dict[str, Any] = {
        "tracks": await conn.fetchval("SELECT count(*) FROM tracks"),
        "analysis_results": 0,
        "by_analyzer": {},
    }
    if not await has_table(conn, "analysis_results"):
        return counts
    rows = await conn.fetch(
        f"""SELECT coalesce(analyzer_type, '{UNKNOWN_ANALYZER}') AS a, count(*) AS n,
                   count(DISTINCT (track_id, {version})) AS keys
            FROM analysis_results GROUP BY 1 ORDER BY 1"""
    )
    counts["analysis_results"] = sum(r["n"] for r in rows)
    counts["by_analyzer"] = {r["a"]: {"rows": r["n"], "distinct": r["keys"]} for r in rows}
    if await has_table(conn, DUPLICATES):
        moved = await conn.fetch(
            f"SELECT coalesce(analyzer_type, '{UNKNOWN_ANALYZER}') AS a, reason, count(*) AS n"
            f" FROM {DUPLICATES} GROUP BY 1, 2"
        )
        for r in moved:
            entry = counts["by_analyzer"].setdefault(r["a"], {"rows": 0, "distinct": 0})
            entry[f"moved_{r['reason']}"] = r["n"]
        counts[DUPLICATES] = sum(r["n"] for r in moved)
    if await has_table(conn, GENIUS_IDS):
        counts[GENIUS_IDS] = await conn.fetchval(f"SELECT count(*) FROM {GENIUS_IDS}")
    return counts


async def column_exists(conn: asyncpg.Connection, table: str, column: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)",
            table,
            column,
        )
    )


def render(report: Report, console: Console) -> None:
    if report.state in ("current", "empty"):
        what = (
            "already at this project's schema: nothing to adopt"
            if report.state == "current"
            else "no tracks or analysis_results here: nothing to adopt"
        )
        migrations = ", ".join(report.migrations) or "none pending"
        console.print(
            f"{what}; migrations {'to apply' if report.dry_run else 'applied'}: {migrations}"
        )
        return
    verb = "would be" if report.dry_run else "were"
    console.print(
        f"[bold]{'Plan (dry run, nothing changed)' if report.dry_run else 'Adopted'}[/]"
        f" in {report.seconds:.1f}s",
        highlight=False,
    )
    if report.changes:
        table = Table("table", "rows", "kind", "what happens", title=f"Rows that {verb} changed")
        for c in report.changes:
            table.add_row(c.table, f"{c.rows:,}", c.kind, c.action)
        console.print(table)
    if report.schema:
        console.print(f"[bold]Schema changes that {verb} made[/]")
        for line in report.schema:
            console.print(f"  {line}", highlight=False)
    for line in report.kept_legacy:
        console.print(f"kept: {line}", highlight=False)
    if report.migrations:
        console.print(f"migrations: {', '.join(report.migrations)}", highlight=False)
    counts = Table("analyzer_type", "before", "after", "moved aside", title="Analyses per analyzer")
    after = report.after.get("by_analyzer", {})
    for name, b in sorted(report.before.get("by_analyzer", {}).items()):
        a = after.get(name, {})
        moved = a.get("moved_duplicate", 0) + a.get("moved_orphan", 0)
        counts.add_row(name, f"{b['rows']:,}", f"{a.get('rows', 0):,}", f"{moved:,}")
    console.print(counts)
    console.print(
        f"tracks: {report.before.get('tracks', 0):,} before, {report.after.get('tracks', 0):,} after",
        highlight=False,
    )
