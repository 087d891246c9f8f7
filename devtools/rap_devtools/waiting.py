"""Polling with a deadline: the only kind of waiting the e2e tests do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError so pytest shows it plainly)."""


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; return that value.

    Exceptions from ``check`` count as "not yet" (the API may be briefly
    unavailable) but the last one is reported on timeout, as is
    ``describe()``: say what the state WAS, not only what was expected.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = ""
            if describe is not None:
                try:
                    detail = f"\nstate: {describe()}"
                except Exception as e:
                    detail = f"\n(describe failed: {e})"
            if last_error is not None:
                detail += f"\nlast error: {last_error!r}"
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


async def wait_for_async(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """`wait_for` for an async ``check`` (e.g. an async client's poll), for at most
    ``within`` seconds, sleeping without blocking the event loop. The last value and
    error are reported on timeout."""
    deadline = time.monotonic() + within
    last: object = None
    last_error: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
            last = value
        except Exception as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = f"\nlast value: {last!r}"
            if last_error is not None:
                detail += f"\nlast error: {last_error!r}"
            raise WaitTimeout(f"timed out after {within:.0f}s waiting for {what}{detail}")
        await asyncio.sleep(interval)
