"""Ordered SQL migrations (analyzer_runtime/ledger/migrations/NNNN_name.sql), recorded in the database."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import asyncpg

# Serialises concurrent `migrate` calls (several pods or CLI processes starting at once)
# and `db adopt`'s steps.
LOCK_KEY = 0x7261705F6D6967  # "rap_mig"

ADOPT_HINT = (
    "this database has the original platform's tables (tracks, analysis_results) but not"
    " this project's schema: adopt it in place with `rap-analyzer db adopt` (see"
    " `rap-analyzer db adopt --dry-run` for what it will do; nothing is deleted)"
)


class LegacySchema(Exception):
    """The database has the original platform's tables, not adopted yet (`db adopt`)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for entry in resources.files("analyzer_runtime.ledger.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def applied(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def is_legacy(conn: asyncpg.Connection) -> bool:
    """The platform's tables are there, but the baseline migration is not recorded."""
    if 1 in await applied(conn):
        return False
    return bool(
        await conn.fetchval(
            "SELECT to_regclass('tracks') IS NOT NULL OR to_regclass('analysis_results') IS NOT NULL"
        )
    )


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every migration not yet recorded, each in its own transaction; return those applied.

    Each transaction takes a transaction-scoped advisory lock first and then reads what
    is applied, so concurrent migrators (several pods or CLI processes starting at once)
    apply each migration once. Transaction-scoped, not a session lock around the loop:
    through PgBouncer in transaction pooling consecutive statements may run on different
    server connections, and a session lock would be taken on one and released (or
    leaked) on another; a transaction stays on one server connection.

    Raises LegacySchema, changing nothing, on a database in the original platform's
    schema: its tables are adopted by `db adopt`, never created over."""
    new: list[Migration] = []
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            if await is_legacy(conn):
                raise LegacySchema(ADOPT_HINT)
            # Only when missing: the runtime role (`db gc`, `seed`) checks that the
            # schema is current through here, and has no CREATE on the schema, which
            # even CREATE TABLE IF NOT EXISTS of an existing table needs.
            if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                await conn.execute(
                    """CREATE TABLE IF NOT EXISTS schema_migrations (
                           version    integer PRIMARY KEY,
                           name       text NOT NULL,
                           applied_at timestamptz NOT NULL DEFAULT now())"""
                )
            done = await applied(conn)
            pending = [m for m in available() if m.version not in done]
            if not pending:
                return new
            m = pending[0]
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
            )
        new.append(m)
