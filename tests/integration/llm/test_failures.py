"""A misbehaving provider: bursts of 5xx, timeouts, a provider that is down (breaker
and fallback), a 429 storm across shard processes, a bad API key."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.waiting import wait_for_async

from analyzer_runtime import worker
from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm.breaker import State
from analyzer_runtime.analyzers.llm.client import RetrySettings
from analyzer_runtime.ratelimit import max_in_window
from analyzer_runtime.seed import seed
from tests.integration.llm.support import (
    API_KEY,
    analyzer_for,
    manifest,
    plan,
    status,
    version_at,
)

pytestmark = pytest.mark.timeout(180)
FAST = RetrySettings(initial_backoff=0.01)


def _tracks(n: int) -> list[TrackInput]:
    return [TrackInput(i, f"t{i}", "A", f"money love {i} cash gold") for i in range(1, n + 1)]


async def test_a_burst_of_5xx_is_retried_with_backoff(fake: FakeLLM) -> None:
    fake.configure(fail_next=3, fail_status=503)
    a = analyzer_for(manifest("burst", fake.url))
    a.configure(retry=FAST)
    out = await a.analyze_batch(_tracks(1))
    await a.aclose()
    assert [o.status for o in out] == ["done"]
    assert [e["status"] for e in fake.log()] == [503, 503, 503, 200]  # 1 + 3 retries
    assert out[0].result is not None and out[0].result.analysis_data["attempts"] == 4
    assert a.breaker.state is State.closed  # the success reset the count


async def test_after_three_retries_the_item_fails_with_the_reason(fake: FakeLLM) -> None:
    fake.configure(fail_next=4, fail_status=500)
    a = analyzer_for(manifest("exhausted", fake.url))
    a.configure(retry=FAST)
    out = await a.analyze_batch(_tracks(1))
    await a.aclose()
    assert out[0].status == "failed" and len(fake.log()) == 4
    assert out[0].reason == "provider unavailable: HTTP 500 from the provider (after 4 attempts)"


async def test_slow_answers_time_out_and_are_retried(fake: FakeLLM) -> None:
    fake.configure(slow_seconds=5.0)
    a = analyzer_for(manifest("slow", fake.url, llm={"timeoutSeconds": 1}))
    a.configure(retry=RetrySettings(initial_backoff=0.01, retries=1))
    slow = TrackInput(1, "t", "a", "@@SLOW@@ money")
    t0 = asyncio.get_running_loop().time()
    out = await a.analyze_batch([slow])
    took = asyncio.get_running_loop().time() - t0
    await a.aclose()
    assert out[0].status == "failed" and "timed out after 1 s (after 2 attempts)" in str(
        out[0].reason
    )
    assert len(fake.log()) == 2 and took < 4.5  # bounded by the timeout, not by the server


async def test_json_schema_refused_falls_back_to_json_mode(fake: FakeLLM) -> None:
    fake.configure(reject_json_schema=True)
    opts = {"responseFormat": "jsonSchema", "concurrency": 1}
    a = analyzer_for(manifest("schema", fake.url, llm=opts))
    a.configure(retry=FAST)
    out = await a.analyze_batch(_tracks(3))
    await a.aclose()
    assert [o.status for o in out] == ["done", "done", "done"]
    # One refusal, then JSON mode for the rest of the pod's life.
    assert [e["status"] for e in fake.log()] == [400, 200, 200, 200]


async def test_a_wrong_api_key_fails_items_without_leaking_it(
    fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "sk-wrong-key-abcdefghijklmnopqrstu"
    monkeypatch.setenv("LLM_API_KEY", wrong)
    a = analyzer_for(manifest("auth", fake.url))
    a.configure(retry=FAST)
    out = await a.analyze_batch(_tracks(1))
    await a.aclose()
    assert out[0].status == "failed"
    assert out[0].reason == "provider unavailable: the provider refused the API key (HTTP 401)"
    assert wrong not in str(out[0].reason)


async def test_provider_down_opens_the_breaker_fallback_analyzes_then_it_closes(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    await seed(pool, 60)
    fake.configure(down=True, fail_status=503)
    m = manifest("down", fake.url, batchSize=4, fallbackAnalyzer="algorithmic",
                 llm={"concurrency": 1, "circuitBreaker": {"failureThreshold": 3,
                                                           "openSeconds": 30}})  # fmt: skip
    run = await plan(pool, m, "uid-down")
    a = analyzer_for(m)
    clock = [0.0]
    a.breaker.clock = lambda: clock[0]  # the open period passes when the test says so
    gauge = {"model": version_at(fake.url)}

    # Phase 1: the provider is down. Stop the shard after a few fallback batches.
    stop = worker.StopFlag()
    shard = asyncio.create_task(worker.run_shard(pool, run.uid, 0, stop=stop, analyzer=a))

    async def fallbacks() -> bool:
        return (await status(pool, run.uid)).get("fallbackUsed", 0) >= 12

    await wait_for_async(fallbacks, within=300, interval=0.01, what="12 fallback tracks",
                         give_up=lambda: "the shard ended" if shard.done() else None)  # fmt: skip
    stop.event.set()
    report = await shard
    assert report.stopped and not report.finished
    assert a.breaker.history == [State.closed, State.open]
    assert REGISTRY.get_sample_value("rap_analyzer_llm_circuit_state", gauge) == 1
    # Exactly `failureThreshold` requests reached the dead provider; then none.
    assert [e["status"] for e in fake.log()] == [503, 503, 503]
    st = await status(pool, run.uid)
    assert st["fallbackUsed"] == st["processed"] >= 12

    # Phase 2: the provider is back and the open period is over: one probe closes it.
    fake.configure(down=False)
    clock[0] += 30
    report = await worker.run_shard(pool, run.uid, 0, analyzer=a)
    assert report.finished
    assert a.breaker.history == [State.closed, State.open, State.half_open, State.closed]
    assert REGISTRY.get_sample_value("rap_analyzer_llm_circuit_state", gauge) == 0

    st = await status(pool, run.uid)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT analyzer_type, model_version, analysis_data FROM analysis_results"
        )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["analyzer_type"], []).append(json.loads(r["analysis_data"]))
    # The fallback's results are stored as what they are, never as LLM output.
    assert len(by_type["algorithmic"]) == st["fallbackUsed"]
    assert all(
        d["fallback_for"]["model_version"] == version_at(fake.url) for d in by_type["algorithmic"]
    )
    assert len(by_type["llm"]) == 60 - st["fallbackUsed"] > 0
    assert all("fallback_for" not in d for d in by_type["llm"])
    assert (st["phase"], st["processed"], st["failed"]) == ("Succeeded", 60, 0)


async def test_429_storm_across_shard_processes_never_exceeds_the_budget(
    pool: asyncpg.Pool, fake: FakeLLM, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer_runtime.localrun import run_local

    # Time is compressed: the run's budget is 10 requests per 2-s "minute". The provider
    # allows only 6 per 2 s, so it answers the excess with 429 + Retry-After.
    window, budget = 2.0, 10
    monkeypatch.setenv("RAP_LLM_RATE_WINDOW_SECONDS", str(window))
    fake.configure(rate_limit=6, rate_window=window, latency_p50=0.02, latency_p95=0.05)
    await seed(pool, 32)
    m = manifest("storm", fake.url, shards=4, batchSize=4, rateLimit={"requestsPerMinute": budget})
    st = await run_local(m, db_url, uid="uid-storm", progress=False)
    assert (st["phase"], st["processed"], st["failed"]) == ("Succeeded", 32, 0)
    log = fake.log()
    statuses = [e["status"] for e in log]
    assert statuses.count(429) > 0, "no storm: the provider never said 429"
    assert statuses.count(200) == 32
    # Every request the provider saw, 429s included: no window over the run's budget.
    assert max_in_window([e["t"] for e in log], window) <= budget
    assert max_in_window([e["t"] for e in log if e["status"] == 200], window) <= 6
    # Retry-After pauses the whole run: far fewer 429s than requests.
    assert statuses.count(429) <= len(log) // 2, statuses
    assert API_KEY not in json.dumps(st)


async def test_the_fake_provider_speaks_openai_to_the_real_sdk(fake: FakeLLM) -> None:
    import openai

    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.url, max_retries=0) as sdk:
        models = await sdk.models.list()
        assert [m.id for m in models.data] == ["fake-qwen"]
    async with openai.AsyncOpenAI(api_key="sk-nope-000000000000", base_url=fake.url,
                                  max_retries=0) as sdk:  # fmt: skip
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()
