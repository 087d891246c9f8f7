"""The database's connection budget: how many connections shard pods may hold at once.

One source of truth for what a shard pod opens (`SHARD_POD_CONNECTIONS`: its pool is
opened at that size and never grows) and for what the server allows, so the
operator can cap a Job's parallelism before Postgres starts refusing connections.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# One for the batch transaction, one for the heartbeat (and the short rate-limit and
# note statements, which queue for the pool rather than open more).
SHARD_POD_CONNECTIONS = 2

# Kept free by default for what is not a shard pod: the operator's pool (5), the
# chart's ledger-gc CronJob and search API, migrations, a person's psql session.
DEFAULT_RESERVED = 10


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int
    superuser_reserved: int
    reserved: int  # PostgreSQL 16's reserved_connections (pg_use_reserved_connections)


@dataclass(frozen=True, slots=True)
class Budget:
    """Connections shard pods may hold, and why (for the condition's message)."""

    connections: int
    explanation: str

    @property
    def pods(self) -> int:
        return max(0, self.connections // SHARD_POD_CONNECTIONS)


async def read_limits(conn: asyncpg.Connection) -> ServerLimits:
    row = await conn.fetchrow(
        """SELECT current_setting('max_connections')::int AS max_connections,
                  current_setting('superuser_reserved_connections')::int AS superuser,
                  coalesce(current_setting('reserved_connections', true), '0')::int AS reserved"""
    )
    assert row is not None
    return ServerLimits(row["max_connections"], row["superuser"], row["reserved"])


def from_server(limits: ServerLimits, reserve: int = DEFAULT_RESERVED) -> Budget:
    """What is left for shard pods once Postgres' own reserved slots and `reserve` go."""
    left = limits.max_connections - limits.superuser_reserved - limits.reserved - reserve
    parts = [f"max_connections {limits.max_connections}"]
    if limits.superuser_reserved:
        parts.append(f"{limits.superuser_reserved} superuser-reserved")
    if limits.reserved:
        parts.append(f"{limits.reserved} reserved")
    if reserve:
        parts.append(f"{reserve} kept for the operator and tools")
    return Budget(max(0, left), " − ".join(parts))


def configured(connections: int) -> Budget:
    """A budget set by the operator's configuration (a pooler in front, say)."""
    return Budget(max(0, connections), "RAP_DB_CONNECTION_BUDGET")
