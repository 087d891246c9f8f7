"""Providers, default models, prices and the version string results are stored under.

Everything provider-specific lives here, in one place: base URLs, default models and
temperatures, which structured-output mode each supports, their documented rate
limits, how each turns a thinking model's reasoning off, and per-model prices for
`estimatedCost`.

Rate limits: Novita publishes per-model tiers; for qwen/qwen3-4b-fp8 the first tier
is 30 requests/min and the second 100 (https://novita.ai/docs/guides/llm-rate-limits).
The `novita` preset defaults to the first tier, 30/min - what every new account gets;
a higher tier is spec.rateLimit.requestsPerMinute.

Thinking (`spec.llm.thinking`, default off), per preset's `thinking_style`:
- "qwen" (novita, custom: Qwen3 behind Novita, vLLM or SGLang): off sends
  `chat_template_kwargs: {"enable_thinking": false}` in the body (the SDK's
  `extra_body`) and appends Qwen3's documented `/no_think` switch to the user
  message; on sends `enable_thinking: true`.
- "ollama": Ollama's OpenAI-compatible /v1/chat/completions maps `reasoning_effort`
  to its `think` option ("none" turns it off; documented in ollama/ollama#14820 /
  PR #14821, docs.ollama.com/api/openai-compatibility). The native `think: false`
  field is for /api/chat and is ignored on /v1, so it is not what we send.
- None (openai): nothing is sent.
`auto` sends nothing anywhere. Whatever is sent, thinking that appears in the answer
is stripped (schema.strip_thinking).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyzer_runtime.contract.llm_models import (
    BATCH_WINDOWS,
    OFFICIAL_BASE_URLS,
    endpoint_host,
    is_official_endpoint,
)
from analyzer_runtime.contract.models import LLMOptions
from analyzer_runtime.contract.status import TokenPricing
from analyzer_runtime.contract.types import LLMMode, LLMProvider, ResponseFormat

# Bump when the prompt (analyzers/llm/prompt.py) or its answer schema changes: it is
# part of every llm result's model_version, which the operator computes at planning.
PROMPT_VERSION = "1"
# ---- the prompt's sizes (analyzers/llm/prompt.py), for the planning-time estimate ----
# No tokenizer for every provider's model offline: ~4 characters per token is the
# usual estimate for English text (and errs high for rap's short words).
CHARS_PER_TOKEN = 4
DEFAULT_MAX_INPUT_TOKENS = 2000
# What an answer costs in the estimate (measured answers are ~60-90 tokens).
ESTIMATED_COMPLETION_TOKENS_PER_TRACK = 80
# title, artist, id and JSON punctuation per track, in tokens.
TRACK_OVERHEAD_TOKENS = 20
# The chat template around the system prompt and the user message's opening up to the
# first key (`<|im_start|>system\n`...`{"tracks": [{"id": "k`): the static prefix is
# SYSTEM_PROMPT's tokens plus these (16 by cl100k_base, the fake provider's BPE).
TEMPLATE_OVERHEAD_TOKENS = 16
# prompt.estimate_tokens(prompt.SYSTEM_PROMPT): the operator estimates without the
# prompt's text (tests/unit/test_llm_prompt_layout.py keeps it equal).
SYSTEM_PROMPT_TOKENS = 264
# The operator injects the key of spec.llm.apiKeySecretRef under this name; locally,
# export it (or the provider's conventional variable below).
API_KEY_ENV = "LLM_API_KEY"
# Results go to analysis_results.model_version, a varchar(100).
MAX_VERSION_LENGTH = 100


@dataclass(frozen=True, slots=True)
class BatchSupport:
    """A provider's Batch API: its completion window and its price as a fraction of
    the list price (None: no discount known - spec.llm.pricing is the lane's price)."""

    window: str  # "24h" | "48h"
    discount: float | None
    # Appended to the preset's own base URL for the Files/Batches endpoints (Novita
    # serves chat under /openai and batches under /openai/v1).
    path: str = ""


@dataclass(frozen=True, slots=True)
class Preset:
    provider: str
    base_url: str | None
    model: str | None
    temperature: float | None
    # Conventional variables checked after LLM_API_KEY (the original platform used NOVITA_API_KEY).
    key_env: tuple[str, ...]
    needs_key: bool
    response_format: ResponseFormat
    # The provider's documented limit: the run's budget when spec.rateLimit is unset.
    requests_per_minute: int | None
    # Typical latency of one request (s), for duration estimates without a budget.
    latency_p50: float
    # How thinking is switched off/on: "qwen", "ollama" or None (see the module doc).
    thinking_style: str | None = None
    # The provider's OpenAI-compatible Batch API (`mode: batch`); None: it has none.
    batch: BatchSupport | None = None
    # Automatic prompt caching as (minimum prompt tokens, step), for the estimate's
    # cached tokens; None: none known. OpenAI: prompts of 1,024+ tokens, hits in steps
    # of 128 (platform.openai.com/docs/guides/prompt-caching). vLLM: whole KV blocks of
    # 16 tokens, no minimum (Automatic Prefix Caching, on by default in vLLM V1).
    prompt_cache: tuple[int, int] | None = None


PRESETS: dict[str, Preset] = {
    # The original platform's primary model: Qwen3 4B FP8 on Novita, temperature 0.7,
    # p50 latency 0.6 s. Novita's JSON mode is the portable choice. 30 requests/min:
    # Novita's first rate-limit tier for qwen3-4b-fp8 (the second is 100/min).
    "novita": Preset(
        "novita", OFFICIAL_BASE_URLS[LLMProvider.novita], "qwen/qwen3-4b-fp8", 0.7,
        ("NOVITA_API_KEY",), True, ResponseFormat.jsonObject, 30, 0.6, "qwen",
        BatchSupport(BATCH_WINDOWS[LLMProvider.novita][0], 0.5, "/v1"),
    ),
    # Ollama's OpenAI-compatible endpoint takes JSON schemas (structured outputs);
    # local, so no key, no price and no rate limit.
    "ollama": Preset(
        "ollama", OFFICIAL_BASE_URLS[LLMProvider.ollama], "llama3.2:3b", None,
        (), False, ResponseFormat.jsonSchema, None, 2.0, "ollama",
    ),
    "openai": Preset(
        "openai", OFFICIAL_BASE_URLS[LLMProvider.openai], "gpt-4o-mini", None,
        ("OPENAI_API_KEY",), True, ResponseFormat.jsonSchema, None, 1.0, None,
        BatchSupport(BATCH_WINDOWS[LLMProvider.openai][0], 0.5), prompt_cache=(1024, 128),
    ),
    # vLLM's (or SGLang's) OpenAI-compatible server: baseURL and model from the spec.
    # Both document a JSON schema as `response_format: {"type": "json_schema",
    # "json_schema": {"name", "schema"}}` and constrain decoding to it (docs.vllm.ai
    # "Structured Outputs"; SGLang's "Structured Outputs", OpenAI Compatible API).
    # vLLM's own `structured_outputs` body field is the same constraint; the older
    # guided_* fields were removed in v0.12.0 and are ignored without an error, so they
    # are never sent. Qwen3's thinking switch is sent (chat_template_kwargs).
    "vllm": Preset(
        "vllm", None, None, None, (), False, ResponseFormat.jsonSchema, None, 1.0, "qwen",
        prompt_cache=(16, 16),
    ),
    # Anything else OpenAI-compatible: baseURL and model come from the spec.
    # (Qwen3 behind vLLM/SGLang is the usual case: its thinking switch is sent.)
    "custom": Preset(
        "custom", None, None, None, (), False, ResponseFormat.jsonObject, None, 1.0, "qwen",
        BatchSupport(BATCH_WINDOWS[LLMProvider.custom][0], None),
    ),
}  # fmt: skip

# USD per million tokens (prompt, completion, cached prompt): list prices when this
# was written; spec.llm.pricing overrides them. Local models (ollama) cost nothing.
# Cached: OpenAI's price for prompt tokens served from its prompt cache (half the list
# price for gpt-4o-mini, a quarter for gpt-4.1); None: no discount known - Novita
# bills a cache fee only for the models its pricing page lists under "Cache"
# (novita.ai/docs/guides/llm-prompt-cache), qwen3-4b-fp8 not among them when written.
PRICES_PER_MILLION: dict[tuple[str, str], tuple[float, float, float | None]] = {
    ("novita", "qwen/qwen3-4b-fp8"): (0.03, 0.03, None),
    ("novita", "google/gemma-3-27b-it"): (0.119, 0.2, None),
    ("openai", "gpt-4o-mini"): (0.15, 0.60, 0.075),
    ("openai", "gpt-4.1-mini"): (0.40, 1.60, 0.10),
    ("openai", "gpt-4.1-nano"): (0.10, 0.40, 0.025),
}


@dataclass(frozen=True, slots=True)
class ResolvedLLM:
    """The spec's llm options with the preset's defaults filled in."""

    provider: str
    base_url: str
    model: str
    temperature: float | None
    response_format: ResponseFormat
    needs_key: bool
    key_env: tuple[str, ...]
    pricing: TokenPricing | None
    default_requests_per_minute: int | None
    latency_p50: float
    model_version: str
    # host[:port] of base_url, recorded with every result; None on the preset's own
    # endpoint (then model_version is the preset's `<provider>:<model>@p<N>`).
    endpoint: str | None = None
    thinking: str = "off"
    thinking_style: str | None = None
    # `mode: batch`: the Batch API's window, its discount (already in `pricing`, the
    # lane's price) and the base URL of its Files/Batches endpoints.
    mode: str = "sync"
    batch_window: str | None = None
    batch_discount: float | None = None
    batch_base_url: str | None = None
    # The preset's prompt caching (Preset.prompt_cache): (minimum tokens, step).
    prompt_cache: tuple[int, int] | None = None

    @property
    def no_think_switch(self) -> bool:
        """Append Qwen3's /no_think to the prompt?"""
        return self.thinking == "off" and self.thinking_style == "qwen"

    def extra_body(self) -> dict[str, Any] | None:
        """Provider-specific fields of the request body (the SDK's `extra_body`)."""
        if self.thinking == "auto" or self.thinking_style is None:
            return None
        on = self.thinking == "on"
        if self.thinking_style == "qwen":
            return {"chat_template_kwargs": {"enable_thinking": on}}
        if self.thinking_style == "ollama":
            return {"reasoning_effort": "medium" if on else "none"}
        return None

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The key from the environment (never from the spec, which holds only a ref)."""
        e = os.environ if env is None else env
        for name in (API_KEY_ENV, *self.key_env):
            if e.get(name):
                return e[name]
        return None


def model_version(provider: str, model: str, endpoint: str | None = None) -> str:
    """`<provider>:<model>@p<prompt version>`, e.g. `novita:qwen/qwen3-4b-fp8@p1`, and
    `@<host[:port]>` after it when the requests go anywhere but the preset's own
    endpoint (`endpoint`), e.g. `novita:qwen/qwen3-4b-fp8@p1@proxy.example:8443`.

    The analyzer_type is `llm` for every model; the version names the provider, the
    model and the prompt, because a change of any of them is a different analysis
    (and `selection.onlyMissing` then selects the tracks again). The endpoint too: the
    same model name behind a proxy, a self-hosted server or a look-alike is not the
    provider's model, and its results must never overwrite, or be counted as, the
    preset's rows. Packing (`tracksPerRequest`) and temperature are transport
    settings, recorded per result in analysis_data instead."""
    version = f"{provider}:{model}@p{PROMPT_VERSION}"
    if endpoint:
        version = f"{version}@{endpoint}"
    if len(version) > MAX_VERSION_LENGTH:  # keep it unique within the column's width
        digest = hashlib.sha256(version.encode()).hexdigest()[:10]
        version = f"{version[: MAX_VERSION_LENGTH - 11]}~{digest}"
    return version


def resolve(options: LLMOptions) -> ResolvedLLM:
    provider = LLMProvider(options.provider).value
    preset = PRESETS[provider]
    base_url = options.base_url or preset.base_url
    model = options.model or preset.model
    if not base_url:
        raise ValueError(f"spec.llm.baseURL is required for provider {provider!r}")
    if not model:
        raise ValueError(f"spec.llm.model is required for provider {provider!r}")
    endpoint = None if is_official_endpoint(provider, base_url) else endpoint_host(base_url)
    pricing: TokenPricing | None = None
    if options.pricing is not None:
        pricing = per_1k(
            options.pricing.prompt_per_million,
            options.pricing.completion_per_million,
            options.pricing.cached_prompt_per_million,
        )
    elif provider == "ollama":
        pricing = TokenPricing(0.0, 0.0)
    elif (provider, model) in PRICES_PER_MILLION:
        pricing = per_1k(*PRICES_PER_MILLION[(provider, model)])
    batch_window = batch_discount = batch_base_url = None
    if options.lane == LLMMode.batch:
        if preset.batch is None:  # LLMOptions refuses it; a guard for direct callers
            raise ValueError(f"provider {provider!r} has no Batch API: llm.mode batch")
        batch_window = options.batch_settings.completion_window or preset.batch.window
        batch_discount = preset.batch.discount
        own = endpoint is None and options.base_url is None
        batch_base_url = base_url.rstrip("/") + preset.batch.path if own else base_url
        if pricing is not None and batch_discount is not None:
            pricing = pricing.scaled(batch_discount)  # the lane's price is what is billed
    return ResolvedLLM(
        provider=provider,
        base_url=base_url,
        model=model,
        temperature=options.temperature if options.temperature is not None else preset.temperature,
        response_format=ResponseFormat(options.response_format or preset.response_format),
        needs_key=preset.needs_key,
        key_env=preset.key_env,
        pricing=pricing,
        default_requests_per_minute=preset.requests_per_minute,
        latency_p50=preset.latency_p50,
        model_version=model_version(provider, model, endpoint),
        endpoint=endpoint,
        thinking=str(options.thinking),
        thinking_style=preset.thinking_style,
        mode=str(options.lane),
        batch_window=batch_window,
        batch_discount=batch_discount,
        batch_base_url=batch_base_url,
        prompt_cache=preset.prompt_cache,
    )


def per_1k(
    prompt_per_million: float,
    completion_per_million: float,
    cached_prompt_per_million: float | None = None,
) -> TokenPricing:
    cached = None if cached_prompt_per_million is None else cached_prompt_per_million / 1000
    return TokenPricing(prompt_per_million / 1000, completion_per_million / 1000, cached)


def options_of(spec: Mapping[str, Any]) -> LLMOptions | None:
    """The llm options of a run's spec dict (camelCase, as stored), or None."""
    if spec.get("analyzer") != "llm" or not spec.get("llm"):
        return None
    return LLMOptions.model_validate(spec["llm"])


def pricing_for_spec(spec: Mapping[str, Any]) -> TokenPricing | None:
    """The price `estimatedCost` uses for a run (None: not an llm run, or unknown price):
    the lane's, so a batch run is priced at the provider's batch discount."""
    try:
        options = options_of(spec)
        return resolve(options).pricing if options is not None else None
    except ValueError:
        return None


def requests_per_minute(spec: Mapping[str, Any], resolved: ResolvedLLM) -> int | None:
    """The run's global budget: spec.rateLimit, else the provider's documented limit."""
    rate = spec.get("rateLimit") or {}
    rpm = rate.get("requestsPerMinute")
    return int(rpm) if rpm else resolved.default_requests_per_minute


def cascade_of_spec(spec: dict[str, Any]) -> str | None:
    """The first analyzer of a planned spec's cascade (status.cascade), or None."""
    if spec.get("analyzer") != "llm":
        return None
    cascade = (spec.get("llm") or {}).get("cascade") or {}
    return str(cascade["analyzer"]) if cascade.get("analyzer") else None
