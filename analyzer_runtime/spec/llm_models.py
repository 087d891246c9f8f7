"""`spec.llm` of an AnalysisRun: provider, model, key, packing, breaker, prices."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from analyzer_runtime.spec.base import SecretKeyRef, SpecModel
from analyzer_runtime.spec.types import LLMProvider, ResponseFormat, cel_rule


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


class LLMOptions(SpecModel):
    """Options of the `llm` analyzer (any OpenAI-compatible chat API)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "!has(self.provider) || self.provider != 'custom' || has(self.baseURL)",
                    "baseURL is required when provider is custom",
                ),
                cel_rule(
                    "!has(self.provider) || self.provider != 'custom' || !has(self.baseURL)"
                    " || has(self.model)",
                    "model is required when provider is custom",
                ),
            ]
        }
    )

    provider: LLMProvider = Field(
        default=LLMProvider.novita,
        strict=False,
        description="API preset: novita, ollama, openai, or custom (then baseURL is required).",
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

    @field_validator("base_url")
    @classmethod
    def _custom_needs_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("provider") is LLMProvider.custom:
            raise PydanticCustomError("custom", "required when llm.provider is 'custom'")
        return v

    @field_validator("model")
    @classmethod
    def _custom_needs_model(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A custom provider has no preset model; asked once its baseURL is right.
        if (
            v is None
            and info.data.get("provider") is LLMProvider.custom
            and info.data.get("base_url")
        ):
            raise PydanticCustomError("custom", "required when llm.provider is 'custom'")
        return v
