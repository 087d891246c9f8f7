"""The prompt's layout for prompt caching (prompt.py): the static part first and the
same bytes in every request, whatever the tracks, the pack, the thinking switch or a
repair; what varies after it. Measured with the fake provider's real BPE."""

from __future__ import annotations

import json

from rap_devtools.fake_llm import tokens

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm import prompt
from analyzer_runtime.contract import llm_presets as presets
from analyzer_runtime.contract.llm_models import LLMOptions
from analyzer_runtime.ledger import llm_estimate as estimate

# Where the first per-request byte may start: the user message's opening.
OPENING = '{"tracks": [{"id": "'


def _tracks(n: int, base: int = 0) -> list[TrackInput]:
    return [
        TrackInput(base + i, f"Title {base + i}", f"Artist {i}", f"lyrics {base + i} money\nuh")
        for i in range(n)
    ]


def _keys(n: int, first: str) -> list[str]:
    # Random in production (prompt.new_keys); fixed here so that the first per-request
    # token is known to differ: each request's keys start with another hex digit.
    return [f"k{first}{i:07x}" for i in range(n)]


def _requests() -> list[prompt.Prompt]:
    one = prompt.build(_tracks(1), keys=_keys(1, "0"))
    return [
        one,
        prompt.build(_tracks(1, 100), no_think=True, keys=_keys(1, "1")),
        prompt.build(_tracks(4, 200), keys=_keys(4, "2")),
        prompt.build(_tracks(8, 300), no_think=True, max_tokens=300, keys=_keys(8, "3")),
        prompt.repair(one, '{"results": [', "malformed JSON"),
        prompt.build([TrackInput(9, "T", "A", "x" * 50_000)], 100, keys=_keys(1, "4")),
        prompt.build(_tracks(2, 400)),  # random keys
    ]


def _static_prefix(p: prompt.Prompt) -> str:
    """Everything before the first byte that depends on the request."""
    system, user = p.messages[0], p.messages[1]
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content"].startswith(OPENING)
    return json.dumps([system, user["role"]]) + OPENING


def test_the_static_prefix_is_byte_identical_across_requests() -> None:
    requests = _requests()
    prefixes = {_static_prefix(p) for p in requests}
    assert len(prefixes) == 1
    for p in requests:
        assert p.messages[0]["content"] == prompt.SYSTEM_PROMPT
        # Lyrics come after it, and Qwen3's switch after the lyrics.
        doc = json.loads(p.messages[1]["content"].removesuffix(f"\n{prompt.NO_THINK_SWITCH}"))
        assert all(t["lyrics"] for t in doc["tracks"])
        if p.messages[1]["content"].endswith(prompt.NO_THINK_SWITCH):
            assert p.messages[1]["content"].index(prompt.NO_THINK_SWITCH) > len(OPENING)
    # A repair appends: the whole first request is its prefix.
    first, repaired = requests[0], requests[4]
    assert repaired.messages[: len(first.messages)] == first.messages


def test_the_rendered_prompts_share_the_static_tokens_and_the_estimate_knows_how_many() -> None:
    tok = tokens.get()
    requests = _requests()
    # Without the repair (it repeats the first request's keys) and the random keys (a
    # key's first characters may merge with its `k` into one token, or not).
    del requests[6], requests[4]
    rendered = [tok.prompt_tokens(p.messages) for p in requests]
    shortest = min(len(r) for r in rendered)
    shared = next((i for i in range(shortest) if len({r[i] for r in rendered}) > 1), shortest)
    # The system prompt, its template and the opening: measured, not assumed.
    assert shared == tok.count(prompt.SYSTEM_PROMPT) + prompt.TEMPLATE_OVERHEAD_TOKENS
    # Under OpenAI's 1,024-token minimum on purpose (prompt.py: padding would not pay).
    assert shared < 1024
    openai = presets.resolve(LLMOptions.model_validate({"provider": "openai"}))
    assert estimate.cached_per_request(openai) == 0
    vllm = presets.resolve(
        LLMOptions.model_validate({"provider": "vllm", "baseURL": "http://v/v1", "model": "m"})
    )
    # vLLM caches whole 16-token blocks: the estimate is within one block of the truth.
    assert abs(estimate.cached_per_request(vllm) - shared // 16 * 16) <= 16


def test_the_contracts_prompt_size_is_the_prompts() -> None:
    # The operator estimates llm runs from contract/llm_presets.py, without the prompt.
    assert presets.SYSTEM_PROMPT_TOKENS == prompt.estimate_tokens(prompt.SYSTEM_PROMPT)
