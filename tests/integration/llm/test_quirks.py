"""The llm analyzer against a provider that behaves like the real ones (issue 11): Qwen3
thinking inline or behind a reasoning parser, prose around a fence, empty choices,
429 without Retry-After, a provider limit below our budget - through the real openai
SDK, the fake provider over HTTP and the real shard runtime, with the `novita` preset."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm.analyzer import MAX_REQUESTS_PER_TRACK, LLMAnalyzer
from analyzer_runtime.analyzers.llm.client import (
    MAX_RATE_LIMITED_NO_RETRY_AFTER,
    MAX_UNUSABLE_RETRIES,
    RetrySettings,
)
from analyzer_runtime.seed import seed
from tests.integration.llm.support import manifest, plan, run_shards, status

pytestmark = pytest.mark.timeout(180)
FAST = RetrySettings(initial_backoff=0.01, max_backoff=0.05)
TRACKS = 20


def _novita(name: str, url: str, *, llm: dict[str, Any] | None = None, **spec: Any) -> Any:
    retry = {"initialBackoffSeconds": 0.01, "maxBackoffSeconds": 0.05}
    return manifest(
        name, url, provider="novita", llm=llm, **{"retry": retry, "batchSize": 10, **spec}
    )


async def _llm_rows(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT analyzer_type, analysis_data FROM analysis_results")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["analyzer_type"], []).append(json.loads(r["analysis_data"]))
    return out


async def _run(
    pool: asyncpg.Pool,
    fake: FakeLLM,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    window: float = 1.0,
    **kw: Any,
) -> dict[str, Any]:
    # The novita preset's 30 requests/min, with the minute compressed to `window` s.
    monkeypatch.setenv("RAP_LLM_RATE_WINDOW_SECONDS", str(window))
    await seed(pool, TRACKS)
    m = _novita(name, fake.url, **kw)
    run = await plan(pool, m, f"uid-{name}")
    await run_shards(pool, run.uid, 1)
    return await status(pool, run.uid)


BEHAVIOURS = {
    "think-inline": ({"mode": "think_inline"}, {}),
    "think-inline-auto": ({"mode": "think_inline"}, {"thinking": "auto"}),
    "think-parser": ({"mode": "think_parser"}, {}),
    "think-parser-on-budget": ({"mode": "think_parser"}, {"thinking": "on", "maxTokens": 2000}),
    "think-parser-auto": ({"mode": "think_parser"}, {"thinking": "auto"}),
    "think-parser-packed": ({"mode": "think_parser"}, {"thinking": "auto", "tracksPerRequest": 8}),
    "prose-fence": ({"mode": "prose_fence"}, {}),
    "limit-below-budget": (
        {"rate_limit": 10, "rate_window": 1.0, "retry_after_header": False},
        {"concurrency": 8},
    ),
}


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
async def test_each_quirk_still_stores_llm_results(
    pool: asyncpg.Pool, fake: FakeLLM, monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    config, llm = BEHAVIOURS[behaviour]
    fake.configure(**config)
    st = await _run(pool, fake, behaviour, monkeypatch, llm=llm)
    rows = await _llm_rows(pool)
    assert len(rows.get("llm", [])) >= TRACKS - 1, (st, fake.log()[-3:])
    assert st["phase"] == "Succeeded"
    log = fake.log()
    packs = -(-TRACKS // llm.get("tracksPerRequest", 1))
    answered = [e for e in log if e["status"] == 200]
    assert len(answered) <= MAX_REQUESTS_PER_TRACK * TRACKS
    if "limit" not in behaviour and llm.get("thinking", "off") == "off":
        assert len(answered) == packs  # thinking off: one request per pack, no repair


async def test_empty_choices_end_in_fallback_with_the_reason_and_few_requests(
    pool: asyncpg.Pool, fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.configure(mode="empty_choices")
    st = await _run(pool, fake, "empty", monkeypatch, fallbackAnalyzer="algorithmic",
                    llm={"concurrency": 1})  # fmt: skip
    rows = await _llm_rows(pool)
    assert "llm" not in rows and len(rows["algorithmic"]) == TRACKS
    reasons = {d["fallback_for"]["reason"] for d in rows["algorithmic"]}
    assert any("no choices" in r for r in reasons), reasons
    assert any("circuit breaker open" in r for r in reasons), reasons
    # 10 unusable answers open the breaker: then no request until the open period ends.
    assert len(fake.log()) <= 10 + MAX_UNUSABLE_RETRIES
    assert st["phase"] == "Succeeded" and st["fallbackUsed"] == TRACKS


async def test_permanent_429_without_retry_after_is_bounded_then_falls_back(
    pool: asyncpg.Pool, fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.configure(always_429=True, retry_after_header=False)
    st = await _run(pool, fake, "always429", monkeypatch, window=0.2,
                    fallbackAnalyzer="algorithmic", llm={"concurrency": 1})  # fmt: skip
    rows = await _llm_rows(pool)
    assert len(rows["algorithmic"]) == TRACKS
    assert all("fallback_for" in d for d in rows["algorithmic"])
    reasons = {d["fallback_for"]["reason"] for d in rows["algorithmic"]}
    assert any("HTTP 429" in r for r in reasons), reasons
    # Each track's request is sent at most 1 + MAX_RATE_LIMITED_NO_RETRY_AFTER times
    # (never 21); five exhausted requests open the breaker (default failureThreshold 5),
    # so only the requests of the first batch (10 tracks in flight) reach the provider.
    per_track: dict[str, int] = {}
    for e in fake.log():
        for t in e["tracks"]:
            per_track[t] = per_track.get(t, 0) + 1
    assert max(per_track.values()) == 1 + MAX_RATE_LIMITED_NO_RETRY_AFTER
    assert len(fake.log()) <= 10 * (1 + MAX_RATE_LIMITED_NO_RETRY_AFTER)
    assert st["phase"] == "Succeeded"


async def test_without_fallback_a_run_of_unusable_answers_ends_failed(
    pool: asyncpg.Pool, fake: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.configure(mode="empty_choices")
    st = await _run(pool, fake, "emptyfail", monkeypatch, llm={"concurrency": 1})
    assert st["failed"] == TRACKS
    assert st["phase"] == "Failed"
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "TooManyTrackFailures"


# ---- the request body each preset sends ----------------------------------------------


def _analyzer(provider: str, url: str, **llm: Any) -> LLMAnalyzer:
    a = LLMAnalyzer(provider=provider, baseURL=url, **llm)
    a.configure(retry=FAST)
    return a


async def _one_body(fake: FakeLLM, provider: str, **llm: Any) -> tuple[dict[str, Any], Any]:
    a = _analyzer(provider, fake.url, **llm)
    out = await a.analyze_batch([TrackInput(1, "t", "A", "money love cash gold")])
    await a.aclose()
    assert [o.status for o in out] == ["done"], out
    entry = fake.log()[0]
    return entry["body"], entry["switch"]


async def test_the_request_body_of_each_preset(fake: FakeLLM) -> None:
    body, switch = await _one_body(fake, "novita")
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert switch == "/no_think" and body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 250 and "reasoning_effort" not in body
    fake.reset()
    body, switch = await _one_body(fake, "custom", model="qwen3")
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and switch == "/no_think"
    fake.reset()
    body, switch = await _one_body(fake, "ollama")
    assert body["reasoning_effort"] == "none" and switch is None
    assert "chat_template_kwargs" not in body and "think" not in body
    fake.reset()
    body, switch = await _one_body(fake, "openai")
    assert not {"chat_template_kwargs", "reasoning_effort", "think"} & set(body) and switch is None
    fake.reset()
    body, switch = await _one_body(fake, "novita", thinking="on", maxTokens=3000)
    assert body["chat_template_kwargs"] == {"enable_thinking": True} and switch is None
    assert body["max_tokens"] == 3000
    fake.reset()
    body, switch = await _one_body(fake, "novita", thinking="auto")
    assert "chat_template_kwargs" not in body and switch is None


async def test_length_is_retried_once_with_max_tokens_not_repaired(fake: FakeLLM) -> None:
    fake.configure(mode="think_parser")
    a = _analyzer("novita", fake.url, thinking="auto", maxTokens=1500)
    out = await a.analyze_batch([TrackInput(1, "t", "A", "money love cash gold")])
    await a.aclose()
    assert [o.status for o in out] == ["done"]
    log = fake.log()
    assert [e["body"]["max_tokens"] for e in log] == [250, 1500]
    assert [e["finish_reason"] for e in log] == ["length", "stop"]
    assert not any(e["repair"] for e in log)


async def test_a_context_length_400_does_not_switch_to_json_mode(fake: FakeLLM) -> None:
    fake.configure(context_length=400)
    a = _analyzer("custom", fake.url, model="m", responseFormat="jsonSchema", concurrency=1)
    long = TrackInput(1, "t", "A", "money " * 600)
    out = await a.analyze_batch([long, TrackInput(2, "t", "A", "love cash")])
    await a.aclose()
    assert [o.status for o in out] == ["failed", "done"]
    assert "maximum context length" in str(out[0].reason)
    assert all(e["body"]["response_format"]["type"] == "json_schema" for e in fake.log())
