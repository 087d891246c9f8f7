"""Prompt caching end to end: the fake provider reports `cached_tokens` by the rule of
the server it plays (OpenAI's 1,024 tokens in 128-token steps, or vLLM's 16-token
blocks), the real openai SDK carries it, and the run counts it per shard (the
ledger), per result, in the metrics and in the status, billed at the cached price."""

from __future__ import annotations

import json

import asyncpg
import pytest
from prometheus_client import REGISTRY
from rap_devtools.fake_llm import FakeLLM

from analyzer_runtime.contract.status import TokenPricing
from analyzer_runtime.seed import seed
from tests.integration.conftest import insert_tracks
from tests.integration.llm.support import MODEL, manifest, plan, run_shards, status, version_at

pytestmark = pytest.mark.timeout(120)
PRICES = {"promptPerMillion": 0.5, "completionPerMillion": 1.5, "cachedPromptPerMillion": 0.05}
PRICE = TokenPricing(0.5 / 1000, 1.5 / 1000, 0.05 / 1000)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _ledger_cached(pool: asyncpg.Pool, run_id: int) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(tokens_cached), 0) FROM run_shards WHERE run_id = $1",
                run_id,
            )
        )


async def test_vllm_prefix_caching_is_counted_billed_and_estimated(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    # vLLM's Automatic Prefix Caching: whole 16-token blocks, no minimum, so the
    # ~280-token static prefix of every request after the first is a hit.
    fake.configure(cache_min_tokens=16, cache_step=16)
    await seed(pool, 12)
    m = manifest(
        "vllm-cache", fake.url, provider="vllm",
        llm={"model": MODEL, "pricing": PRICES, "concurrency": 1}, batchSize=12,
    )  # fmt: skip
    run = await plan(pool, m, "uid-vllm-cache")
    label = version_at(fake.url, "vllm:" + MODEL + "@p1@{host}")
    cost_before = _metric("rap_analyzer_llm_cost_usd_total", model=label)
    cached_before = _metric("rap_analyzer_llm_tokens_total", model=label, type="cached")
    await run_shards(pool, run.uid, 1)

    log = fake.log()
    assert len(log) == 12 and {e["status"] for e in log} == {200}
    cached = [e["usage"]["cached"] for e in log]
    # One request at a time: the first finds nothing, every later one the whole prefix.
    assert cached[0] == 0
    assert len(set(cached[1:])) == 1 and cached[1] > 256 and cached[1] % 16 == 0
    billed = {k: sum(e["usage"][k] for e in log) for k in ("prompt", "completion", "cached")}
    assert await _ledger_cached(pool, run.id) == billed["cached"]
    st = await status(pool, run.uid)
    assert st["tokens"] == {
        "prompt": billed["prompt"],
        "completion": billed["completion"],
        "total": billed["prompt"] + billed["completion"],
        "cached": billed["cached"],
    }
    want = PRICE.cost(billed["prompt"], billed["completion"], billed["cached"])
    assert st["estimatedCost"] == pytest.approx(want, abs=1e-6)
    # Billed below the list price: the cached tokens at a tenth of it.
    assert want < PRICE.cost(billed["prompt"], billed["completion"])
    # The process's metrics say the same.
    assert _metric("rap_analyzer_llm_cost_usd_total", model=label) - cost_before == (
        pytest.approx(want, abs=1e-9)
    )
    got = _metric("rap_analyzer_llm_tokens_total", model=label, type="cached") - cached_before
    assert got == billed["cached"]
    # Per result: each track's share of its request's cached tokens.
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT analysis_data FROM analysis_results WHERE model_version = $1", label
        )
    per_result = [json.loads(r["analysis_data"])["tokens"].get("cached", 0) for r in rows]
    assert sum(per_result) == billed["cached"] and per_result.count(0) == 1
    # The planning-time estimate knew the prefix would be cached (vLLM's preset).
    est = st["estimate"]["tokens"]
    assert est["cached"] == pytest.approx(billed["cached"], rel=0.1)


async def test_openai_rule_a_repair_hits_the_cache_with_its_first_request(
    pool: asyncpg.Pool, fake: FakeLLM
) -> None:
    # OpenAI's rule (the fake's default): the ~280-token static prefix is under the
    # 1,024-token minimum, so first requests are never cached; a repair request repeats
    # its first request (4 tracks, well over 1,024 tokens) and then adds to it.
    verse = "\n".join(f"line {i} of money and pain, uh, yeah" for i in range(60))
    rows = [(f"Artist {i}", f"Song {i}", f"{verse}\nsong {i}") for i in range(3)]
    rows.append(("Artist 3", "Broken", f"{verse}\n@@MALFORMED_ONCE@@"))
    await insert_tracks(pool, rows)
    m = manifest("openai-cache", fake.url, llm={"tracksPerRequest": 4, "pricing": PRICES})
    run = await plan(pool, m, "uid-openai-cache")
    await run_shards(pool, run.uid, 1)
    log = fake.log()
    assert [e["repair"] for e in log] == [False, True]
    first, repair = log
    assert first["usage"]["prompt"] > 1024 and first["usage"]["cached"] == 0
    # The repair's prefix is the whole first request: cached in 128-token steps.
    assert repair["usage"]["cached"] == 1024 + (first["usage"]["prompt"] - 1024) // 128 * 128
    st = await status(pool, run.uid)
    assert st["processed"] == 4
    assert st["tokens"]["cached"] == repair["usage"]["cached"]
    assert await _ledger_cached(pool, run.id) == repair["usage"]["cached"]
    prompt = first["usage"]["prompt"] + repair["usage"]["prompt"]
    completion = first["usage"]["completion"] + repair["usage"]["completion"]
    want = PRICE.cost(prompt, completion, repair["usage"]["cached"])
    assert st["estimatedCost"] == pytest.approx(want, abs=1e-6)
