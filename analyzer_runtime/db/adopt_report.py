"""`db adopt`'s report for a person: the plan (or what was done) and the counts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from analyzer_runtime.db.adopt import Report


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
