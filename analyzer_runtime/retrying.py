"""The retry policy of requests to remote services (the LLM provider, Genius, Spotify).

Failures of the service - timeouts, connection errors, HTTP 5xx/408 - are retried
after 2 s, 4 s, 8 s ... (±20% jitter; base and cap from spec.retry), `retries` times.
A 429 is flow control, not a failure: the request waits its Retry-After (or a backoff
when there is none) and is repeated without using up a retry, up to a limit of its
own. `RetryChain` keeps that bookkeeping for one request across its attempts; the
callers say which of their exceptions is which.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception


@dataclass(frozen=True, slots=True)
class RetrySettings:
    retries: int = 3
    initial_backoff: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.2

    def backoff(self, failure_no: int, rng: random.Random | None = None) -> float:
        """Wait before retry `failure_no` (1-based): 2 s, 4 s, 8 s ... ±20%."""
        base = min(self.initial_backoff * 2 ** (failure_no - 1), self.max_backoff)
        return base * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)


class RetryChain:
    """Retry bookkeeping of one request across its attempts. Subclasses define
    `should_retry(exc)` with `throttled` and `failed`."""

    def __init__(self, retry: RetrySettings, max_throttled: int) -> None:
        self.retry, self.max_throttled = retry, max_throttled
        self.failures = self.throttles = 0
        self.next_wait = 0.0

    def should_retry(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def throttled(self, retry_after: float | None) -> bool:
        """A 429: wait its Retry-After (+0-10%) or a backoff; True while below the limit."""
        self.throttles += 1
        self.next_wait = (
            retry_after * random.uniform(1.0, 1.1)
            if retry_after is not None
            else self.retry.backoff(min(self.throttles, 6))
        )
        return self.throttles <= self.max_throttled

    def failed(self) -> bool:
        """A transient failure: wait the backoff; True while retries are left."""
        self.failures += 1
        self.next_wait = self.retry.backoff(self.failures)
        return self.failures <= self.retry.retries

    def wait(self, _: Any) -> float:
        return self.next_wait

    def retrying(self) -> AsyncRetrying:
        """The tenacity loop of the request's attempts (the last error re-raised)."""
        return AsyncRetrying(
            retry=retry_if_exception(self.should_retry), wait=self.wait, reraise=True
        )
