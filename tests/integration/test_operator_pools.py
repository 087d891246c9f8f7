"""The operator's pools: one per URL, idle ones closed, and only its own database
migrated (a tenant's must be migrated already: the run says which command)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest
from rap_operator import database

if TYPE_CHECKING:
    from pgserver import PostgresServer


async def test_a_tenant_database_is_checked_not_migrated(
    db_url: str, pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    conn = await asyncpg.connect(pg_server.get_uri())
    await conn.execute("CREATE DATABASE tenant_blank")
    await conn.close()
    blank = pg_server.get_uri("tenant_blank")
    try:
        with pytest.raises(database.NotMigrated, match="rap-analyzer db migrate"):
            await database.pool(blank)
        # A migrated tenant database is used as it is; the same pool comes back.
        p = await database.pool(db_url)
        assert await database.pool(db_url) is p
        # Unused for long enough: closed.
        assert await database.evict_idle(now=1e12) == 1
        assert p.is_closing()
        # The operator's own database is migrated on first use.
        monkeypatch.setenv("DATABASE_URL", blank)
        own = await database.pool(blank)
        async with own.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM schema_migrations") >= 5
    finally:
        await database.close_all()
