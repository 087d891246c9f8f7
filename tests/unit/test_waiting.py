"""rap_devtools.waiting, the one polling helper: what each waiter returns, how soon
it fails, and what its failure says."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from rap_devtools.waiting import (
    WaitAbandoned,
    WaitTimeout,
    holds_until,
    poll,
    poll_async,
    wait_for,
    wait_for_async,
    wait_for_line,
)


class _Counter:
    """Calls 1, 2, ...: raises for the first `fail_before`, falsy until `ready_at`."""

    def __init__(self, ready_at: int, fail_before: int = 0) -> None:
        self.n, self.ready_at, self.fail_before = 0, ready_at, fail_before

    def __call__(self) -> int:
        self.n += 1
        if self.n <= self.fail_before:
            raise ConnectionError(f"call {self.n} refused")
        return self.n if self.n >= self.ready_at else 0


def test_wait_for_returns_the_first_truthy_value_through_errors() -> None:
    assert wait_for(_Counter(ready_at=5, fail_before=2), timeout=5, interval=0.001) == 5


def test_wait_for_timeout_says_what_the_state_was() -> None:
    def refused() -> int:
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout) as err:
        wait_for(refused, timeout=0.05, interval=0.01, what="the API",
                 describe=lambda: "0 of 3 ready")  # fmt: skip
    message = str(err.value)
    assert "waiting for the API" in message
    assert "0 of 3 ready" in message and "ConnectionError('refused')" in message


def test_give_up_fails_at_once_not_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(WaitAbandoned, match="the shard exited"):
        wait_for(lambda: False, timeout=30, interval=0.01, give_up=lambda: "the shard exited")
    assert time.monotonic() - started < 5


def test_poll_returns_none_on_timeout_and_the_value_otherwise() -> None:
    assert poll(lambda: 0, timeout=0.05, interval=0.01) is None
    assert poll(_Counter(ready_at=3), timeout=5, interval=0.001) == 3


async def test_wait_for_async_takes_async_and_plain_checks() -> None:
    calls = _Counter(ready_at=3)

    async def ask() -> int:
        return calls()

    assert await wait_for_async(ask, within=5, interval=0.001) == 3
    box = {"n": 0}

    def bump() -> int:  # state a task would move; plain, called on the loop
        box["n"] += 1
        return box["n"] if box["n"] >= 4 else 0

    assert await wait_for_async(bump, within=5, interval=0.001) == 4


async def test_wait_for_async_timeout_and_give_up() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for rows(.|\n)*last value: \[\]"):
        await wait_for_async(lambda: [], within=0.05, interval=0.01, what="rows")
    with pytest.raises(WaitAbandoned, match="task done"):
        await wait_for_async(lambda: None, within=30, interval=0.01, give_up=lambda: "task done")
    assert await poll_async(lambda: None, within=0.05, interval=0.01) is None


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_wait_for_line_returns_the_line_and_leaves_the_rest() -> None:
    proc = _python("print('starting'); print('ready on 8080', flush=True); print('after')")
    try:
        assert wait_for_line(proc, "ready", timeout=30) == "ready on 8080\n"
        assert proc.wait(timeout=30) == 0
        assert proc.stdout is not None and proc.stdout.read() == "after\n"
    finally:
        proc.kill()
        proc.wait()


def test_wait_for_line_fails_when_the_process_ends_without_it() -> None:
    proc = _python("import sys; print('hello'); sys.exit('boom: no database')")
    try:
        with pytest.raises(WaitAbandoned, match=r"(?s)without 'ready'.*hello.*boom: no database"):
            wait_for_line(proc, "ready", timeout=30)
    finally:
        proc.kill()
        proc.wait()


def test_wait_for_line_times_out_on_a_silent_process() -> None:
    proc = _python("import time; print('working', flush=True); time.sleep(60)")
    started = time.monotonic()
    try:
        with pytest.raises(WaitTimeout, match=r"(?s)'ready'.*working"):
            wait_for_line(proc, "ready", timeout=1)
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait()


def test_holds_until_checks_all_along_and_fails_at_the_first_lapse() -> None:
    calls = _Counter(ready_at=1)  # truthy from the first call on
    started = time.monotonic()
    holds_until(calls, started + 0.3, interval=0.01)
    assert time.monotonic() - started >= 0.3 and calls.n > 5
    lapses = iter([True, True, False, True])
    with pytest.raises(
        AssertionError, match=r"(?s)frozen stopped holding \(False\).*phase Running"
    ):
        holds_until(lambda: next(lapses), time.monotonic() + 30, interval=0.01,
                    what="frozen", describe=lambda: "phase Running")  # fmt: skip
    assert next(lapses) is True  # it stopped at the lapse, not at the end
