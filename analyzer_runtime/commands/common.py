"""What the commands share: the consoles, the exit codes, the --debug switch, the
one-line error and the database wrapper that turns connection errors into exit 3."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from analyzer_runtime.db.embedded import database_url
from analyzer_runtime.ledger.connect import (
    DatabaseUnavailable,
    InvalidDatabaseURL,
    host_of,
    is_connection_error,
    pool_for,
    redact,
)
from analyzer_runtime.ledger.migrate import LegacySchema

err = Console(stderr=True)
out = Console()
T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_DB = 3
EXIT_SIGNAL_BASE = 128  # 128 + signal number: 130 for SIGINT, 143 for SIGTERM
DEBUG_ENV = "RAP_ANALYZER_DEBUG"
# Also set by the root callback (--debug): read through this module, never copied.
_debug = bool(os.environ.get(DEBUG_ENV))


def _fail(message: str, code: int) -> typer.Exit:
    # One line, no traceback: this is what a person (or a pod's log) sees.
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _with_db(fn: Callable[[str], Coroutine[Any, Any, T]], *, keep_running: bool = False) -> T:
    url = ""
    try:
        with database_url(keep_running=keep_running) as url:
            return asyncio.run(fn(url))
    except InvalidDatabaseURL as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except LegacySchema as exc:  # the platform's database: `db adopt`, not migrate
        raise _fail(str(exc), EXIT_INVALID) from None
    except Exception as exc:
        if _debug or not is_connection_error(exc):
            raise
        if isinstance(exc, DatabaseUnavailable):
            raise _fail(str(exc), EXIT_DB) from None
        raise _fail(
            f"lost the connection to the database at {host_of(url)}:"
            f" {redact(str(exc)) or type(exc).__name__}",
            EXIT_DB,
        ) from None


async def _migrate(url: str) -> list[Any]:
    from analyzer_runtime.ledger.migrate import migrate

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        return await migrate(conn)
