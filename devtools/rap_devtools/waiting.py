"""Polling with a deadline: the only kind of waiting the e2e tests do."""

from __future__ import annotations

import time
from collections.abc import Callable
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
