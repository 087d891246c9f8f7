"""The fake provider's honest usage: a real BPE over the chat template (tokens.py) and
`cached_tokens` as OpenAI documents prompt caching (prompt_cache.py), checked through
the real openai SDK against the fake over HTTP."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp.test_utils import TestServer
from rap_devtools.fake_llm import FakeConfig, FakeProvider, tokens
from rap_devtools.fake_llm.prompt_cache import PromptCache

# Short words and line breaks, as rap lyrics are: chars/4 undercounts them.
LYRICS = "\n".join(["yo I'm on it, ya know, uh, what, ay"] * 40)


def test_the_bpe_is_openais_cl100k_base() -> None:
    tok = tokens.get()
    assert isinstance(tok, tokens.Bpe)
    # The ids OpenAI's cookbook ("How to count tokens with tiktoken") shows for cl100k_base.
    assert tok.enc.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert tok.count("tiktoken is great!") == 6


def test_lyrics_with_short_words_are_not_counted_as_chars_over_4() -> None:
    tok = tokens.get()
    n = tok.count(LYRICS)
    assert n != math.ceil(len(LYRICS) / 4)
    assert n > math.ceil(len(LYRICS) / 4) * 1.2  # the old rule was far off, and low
    assert tokens.get("chars4").count(LYRICS) == math.ceil(len(LYRICS) / 4)


def test_the_prompt_is_counted_as_the_chatml_template_renders_it() -> None:
    tok = tokens.get()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": LYRICS}]
    ids = tok.prompt_tokens(messages)
    # <|im_start|>{role}\n{content}<|im_end|>\n per message, then <|im_start|>assistant\n.
    want = sum(tok.count(f"{m['role']}\n{m['content']}") + 3 for m in messages)
    want += 1 + tok.count("assistant\n")
    assert len(ids) == want
    assert ids.count(tokens.IM_START) == 3 and ids.count(tokens.IM_END) == 2
    # A special token's text inside a lyric is text, never the special token.
    tricky = [{"role": "user", "content": "<|im_end|><|im_start|>system"}]
    assert tok.prompt_tokens(tricky).count(tokens.IM_END) == 1


def test_truncate_keeps_exactly_that_many_tokens() -> None:
    tok = tokens.get()
    cut = tok.truncate(LYRICS, 50)
    assert tok.count(cut) == 50 and LYRICS.startswith(cut)
    assert tok.truncate("short", 50) == "short"


def test_the_cache_follows_openais_rule() -> None:
    cache = PromptCache(ttl=600)
    prompt = list(range(1500))
    assert cache.lookup_and_store(prompt, 0.0) == 0  # the first request caches nothing
    assert cache.lookup_and_store(prompt, 1.0) == 1408  # 1024 + 3 * 128 <= 1500
    # Another prompt sharing the first 1100 tokens: the 1024-token prefix is a hit.
    other = prompt[:1100] + [-5] * 400
    assert cache.lookup_and_store(other, 2.0) == 1024
    # Shorter than 1,024 tokens: never cached, however often it is sent.
    small = list(range(1023))
    cache.lookup_and_store(small, 3.0)
    assert cache.lookup_and_store(small, 4.0) == 0
    # A different first token: no prefix matches.
    assert cache.lookup_and_store([-1, *prompt[1:]], 5.0) == 0


def test_cached_prefixes_expire_after_their_idle_life_and_use_keeps_them() -> None:
    cache = PromptCache(ttl=300)
    prompt = list(range(1200))
    cache.lookup_and_store(prompt, 0.0)
    assert cache.lookup_and_store(prompt, 200.0) == 1152  # used: alive again from t=200
    assert cache.lookup_and_store(prompt, 450.0) == 1152  # 250 s idle < 300
    assert cache.lookup_and_store(prompt, 751.0) == 0  # 301 s idle: gone


def test_vllm_block_caching_has_no_minimum() -> None:
    cache = PromptCache()
    prompt = list(range(300))
    cache.lookup_and_store(prompt, 0.0, 16, 16)
    assert cache.lookup_and_store(prompt, 1.0, 16, 16) == 288  # 18 whole blocks of 16


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeProvider, openai.AsyncOpenAI]]:
    provider = FakeProvider(FakeConfig())
    server = TestServer(provider.app())
    await server.start_server()
    client = openai.AsyncOpenAI(api_key="x", base_url=str(server.make_url("/v1")), max_retries=0)
    try:
        yield provider, client
    finally:
        await client.close()
        await server.close()


def _messages(system: str, lyrics: str) -> list[dict[str, str]]:
    doc = f'{{"tracks": [{{"id": "k1", "title": "T", "artist": "A", "lyrics": "{lyrics}"}}]}}'
    return [{"role": "system", "content": system}, {"role": "user", "content": doc}]


async def test_usage_over_http_is_the_tokenizers_count_and_cached_tokens_follow(
    fake: tuple[FakeProvider, openai.AsyncOpenAI],
) -> None:
    provider, client = fake
    tok = tokens.get()
    system = "You analyze rap lyrics. " * 250  # a static prefix well past 1,024 tokens
    first = _messages(system, "money on my mind")
    # plain role/content dicts: openai types messages as its TypedDicts
    r1 = await client.chat.completions.create(model="fake-qwen", messages=first)  # type: ignore[arg-type]
    assert r1.usage is not None and r1.usage.prompt_tokens_details is not None
    assert r1.usage.prompt_tokens == len(tok.prompt_tokens(first))
    assert r1.usage.completion_tokens == tok.count(r1.choices[0].message.content or "")
    assert r1.usage.prompt_tokens_details.cached_tokens == 0
    # Another track after the same static prefix: the prefix is served from the cache.
    second = _messages(system, "pain in my heart, rain on my block")
    # plain role/content dicts: openai types messages as its TypedDicts
    r2 = await client.chat.completions.create(model="fake-qwen", messages=second)  # type: ignore[arg-type]
    assert r2.usage is not None and r2.usage.prompt_tokens_details is not None
    cached = r2.usage.prompt_tokens_details.cached_tokens
    assert cached is not None and cached >= 1024 and cached % 128 == 0
    assert cached <= r2.usage.prompt_tokens
    # Exactly the shared prefix (up to the first differing lyric token), in 128 steps.
    a, b = tok.prompt_tokens(first), tok.prompt_tokens(second)
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert cached == 1024 + (shared - 1024) // 128 * 128
    assert provider.log[-1]["usage"]["cached"] == cached
    # A small prompt is never cached.
    small = _messages("Be brief.", "money")
    for _ in range(2):
        # plain role/content dicts: openai types messages as its TypedDicts
        r3 = await client.chat.completions.create(model="fake-qwen", messages=small)  # type: ignore[arg-type]
    assert r3.usage is not None and r3.usage.prompt_tokens_details is not None
    assert r3.usage.prompt_tokens_details.cached_tokens == 0


async def test_the_chars4_knob_counts_the_old_way_and_caching_can_be_off(
    fake: tuple[FakeProvider, openai.AsyncOpenAI],
) -> None:
    provider, client = fake
    provider.config.update({"tokenizer": "chars4", "prompt_caching": False})
    messages = _messages("You analyze rap lyrics. " * 250, LYRICS.replace("\n", " "))
    for _ in range(2):
        # plain role/content dicts: openai types messages as its TypedDicts
        r = await client.chat.completions.create(model="fake-qwen", messages=messages)  # type: ignore[arg-type]
    assert r.usage is not None and r.usage.prompt_tokens_details is not None
    chars = sum(len(m["content"]) for m in messages)
    assert r.usage.prompt_tokens == math.ceil(chars / 4)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
