"""Postgres pools for the operator, one per database URL (runs may name their own Secret)."""

from __future__ import annotations

import asyncio

import asyncpg

from analyzer_runtime.db.connect import create_pool
from analyzer_runtime.db.migrate import migrate

_pools: dict[str, asyncpg.Pool] = {}
_lock = asyncio.Lock()


async def pool(url: str) -> asyncpg.Pool:
    """A pool for `url`, migrated on first use (the operator owns the schema)."""
    async with _lock:
        if url not in _pools:
            p = await create_pool(url, min_size=1, max_size=5)
            async with p.acquire() as conn:
                await migrate(conn)
            _pools[url] = p
        return _pools[url]


async def close_all() -> None:
    async with _lock:
        for p in _pools.values():
            await p.close()
        _pools.clear()
