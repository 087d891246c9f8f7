"""Cached prompt tokens are priced at the cached price wherever a run's cost is made:
the price the operator and the local runner pass to the status (presets.pricing_for_spec),
the status itself, and the cached tokens the client reads from an answer's usage."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from analyzer_runtime.analyzers.llm.client import cached_tokens
from analyzer_runtime.contract.llm_presets import pricing_for_spec
from analyzer_runtime.contract.status import ShardCounters, TokenPricing
from tests.builders import T0, shard, status


def _shard(prompt: int, completion: int, cached: int) -> ShardCounters:
    return shard(0, "done", total=10, done=10, finished_at=T0, tokens_prompt=prompt,
                 tokens_completion=completion, tokens_cached=cached)  # fmt: skip


def test_the_status_bills_cached_tokens_at_the_presets_cached_price() -> None:
    pricing = pricing_for_spec({"analyzer": "llm", "llm": {"provider": "openai"}})
    assert pricing == TokenPricing(0.15 / 1000, 0.60 / 1000, 0.075 / 1000)
    st = status([_shard(10_000, 1_000, 4_096)], now=T0 + timedelta(hours=1), pricing=pricing)
    assert st["tokens"]["cached"] == 4_096
    want = (5_904 * 0.15 + 4_096 * 0.075 + 1_000 * 0.60) / 1e6
    assert st["estimatedCost"] == pytest.approx(want, abs=1e-6)
    assert st["estimatedCost"] < (10_000 * 0.15 + 1_000 * 0.60) / 1e6


def test_a_spec_price_with_a_cached_price_reaches_the_status() -> None:
    spec = {"analyzer": "llm", "llm": {"provider": "custom", "baseURL": "http://x/v1",
            "model": "m", "pricing": {"promptPerMillion": 1.0, "completionPerMillion": 2.0,
                                      "cachedPromptPerMillion": 0.1}}}  # fmt: skip
    pricing = pricing_for_spec(spec)
    assert pricing is not None and pricing.cached_prompt_per_1k == pytest.approx(0.0001)
    # OpenAI's Batch API halves every price, the cached one too.
    batch = pricing_for_spec({"analyzer": "llm", "llm": {"provider": "openai", "mode": "batch"}})
    assert batch is not None and batch.cached_prompt_per_1k == pytest.approx(0.0375 / 1000)


@pytest.mark.parametrize(
    ("usage", "want"),
    [
        (SimpleNamespace(prompt_tokens_details=SimpleNamespace(cached_tokens=1152)), 1152),
        (SimpleNamespace(prompt_tokens_details=SimpleNamespace(cached_tokens=None)), 0),
        (SimpleNamespace(prompt_tokens_details=None), 0),  # many servers leave it out
        (SimpleNamespace(), 0),
        (None, 0),
        (SimpleNamespace(prompt_tokens_details={"cached_tokens": 256}), 256),
    ],
)
def test_cached_tokens_are_read_where_a_server_sends_them(usage: object, want: int) -> None:
    assert cached_tokens(usage) == want
