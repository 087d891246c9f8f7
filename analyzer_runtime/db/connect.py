"""Resolve the database URL and open pools with pgvector's codec registered."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

DATABASE_URL_ENV = "DATABASE_URL"


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message never contains credentials."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def database_url(*, keep_running: bool = False) -> Iterator[str]:
    """`$DATABASE_URL`, or the embedded server's URL for as long as the block runs."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        yield url
        return
    from analyzer_runtime.db import embedded

    server = embedded.start(keep_running=keep_running)
    yield server.get_uri()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # The vector type exists only after migration 0001; before that there is nothing to register.
    with contextlib.suppress(ValueError, asyncpg.UndefinedObjectError):
        await register_vector(conn)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4, **kw: Any) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, **kw
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {redact(url)}: {exc}") from None
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def pool_for(url: str, **kw: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(url, **kw)
    try:
        yield pool
    finally:
        await pool.close()
