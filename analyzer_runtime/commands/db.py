"""`rap-analyzer db ...`: schema migrations, the embedded server, ledger compaction."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import (
    EXIT_INVALID,
    _fail,
    _migrate,
    _with_db,
    out,
)
from analyzer_runtime.ledger.connect import pool_for, redact

db_app = typer.Typer(no_args_is_help=True, help="Database: migrations and the embedded server.")


@db_app.command("migrate")
def db_migrate(
    wait: Annotated[
        float,
        typer.Option(
            help="seconds to keep retrying while the database is unreachable or its name"
            " does not resolve yet (a Job started next to a new Postgres)"
        ),
    ] = 0.0,
) -> None:
    """Apply the schema migrations that are not yet recorded."""

    async def go(url: str) -> list[Any]:
        if wait > 0:
            # Only the reachability is retried; the migrations run on a pool as usual.
            conn = await _connect_retrying(url, wait)
            await conn.close()
        return await _migrate(url)

    applied = _with_db(go)
    if applied:
        for m in applied:
            out.print(f"applied {m.version:04d}_{m.name}")
    else:
        out.print("schema is up to date")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded Postgres and leave it running; prints its URL."""
    from analyzer_runtime.db import embedded

    print(embedded.start(keep_running=True).get_uri())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres started by `db start`."""
    from analyzer_runtime.db import embedded

    out.print("stopped" if embedded.stop() else "not running")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (the embedded server's unless DATABASE_URL is set)."""
    from analyzer_runtime.db import embedded

    print(os.environ.get("DATABASE_URL") or embedded.start(keep_running=True).get_uri())


@db_app.command("gc")
def db_gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="retention: runs finished longer ago than this (30d, 12h, 90m)"
        ),
    ] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count only; delete nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was done as JSON")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="items deleted per transaction")] = 10_000,
) -> None:
    """Compact the run ledger: finished runs older than --older-than keep only their
    failed items (with their errors). Status and results are unchanged; unfinished runs
    are never touched."""
    import json

    from analyzer_runtime.ledger import gc as ledger_gc

    try:
        retention = ledger_gc.parse_duration(older_than)
    except ValueError as exc:
        raise _fail(f"--older-than: {exc}", EXIT_INVALID) from None

    async def go(url: str) -> ledger_gc.GcReport:
        await _migrate(url)
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await ledger_gc.gc(conn, retention, dry_run=dry_run, batch_size=batch_size)

    report = _with_db(go)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    for r in report.runs:
        out.print(
            f"{r.kind} {r.name} ({r.uid}, {r.state} {r.finished_at:%Y-%m-%d %H:%M}):"
            f" {r.removed} item(s) {'to remove' if dry_run else 'removed'},"
            f" {r.kept} failed kept",
            highlight=False,
        )
    out.print(report.summary(), highlight=False)


@db_app.command("adopt")
def db_adopt(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="print the plan with counts; change nothing (rolled back)"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    batch_size: Annotated[
        int, typer.Option(min=100, help="tracks (duplicates) or analyses (values) per transaction")
    ] = 20_000,
) -> None:
    """Adopt a database in the original platform's schema in place: nothing is deleted
    (duplicate analyses and values the new rules refuse are moved aside or kept in
    analysis_data), then the schema is this project's. Resumable; a second adopt is a
    no-op. Refused while runs are active."""
    import json

    from analyzer_runtime.db import adopt
    from analyzer_runtime.db.adopt_report import Report, render

    async def go(url: str) -> Report:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await adopt.adopt(conn, dry_run=dry_run, batch_size=batch_size)

    try:
        report = _with_db(go)
    except adopt.AdoptRefused as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    render(report, out)


@db_app.command("roles")
def db_roles(
    owner: Annotated[
        str | None, typer.Option(help="owner role: owns the schema, applies migrations")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="runtime role: the operator's, shard pods' and gc's DML")
    ] = None,
    search: Annotated[str | None, typer.Option(help="search role: read-only")] = None,
    migrate: Annotated[
        bool,
        typer.Option(help="apply the migrations as the owner before granting on the tables"),
    ] = True,
    wait: Annotated[
        float, typer.Option(help="seconds to keep retrying while the database is unreachable")
    ] = 0.0,
    skip_unknown_host: Annotated[
        bool,
        typer.Option(
            help="exit 0 without a change when the database's host name does not resolve"
            " (the chart's hook before a first install's Postgres Service exists)"
        ),
    ] = False,
) -> None:
    """Create (or correct) the least-privilege roles, as a superuser (DATABASE_URL).
    Idempotent. Passwords from RAP_DB_OWNER_PASSWORD, RAP_DB_RUNTIME_PASSWORD and
    RAP_DB_SEARCH_PASSWORD (a role whose variable is unset keeps its password); names
    also from RAP_DB_OWNER_ROLE, RAP_DB_RUNTIME_ROLE, RAP_DB_SEARCH_ROLE."""
    import dataclasses

    from analyzer_runtime.db import roles as db_roles_mod

    try:
        roles = db_roles_mod.Roles.from_env()
        roles = dataclasses.replace(
            roles,
            owner=owner or roles.owner,
            runtime=runtime or roles.runtime,
            search=search or roles.search,
        )
    except db_roles_mod.RolesError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None

    async def go(url: str) -> db_roles_mod.Report | None:
        try:
            conn = await _connect_retrying(url, wait, give_up_unresolved=skip_unknown_host)
        except OSError as exc:
            if skip_unknown_host and isinstance(exc, socket.gaierror):
                return None
            raise
        try:
            return await db_roles_mod.apply(
                conn, roles, migrate=migrate, log=lambda m: out.print(m, highlight=False)
            )
        finally:
            await conn.close()

    try:
        report = _with_db(go)
    except db_roles_mod.RolesError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if report is None:
        out.print(
            "the database's host does not resolve yet (a first install): nothing to do;"
            " the roles are created once it exists",
            highlight=False,
        )
        return
    for m in report.migrated:
        out.print(f"applied {m} as {roles.owner}", highlight=False)
    if report.not_migrated:
        out.print(f"migrations not applied: {report.not_migrated}", highlight=False)
    out.print(
        f"roles ready: owner {roles.owner}, runtime {roles.runtime}, search {roles.search}",
        highlight=False,
    )


async def _connect_retrying(url: str, wait: float, *, give_up_unresolved: bool = False) -> Any:
    """A direct connection to `url`, retried for `wait` seconds while the server is
    unreachable or still starting (a hook that runs next to a new Postgres); a host
    name that does not resolve is raised at once with `give_up_unresolved`."""
    import asyncio
    import time

    import asyncpg

    from analyzer_runtime.ledger.connect import DatabaseUnavailable, host_of, is_connection_error

    deadline = time.monotonic() + wait
    while True:
        try:
            return await asyncpg.connect(url, timeout=10)
        except socket.gaierror:
            if give_up_unresolved:
                raise
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"cannot connect to the database at {host_of(url)}: the name does not resolve"
                ) from None
            await asyncio.sleep(2)
            continue
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"cannot connect to the database at {host_of(url)}: {redact(str(exc))}"
                ) from None
            await asyncio.sleep(2)
