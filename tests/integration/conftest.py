"""A real PostgreSQL 16 + pgvector (pgserver) for the whole session; a fresh,
migrated database per test, cloned from a template (a clone takes ~0.1 s)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from analyzer_runtime.db import embedded
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ledger.migrate import migrate

if TYPE_CHECKING:
    from pgserver import PostgresServer

TEMPLATE = "rap_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if os.environ.get("DATABASE_URL"):
        pytest.fail("integration tests create databases on their own server; unset DATABASE_URL")
    # Not under pytest's tmp dir: other pytest sessions on the machine prune those.
    home = Path(tempfile.mkdtemp(prefix="rap-pg-test-"))
    server = embedded.start(home / "pgdata")
    admin = server.get_uri()

    async def make_template() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        await conn.close()
        conn = await asyncpg.connect(server.get_uri(TEMPLATE))
        await migrate(conn)
        await conn.close()

    asyncio.run(make_template())
    yield server
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def new_database(server: PostgresServer, prefix: str, template: str | None = TEMPLATE) -> str:
    """URL of a new database (a copy of `template`: every migration applied; None: empty)."""
    name = f"{prefix}{os.getpid()}_{next(_counter)}"

    async def create() -> None:
        conn = await asyncpg.connect(server.get_uri())
        await conn.execute(
            f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")
        )
        await conn.close()

    asyncio.run(create())
    return server.get_uri(name)


@pytest.fixture
def db_url(pg_server: PostgresServer) -> str:
    """URL of a new database with every migration applied."""
    return new_database(pg_server, "t", TEMPLATE)


@pytest.fixture
def make_empty_db(pg_server: PostgresServer) -> Callable[[], str]:
    """Creates databases with no migration applied (for a legacy schema); returns URLs."""
    return lambda: new_database(pg_server, "e", None)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, max_size=4)
    yield p
    await p.close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


async def insert_tracks(
    pool: asyncpg.Pool, rows: list[tuple[str, str, str | None]], *, start_genius: int = 1
) -> list[int]:
    """Insert (artist, title, lyrics) rows; returns their ids in order."""
    async with pool.acquire() as conn:
        ids = []
        for i, (artist, title, lyrics) in enumerate(rows):
            words = len(lyrics.split()) if lyrics else 0
            ids.append(
                await conn.fetchval(
                    """INSERT INTO tracks (title, artist, lyrics, genius_id, word_count)
                       VALUES ($1, $2, $3, $4, $5) RETURNING id""",
                    title,
                    artist,
                    lyrics,
                    start_genius + i,
                    words,
                )
            )
        return ids
