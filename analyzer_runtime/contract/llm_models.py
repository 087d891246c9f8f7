"""`spec.llm` of an AnalysisRun: provider, model, key, packing, breaker, prices."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from analyzer_runtime.contract.base import SecretKeyRef, SpecModel
from analyzer_runtime.contract.types import (
    SELF_HOSTED_PROVIDERS,
    CascadeAnalyzerName,
    LLMMode,
    LLMProvider,
    ResponseFormat,
    cel_rule,
)


class CircuitBreakerOptions(SpecModel):
    """Per-pod circuit breaker of the llm analyzer (while open, the fallback analyzes)."""

    failure_threshold: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failed requests that open it."
    )
    open_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="How long it stays open before one probe."
    )
    unusable_threshold: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Consecutive unusable answers (HTTP 200 with no choices, no content, or "
        "nothing valid in it) that open it.",
    )


class Thinking(StrEnum):
    """Reasoning ("thinking") of models that think by default, such as Qwen3."""

    off = "off"
    on = "on"
    auto = "auto"


# The endpoints the presets were made for. Results of a preset on its own endpoint are
# stored as `<provider>:<model>@p<N>`; on any other endpoint (a baseURL override, or
# `custom`, which has none) the endpoint's host is part of the version, so a proxy, a
# self-hosted model or a look-alike never writes (or counts as) the preset's rows.
OFFICIAL_BASE_URLS: dict[LLMProvider, str] = {
    LLMProvider.novita: "https://api.novita.ai/openai",
    LLMProvider.ollama: "http://ollama:11434/v1",
    LLMProvider.openai: "https://api.openai.com/v1",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def endpoint_host(base_url: str) -> str:
    """`host[:port]` of a base URL, lowercased, the port only when it is not the
    scheme's default; never the userinfo (a password in a URL stays out of versions)."""
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: keep what was written, it is still that endpoint
        port = None
    scheme = parts.scheme.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return host or base_url.strip()[:60]


def _origin(base_url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def is_official_endpoint(provider: LLMProvider | str, base_url: str | None) -> bool:
    """Whether `base_url` (None: the preset's) is the preset's own endpoint: the same
    scheme, host and port (the path may differ, e.g. a trailing slash or an API
    version). `custom` has none."""
    official = OFFICIAL_BASE_URLS.get(LLMProvider(provider))
    if official is None:
        return False
    return base_url is None or _origin(base_url) == _origin(official)


def preset_namespace_problem(
    provider: LLMProvider | str, base_url: str | None, label: str
) -> str | None:
    """Why an explicit `analyzerVersion` may not be used with this endpoint, or None.

    A label in a preset's namespace (`novita:…`, `openai:…`, `ollama:…`) names that
    preset's results: a run on another endpoint may use one only when it ends with
    `@<its host>`, as its default version does."""
    for preset, official in OFFICIAL_BASE_URLS.items():
        if not label.startswith(f"{preset.value}:"):
            continue
        url = base_url if base_url is not None else OFFICIAL_BASE_URLS.get(LLMProvider(provider))
        if url is not None and _origin(url) == _origin(official):
            return None
        host = endpoint_host(url) if url is not None else ""
        if host and label.endswith(f"@{host}"):
            return None
        return (
            f"analyzerVersion {label!r} names the {preset.value} preset's results, but this run"
            f" sends requests to {host or 'another endpoint'}, not {endpoint_host(official)};"
            f" leave analyzerVersion unset (the version then ends with @{host}) or use a"
            f" label outside the {', '.join(p.value + ':' for p in OFFICIAL_BASE_URLS)}"
            " namespaces"
        )
    return None


# The completion budget: the first request asks COMPLETION_TOKENS_OVERHEAD + a per-track
# budget (prompt.py), capped by maxTokens; an answer cut off by the limit is asked again
# once with maxTokens.
DEFAULT_MAX_TOKENS = 4096
MAX_MAX_TOKENS = 131_072


# Upper bounds well above any real model: a typo (a price per token written per
# million, or a context size) is refused instead of producing absurd estimates.
MAX_PRICE_PER_MILLION = 10_000.0
MAX_INPUT_TOKENS = 2_000_000


class TokenPrices(SpecModel):
    """LLM prices in USD per million tokens (as providers list them), for estimatedCost."""

    prompt_per_million: float = Field(
        ge=0, le=MAX_PRICE_PER_MILLION, description="USD per million prompt tokens."
    )
    completion_per_million: float = Field(
        ge=0, le=MAX_PRICE_PER_MILLION, description="USD per million completion tokens."
    )
    cached_prompt_per_million: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE_PER_MILLION,
        description="USD per million prompt tokens served from the provider's prompt cache "
        "(usage.prompt_tokens_details.cached_tokens); unset: billed as prompt tokens.",
    )


# Providers with an OpenAI-compatible Batch API (`mode: batch`) and the completion
# windows they accept: OpenAI's is 24h (platform.openai.com/docs/guides/batch);
# Novita's is fixed at 48h (novita.ai/docs/api-reference/model-apis-llm-create-batch:
# "the completion window is set to a fixed duration of 48 hours and cannot be
# modified"); a custom server says what it takes. vLLM's `run-batch` reads the same
# file format offline but serves no /v1/batches, and Ollama has no batch API.
BATCH_WINDOWS: dict[LLMProvider, tuple[str, ...]] = {
    LLMProvider.openai: ("24h",),
    LLMProvider.novita: ("48h",),
    LLMProvider.custom: ("24h", "48h"),
}

# OpenAI's Batch API: at most 50,000 requests per input file
# (https://platform.openai.com/docs/guides/batch#rate-limits).
MAX_BATCH_REQUESTS = 50_000


class BatchOptions(SpecModel):
    """The Batch API lane (`mode: batch`): how big the batches are, how often they are
    polled, and how often a track may be submitted before it falls back."""

    completion_window: Literal["24h", "48h"] | None = Field(
        default=None,
        description="The batch's completion window: 24h (OpenAI, vLLM) or 48h (Novita); "
        "defaults to the provider preset's.",
    )
    max_requests: int = Field(
        default=MAX_BATCH_REQUESTS,
        ge=1,
        le=MAX_BATCH_REQUESTS,
        description="Requests per batch input file at most (OpenAI's limit is 50,000).",
    )
    poll_seconds: int = Field(
        default=60, ge=1, le=3600, description="How often a shard asks for its batch's state."
    )
    max_submissions: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Batches a track may be sent in (its lines failed, or the batch expired "
        "or was cancelled before it was answered); then the fallback analyzer takes it.",
    )


class CascadeOptions(SpecModel):
    """A cheap analyzer first: the tracks it is sure of are labelled by it (stored under
    its own analyzer_type), only the rest are sent to the LLM."""

    analyzer: CascadeAnalyzerName = Field(
        strict=False, description="The first analyzer: quality or algorithmic."
    )
    min_confidence: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="A track whose first-analyzer confidence is at least this is not sent "
        "to the LLM.",
    )


class LLMOptions(SpecModel):
    """Options of the `llm` analyzer (any OpenAI-compatible chat API)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "!has(self.provider) || !(self.provider in ['custom', 'vllm'])"
                    " || has(self.baseURL)",
                    "baseURL is required when provider is custom or vllm",
                ),
                cel_rule(
                    "!has(self.provider) || !(self.provider in ['custom', 'vllm'])"
                    " || !has(self.baseURL) || has(self.model)",
                    "model is required when provider is custom or vllm",
                ),
            ]
        }
    )

    provider: LLMProvider = Field(
        default=LLMProvider.novita,
        strict=False,
        description="API preset: novita, ollama, openai, vllm or custom (vllm and custom "
        "need baseURL and model).",
    )
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        min_length=1,
        validate_default=True,
        description="OpenAI-compatible base URL; overrides the provider preset's URL.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        validate_default=True,
        description="Model name; defaults to the provider preset's model (required for custom).",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key (not needed for ollama).",
    )
    tracks_per_request: int = Field(
        default=1, ge=1, le=50, description="Tracks sent in one chat request (1-50)."
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature (0-2)."
    )
    timeout_seconds: int = Field(default=30, ge=1, le=600, description="Per-request timeout.")
    max_input_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INPUT_TOKENS,
        description="Lyrics are truncated to about this many tokens.",
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight at once per shard pod."
    )
    response_format: ResponseFormat | None = Field(
        default=None,
        strict=False,
        description="jsonSchema or jsonObject; defaults to what the provider preset supports.",
    )
    circuit_breaker: CircuitBreakerOptions = Field(
        default_factory=CircuitBreakerOptions,
        json_schema_extra={"default": {}},
        description="Circuit breaker per pod (defaults: 5 failures, open 60 s).",
    )
    pricing: TokenPrices | None = Field(
        default=None,
        description="Prices for estimatedCost; defaults to the preset's price for the model.",
    )
    thinking: Thinking = Field(
        default=Thinking.off,
        strict=False,
        description="Model reasoning: off (turned off the provider's way - Qwen3's "
        "enable_thinking=false and /no_think, Ollama's reasoning_effort none), on, or auto "
        "(nothing sent). Thinking that appears anyway is stripped from the answer.",
    )
    max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS,
        ge=64,
        le=MAX_MAX_TOKENS,
        description="Completion tokens at most per request. The first request asks 50 + 200 "
        "per track (all of it when thinking is on); an answer cut off by the limit is asked "
        "again once with maxTokens.",
    )

    # mode and batch default to None, not to their values: a run's stored spec (what
    # the previous release's shard pods read, with extra fields forbidden) then holds
    # them only when the user set them - expand/contract for the spec. `lane` and
    # `batch_settings` are what code reads.
    mode: LLMMode | None = Field(
        default=None,
        strict=False,
        description="sync (the default: one chat request at a time) or batch (the "
        "provider's Batch API: half price, answered within the completion window).",
    )
    batch: BatchOptions | None = Field(
        default=None,
        description="Batch API settings, used when mode is batch.",
    )
    cascade: CascadeOptions | None = Field(
        default=None,
        description="A cheap analyzer first: tracks it is sure of are not sent to the LLM.",
    )

    @property
    def lane(self) -> LLMMode:
        return self.mode or LLMMode.sync

    @property
    def batch_settings(self) -> BatchOptions:
        return self.batch or BatchOptions()

    @model_validator(mode="after")
    def _batch_needs_a_batch_api(self) -> LLMOptions:
        if self.lane != LLMMode.batch:
            return self
        windows = BATCH_WINDOWS.get(LLMProvider(self.provider))
        if windows is None:
            offered = ", ".join(p.value for p in BATCH_WINDOWS)
            hint = (
                " (vLLM's run-batch works on files offline; its server has no /v1/batches)"
                if self.provider == LLMProvider.vllm
                else ""
            )
            raise PydanticCustomError(
                "batch",
                "llm.mode batch needs a provider with a Batch API ({offered});"
                " provider '{provider}' has none{hint}: use mode sync, or provider custom"
                " for a server that offers /v1/batches",
                {"offered": offered, "provider": str(self.provider), "hint": hint},
            )
        window = self.batch_settings.completion_window
        if window is not None and window not in windows:
            raise PydanticCustomError(
                "batch",
                "llm.batch.completionWindow {window} is not offered by provider '{provider}'"
                " (it takes {windows})",
                {"window": window, "provider": str(self.provider), "windows": " or ".join(windows)},
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _custom_needs_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("provider")
        if v is None and provider in SELF_HOSTED_PROVIDERS:
            raise PydanticCustomError(
                "custom", "required when llm.provider is '{provider}'", {"provider": str(provider)}
            )
        return v

    @field_validator("model")
    @classmethod
    def _custom_needs_model(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A self-hosted server has no preset model; asked once its baseURL is right.
        provider = info.data.get("provider")
        if v is None and provider in SELF_HOSTED_PROVIDERS and info.data.get("base_url"):
            raise PydanticCustomError(
                "custom", "required when llm.provider is '{provider}'", {"provider": str(provider)}
            )
        return v
