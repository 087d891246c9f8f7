"""Resolve the database URL and open pools (with pgvector's codec registered, for the
runtime; the operator's pools go without: vectors=False)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

# The one redaction of URLs and DSNs; importers of this module use it from here too.
from analyzer_runtime.contract.redaction import redact as redact

DATABASE_URL_ENV = "DATABASE_URL"
# How DATABASE_URL's server pools connections: `session` (a PostgreSQL server, or a
# pooler in session mode; the default) or `transaction` (PgBouncer's
# pool_mode=transaction, the chart's `pgbouncer.enabled`).
POOL_MODE_ENV = "DATABASE_POOL_MODE"
POOL_MODES = ("session", "transaction")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message never contains credentials."""


class InvalidDatabaseURL(ValueError):
    """DATABASE_URL (or a Secret's URL) is not a postgres:// URL asyncpg can use."""


class InvalidPoolMode(InvalidDatabaseURL):
    """DATABASE_POOL_MODE is neither `session` nor `transaction`."""


class PoolModeMismatch(DatabaseUnavailable):
    """The server is a pooler in transaction mode (it refused a startup parameter only
    a direct connection accepts) and DATABASE_POOL_MODE does not say so."""


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


async def _register_vector(conn: asyncpg.Connection) -> None:
    # Imported here: pgvector imports NumPy, which the operator image does not have.
    from pgvector.asyncpg import register_vector

    # The vector type exists only after migration 0001; before that there is nothing to register.
    with contextlib.suppress(ValueError, asyncpg.UndefinedObjectError):
        await register_vector(conn)


# A killed pod's backend would otherwise keep waiting (on a lock, say) with the
# killed batch's row locks held until it next writes to the dead socket; with this,
# Postgres (14+, Linux) notices the client is gone and rolls back within seconds.
CLIENT_CHECK_SETTINGS = {"client_connection_check_interval": "2000"}


def pool_mode(env: dict[str, str] | None = None) -> str:
    """`$DATABASE_POOL_MODE` (`session` when unset); InvalidPoolMode otherwise."""
    value = (os.environ if env is None else env).get(POOL_MODE_ENV, "").strip().lower()
    if not value:
        return "session"
    if value not in POOL_MODES:
        raise InvalidPoolMode(
            f"{POOL_MODE_ENV}={value!r} is not a pool mode: use `session` (a PostgreSQL"
            " server) or `transaction` (PgBouncer with pool_mode=transaction)"
        )
    return value


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset in transaction mode: nothing to run. asyncpg still rolls back
    an open transaction and drops listeners before calling this. Its default reset
    (RESET ALL, pg_advisory_unlock_all, ...) would run outside a transaction, i.e. on
    whichever server connection PgBouncer picks, undoing that connection's
    connect_query settings under another client's feet."""


def pool_options(mode: str, kw: dict[str, Any]) -> dict[str, Any]:
    """asyncpg.create_pool keyword arguments for a pool mode, on top of the caller's.

    `transaction` (PgBouncer in transaction pooling; Debian bookworm's 1.18 has no
    prepared-statement support in that mode): consecutive transactions of one client
    connection run on different server connections, so
    - statement_cache_size=0: asyncpg's named prepared statements would live on one
      server connection and be missing (or clash) on the next; with the cache off it
      uses the unnamed statement and re-parses it in the same round trip as the
      execution;
    - no client_connection_check_interval startup parameter: PgBouncer refuses
      startup parameters it does not track ("unsupported startup parameter"). The
      check is for a backend whose client vanished; behind PgBouncer the backend's
      client is PgBouncer, which closes a server connection whose client disconnected
      mid-transaction. The chart's (and the tests') PgBouncer sets the interval on
      its server connections with connect_query instead;
    - no reset query on release (_keep_session)."""
    out = dict(kw)
    if mode == "transaction":
        out["statement_cache_size"] = 0
        out.setdefault("reset", _keep_session)
        out["server_settings"] = dict(kw.get("server_settings") or {})
    else:
        out["server_settings"] = {**CLIENT_CHECK_SETTINGS, **(kw.get("server_settings") or {})}
    return out


def _unsupported_startup_parameter(exc: BaseException) -> bool:
    # PgBouncer's FATAL (SQLSTATE 08P01): "unsupported startup parameter: <name>".
    return "unsupported startup parameter" in str(exc).lower()


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, vectors: bool = True, **kw: Any
) -> asyncpg.Pool:
    """A pool for `url`, configured for `$DATABASE_POOL_MODE` (pool_options); with
    `vectors`, pgvector's codec on each connection (vector columns as NumPy arrays)."""
    mode = pool_mode()
    kw = pool_options(mode, kw)
    if vectors:
        kw["init"] = _register_vector
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, **kw)
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise InvalidDatabaseURL(
            f"the database URL {redact(url)!r} is not a valid postgres:// URL: {redact(str(exc))}"
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if _unsupported_startup_parameter(exc):
            raise PoolModeMismatch(
                f"the database at {host_of(url)} is a connection pooler in transaction"
                f" mode (PgBouncer?): it refused a startup parameter ({redact(str(exc))});"
                f" set {POOL_MODE_ENV}=transaction for it (the chart does when"
                " pgbouncer.enabled is true)"
            ) from None
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
