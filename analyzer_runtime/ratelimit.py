"""A run's global request budget, shared by all its shards through Postgres.

Design: a sliding-window log with a fixed number of slots (migration 0003). A run
with a budget of N requests per window W has N rows in `rate_limit_slots`. To send
one request a pod must hold a slot:

- `acquire` atomically takes a slot whose `free_at` has passed (by the database's
  clock) and stamps it `free_at = now + lease + W` - the lease covers the request in
  flight, so a pod killed mid-request cannot leak the slot;
- `release`, after the request has ENDED (answer, error or timeout), stamps the
  slot `free_at = now + W`.

Why no W-long window can ever contain more than N requests, at the provider: take
two requests that used the same slot, r1 then r2. r1 reached the provider before
it ended, and it ended before the release that set `free_at` (the release is sent
after the answer arrives). r2 was granted only once the database's clock passed
that `free_at`, i.e. at least W after r1 ended, and r2 is sent after its grant. So
r2 reaches the provider at least W after r1 did, and a half-open window of length
W holds at most one request per slot: at most N in all, whatever the number of
pods, their clocks (only the database's clock is read) or their timing. If a pod
dies before releasing, the lease end (timeout + margin) stands in for the end of
its request, which the client's total timeout guarantees.

A token bucket, by contrast, allows its capacity as a burst plus the refill of
the next W seconds, up to 2N in one window, so it cannot promise "never over N".

The budget is not split between shards: every shard draws from the same N slots,
so when shards finish, the ones still working get all of it. A provider's 429
`Retry-After` pauses the whole run (`pause`), not just the pod that saw it.

Adaptive share. A provider's real limit may be below our budget (Novita's first
tier is 30 requests/min). A slot is granted only while fewer than `allowed` slots
are busy (used by a request that started or ended within the last window), and
`allowed` starts at N. A 429 (`throttled`, with or without Retry-After) sets it to
90% of the requests of the last window - below the provider's limit, which that
window just reached - at most once per 1/30 of a window; then every
quarter window without a decrease it grows by 1% of N (additive increase), never
above N. All of it lives in the run's `rate_limits` row, so it is global across shards.
Lowering `allowed` keeps the sliding-window bound: at most `allowed` <= N requests
per window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

# Added to the request timeout for a slot's lease: the release round trip and a
# pod that is briefly descheduled must not let the lease end before the request.
LEASE_MARGIN_SECONDS = 10.0
# Longest nap between two attempts to take a slot; waiters also wake when a slot's
# free_at says so, so this only bounds the cost of a missed release.
MAX_POLL_SECONDS = 1.0
# AIMD of the adaptive share: a 429 keeps DECREASE_FACTOR of the last window's
# requests; each INCREASE_EVERY of a window without a decrease adds INCREASE_STEP of
# the budget. Several shards seeing the same burst of 429s decrease once.
DECREASE_FACTOR = 0.9
DECREASE_GUARD = 1 / 30  # of a window: 2 s of a 60-s window
INCREASE_EVERY = 0.25  # of a window
INCREASE_STEP = 0.01  # of the budget


@dataclass(frozen=True, slots=True)
class Permit:
    """A held slot; `holder` makes a late release of an expired lease a no-op."""

    slot: int
    holder: uuid.UUID
    waited: float = 0.0


class Limiter:
    """No budget: every request may go at once (the interface of GlobalRateLimiter)."""

    requests: int | None = None
    window_seconds: float = 60.0

    async def setup(self) -> None:
        return None

    async def acquire(self) -> Permit:
        return Permit(-1, uuid.UUID(int=0))

    async def release(self, permit: Permit) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        return None

    async def throttled(self) -> None:
        """The provider answered 429: allow fewer requests per window."""
        return None

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[Permit]:
        p = await self.acquire()
        try:
            yield p
        finally:
            await self.release(p)


_ACQUIRE = """
WITH lim AS (SELECT paused_until, allowed FROM rate_limits
              WHERE run_id = $1 AND budget = $4 FOR UPDATE),
busy AS (SELECT count(*) AS n, min(free_at) AS next_free FROM rate_limit_slots
          WHERE run_id = $1 AND budget = $4 AND free_at > clock_timestamp()),
cand AS (
    SELECT s.slot FROM rate_limit_slots s
     WHERE s.run_id = $1 AND s.budget = $4 AND s.free_at <= clock_timestamp()
       AND (SELECT paused_until FROM lim) <= clock_timestamp()
       AND (SELECT n FROM busy) < (SELECT allowed FROM lim)
     ORDER BY s.free_at
     LIMIT 1
       FOR UPDATE SKIP LOCKED),
granted AS (
    UPDATE rate_limit_slots s
       SET free_at = clock_timestamp() + make_interval(secs => $2), holder = $3
      FROM cand
     WHERE s.run_id = $1 AND s.budget = $4 AND s.slot = cand.slot
       AND s.free_at <= clock_timestamp()
    RETURNING s.slot)
SELECT (SELECT slot FROM granted) AS slot,
       extract(epoch FROM greatest(
           (SELECT paused_until FROM lim),
           CASE WHEN (SELECT n FROM busy) >= (SELECT allowed FROM lim)
                THEN (SELECT next_free FROM busy)
                ELSE (SELECT min(free_at) FROM rate_limit_slots
                       WHERE run_id = $1 AND budget = $4) END,
           clock_timestamp()) - clock_timestamp())::float8 AS wait
"""

# The slot frees one window after the request ended; and, at most every
# INCREASE_EVERY of a window since the last change, the share grows back.
_RELEASE = """
WITH freed AS (
    UPDATE rate_limit_slots
       SET free_at = clock_timestamp() + make_interval(secs => $4), holder = NULL
     WHERE run_id = $1 AND budget = $5 AND slot = $2 AND holder = $3
    RETURNING slot)
UPDATE rate_limits
   SET allowed = least(requests, allowed + greatest(1, ceil(requests * $6::float8)::int)),
       adjusted_at = clock_timestamp()
 WHERE run_id = $1 AND budget = $5 AND allowed < requests
   AND adjusted_at < clock_timestamp() - make_interval(secs => $4::float8 * $7::float8)
   AND EXISTS (SELECT 1 FROM freed)
"""

_THROTTLED = """
UPDATE rate_limits r
   SET allowed = greatest(1, least(r.allowed, floor(b.n * $3::float8)::int)),
       decreased_at = clock_timestamp(), adjusted_at = clock_timestamp()
  FROM (SELECT count(*) AS n FROM rate_limit_slots
         WHERE run_id = $1 AND budget = $2 AND free_at > clock_timestamp()) b
 WHERE r.run_id = $1 AND r.budget = $2
   AND r.decreased_at < clock_timestamp() - make_interval(secs => $4::float8)
RETURNING r.allowed
"""


class GlobalRateLimiter(Limiter):
    """At most `requests` requests per `window_seconds` across every pod of a run."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        run_id: int,
        requests: int,
        *,
        window_seconds: float = 60.0,
        request_timeout: float = 30.0,
        budget: str = "default",
    ) -> None:
        self.pool = pool
        self.run_id = run_id
        # A run may have several budgets (a ScrapeJob: one per upstream API).
        self.budget = budget
        self.requests = requests
        self.window_seconds = window_seconds
        self.lease_seconds = request_timeout + LEASE_MARGIN_SECONDS

    async def setup(self) -> None:
        """Create the run's budget once; every shard calls it, the first one wins.
        The window is stored with the budget so all pods use the same one."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO rate_limits (run_id, requests, window_seconds, budget, allowed)
                   VALUES ($1, $2, $3, $4, $2) ON CONFLICT (run_id, budget) DO NOTHING""",
                self.run_id,
                self.requests,
                self.window_seconds,
                self.budget,
            )
            row = await conn.fetchrow(
                "SELECT requests, window_seconds FROM rate_limits WHERE run_id = $1 AND budget = $2",
                self.run_id,
                self.budget,
            )
            self.requests, self.window_seconds = int(row["requests"]), float(row["window_seconds"])
            await conn.execute(
                """INSERT INTO rate_limit_slots (run_id, slot, budget)
                   SELECT $1, g, $3 FROM generate_series(0, $2 - 1) g
                   ON CONFLICT (run_id, budget, slot) DO NOTHING""",
                self.run_id,
                self.requests,
                self.budget,
            )

    async def acquire(self) -> Permit:
        """Wait for a slot (sleeping until the next one frees, never busy-looping)."""
        holder = uuid.uuid4()
        t0 = time.monotonic()
        while True:
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    _ACQUIRE,
                    self.run_id,
                    self.lease_seconds + self.window_seconds,
                    holder,
                    self.budget,
                )
            assert row is not None
            if row["slot"] is not None:
                return Permit(int(row["slot"]), holder, time.monotonic() - t0)
            # Jitter spreads the waiters that all wake for the same freed slot.
            nap = min(max(float(row["wait"] or 0.0), 0.002), MAX_POLL_SECONDS)
            await asyncio.sleep(nap + random.uniform(0, 0.01))

    async def release(self, permit: Permit) -> None:
        """The request has ended: its slot frees one window from now."""
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    _RELEASE,
                    self.run_id,
                    permit.slot,
                    permit.holder,
                    self.window_seconds,
                    self.budget,
                    INCREASE_STEP,
                    INCREASE_EVERY,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            # Safe to lose: the lease end stands in for the release (only later).
            log.warning("could not release rate-limit slot %d: %s", permit.slot, exc)

    async def throttled(self) -> None:
        """A 429: the run's share drops to 90% of the last window's requests (once per
        burst, whichever shard saw it first)."""
        async with self.pool.acquire() as conn:
            allowed = await conn.fetchval(
                _THROTTLED,
                self.run_id,
                self.budget,
                DECREASE_FACTOR,
                DECREASE_GUARD * self.window_seconds,
            )
        if allowed is not None:
            log.info("provider throttled: %s requests per window allowed now", allowed)

    async def allowed(self) -> int:
        """Requests per window the adaptive share allows now."""
        async with self.pool.acquire() as conn:
            return int(
                await conn.fetchval(
                    "SELECT allowed FROM rate_limits WHERE run_id = $1 AND budget = $2",
                    self.run_id,
                    self.budget,
                )
            )

    async def pause(self, seconds: float) -> None:
        """Hold every shard of the run for `seconds` (a provider's Retry-After)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                """UPDATE rate_limits
                      SET paused_until = greatest(paused_until,
                                                  clock_timestamp() + make_interval(secs => $2))
                    WHERE run_id = $1 AND budget = $3""",
                self.run_id,
                float(seconds),
                self.budget,
            )


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window [t, t + window) - what a provider's
    sliding-window limit counts. Used by the tests and the benchmark."""
    ts = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
