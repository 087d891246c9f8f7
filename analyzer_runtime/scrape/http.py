"""One upstream API (Genius, Spotify) over HTTP: budget, timeout, retries.

Per attempt, a slot of the upstream's budget (`ratelimit.Limiter`; global across the
job's shards when spec.rateLimit sets one) is held for exactly the request's
lifetime, and the whole request - connect, send, the body drip - is bounded by the
timeout. Across attempts (tenacity): timeouts, connection errors and HTTP 5xx/408
are retried with exponential backoff and jitter (spec.retry: initial 2 s, doubling,
capped; `requestRetries` times). A 429 is flow control, not a failure: its
Retry-After pauses the upstream's whole budget (every shard) and the request is
repeated without using up a retry (up to MAX_THROTTLED times). Other 4xx answers are
returned to the caller, which knows what a 404 means for it.

A caller may pass `challenged` (cloudflare.challenged): an answer it says is an
anti-bot challenge (whatever its status, 200 included) is retried like a transient
failure - with backoff, `requestRetries` times - and then raises `Blocked`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import Counter

from analyzer_runtime.analyzers.llm.client import retry_after_seconds
from analyzer_runtime.contract.redaction import redact
from analyzer_runtime.ratelimit import Limiter
from analyzer_runtime.retrying import RetryChain
from analyzer_runtime.retrying import RetrySettings as _RetrySettings

log = logging.getLogger(__name__)

MAX_THROTTLED = 20

Challenge = Callable[[httpx.Response], bool]

OUTCOMES = (
    "ok",
    "client_error",
    "throttled",
    "challenged",
    "server_error",
    "timeout",
    "connection_error",
)
REQUESTS = Counter(
    "rap_scraper_requests_total",
    "HTTP requests sent to upstream APIs by this process, by outcome ("
    + ", ".join(OUTCOMES)
    + "); throttled (HTTP 429) and challenged (a bot challenge page) are blocks",
    ["upstream", "outcome"],
)


class UpstreamError(Exception):
    """A request failed for good: retries exhausted. The message says why."""


@dataclass(frozen=True, slots=True)
class RetrySettings(_RetrySettings):
    """The shared retry policy, read from a ScrapeJob's spec.retry."""

    @classmethod
    def from_spec(cls, retry: dict[str, Any] | None) -> RetrySettings:
        r = retry or {}
        return cls(
            retries=int(r.get("requestRetries", 3)),
            initial_backoff=float(r.get("initialBackoffSeconds", 2.0)),
            max_backoff=float(r.get("maxBackoffSeconds", 60.0)),
        )


class Blocked(UpstreamError):
    """The upstream kept answering an anti-bot challenge (Cloudflare) after retries."""


class _Transient(Exception):
    """Worth retrying: a timeout, a dropped connection, a 5xx."""


class _Challenged(_Transient):
    """A challenge page instead of the answer: retried with backoff, then Blocked."""


class _Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"HTTP 429 (Retry-After {retry_after})")
        self.retry_after = retry_after


@dataclass(slots=True)
class UpstreamStats:
    """What this process sent, for the worker's log line and the tests."""

    sent: int = 0
    throttled: int = 0
    challenged: int = 0
    retried: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class _Chain(RetryChain):
    """Retry bookkeeping of one logical request across its attempts."""

    def __init__(self, retry: RetrySettings, stats: UpstreamStats) -> None:
        super().__init__(retry, MAX_THROTTLED)
        self.stats = stats

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, _Throttled):
            self.stats.throttled += 1
            return self.throttled(exc.retry_after)
        if isinstance(exc, _Transient) and self.failed():
            self.stats.retried += 1
            return True
        return False


class Upstream:
    """Requests to one upstream API through its budget, with timeouts and retries."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        *,
        limiter: Limiter | None = None,
        retry: RetrySettings | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.name = name
        for outcome in OUTCOMES:  # every outcome at 0: rate() returns data from the start
            REQUESTS.labels(name, outcome)
        self.client = client
        self.limiter = limiter or Limiter()
        self.retry = retry or RetrySettings()
        self.timeout = timeout
        self.stats = UpstreamStats()

    async def get(
        self, url: str, *, challenged: Challenge | None = None, **kw: Any
    ) -> httpx.Response:
        return await self.request("GET", url, challenged=challenged, **kw)

    async def request(
        self, method: str, url: str, *, challenged: Challenge | None = None, **kw: Any
    ) -> httpx.Response:
        """The answer (2xx, or a 4xx other than 429 for the caller to judge); raises
        UpstreamError once the retries are used up (Blocked: still challenged)."""
        chain = _Chain(self.retry, self.stats)
        try:
            async for attempt in chain.retrying():
                with attempt:
                    return await self._once(method, url, challenged, **kw)
        except _Challenged as exc:
            raise Blocked(
                f"{self.name}: blocked by an anti-bot challenge ({exc}; after"
                f" {self.retry.retries} retries)"
            ) from None
        except _Throttled as exc:
            raise UpstreamError(
                f"{self.name}: still rate limited after {MAX_THROTTLED} waits ({exc})"
            ) from None
        except _Transient as exc:
            raise UpstreamError(
                f"{self.name}: {exc} (after {self.retry.retries} retries)"
            ) from None
        raise AssertionError("unreachable")

    async def _once(
        self, method: str, url: str, challenged: Challenge | None, **kw: Any
    ) -> httpx.Response:
        # A base URL from the spec may carry user:password@ or ?token=: messages show it redacted.
        where = redact(f"{method} {url}")
        async with self.limiter.permit():
            self.stats.sent += 1
            try:
                async with asyncio.timeout(self.timeout):
                    resp = await self.client.request(method, url, **kw)
            except TimeoutError:
                REQUESTS.labels(self.name, "timeout").inc()
                raise _Transient(f"timed out after {self.timeout:g}s: {where}") from None
            except httpx.TransportError as exc:
                REQUESTS.labels(self.name, "connection_error").inc()
                raise _Transient(f"{type(exc).__name__}: {redact(str(exc))} ({where})") from None
        code = resp.status_code
        self.stats.by_status[code] = self.stats.by_status.get(code, 0) + 1
        if challenged is not None and challenged(resp):
            # Before the 429/5xx rules: Cloudflare challenges with 403, 429 and 503 too.
            REQUESTS.labels(self.name, "challenged").inc()
            self.stats.challenged += 1
            raise _Challenged(f"HTTP {code} challenge page from {where}")
        if code == 429:
            REQUESTS.labels(self.name, "throttled").inc()
            wait = retry_after_seconds(resp.headers)
            if wait is not None:
                # Every shard of the job holds off, not only this one.
                await self.limiter.pause(wait)
            # The upstream's real limit is below our budget: the job's share adapts.
            await self.limiter.throttled()
            raise _Throttled(wait)
        if code >= 500 or code == 408:
            REQUESTS.labels(self.name, "server_error").inc()
            raise _Transient(f"HTTP {code} from {where}")
        REQUESTS.labels(self.name, "ok" if code < 400 else "client_error").inc()
        return resp
