"""A database of synthetic lyrics on an embedded Postgres, for tests and benchmarks:
created, migrated, seeded."""

from __future__ import annotations

from typing import Any

import asyncpg

from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.migrate import migrate
from analyzer_runtime.seed import seed


async def seeded_database(server: Any, tracks: int, database: str | None = None) -> str:
    """The URL of a database on `server` (a pgserver handle) migrated and seeded with
    `tracks` tracks: `database`, created first, or else the server's default one."""
    if database is not None:
        conn = await asyncpg.connect(server.get_uri())
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
    url = str(server.get_uri(database) if database is not None else server.get_uri())
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url)
    try:
        await seed(pool, tracks)
    finally:
        await pool.close()
    return url
