"""One chat completion, the way the original platform promised and never did.

Per attempt: the circuit breaker must allow it, a slot of the run's global budget is
held for exactly the request's lifetime, and the whole request is bounded by the
timeout (the SDK's own timeouts are per read, so a slow drip could outlive them).
Across attempts (tenacity): failures of the provider - timeouts, connection errors,
HTTP 5xx/408 - are retried after 2 s, 4 s, 8 s (±20% jitter; base and cap from
spec.retry), so a request is sent at most 1 + 3 times. A 429 is flow control, not a
failure: its Retry-After pauses the whole run (`Limiter.pause`) and the request is
repeated without using up an attempt (up to MAX_RATE_LIMITED times). A 429 without
Retry-After (Novita sends only the status and a message) backs off exponentially with
jitter (RetrySettings), tells the limiter (`throttled()`, when it has one: an adaptive
budget), and is repeated at most MAX_RATE_LIMITED_NO_RETRY_AFTER times. A request that
runs out of 429 retries is a provider failure (it counts toward the breaker).

An HTTP 200 that carries no answer - `choices: []`, or `content: null` that is not a
length cut-off - is unusable: it counts toward the breaker's unusable count and is
asked again once (MAX_UNUSABLE_RETRIES); then the request fails as ProviderUnavailable,
so the fallback analyzer takes over.

Bound per request (one `complete()` call): at most 1 + retries (4) transient attempts,
plus at most MAX_RATE_LIMITED answered-429 repeats, plus one repeat after an unusable
answer, plus one after a json_schema refusal.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from analyzer_runtime import metrics
from analyzer_runtime.analyzers.llm.breaker import CircuitBreaker, State
from analyzer_runtime.analyzers.llm.prompt import Prompt, estimate_tokens
from analyzer_runtime.analyzers.llm.redaction import Redactor
from analyzer_runtime.analyzers.llm.schema import RESPONSE_FORMAT_SCHEMA
from analyzer_runtime.contract.llm_presets import ResolvedLLM
from analyzer_runtime.contract.types import ResponseFormat
from analyzer_runtime.ratelimit import Limiter
from analyzer_runtime.retrying import RetryChain, RetrySettings

MAX_RATE_LIMITED = 8
MAX_RATE_LIMITED_NO_RETRY_AFTER = 5
MAX_UNUSABLE_RETRIES = 1
MAX_RETRY_AFTER = 300.0
# A 400 about these is the server refusing structured outputs: JSON mode is the answer.
_FORMAT_ERROR_WORDS = ("response_format", "json_schema", "json schema", "structured output")


class ProviderUnavailable(Exception):
    """The provider failed this request for good (after retries), or the breaker is open."""


class CircuitOpen(ProviderUnavailable):
    """Refused without a request: the breaker is open."""


class RequestRejected(Exception):
    """The provider refused the request itself (HTTP 4xx other than 401/403/408/429)."""


class _Transient(Exception):
    """A provider failure worth retrying."""


class _RateLimited(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited (HTTP 429, Retry-After {retry_after})")
        self.retry_after = retry_after


class _Unusable(Exception):
    """An HTTP 200 without an answer in it (no choices, or content null)."""


class _Downgraded(Exception):
    """JSON schema refused by the provider: repeat at once in JSON mode."""


@dataclass(frozen=True, slots=True)
class Completion:
    text: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    attempts: int
    # Of prompt_tokens, served from the provider's prompt cache (0 when not reported).
    cached_tokens: int = 0


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After as seconds (delta or HTTP date), or retry-after-ms; None if absent."""
    if not headers:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            return min(float(ms) / 1000, MAX_RETRY_AFTER)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


class _Chain(RetryChain):
    """Retry bookkeeping of one request across its attempts."""

    def __init__(self, retry: RetrySettings, breaker: CircuitBreaker) -> None:
        super().__init__(retry, MAX_RATE_LIMITED)
        self.breaker = breaker
        self.attempts = 0
        self.unusable = 0
        self.bare_throttles = 0  # 429s without Retry-After

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, _Downgraded):
            self.next_wait = 0.0
            return True
        if isinstance(exc, _Unusable):
            self.unusable += 1
            self.next_wait = self.retry.backoff(1)
            return self.unusable <= MAX_UNUSABLE_RETRIES and not self.breaker.is_open
        if isinstance(exc, _RateLimited):
            if exc.retry_after is None:
                self.bare_throttles += 1
                if self.bare_throttles > MAX_RATE_LIMITED_NO_RETRY_AFTER:
                    self.throttles += 1
                    return False
            return self.throttled(exc.retry_after)
        if isinstance(exc, _Transient):
            # Once the breaker is open, waiting out the backoff only delays the fallback.
            return self.failed() and not self.breaker.is_open
        return False


class ChatClient:
    def __init__(
        self,
        resolved: ResolvedLLM,
        *,
        api_key: str | None,
        timeout: float,
        concurrency: int,
        limiter: Limiter,
        breaker: CircuitBreaker,
        retry: RetrySettings,
        redactor: Redactor,
        on_usage: Callable[[int, int, int], None],
    ) -> None:
        self.resolved = resolved
        self.timeout = timeout
        self.limiter = limiter
        self.breaker = breaker
        self.retry = retry
        self.redactor = redactor
        self.on_usage = on_usage
        self.response_format = resolved.response_format
        self.sem = asyncio.Semaphore(concurrency)
        self.label = resolved.model_version
        metrics.init_llm(self.label, priced=resolved.pricing is not None)
        # Our retries, not the SDK's: its retries would bypass the global budget.
        self.sdk = openai.AsyncOpenAI(
            api_key=api_key or "not-needed",
            base_url=resolved.base_url,
            max_retries=0,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self.sdk.close()

    def _format(self, fmt: ResponseFormat) -> dict[str, Any]:
        if fmt is ResponseFormat.jsonSchema:
            return {"type": "json_schema", "json_schema": RESPONSE_FORMAT_SCHEMA}
        return {"type": "json_object"}

    async def complete(self, prompt: Prompt) -> Completion:
        chain = _Chain(self.retry, self.breaker)
        try:
            async for attempt in chain.retrying():
                with attempt:
                    chain.attempts += 1
                    return await self._attempt(prompt, chain.attempts)
        except _Transient as exc:
            tries = f"{chain.attempts} attempt{'s' if chain.attempts > 1 else ''}"
            raise ProviderUnavailable(f"{exc} (after {tries})") from None
        except _RateLimited:
            self._failed("rate_limit_exhausted")  # persistently refused: a failure
            raise ProviderUnavailable(
                f"rate limited by the provider (HTTP 429) {chain.throttles} times in a row"
            ) from None
        except _Unusable as exc:
            raise ProviderUnavailable(
                f"unusable answer: {exc} (after {chain.unusable} requests)"
            ) from None
        raise AssertionError("unreachable")

    async def _attempt(self, prompt: Prompt, attempt_no: int) -> Completion:
        fmt = self.response_format
        try:
            async with self.sem:
                # Asked as late as possible: while this request queued, others may have
                # opened the breaker, and a dead provider should see no more requests.
                if not self.breaker.allow():
                    metrics.LLM_REQUESTS.labels(self.label, "circuit_open").inc()
                    raise CircuitOpen("circuit breaker open: the provider failed repeatedly")
                permit = await self.limiter.acquire()
                if self.breaker.state is State.open:  # it opened while we waited for a slot
                    await self.limiter.release(permit)
                    raise CircuitOpen("circuit breaker open: the provider failed repeatedly")
                fmt = self.response_format  # as of sending: another request may have downgraded it
                metrics.LLM_RATE_WAIT_SECONDS.labels(self.label).observe(permit.waited)
                try:
                    async with asyncio.timeout(self.timeout + 1):
                        # The messages and the response format are the plain JSON the
                        # API takes; openai types them as its own TypedDicts.
                        resp = await self.sdk.chat.completions.create(  # type: ignore[call-overload]
                            model=self.resolved.model,
                            messages=prompt.messages,
                            temperature=self.resolved.temperature
                            if self.resolved.temperature is not None
                            else openai.omit,
                            max_tokens=prompt.max_tokens,
                            response_format=self._format(fmt),
                            extra_body=self.resolved.extra_body(),
                        )
                finally:
                    await self.limiter.release(permit)
        except CircuitOpen:
            raise
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except openai.RateLimitError as exc:
            if self.breaker.state is State.half_open:
                self.breaker.success()  # the probe was answered: up, just busy
            # Otherwise no verdict: a request that runs out of 429 retries is a failure.
            metrics.LLM_REQUESTS.labels(self.label, "rate_limited").inc()
            wait = retry_after_seconds(exc.response.headers)
            throttled = getattr(self.limiter, "throttled", None)
            if throttled is not None:  # an adaptive budget: slow the whole run down
                await throttled()
            if wait:
                await self.limiter.pause(wait)
            raise _RateLimited(wait) from None
        except (TimeoutError, openai.APITimeoutError):
            self._failed("timeout")
            raise _Transient(f"timed out after {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            self._failed("connection_error")
            raise _Transient(self._clean(f"connection error: {exc}")) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            self._failed("auth_error")
            raise ProviderUnavailable(
                self._clean(f"the provider refused the API key (HTTP {exc.status_code})")
            ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status >= 500 or status == 408:
                self._failed("server_error")
                raise _Transient(f"HTTP {status} from the provider") from None
            self.breaker.success()
            metrics.LLM_REQUESTS.labels(self.label, "rejected").inc()
            if status == 400 and fmt is ResponseFormat.jsonSchema and _about_format(exc):
                # Not every OpenAI-compatible server takes json_schema: JSON mode it is.
                # Only when the 400 says so: a context-length 400 is this request's own.
                self.response_format = ResponseFormat.jsonObject
                raise _Downgraded() from None
            raise RequestRejected(self._clean(f"HTTP {status}: {_message(exc)}")) from None
        except openai.APIError as exc:  # e.g. a 200 whose body is not a chat completion
            self._failed("bad_response")
            raise _Transient(self._clean(f"unusable response: {exc}")) from None
        except Exception:
            self.breaker.abandon()  # e.g. the database went away: no verdict on the provider
            raise
        if unusable := _no_answer(resp):
            self.breaker.unusable()
            metrics.LLM_REQUESTS.labels(self.label, "unusable").inc()
            self._count_usage(resp, prompt, None)
            raise _Unusable(unusable)
        self.breaker.success()
        metrics.LLM_REQUESTS.labels(self.label, "ok").inc()
        return self._completion(resp, prompt, attempt_no)

    def _failed(self, outcome: str) -> None:
        self.breaker.failure()
        metrics.LLM_REQUESTS.labels(self.label, outcome).inc()

    def _clean(self, text: str) -> str:
        return self.redactor.redact(text)[:500]

    def _completion(self, resp: Any, prompt: Prompt, attempts: int) -> Completion:
        choice = resp.choices[0] if resp.choices else None
        message = choice.message if choice is not None else None
        text = message.content if message is not None else None
        refusal = getattr(message, "refusal", None) if message is not None else None
        # reasoning_content / reasoning (vLLM, SGLang, Ollama) are never read: thinking.
        p, c, cached, estimated = self._count_usage(resp, prompt, text)
        return Completion(
            text=text,
            refusal=refusal,
            finish_reason=choice.finish_reason if choice is not None else None,
            prompt_tokens=p,
            completion_tokens=c,
            usage_estimated=estimated,
            attempts=attempts,
            cached_tokens=cached,
        )

    def _count_usage(
        self, resp: Any, prompt: Prompt, text: str | None
    ) -> tuple[int, int, int, bool]:
        """(prompt, completion, cached, estimated) tokens of an answer, counted into the
        run's usage, the token metrics and the cost (cached tokens at the cached price)."""
        usage = getattr(resp, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            p, c, estimated = int(usage.prompt_tokens), int(usage.completion_tokens or 0), False
        else:  # some servers omit usage: count characters instead, and say so
            p = sum(estimate_tokens(m["content"]) for m in prompt.messages)
            c, estimated = estimate_tokens(text or ""), True
        cached = min(p, cached_tokens(usage))
        self.on_usage(p, c, cached)
        metrics.LLM_TOKENS.labels(self.label, "prompt").inc(p)
        metrics.LLM_TOKENS.labels(self.label, "completion").inc(c)
        metrics.LLM_TOKENS.labels(self.label, "cached").inc(cached)
        if (price := self.resolved.pricing) is not None:
            metrics.LLM_COST.labels(self.label).inc(price.cost(p, c, cached))
        return p, c, cached, estimated


def cached_tokens(usage: Any) -> int:
    """`usage.prompt_tokens_details.cached_tokens` (OpenAI's prompt caching; vLLM with
    --enable-prompt-tokens-details), 0 where the server leaves any of it out or null."""
    details = getattr(usage, "prompt_tokens_details", None)
    value = getattr(details, "cached_tokens", None) if details is not None else None
    if value is None and isinstance(details, dict):  # an extra field the SDK kept as a dict
        value = details.get("cached_tokens")
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _no_answer(resp: Any) -> str | None:
    """Why an HTTP 200 carries no answer at all, or None. `content: null` cut off by the
    token limit is not this (the caller asks again with more tokens), nor is a refusal."""
    choices = getattr(resp, "choices", None)
    if not choices:
        return "the provider returned no choices"
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        return "the provider returned a choice without a message"
    if message.content is None and not getattr(message, "refusal", None):
        if choice.finish_reason == "length":
            return None
        return f"the message had no content (finish_reason {choice.finish_reason!r})"
    return None


def _about_format(exc: openai.APIStatusError) -> bool:
    """Is this 400 about response_format / json_schema (not, say, the context length)?"""
    text = f"{_message(exc)} {getattr(exc, 'param', None) or ''}".lower()
    return any(w in text for w in _FORMAT_ERROR_WORDS)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc.message)
