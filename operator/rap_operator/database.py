"""Postgres pools for the operator, one per database URL (runs may name their own Secret).

One lock per URL, taken only to create that URL's pool: a tenant's unreachable
database (a short connect timeout) never holds up another's status. Pools unused for
`IDLE_SECONDS` are closed. The operator migrates only its own database
(`$DATABASE_URL` of the operator, the chart's); any other must already be migrated.

Every database call is bounded in time, so that a database that stops answering (a
frozen or partitioned server: TCP still accepts, nothing comes back) turns into
DatabaseUnavailable within seconds instead of hanging a run's loop: connecting
(CONNECT_TIMEOUT), taking a connection from a pool (`acquire`), and each statement
(COMMAND_TIMEOUT; asyncpg bounds its cancel request by the same time). Planning and
migrations, whose statements grow with the data, use `long_connection`
(LONG_COMMAND_TIMEOUT) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from analyzer_runtime.ledger.budget import ServerLimits, read_limits
from analyzer_runtime.ledger.connect import (
    DatabaseUnavailable,
    create_pool,
    host_of,
    is_connection_error,
)
from analyzer_runtime.ledger.migrate import ADOPT_HINT, applied, available, is_legacy, migrate

CONNECT_TIMEOUT = float(os.environ.get("RAP_DB_CONNECT_TIMEOUT", "5"))
# One status refresh reads O(shards) rows: milliseconds when the server answers.
COMMAND_TIMEOUT = float(os.environ.get("RAP_DB_COMMAND_TIMEOUT", "5"))
# Planning (one INSERT per selected track) and migrations.
LONG_COMMAND_TIMEOUT = float(os.environ.get("RAP_DB_LONG_COMMAND_TIMEOUT", "300"))
IDLE_SECONDS = 600.0

_pools: dict[str, asyncpg.Pool] = {}
_used: dict[str, float] = {}
_limits: dict[str, ServerLimits] = {}
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


class NotMigrated(Exception):
    """The run's database lacks migrations; the message says which command applies them."""


# The URL migrations of the operator's own database use: the schema owner's (the
# chart's db-roles Secret), while DATABASE_URL is the runtime role's (DML only).
# Unset: DATABASE_URL migrates too, as before the roles existed.
MIGRATION_URL_ENV = "RAP_MIGRATION_DATABASE_URL"
ROLES_HINT = (
    "if this is a login of the chart's database roles, they may not exist yet: the"
    " chart's db-roles hook creates them (`rap-analyzer db roles` as a superuser"
    " otherwise); retrying"
)


def own_database_url() -> str | None:
    return os.environ.get("DATABASE_URL") or None


def migration_url(url: str) -> str:
    """The URL to migrate the database at `url` with (the operator's own only)."""
    return os.environ.get(MIGRATION_URL_ENV) or url


def _login_refused(exc: BaseException) -> bool:
    # 28000 invalid_authorization_specification (no such role), 28P01 wrong password,
    # 42501 insufficient_privilege (a role without its grants yet, e.g. the owner
    # without CREATE on the schema).
    return getattr(exc, "sqlstate", None) in ("28000", "28P01", "42501")


async def pool(url: str) -> asyncpg.Pool:
    """A pool for `url`; raises DatabaseUnavailable (time may fix it) or NotMigrated."""
    _used[url] = time.monotonic()
    if (p := _pools.get(url)) is not None:  # the common path: no lock
        return p
    async with _locks[url]:
        if (p := _pools.get(url)) is not None:
            return p
        # vectors=False: the operator reads no vector column, and its image has no
        # pgvector (nor NumPy, which pgvector needs).
        p = await create_pool(
            url,
            min_size=0,
            max_size=5,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            vectors=False,
        )
        try:
            async with acquire(p) as conn:
                await _check_schema(conn, url)
                # max_connections changes only with a server restart, which a pool
                # outlives only until it is evicted as idle.
                _limits[url] = await read_limits(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            await close_pool(p)
            hint = f" ({ROLES_HINT})" if _login_refused(exc) else ""
            raise DatabaseUnavailable(f"database at {host_of(url)}: {exc}{hint}") from None
        except NotMigrated:
            await close_pool(p)
            raise
        _pools[url] = p
        return p


def acquire(p: asyncpg.Pool) -> Any:
    """`p.acquire()` that gives up after CONNECT_TIMEOUT (all connections busy on a
    server that stopped answering, or a new one that cannot connect); the release
    at the end of the block is bounded by the same time."""
    return p.acquire(timeout=CONNECT_TIMEOUT)


@contextlib.asynccontextmanager
async def connection(p: asyncpg.Pool, url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of `p` (the pool of `url`) for database work only (nothing else
    in the block): a lost, refused or unanswering server is DatabaseUnavailable."""
    try:
        async with acquire(p) as conn:
            yield conn
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise DatabaseUnavailable(f"database at {host_of(url)}: {exc}") from exc
        raise


@contextlib.asynccontextmanager
async def long_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own for statements that grow with the data (planning,
    migrations), bounded by LONG_COMMAND_TIMEOUT rather than COMMAND_TIMEOUT."""
    p = await create_pool(
        url,
        min_size=0,
        max_size=1,
        timeout=CONNECT_TIMEOUT,
        command_timeout=LONG_COMMAND_TIMEOUT,
        vectors=False,
    )
    try:
        async with connection(p, url) as conn:
            yield conn
    finally:
        await close_pool(p)


async def close_pool(p: asyncpg.Pool) -> None:
    """Close gracefully, or terminate the connections when the server does not answer
    within CONNECT_TIMEOUT."""
    try:
        await asyncio.wait_for(p.close(), CONNECT_TIMEOUT)
    except Exception:  # TimeoutError included
        p.terminate()


def known_urls() -> list[str]:
    """The databases the operator knows: its own (when it has one) and every one with
    an open pool (the databases its runs use, until idle)."""
    own = own_database_url()
    return list(dict.fromkeys([*([own] if own else []), *_pools]))


async def limits(url: str) -> ServerLimits:
    """The connection limits of the server at `url`, read when its pool was opened."""
    if url not in _limits:
        await pool(url)
    return _limits[url]


async def _check_schema(conn: asyncpg.Connection, url: str) -> None:
    # Never adopted behind the admin's back, even the operator's own database: adoption
    # rewrites the users' history tables, a step someone decides on (and dry-runs).
    if await is_legacy(conn):
        raise NotMigrated(
            f"the database at {host_of(url)}: {ADOPT_HINT}; then the run proceeds by itself"
        )
    if url == own_database_url():
        async with long_connection(migration_url(url)) as long:
            await migrate(long)
        return
    missing = sorted({m.version for m in available()} - await applied(conn))
    if missing:
        raise NotMigrated(
            f"the database at {host_of(url)} lacks schema migration(s)"
            f" {', '.join(f'{v:04d}' for v in missing)}; apply them with"
            " `rap-analyzer db migrate` (DATABASE_URL set to that database) or the chart's"
            " migration, then the run proceeds by itself"
        )


async def evict_idle(now: float | None = None) -> int:
    """Close pools unused for IDLE_SECONDS; returns how many were closed."""
    now = time.monotonic() if now is None else now
    stale = [u for u, t in _used.items() if now - t > IDLE_SECONDS and u in _pools]
    for url in stale:
        async with _locks[url]:
            p = _pools.pop(url, None)
            _used.pop(url, None)
            _limits.pop(url, None)
        if p is not None:
            await close_pool(p)
    return len(stale)


async def close_all() -> None:
    pools = list(_pools.values())
    _pools.clear()
    _used.clear()
    _limits.clear()
    for p in pools:
        await close_pool(p)
