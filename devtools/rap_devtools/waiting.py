"""Polling with a deadline: the only kind of waiting the tests and the dev tools do.

- `wait_for` / `wait_for_async`: until a check returns something truthy, or fail
  with what the state was (`WaitTimeout`); `give_up` fails at once when waiting
  can no longer succeed (the process that was to do it has exited);
- `poll` / `poll_async`: the same loop for a caller that carries on either way
  (None on timeout instead of an error);
- `wait_for_line`: until a process prints a line, reading its pipe on a thread so
  that a silent process cannot block past the deadline;
- `holds_until`: the opposite - a condition that must stay true for a scenario's
  whole length (Postgres frozen for 20 s), checked all along, failing at once.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

T = TypeVar("T")
# A check for the async waiters: a coroutine function, or a plain function (a
# counter an event loop task moves) called on the loop between sleeps.
AsyncCheck = Callable[[], Awaitable[T | None] | T | None]
GiveUp = Callable[[], str | None]


class WaitTimeout(AssertionError):
    """A condition did not hold in time (an AssertionError so pytest shows it plainly)."""


class WaitAbandoned(AssertionError):
    """`give_up` said the condition can no longer hold: failing now beats timing out."""


@dataclass
class _Attempts(Generic[T]):
    """One wait's state between polls: what the timeout message reports."""

    what: str
    timeout: float
    deadline: float
    last: object = None
    last_error: BaseException | None = None

    def record(self, value: T | None) -> T | None:
        self.last = value
        return value if value else None

    def abandon_if(self, give_up: GiveUp | None) -> None:
        reason = give_up() if give_up is not None else None
        if reason:
            raise WaitAbandoned(f"gave up waiting for {self.what}: {reason}{self._errors()}")

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def timeout_error(self, describe: Callable[[], str] | None) -> WaitTimeout:
        detail = f"\nlast value: {self.last!r}"
        if describe is not None:
            try:
                detail += f"\nstate: {describe()}"
            except Exception as e:
                detail += f"\n(describe failed: {e})"
        return WaitTimeout(
            f"timed out after {self.timeout:g}s waiting for {self.what}{detail}{self._errors()}"
        )

    def _errors(self) -> str:
        return "" if self.last_error is None else f"\nlast error: {self.last_error!r}"


def _start(what: str, timeout: float) -> _Attempts[T]:
    return _Attempts(what=what, timeout=timeout, deadline=time.monotonic() + timeout)


def _poll(
    check: Callable[[], T | None], a: _Attempts[T], interval: float, give_up: GiveUp | None
) -> T | None:
    while True:
        try:
            if value := a.record(check()):
                return value
        except Exception as e:  # the API briefly unavailable: "not yet"
            a.last_error = e
        a.abandon_if(give_up)
        if a.expired():
            return None
        time.sleep(interval)


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
    give_up: GiveUp | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; return that value.

    Exceptions from ``check`` count as "not yet" (the API may be briefly
    unavailable) but the last one is reported on timeout, as is
    ``describe()``: say what the state WAS, not only what was expected.
    ``give_up()`` returning a reason fails at once (`WaitAbandoned`).
    """
    a: _Attempts[T] = _start(what, timeout)
    value = _poll(check, a, interval, give_up)
    if value is None:
        raise a.timeout_error(describe)
    return value


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    give_up: GiveUp | None = None,
) -> T | None:
    """`wait_for` for a caller that goes on either way: the truthy value, or None
    once ``timeout`` has passed."""
    return _poll(check, _start("condition", timeout), interval, give_up)


async def _poll_async(
    check: AsyncCheck[T], a: _Attempts[T], interval: float, give_up: GiveUp | None
) -> T | None:
    while True:
        try:
            got = check()
            if inspect.isawaitable(got):
                got = await got
            if value := a.record(cast("T | None", got)):
                return value
        except Exception as e:
            a.last_error = e
        a.abandon_if(give_up)
        if a.expired():
            return None
        await asyncio.sleep(interval)


async def wait_for_async(
    check: AsyncCheck[T],
    *,
    within: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
    give_up: GiveUp | None = None,
) -> T:
    """`wait_for` on an event loop, for at most ``within`` seconds, sleeping without
    blocking the loop. ``check`` may be async (an async client's poll) or plain (state
    a task on the loop changes). The last value and error are reported on timeout."""
    a: _Attempts[T] = _start(what, within)
    value = await _poll_async(check, a, interval, give_up)
    if value is None:
        raise a.timeout_error(describe)
    return value


async def poll_async(
    check: AsyncCheck[T],
    *,
    within: float,
    interval: float = 0.2,
    give_up: GiveUp | None = None,
) -> T | None:
    """`poll` on an event loop."""
    return await _poll_async(check, _start("condition", within), interval, give_up)


def holds_until(
    check: Callable[[], object],
    end: float,
    *,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
) -> None:
    """Call ``check`` every ``interval`` seconds until ``time.monotonic()`` reaches
    ``end``; fail at the first falsy value (with ``describe()``, the state then). An
    exception from ``check`` fails too: unlike a wait, nothing is "not yet" here."""
    while True:
        value = check()
        if not value:
            state = f"\nstate: {describe()}" if describe is not None else ""
            raise AssertionError(f"{what} stopped holding ({value!r}){state}")
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(interval, left))


def wait_for_line(proc: subprocess.Popen[str], wanted: str, *, timeout: float = 60.0) -> str:
    """The first line of ``proc``'s stdout that contains ``wanted``. Fails when the
    process closes its stdout without it (with what it wrote on stderr, if it has
    exited), or after ``timeout`` seconds (with the lines it did print). Lines after
    the wanted one are left to read from ``proc.stdout`` (not ``communicate``, which
    reads the pipe under the file's buffer)."""
    if proc.stdout is None:
        raise ValueError("wait_for_line needs stdout=subprocess.PIPE")
    stdout = proc.stdout
    seen: list[str] = []
    found: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stdout:
            if wanted in line:
                found.put(line)
                return
            seen.append(line)
        found.put(None)

    # A daemon: a process that never prints nor exits must not keep the tests alive.
    threading.Thread(target=read, name=f"wait_for_line {proc.pid}", daemon=True).start()
    try:
        line = found.get(timeout=timeout)
    except queue.Empty:
        raise WaitTimeout(
            f"timed out after {timeout:g}s waiting for {wanted!r} from pid {proc.pid}; "
            f"its output so far:\n{''.join(seen)[-3000:]}"
        ) from None
    if line is None:
        err = ""
        try:  # a closed stdout is nearly always an exit: its stderr says why
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if proc.stderr is not None and proc.poll() is not None:
            err = proc.stderr.read()
        raise WaitAbandoned(
            f"pid {proc.pid} closed its output without {wanted!r} "
            f"(exit {proc.poll()}): {''.join(seen)[-1500:]}{err[-3000:]}"
        )
    return line
