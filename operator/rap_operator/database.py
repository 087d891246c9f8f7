"""Postgres pools for the operator, one per database URL (runs may name their own Secret).

One lock per URL, taken only to create that URL's pool: a tenant's unreachable
database (a short connect timeout) never holds up another's status. Pools unused for
`IDLE_SECONDS` are closed. The operator migrates only its own database
(`$DATABASE_URL` of the operator, the chart's); any other must already be migrated.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import asyncpg

from analyzer_runtime.db.budget import ServerLimits, read_limits
from analyzer_runtime.db.connect import DatabaseUnavailable, create_pool, host_of
from analyzer_runtime.db.migrate import ADOPT_HINT, applied, available, is_legacy, migrate

CONNECT_TIMEOUT = float(os.environ.get("RAP_DB_CONNECT_TIMEOUT", "5"))
IDLE_SECONDS = 600.0

_pools: dict[str, asyncpg.Pool] = {}
_used: dict[str, float] = {}
_limits: dict[str, ServerLimits] = {}
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


class NotMigrated(Exception):
    """The run's database lacks migrations; the message says which command applies them."""


def own_database_url() -> str | None:
    return os.environ.get("DATABASE_URL") or None


async def pool(url: str) -> asyncpg.Pool:
    """A pool for `url`; raises DatabaseUnavailable (time may fix it) or NotMigrated."""
    _used[url] = time.monotonic()
    if (p := _pools.get(url)) is not None:  # the common path: no lock
        return p
    async with _locks[url]:
        if (p := _pools.get(url)) is not None:
            return p
        p = await create_pool(url, min_size=0, max_size=5, timeout=CONNECT_TIMEOUT)
        try:
            async with p.acquire() as conn:
                await _check_schema(conn, url)
                # max_connections changes only with a server restart, which a pool
                # outlives only until it is evicted as idle.
                _limits[url] = await read_limits(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            await p.close()
            raise DatabaseUnavailable(f"database at {host_of(url)}: {exc}") from None
        except NotMigrated:
            await p.close()
            raise
        _pools[url] = p
        return p


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
        await migrate(conn)
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
            await p.close()
    return len(stale)


async def close_all() -> None:
    pools = list(_pools.values())
    _pools.clear()
    _used.clear()
    _limits.clear()
    for p in pools:
        await p.close()
