"""Resolve the database URL and open pools with pgvector's codec registered."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

DATABASE_URL_ENV = "DATABASE_URL"


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message never contains credentials."""


class InvalidDatabaseURL(ValueError):
    """DATABASE_URL (or a Secret's URL) is not a postgres:// URL asyncpg can use."""


# user:password@ in any URL-like text; the password may itself contain ':' or '@'
# when it was not percent-encoded, so everything up to the last '@' goes.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^\s/]*@", re.I)


def redact(text: str) -> str:
    """`text` (a URL, or a message quoting one) with every password replaced, for
    messages and logs; works on malformed URLs too."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def host_of(url: str) -> str:
    """host:port of a URL for one-line messages ("the database at ..."), or the
    socket directory of a unix-socket URL."""
    from urllib.parse import parse_qs, urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparsable URL)"


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` means the database went away or cannot be reached (exit 3),
    as opposed to a bug or a refused statement."""
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | DatabaseUnavailable
        | asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    ) or (isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower())


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


# A killed pod's backend would otherwise keep waiting (on a lock, say) with the
# killed batch's row locks held until it next writes to the dead socket; with this,
# Postgres (14+, Linux) notices the client is gone and rolls back within seconds.
CLIENT_CHECK_SETTINGS = {"client_connection_check_interval": "2000"}


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 4, **kw: Any) -> asyncpg.Pool:
    kw["server_settings"] = {**CLIENT_CHECK_SETTINGS, **(kw.get("server_settings") or {})}
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, **kw
        )
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise InvalidDatabaseURL(
            f"the database URL {redact(url)!r} is not a valid postgres:// URL: {redact(str(exc))}"
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database at {host_of(url)}: {redact(str(exc))}"
        ) from None
    assert pool is not None
    return pool


@contextlib.asynccontextmanager
async def pool_for(url: str, **kw: Any) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(url, **kw)
    try:
        yield pool
    finally:
        await pool.close()
