"""The per-pod circuit breaker: 5 consecutive failures (or 10 consecutive unusable
answers) → open 60 s → one probe.

closed    requests go; each failure counts, any success resets the count; at
          `threshold` consecutive failures it opens. Unusable answers (HTTP 200 with
          no choices, no content, or nothing valid in it) are failures of their own
          kind: `unusable_threshold` of them in a row open it too; only a usable
          answer (`usable()`) resets that count, a mere HTTP 200 does not.
open      requests are refused at once (the caller falls back) until `open_seconds`
          have passed; then the next request is let through as the probe.
half_open exactly one probe is in flight, everything else is still refused; the
          probe's success closes the breaker, its failure opens it again.

Per pod, not global: a pod decides from what it sees itself, with no database
round trip on the failure path, and each pod's probe tests the provider anew.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    # The values are the metric's (rap_analyzer_llm_circuit_state).
    closed = 0
    open = 1
    half_open = 2


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        open_seconds: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
        unusable_threshold: int = 10,
    ) -> None:
        self.threshold = threshold
        self.unusable_threshold = unusable_threshold
        self.unusable_count = 0
        self.open_seconds = open_seconds
        self.clock = clock
        self.on_change = on_change
        self.state = State.closed
        self.failures = 0
        self.opened_at = 0.0
        self.history: list[State] = [State.closed]  # transitions, for tests and logs
        if on_change:
            on_change(self.state)

    def _set(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self.history.append(state)
            if self.on_change:
                self.on_change(state)

    def allow(self) -> bool:
        """May a request go now? In open state after the timeout, the first caller
        becomes the probe (half-open) and gets True; everyone else gets False."""
        if self.state is State.closed:
            return True
        if self.state is State.open and self.clock() - self.opened_at >= self.open_seconds:
            self._set(State.half_open)
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self._set(State.closed)

    def failure(self) -> None:
        if self.state is State.half_open:
            self._open()  # the probe failed
            return
        self.failures += 1
        if self.state is State.closed and self.failures >= self.threshold:
            self._open()

    def usable(self) -> None:
        """An answer with something valid in it."""
        self.unusable_count = 0
        self.success()

    def unusable(self) -> None:
        """An HTTP 200 whose answer could not be used at all."""
        if self.state is State.half_open:
            self._open()
            return
        self.unusable_count += 1
        if self.state is State.closed and self.unusable_count >= self.unusable_threshold:
            self._open()

    def abandon(self) -> None:
        """A request ended with no verdict (cancelled). If it was the probe, let the
        next request probe at once instead of staying half-open forever."""
        if self.state is State.half_open:
            self.opened_at = self.clock() - self.open_seconds
            self._set(State.open)

    def _open(self) -> None:
        self.opened_at = self.clock()
        self.failures = 0
        self.unusable_count = 0
        self._set(State.open)

    @property
    def is_open(self) -> bool:
        return self.state is not State.closed
