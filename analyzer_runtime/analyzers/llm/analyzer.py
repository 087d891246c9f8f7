"""LLMAnalyzer: the `llm` entry of the registry.

Per batch: empty lyrics are skipped; the rest go in requests of `tracksPerRequest`
tracks (k = 1 is the same code path with one track), `concurrency` requests at a
time. Each answer is validated per track (schema.py: thinking stripped, JSON found
in fences or prose, every entry validated). An answer cut off by the token limit
(`finish_reason: "length"`) is asked again ONCE with `maxTokens` (not repaired with
the same budget); any other unusable answer gets ONE repair request. Tracks still
without a valid entry in a packed answer are retried singly, and a single track with
no valid answer fails with the reason recorded. Answers with nothing usable count toward the breaker's unusable count. When
the provider is down (retries exhausted, or the circuit breaker open), the run's
`fallbackAnalyzer` analyzes the tracks and its results are stored under ITS OWN
analyzer_type, with `fallback_for` in analysis_data; without one, they fail.

Requests per track are bounded: a request group (`_ask`) sends at most 2 requests
(the first, then one length retry OR one repair); a track is in at most 2 groups (its
pack, then alone), so at most MAX_REQUESTS_PER_TRACK = 4 chat requests are answered
for it, each with the client's own bounded retries (client.py: at most 4 transient
attempts, MAX_RATE_LIMITED 429 repeats, one repeat after an answer without content).

Packed answers and cross-track injection: the tracks of a request are named by
random per-request keys (prompt.py), so a lyric cannot name another track the answer
is mapped back by. A packed answer with entries for keys not asked, a key answered
twice, or entries out of order (schema.ParsedAnswer.untrusted) is not used at all -
no repair either - and every track of the pack is asked again alone (within the same
bound), where no other track's lyrics are in the request. Entries for keys not asked
are never written; they are counted (metrics.LLM_UNTRUSTED) and logged as counts.

With spec.llm.cascade (cascade.py), a cheap first analyzer labels the tracks it is
sure of before any request is built; those are stored under ITS analyzer_type, with
`cascade_for` in analysis_data, counted in BatchExtras.cascade_kept, and never sent.

Results are stored as analyzer_type `llm`, model_version `<provider>:<model>@p<N>`,
with `@<host>` after it on any endpoint but the preset's own (presets.model_version),
or spec.analyzerVersion when set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analyzer_runtime import metrics
from analyzer_runtime.analyzers import registry
from analyzer_runtime.analyzers.base import (
    AnalysisResult,
    Analyzer,
    ItemOutcome,
    RunContext,
    TrackInput,
)
from analyzer_runtime.analyzers.llm import prompt, redaction, schema
from analyzer_runtime.analyzers.llm.breaker import CircuitBreaker, State
from analyzer_runtime.contract import llm_presets as presets
from analyzer_runtime.contract.llm_models import endpoint_host
from analyzer_runtime.contract.models import LLMOptions
from analyzer_runtime.ledger.shards import BatchExtras
from analyzer_runtime.ratelimit import GlobalRateLimiter, Limiter

if TYPE_CHECKING:
    from analyzer_runtime.analyzers.llm.cascade import Cascade
    from analyzer_runtime.analyzers.llm.client import ChatClient, Completion
    from analyzer_runtime.retrying import RetrySettings

# Compresses the rate limit's minute for tests and benchmarks: `requestsPerMinute`
# requests per this many seconds. Never set in production (default 60).
WINDOW_ENV = "RAP_LLM_RATE_WINDOW_SECONDS"
# Answered requests per request group (first + one length retry or repair) and per
# track (its pack, then alone): see the module docstring.
MAX_REQUESTS_PER_GROUP = 2
MAX_REQUESTS_PER_TRACK = 4

log = logging.getLogger(__name__)


class LLMAnalyzer(Analyzer):
    name = "llm"
    analyzer_type = "llm"

    def __init__(self, **options: Any) -> None:
        # Cheap and key-less: the key is read in configure(). The planner learns the
        # version without an analyzer (ledger.planner.planned_version, the same resolve).
        self.options = LLMOptions.model_validate(options)
        self.resolved = presets.resolve(self.options)
        self.version = self.resolved.model_version
        self.k = self.options.tracks_per_request
        cb = self.options.circuit_breaker
        gauge = metrics.LLM_CIRCUIT_STATE.labels(self.version)
        self.breaker = CircuitBreaker(
            cb.failure_threshold,
            cb.open_seconds,
            on_change=lambda s: gauge.set(int(s)),
            unusable_threshold=cb.unusable_threshold,
        )
        self.redactor = redaction.Redactor(None)
        self._extras = BatchExtras()
        self._client: ChatClient | None = None
        self._fallback: Analyzer | None = None
        # spec.llm.cascade's first analyzer (cascade.py), once attached to a run.
        self.cascade: Cascade | None = None

    # ---- set-up ------------------------------------------------------------------

    def configure(
        self,
        *,
        limiter: Limiter | None = None,
        retry: RetrySettings | None = None,
        fallback: Analyzer | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        from analyzer_runtime.analyzers.llm.client import ChatClient
        from analyzer_runtime.retrying import RetrySettings

        key = self.resolved.api_key(env)
        if self.resolved.needs_key and not key:
            raise ValueError(
                f"no API key for provider {self.resolved.provider!r}: set"
                " spec.llm.apiKeySecretRef (the operator passes it to the pods as"
                f" {presets.API_KEY_ENV}), or export {presets.API_KEY_ENV} for a local run"
            )
        self.redactor = redaction.Redactor(key)
        redaction.quiet_http_loggers()  # at INFO, httpx logs every request
        if key:
            redaction.install(self.redactor)
        self._fallback = fallback
        self._client = ChatClient(
            self.resolved,
            api_key=key,
            timeout=float(self.options.timeout_seconds),
            concurrency=self.options.concurrency,
            limiter=limiter or Limiter(),
            breaker=self.breaker,
            retry=retry or RetrySettings(),
            redactor=self.redactor,
            on_usage=self._add_usage,
        )

    async def attach(self, ctx: RunContext) -> None:
        from analyzer_runtime.retrying import RetrySettings

        spec = ctx.spec
        if ctx.model_version:
            self.version = ctx.model_version
        elif spec.get("analyzerVersion"):
            self.version = str(spec["analyzerVersion"])
        rpm = presets.requests_per_minute(spec, self.resolved)
        limiter: Limiter = Limiter()
        if rpm:
            limiter = GlobalRateLimiter(
                ctx.pool, ctx.run_id, rpm,
                window_seconds=float(os.environ.get(WINDOW_ENV) or 60.0),
                request_timeout=float(self.options.timeout_seconds),
            )  # fmt: skip
            await limiter.setup()
        retry_spec = spec.get("retry") or {}
        retry = RetrySettings(
            initial_backoff=float(retry_spec.get("initialBackoffSeconds", 2.0)),
            max_backoff=float(retry_spec.get("maxBackoffSeconds", 60.0)),
        )
        fallback = (
            registry.create(spec["fallbackAnalyzer"]) if spec.get("fallbackAnalyzer") else None
        )
        self.configure(limiter=limiter, retry=retry, fallback=fallback)
        if self.options.cascade is not None:
            from analyzer_runtime.analyzers.llm.cascade import Cascade

            self.cascade = Cascade.create(self.options.cascade, self.version)
            await self.cascade.attach(ctx)

    def take_extras(self) -> BatchExtras:
        out, self._extras = self._extras, BatchExtras()
        return out

    def _add_usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> None:
        self._extras.tokens_prompt += prompt_tokens
        self._extras.tokens_completion += completion_tokens
        self._extras.tokens_cached += cached_tokens

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()
        if self.cascade is not None:
            await self.cascade.aclose()

    # ---- analysis ----------------------------------------------------------------

    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]:
        if self._client is None:
            self.configure()  # used on its own, without a run: no global budget
        outcomes: dict[int, ItemOutcome] = {}
        todo: list[TrackInput] = []
        for t in tracks:
            if t.lyrics is None or not t.lyrics.strip():
                outcomes[t.id] = ItemOutcome.skipped(t.id, "empty lyrics")
            else:
                todo.append(t)
        if self.cascade is not None and todo:
            split = await self.cascade.split(todo)
            outcomes.update((o.track_id, o) for o in split.kept)
            self._extras.cascade_kept += len(split.kept)
            todo = split.to_llm
        chunks = [todo[i : i + self.k] for i in range(0, len(todo), self.k)]
        for part in await asyncio.gather(*(self._guarded(c) for c in chunks)):
            outcomes.update(part)
        return [outcomes[t.id] for t in tracks]

    async def _guarded(self, chunk: list[TrackInput]) -> dict[int, ItemOutcome]:
        try:
            return await self._chunk(chunk)
        except Exception as exc:  # a bug must not leak the key via the worker's message
            reason = self.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]
            return {t.id: ItemOutcome.failed(t.id, reason) for t in chunk}

    async def _chunk(self, chunk: list[TrackInput]) -> dict[int, ItemOutcome]:
        from analyzer_runtime.analyzers.llm.client import ProviderUnavailable, RequestRejected

        started = time.perf_counter()
        p = self.prompt_for(chunk)
        try:
            parsed, answers = await self._ask(p)
        except ProviderUnavailable as exc:
            return await self._fallback_or_fail(chunk, str(exc))
        except RequestRejected as exc:
            if len(chunk) > 1:  # e.g. the pack is too long for the model: one by one
                return await self._singly(chunk)
            return {chunk[0].id: ItemOutcome.failed(chunk[0].id, f"rejected: {exc}")}
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        if len(chunk) > 1 and parsed.untrusted:
            # A lyric may have steered what the model wrote for its pack-mates: nothing
            # of this answer is used; alone, a track's request holds only its own lyrics.
            log.warning(
                "answer to a request of %d tracks not trusted (%s): each is asked again alone",
                len(chunk), parsed.untrusted,
            )  # fmt: skip
            return await self._singly(chunk)
        if parsed.foreign:
            log.warning("dropped %d answer entries for tracks not in the request", parsed.foreign)
        out: dict[int, ItemOutcome] = {}
        for t in chunk:
            found = parsed.valid.get(p.key_of[t.id])
            if found is not None:
                out[t.id] = ItemOutcome.done(self._result(t, found, p, answers, elapsed_ms))
        rest = [t for t in chunk if t.id not in out]
        if rest and len(chunk) > 1:  # one bad track must not cost its pack-mates
            out.update(await self._singly(rest))
        else:
            for t in rest:
                out[t.id] = ItemOutcome.failed(t.id, parsed.reason_for(p.key_of[t.id]))
        return out

    def prompt_for(
        self, chunk: Sequence[TrackInput], keys: Sequence[str] | None = None
    ) -> prompt.Prompt:
        """The request for `chunk` (both lanes: the batch lane rebuilds it from its
        ledger's `keys`)."""
        p = prompt.build(
            chunk,
            self.options.max_input_tokens,
            no_think=self.resolved.no_think_switch,
            max_tokens=self.options.max_tokens,
            keys=keys,
        )
        if self.resolved.thinking == "on":  # thinking counts against max_tokens
            p = p.with_budget(self.options.max_tokens)
        return p

    async def fall_back(self, tracks: list[TrackInput], reason: str) -> dict[int, ItemOutcome]:
        """The fallback analyzer's outcomes for `tracks` (or failures without one)."""
        return await self._fallback_or_fail(tracks, reason)

    def result_for(
        self, t: TrackInput, a: schema.TrackAnalysis, p: prompt.Prompt,
        answers: list[Completion], elapsed_ms: int,
    ) -> AnalysisResult:  # fmt: skip
        """The stored result of a valid answer (both lanes)."""
        return self._result(t, a, p, answers, elapsed_ms)

    async def _singly(self, tracks: list[TrackInput]) -> dict[int, ItemOutcome]:
        out: dict[int, ItemOutcome] = {}
        for part in await asyncio.gather(*(self._chunk([t]) for t in tracks)):
            out.update(part)
        return out

    async def _ask(self, p: prompt.Prompt) -> tuple[schema.ParsedAnswer, list[Completion]]:
        """The request, plus at most one more (MAX_REQUESTS_PER_GROUP): with more tokens
        when the answer was cut off by the limit, else a repair when it was unusable."""
        from analyzer_runtime.analyzers.llm.client import ProviderUnavailable

        assert self._client is not None
        first = await self._client.complete(p)
        parsed = self._parse(first, p)
        if not parsed.needs_repair or (len(p.ids) > 1 and parsed.untrusted):
            return parsed, [first]  # (an untrusted pack is not repaired: asked alone)
        cap = self.options.max_tokens
        cut_off = first.finish_reason == "length"
        if cut_off and p.max_tokens < cap:
            follow_up, what = p.with_budget(cap), "the retry with more tokens"
        elif cut_off:  # already at maxTokens: the same budget would be cut off again
            parsed.truncated = True
            for tid in p.ids:
                if tid not in parsed.valid:
                    parsed.errors[tid] = schema._cap(
                        f"{parsed.reason_for(tid)} (max_tokens {p.max_tokens} = llm.maxTokens)"
                    )
            return parsed, [first]
        else:
            bad = first.text or first.refusal or ""
            follow_up, what = prompt.repair(p, bad, parsed.describe()), "the repair request"
        try:
            second = await self._client.complete(follow_up)
        except ProviderUnavailable as exc:
            for tid in p.ids:
                if tid not in parsed.valid:
                    parsed.errors[tid] = f"{parsed.reason_for(tid)}; {what} failed: {exc}"
            return parsed, [first]
        fixed = self._parse(second, follow_up)
        if len(p.ids) > 1 and fixed.untrusted:
            return fixed, [first, second]
        merged = schema.ParsedAnswer(valid={**parsed.valid, **fixed.valid}, foreign=fixed.foreign)
        merged.truncated = second.finish_reason == "length"
        label = "a retry with more tokens" if cut_off else "one repair request"
        for tid in p.ids:
            if tid not in merged.valid:
                merged.errors[tid] = schema._cap(
                    f"no valid answer after {label}: {fixed.reason_for(tid)}"
                )
        return merged, [first, second]

    def _parse(self, c: Completion, p: prompt.Prompt) -> schema.ParsedAnswer:
        parsed = schema.parse(c.text, p.ids, finish_reason=c.finish_reason, refusal=c.refusal)
        for reason, present in (
            ("foreign_entries", parsed.foreign),
            ("duplicate_entries", parsed.duplicated),
            ("reordered", parsed.reordered),
        ):
            if present:
                metrics.LLM_UNTRUSTED.labels(self.version, reason).inc()
        if parsed.valid:
            self.breaker.usable()
        elif not parsed.truncated:  # nothing usable in an HTTP 200: the provider failed us
            self.breaker.unusable()
        # (cut off by the token limit: our budget, asked again with more tokens)
        return parsed

    def _result(
        self,
        t: TrackInput,
        a: schema.TrackAnalysis,
        p: prompt.Prompt,
        answers: list[Completion],
        elapsed_ms: int,
    ) -> AnalysisResult:
        # This track's share of the requests that produced its answer: prompt tokens
        # by its share of the input, completion tokens evenly.
        tid = p.key_of[t.id]
        share = p.input_chars[tid] / max(1, sum(p.input_chars.values()))
        prompt_tokens = sum(c.prompt_tokens for c in answers)
        completion_tokens = sum(c.completion_tokens for c in answers)
        tokens = {
            "prompt": round(prompt_tokens * share),
            "completion": round(completion_tokens / len(p.ids)),
        }
        if cached := sum(c.cached_tokens for c in answers):  # of prompt, from the cache
            tokens["cached"] = round(cached * share)
        return AnalysisResult(
            track_id=t.id,
            analyzer_type=self.analyzer_type,
            model_version=self.version,
            sentiment=a.sentiment.value,
            confidence=a.confidence,
            themes=list(a.themes),
            complexity_score=a.complexity,
            analysis_data={
                "quality": a.quality,
                "explicit": a.explicit,
                "summary": a.summary,
                "tokens": tokens,
                "usage_estimated": any(c.usage_estimated for c in answers),
                "provider": self.resolved.provider,
                "model": self.resolved.model,
                # Where the answer came from (host[:port], never a path or userinfo).
                "endpoint": endpoint_host(self.resolved.base_url),
                "prompt_version": prompt.PROMPT_VERSION,
                "temperature": self.resolved.temperature,
                "tracks_per_request": len(p.ids),
                "requests": len(answers),
                "attempts": sum(c.attempts for c in answers),
                "repaired": len(answers) > 1,
                "truncated": tid in p.truncated,
            },
            processing_time_ms=elapsed_ms,
        )

    async def _fallback_or_fail(
        self, chunk: list[TrackInput], reason: str
    ) -> dict[int, ItemOutcome]:
        if self._fallback is None:
            return {
                t.id: ItemOutcome.failed(t.id, f"provider unavailable: {reason}") for t in chunk
            }
        outcomes = await self._fallback.analyze_batch(chunk)
        for o in outcomes:
            if o.result is not None:
                # Stored under the fallback's own analyzer_type; this only says why.
                o.result.analysis_data["fallback_for"] = {
                    "analyzer": self.analyzer_type,
                    "model_version": self.version,
                    "reason": reason[:300],
                }
                self._extras.fallback_used += 1
                metrics.LLM_FALLBACK.labels(self.version).inc()
        return {o.track_id: o for o in outcomes}

    @property
    def circuit_state(self) -> State:
        return self.breaker.state
