"""Tolerant parsing, thinking control per preset, the unusable-answer breaker and
TooManyTrackFailures (issue 11) - pure, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from analyzer_runtime.analyzers.llm import prompt, schema
from analyzer_runtime.analyzers.llm.breaker import CircuitBreaker, State
from analyzer_runtime.analyzers.llm.prompt import Prompt
from analyzer_runtime.contract import llm_presets as presets
from analyzer_runtime.contract.llm_models import LLMOptions
from analyzer_runtime.contract.status import ShardCounters
from tests.builders import T0, shard, status

ENTRY = {"id": "7", "sentiment": "positive", "confidence": 0.8, "themes": ["money"],
         "complexity": 0.4, "quality": 6, "explicit": False, "summary": "A song."}  # fmt: skip
DOC = json.dumps({"results": [ENTRY]})


@pytest.mark.parametrize(
    "text",
    [
        DOC,
        f'<think>\nThe user wants {{"results": []}} ...\n</think>\n\n{DOC}',
        f"<think>\n\n</think>\n\n{DOC}",
        f"Okay, the lyrics are about money.\n</think>\n\n{DOC}",
        f"Here is the analysis:\n```json\n{DOC}\n```\nLet me know if you need more.",
        f"```\n{DOC}\n```",
        f"Sure! {DOC} Hope that helps.",
    ],
)
def test_tolerant_about_where_the_json_is(text: str) -> None:
    parsed = schema.parse(text, ["7"])
    assert list(parsed.valid) == ["7"] and parsed.problem is None


def test_strict_about_what_it_is() -> None:
    wrong_id = json.dumps({"results": [{**ENTRY, "id": "8"}]})
    assert schema.parse(f"<think>x</think>{wrong_id}", ["7"]).valid == {}
    bad = json.dumps({"results": [{**ENTRY, "quality": 99}]})
    parsed = schema.parse(f"```json\n{bad}\n```", ["7"])
    assert parsed.valid == {} and "validation" in parsed.errors["7"]
    assert schema.parse("<think>I am still thinking", ["7"]).problem == "only thinking, no answer"
    cut = schema.parse("<think>I am still thin", ["7"], finish_reason="length")
    assert cut.truncated and "token limit" in str(cut.problem)
    assert schema.parse(None, ["7"]).problem == "empty answer"
    # The thinking's own JSON is never taken for the answer.
    fake = json.dumps({"results": [{**ENTRY, "quality": 1}]})
    parsed = schema.parse(f"<think>{fake}</think>\n{DOC}", ["7"])
    assert parsed.valid["7"].quality == 6


def _resolved(provider: str, **llm: object) -> presets.ResolvedLLM:
    base = {"baseURL": "http://x/v1", "model": "m"} if provider == "custom" else {}
    return presets.resolve(LLMOptions.model_validate({"provider": provider, **base, **llm}))


def test_thinking_control_per_preset() -> None:
    assert LLMOptions().thinking == "off" and LLMOptions().max_tokens == 4096
    for provider in ("novita", "custom"):
        r = _resolved(provider)
        assert r.extra_body() == {"chat_template_kwargs": {"enable_thinking": False}}
        assert r.no_think_switch
        on = _resolved(provider, thinking="on")
        assert on.extra_body() == {"chat_template_kwargs": {"enable_thinking": True}}
        assert not on.no_think_switch
        assert _resolved(provider, thinking="auto").extra_body() is None
    ollama = _resolved("ollama")
    assert ollama.extra_body() == {"reasoning_effort": "none"} and not ollama.no_think_switch
    assert _resolved("openai").extra_body() is None
    assert presets.PRESETS["novita"].requests_per_minute == 30
    with pytest.raises(ValueError):
        LLMOptions.model_validate({"thinking": "maybe"})


def test_the_no_think_switch_and_the_completion_budget() -> None:
    from analyzer_runtime.analyzers.base import TrackInput

    tracks = [TrackInput(i, "t", "a", "money") for i in range(1, 4)]
    p = prompt.build(tracks, no_think=True, max_tokens=300)
    assert p.messages[1]["content"].endswith("\n/no_think")
    assert p.max_tokens == 300  # 50 + 3 * 200 capped by maxTokens
    assert prompt.build(tracks).max_tokens == 650
    assert prompt.repair(p, "x", "y").max_tokens == 300
    assert isinstance(p.with_budget(4096), Prompt) and p.with_budget(4096).max_tokens == 4096


def test_unusable_answers_open_the_breaker_only_in_a_row() -> None:
    b = CircuitBreaker(threshold=5, unusable_threshold=3, clock=lambda: 0.0)
    b.unusable()
    b.unusable()
    b.success()  # a mere HTTP 200 is no proof of a usable answer
    assert b.unusable_count == 2 and b.state is State.closed
    b.usable()
    b.unusable()
    b.unusable()
    assert b.state is State.closed
    b.unusable()
    assert b.state is State.open


def _shard(done: int, failed: int) -> ShardCounters:
    return shard(0, "done", total=done + failed, done=done, failed=failed, finished_at=T0)


def test_too_many_track_failures_fail_the_run() -> None:
    now = datetime(2026, 1, 1, 1, tzinfo=UTC)
    st = status([_shard(9, 11)], now=now)
    assert st["phase"] == "Failed"
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "TooManyTrackFailures" and "11 of 20" in failed["message"]
    half = status([_shard(10, 10)], now=now)
    assert half["phase"] == "Succeeded"  # exactly the threshold is not more than it
    strict = status([_shard(18, 2)], now=now, failure_threshold=0.05)
    assert strict["phase"] == "Failed"
