"""The run's global request budget in Postgres (analyzer_runtime/ratelimit.py), with
several pools standing in for pods: only the database coordinates them."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from analyzer_runtime import ratelimit
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.ratelimit import GlobalRateLimiter, max_in_window

pytestmark = pytest.mark.timeout(120)


async def _run_id(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval(
            "INSERT INTO runs (uid, name, spec, shards) VALUES ($1, 'r', '{}', 4) RETURNING id",
            f"rl-{time.monotonic_ns()}",
        ))  # fmt: skip


async def _hammer(
    lim: GlobalRateLimiter, until: float, grants: list[float], ends: list[float], lanes: int = 4
) -> None:
    """`lanes` requests at a time, back to back, each 20 ms long, until `until`."""

    async def lane() -> None:
        while time.monotonic() < until:
            async with lim.permit():
                grants.append(time.monotonic())
                await asyncio.sleep(0.02)
                ends.append(time.monotonic())

    await asyncio.gather(*(lane() for _ in range(lanes)))


async def test_four_pods_never_exceed_the_budget_and_use_all_of_it(db_url: str) -> None:
    budget, window = 20, 1.0
    pools = [await create_pool(db_url, max_size=2) for _ in range(4)]
    try:
        run_id = await _run_id(pools[0])
        lims = [GlobalRateLimiter(p, run_id, budget, window_seconds=window) for p in pools]
        await asyncio.gather(*(lim.setup() for lim in lims))
        grants: list[float] = []
        ends: list[float] = []
        t0 = time.monotonic()
        await asyncio.gather(*(_hammer(lim, t0 + 4.2, grants, ends) for lim in lims))
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    # However a request is timed (when it was granted or when it ended), no window
    # holds more than the budget.
    assert max_in_window(grants, window) <= budget
    assert max_in_window(ends, window) <= budget
    # ... and the budget is used: each slot turns over once per window + request time.
    steady = [g for g in grants if t0 + 1.0 <= g < t0 + 4.0]
    assert len(steady) >= 0.8 * budget * 3, len(steady)


async def test_when_shards_finish_the_others_get_the_whole_budget(db_url: str) -> None:
    budget, window = 20, 1.0
    pools = [await create_pool(db_url, max_size=2) for _ in range(4)]
    try:
        run_id = await _run_id(pools[0])
        lims = [GlobalRateLimiter(p, run_id, budget, window_seconds=window) for p in pools]
        await asyncio.gather(*(lim.setup() for lim in lims))
        per_pod: list[list[float]] = [[] for _ in lims]
        t0 = time.monotonic()
        # Three pods stop after 1.5 s; the last keeps going for 4 s.
        await asyncio.gather(
            *(
                _hammer(lim, t0 + (4.0 if i == 3 else 1.5), per_pod[i], [])
                for i, lim in enumerate(lims)
            )
        )
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    everyone = [t for ts in per_pod for t in ts]
    assert max_in_window(everyone, window) <= budget
    alone = [t for t in per_pod[3] if t >= t0 + 2.6]  # after the others' slots turned over
    late_window = [t for t in alone if t0 + 2.7 <= t < t0 + 3.7]
    assert len(late_window) >= 0.8 * budget, (len(late_window), budget)  # not a 1/4 share


async def test_retry_after_pauses_every_pod(db_url: str) -> None:
    pools = [await create_pool(db_url, max_size=2) for _ in range(2)]
    try:
        run_id = await _run_id(pools[0])
        a, b = (GlobalRateLimiter(p, run_id, 50, window_seconds=60) for p in pools)
        await a.setup()
        await b.setup()
        await a.pause(0.8)  # pod a saw a 429 with Retry-After: 0.8
        t0 = time.monotonic()
        permit = await b.acquire()  # pod b waits too
        assert time.monotonic() - t0 >= 0.75
        await b.release(permit)
    finally:
        await asyncio.gather(*(p.close() for p in pools))


async def test_a_pod_killed_mid_request_cannot_leak_its_slots(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "LEASE_MARGIN_SECONDS", 0.2)
    pool = await create_pool(db_url, max_size=2)
    try:
        run_id = await _run_id(pool)
        dead = GlobalRateLimiter(pool, run_id, 3, window_seconds=0.5, request_timeout=0.3)
        await dead.setup()
        t0 = time.monotonic()
        for _ in range(3):
            await dead.acquire()  # ... and the pod dies: no release ever comes
        heir = GlobalRateLimiter(pool, run_id, 3, window_seconds=0.5, request_timeout=0.3)
        await heir.setup()
        await heir.acquire()
        # Free again only after lease (timeout 0.3 + margin 0.2) + window 0.5.
        assert time.monotonic() - t0 >= 0.95
    finally:
        await pool.close()


async def test_the_first_pod_fixes_the_budget_for_all(db_url: str) -> None:
    pool = await create_pool(db_url, max_size=2)
    try:
        run_id = await _run_id(pool)
        first = GlobalRateLimiter(pool, run_id, 7, window_seconds=2.0)
        await first.setup()
        late = GlobalRateLimiter(pool, run_id, 500, window_seconds=60.0)
        await late.setup()
        assert (late.requests, late.window_seconds) == (7, 2.0)
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM rate_limit_slots WHERE run_id = $1", run_id
                )
                == 7
            )
    finally:
        await pool.close()


async def test_the_share_adapts_to_a_provider_limit_below_the_budget(db_url: str) -> None:
    """A provider that allows L per window, below our budget of 2L: after the first
    window the 429s are few and the provider's limit is mostly used."""
    limit, budget, window = 60, 120, 1.0
    accepted: list[float] = []
    answers: list[tuple[float, bool]] = []
    pools = [await create_pool(db_url, max_size=3) for _ in range(4)]

    async def provider() -> bool:  # a sliding-window limit, as a provider counts
        now = time.monotonic()
        ok = sum(1 for t in accepted if t > now - window) < limit
        if ok:
            accepted.append(now)
        answers.append((now, ok))
        return ok

    async def lane(lim: GlobalRateLimiter, until: float) -> None:
        while time.monotonic() < until:
            async with lim.permit():
                ok = await provider()
                await asyncio.sleep(0.02)
            if not ok:
                await lim.throttled()

    try:
        run_id = await _run_id(pools[0])
        lims = [GlobalRateLimiter(p, run_id, budget, window_seconds=window) for p in pools]
        await asyncio.gather(*(lim.setup() for lim in lims))
        t0 = time.monotonic()
        await asyncio.gather(*(lane(lim, t0 + 8.0) for lim in lims for _ in range(2)))
        share = await lims[0].allowed()
    finally:
        await asyncio.gather(*(p.close() for p in pools))
    late = [ok for t, ok in answers if t >= t0 + 2 * window]
    rejected = late.count(False) / len(late)
    achieved = late.count(True) / (8.0 - 2 * window)
    assert rejected <= 0.15, (rejected, len(late))
    assert achieved >= 0.7 * limit, achieved
    assert 1 <= share <= budget
    # Without the adaptive share, 8 lanes of 20-ms requests would get ~70% 429s here.
