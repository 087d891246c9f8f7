"""A fake OpenAI-compatible provider: real HTTP, real protocol, scripted behaviour.

    POST /v1/chat/completions   answers from answers.py (deterministic per track)
    GET  /v1/models             the configured model
    /v1/files, /v1/batches      the Files and Batch APIs (files.py, batches.py); the
                                lines a batch answers are in /admin/log too
    GET  /admin/batches         every batch, and each Files/Batch API call
    GET  /admin/config          the current FakeConfig as JSON
    POST /admin/config          merge a JSON object into it (e.g. {"down": true})
    GET  /admin/log             every chat request: receipt time, status, the tracks'
                                keys and lyrics digests
    POST /admin/reset           clear the log, the rate-limit window, files and batches

Behaviours (FakeConfig): a latency distribution (log-normal from p50 and p95), a
sliding-window request limit answered with 429 + Retry-After / retry-after-ms,
bursts of 500/503 (`fail_next`), a provider that is down, slow answers, an API key
it insists on, refusal of JSON-schema response formats, and answers that vary between
requests like a model sampled at temperature > 0 (`sentiment_noise`, `theme_noise`).

Modes modelled on the real services (`FakeConfig.mode`), and what they follow:
    normal          the JSON answer as `content`.
    think_inline    Qwen3 served without a reasoning parser: thinking inline,
                    `<think>…</think>\n\n{json}` (Qwen3 model card, "Switching Between
                    Thinking and Non-Thinking Mode": thinking is on by default and
                    wrapped in <think>…</think>; with `enable_thinking=False` in the chat
                    template, or the `/no_think` soft switch in the user message, the
                    model answers with an empty `<think>\n\n</think>` block first).
    think_parser    Qwen3 behind vLLM/SGLang with `--reasoning-parser qwen3` (vLLM docs,
                    "Reasoning Outputs"): the thinking in `message.reasoning_content`,
                    the answer in `content`; thinking counts against `max_tokens`, so a
                    budget too small for thinking + answer ends `finish_reason: "length"`
                    with `content: null` (or the answer cut off). With thinking off it
                    answers as Qwen3 does then: `<think>\n\n</think>\n\n{json}`.
    prose_fence     "Here is the analysis:\n```json\n{json}\n```" and a closing remark.
    empty_choices   HTTP 200 with `choices: []`.
Flavours (`FakeConfig.flavour`): "openai" answers as above; "vllm" plays vLLM's
OpenAI-compatible server's structured outputs (vllm.py: constrained JSON, its request
validation, the removed guided_* fields ignored).
Thinking is on unless the request carries `chat_template_kwargs.enable_thinking:
false` or ends its user message with `/no_think` (`thinking_tokens` tokens of it).
Rate limits as Novita documents them (novita.ai/docs/guides/llm-rate-limits: per-model
RPM tiers, 30 RPM first tier for qwen3-4b-fp8; an exceeded limit answers HTTP 429 with
a message, no Retry-After): `retry_after_header=False` drops the header, `rate_limit`
below the client's budget is "a provider limit below our budget", `always_429` is a
permanent 429. Every request's body, messages aside, is in the log (`body`).

Usage is counted with a real BPE over the chat template (tokens.py: OpenAI's
cl100k_base, `FakeConfig.tokenizer`; "chars4" is the old characters/4 rule), and
`usage.prompt_tokens_details.cached_tokens` follows OpenAI's documented prompt caching
(prompt_cache.py: prompts of 1,024+ tokens, exact prefixes, 128-token steps,
`cache_ttl` seconds of idle life; `cache_min_tokens`/`cache_step` 16/16 for vLLM's
prefix caching; `prompt_caching=False` for a server without it).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from rap_devtools.fake_llm import answers, tokens, vllm
from rap_devtools.fake_llm.batches import BatchApi, BatchSettings
from rap_devtools.fake_llm.prompt_cache import DEFAULT_TTL, INCREMENT, MIN_TOKENS, PromptCache
from rap_devtools.fake_server import AdminApi, Settings


@dataclass
class FakeConfig(BatchSettings, Settings):  # batch_* knobs: batches.py
    model: str = "fake-qwen"
    api_key: str | None = None  # when set, requests must carry `Authorization: Bearer <key>`
    latency_p50: float = 0.0  # seconds; 0 = answer at once
    latency_p95: float = 0.0
    seed: int = 0
    rate_limit: int | None = None  # accepted requests per rate_window (sliding)
    rate_window: float = 60.0
    fail_next: int = 0  # the next N requests fail with fail_status (a burst)
    fail_status: int = 503
    down: bool = False  # every request fails with fail_status
    slow_seconds: float = 0.0  # extra delay for tracks marked @@SLOW@@
    reject_json_schema: bool = False  # 400 on response_format json_schema
    context_length: int | None = None  # 400 "maximum context length" above this many tokens
    mode: str = "normal"  # normal | think_inline | think_parser | prose_fence | empty_choices
    thinking_tokens: int = 600  # how long the model thinks when thinking is on
    retry_after_header: bool = True  # False: 429 without Retry-After (as Novita's)
    always_429: bool = False  # every request is answered 429 (a permanent limit)
    labels: str = "hash"  # hash | features: how quality/complexity are made (answers.py)
    # A model sampled at temperature > 0 (answers.sampled): the probability that an
    # entry's sentiment is another label / one of its themes another theme.
    sentiment_noise: float = 0.0
    theme_noise: float = 0.0
    # Whose server it plays: "openai" (OpenAI/Novita/Ollama-like), or "vllm" (its
    # structured outputs, request validation and ignored guided_* fields: vllm.py).
    flavour: str = "openai"
    tokenizer: str = tokens.DEFAULT_TOKENIZER  # cl100k_base | chars4 (tokens.py)
    prompt_caching: bool = True  # cached_tokens as OpenAI documents it (prompt_cache.py)
    cache_ttl: float = DEFAULT_TTL  # seconds a cached prefix lives unused
    # OpenAI: from 1,024 tokens in steps of 128; vLLM's prefix caching: 16 and 16.
    cache_min_tokens: int = MIN_TOKENS
    cache_step: int = INCREMENT


class FakeProvider(AdminApi):
    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.rng = random.Random(self.config.seed)
        self.t0 = time.monotonic()
        self.accepted: deque[float] = deque()
        self.log: list[dict[str, Any]] = []
        self.batches = BatchApi(self)  # the Files and Batch APIs
        self.served = 0  # chat requests answered: seeds each request's sampling
        self.cache = PromptCache()
        tokens.get(self.config.tokenizer)  # built now, not during the first request

    # ---- behaviour -------------------------------------------------------------

    def latency(self) -> float:
        c = self.config
        if c.latency_p50 <= 0:
            return 0.0
        p95 = max(c.latency_p95, c.latency_p50)
        sigma = math.log(p95 / c.latency_p50) / 1.6449  # z of the 95th percentile
        return c.latency_p50 * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def _rate_limited(self, now: float) -> float | None:
        """Seconds until the window has room, or None if this request may go."""
        c = self.config
        if not c.rate_limit:
            return None
        while self.accepted and self.accepted[0] <= now - c.rate_window:
            self.accepted.popleft()
        if len(self.accepted) < c.rate_limit:
            self.accepted.append(now)
            return None
        return self.accepted[0] + c.rate_window - now

    # ---- HTTP ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        self.batches.add_routes(app.router)
        self.add_admin_routes(app.router)
        return app

    def _authorized(self, request: web.Request) -> bool:
        key = self.config.api_key
        return not key or request.headers.get("Authorization") == f"Bearer {key}"

    async def models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid API key", "invalid_api_key")
        return web.json_response(
            {"object": "list", "data": [{"id": self.config.model, "object": "model",
                                         "created": 0, "owned_by": "rap-devtools"}]}
        )  # fmt: skip

    async def chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        entry: dict[str, Any] = {"t": round(now - self.t0, 6), "wall": time.time()}
        self.log.append(entry)
        try:
            body = await request.json()
        except ValueError:
            entry["status"] = 400
            return _error(400, "the body is not JSON", "invalid_request_error")
        tracks, repair = answers.tracks_of(body.get("messages") or [])
        # The ids are the request's own keys, not database ids: a test maps a request
        # to its tracks by the lyrics' digest (answers.lyrics_digest).
        entry.update(
            tracks=[str(t.get("id")) for t in tracks],
            lyrics=[answers.lyrics_digest(str(t.get("lyrics") or "")) for t in tracks],
            repair=repair,
        )
        entry["body"] = {k: v for k, v in body.items() if k != "messages"}
        entry["switch"] = answers.soft_switch(body.get("messages") or [])
        status, response = await self._chat(request, body, tracks, repair, now, entry)
        entry["status"] = status
        return response

    async def _chat(
        self,
        request: web.Request,
        body: dict[str, Any],
        tracks: list[dict[str, Any]],
        repair: bool,
        now: float,
        entry: dict[str, Any],
    ) -> tuple[int, web.StreamResponse]:
        c = self.config
        if not self._authorized(request):
            return 401, _error(401, "Incorrect API key provided.", "invalid_api_key")
        if c.down or c.fail_next > 0:
            c.fail_next = max(0, c.fail_next - 1)
            return c.fail_status, _error(
                c.fail_status, "the fake provider is failing", "server_error"
            )
        if (invalid := self.invalid(body)) is not None:
            return invalid[0], _error(*invalid)
        wait = 60.0 if c.always_429 else self._rate_limited(now)
        if wait is not None:
            headers = (
                {"retry-after": str(max(1, math.ceil(wait))),
                 "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
                if c.retry_after_header else None
            )  # fmt: skip
            return 429, _error(
                429, "Rate limit reached for requests", "rate_limit_exceeded", headers
            )
        delay = self.latency()
        if any("@@SLOW@@" in str(t.get("lyrics") or "") for t in tracks):
            delay += c.slow_seconds
        if delay:
            await asyncio.sleep(delay)
        return 200, web.json_response(await self.completion(body, tracks, repair, entry))

    def invalid(self, body: dict[str, Any]) -> tuple[int, str, str] | None:
        """Why the provider refuses `body` as invalid, (status, message, code), or None;
        a batch line is checked the same way (batches.py)."""
        c = self.config
        if c.flavour == "vllm" and (refused := vllm.request_error(body)) is not None:
            return refused
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema" and c.reject_json_schema:
            return 400, "response_format json_schema is not supported", "invalid_request_error"
        tok = tokens.get(c.tokenizer)
        prompt_ids = tok.prompt_tokens(body.get("messages") or [])
        if c.context_length and len(prompt_ids) > c.context_length:
            return (
                400,
                f"This model's maximum context length is {c.context_length} tokens.",
                "context_length_exceeded",
            )
        return None

    async def completion(
        self,
        body: dict[str, Any],
        tracks: list[dict[str, Any]],
        repair: bool,
        entry: dict[str, Any],
    ) -> dict[str, Any]:
        """The chat.completion object answering `body` (its usage noted in `entry`); a
        batch line's response body is made by the same code (batches.py)."""
        c = self.config
        prompt_ids = tokens.get(c.tokenizer).prompt_tokens(body.get("messages") or [])
        self.served += 1
        noisy = c.sentiment_noise > 0 or c.theme_noise > 0
        # Off the event loop: "features" labels parse the lyrics like the analyzers do.
        content, refusal, finish = await asyncio.to_thread(
            answers.answer, tracks, repair=repair, labels=c.labels, seed=c.seed,
            rng=random.Random(f"{c.seed}:{self.served}") if noisy else None,
            sentiment_noise=c.sentiment_noise, theme_noise=c.theme_noise,
        )  # fmt: skip
        content, reasoning, finish, thought_tokens = self._mode(body, content, finish)
        if c.flavour == "vllm":
            entry["ignored"] = vllm.ignored_fields(body)
            content, refusal = vllm.constrain(
                body, tracks, content, refusal, finish, labels=c.labels, seed=c.seed
            )
        usage = self.usage(prompt_ids, content, thought_tokens, time.monotonic())
        entry["usage"] = {
            "prompt": usage["prompt_tokens"],
            "completion": usage["completion_tokens"],
            "cached": usage["prompt_tokens_details"]["cached_tokens"],
        }
        entry["finish_reason"] = finish
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        if c.mode == "empty_choices":
            choices: list[dict[str, Any]] = []
        else:
            choices = [{"index": 0, "message": message, "finish_reason": finish}]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or c.model,
            "choices": choices,
            "usage": usage,
        }

    def usage(
        self, prompt_ids: list[int], content: str | None, reasoning_tokens: int, now: float
    ) -> dict[str, Any]:
        """The answer's `usage` object (Chat Completions reference): prompt tokens of
        the rendered template, completion tokens of the content plus the reasoning,
        and the cached part of the prompt (which this request then caches in turn)."""
        c = self.config
        p = len(prompt_ids)
        k = tokens.get(c.tokenizer).count(content or "") + reasoning_tokens
        cached = 0
        if c.prompt_caching:
            self.cache.ttl = c.cache_ttl
            cached = self.cache.lookup_and_store(prompt_ids, now, c.cache_min_tokens, c.cache_step)
        return {
            "prompt_tokens": p,
            "completion_tokens": k,
            "total_tokens": p + k,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }

    def _mode(
        self, body: dict[str, Any], content: str | None, finish: str
    ) -> tuple[str | None, str | None, str, int]:
        """(content, reasoning_content, finish_reason, thinking tokens) in the mode."""
        c = self.config
        if content is None or finish != "stop":
            return content, None, finish, 0
        if c.mode == "prose_fence":
            text = f"Here is the analysis:\n```json\n{content}\n```\nLet me know if you need more."
            return text, None, finish, 0
        if c.mode not in ("think_inline", "think_parser"):
            return content, None, finish, 0
        kwargs = body.get("chat_template_kwargs") or {}
        thinking = kwargs.get("enable_thinking", True) is not False
        if answers.soft_switch(body.get("messages") or []) == "/no_think":
            thinking = False
        if not thinking:  # Qwen3 with thinking off: an empty block, then the answer
            return f"<think>\n\n</think>\n\n{content}", None, finish, 0
        budget = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
        tok = tokens.get(c.tokenizer)
        # Filler thinking, cut to exactly thinking_tokens tokens.
        thought = tok.truncate(
            "Let me look at the lyrics line by line. " * (c.thinking_tokens // 10 + 1),
            c.thinking_tokens,
        )
        answer_tokens = tok.count(content)
        if c.mode == "think_inline":
            text = f"<think>\n{thought}\n</think>\n\n{content}"
            if budget < c.thinking_tokens + answer_tokens:
                return tok.truncate(text, budget), None, "length", 0
            return text, None, finish, 0
        if budget <= c.thinking_tokens:  # the budget ran out while thinking
            return None, tok.truncate(thought, budget), "length", budget
        left = budget - c.thinking_tokens
        if left < answer_tokens:
            return tok.truncate(content, left), thought, "length", c.thinking_tokens
        return content, thought, finish, c.thinking_tokens

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
            tokens.get(self.config.tokenizer)
        except ValueError as exc:
            return _error(400, str(exc), "invalid_request_error")
        if "seed" in await request.json():
            self.rng = random.Random(self.config.seed)
        return web.json_response(asdict(self.config))

    async def reset(self, request: web.Request) -> web.Response:
        self.log.clear()
        self.accepted.clear()
        self.cache.clear()
        self.batches.reset()
        return web.json_response({"ok": True})


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    kind = (
        "requests" if status == 429 else "invalid_request_error" if status < 500 else "server_error"
    )
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code, "param": None}},
        status=status,
        headers=headers,
    )
