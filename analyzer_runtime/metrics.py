"""Prometheus metrics of the runtime (one shard process).

Bounded labels only (analyzer, state, model, outcome, type): no run or shard id.
Which run and shard a series belongs to comes from the shard pod's labels, which
the scrape attaches as target labels (the chart's PodMonitor and
deploy/prometheus/scrape-config.yaml: namespace, pod, name = the run, kind = its
lower-case kind). Labelled counters are created for every known label value as
soon as their label is known (init_llm, ITEM_STATES), so rate() says 0 rather
than nothing.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

ITEM_STATES = ("done", "failed", "skipped")
ITEMS = Counter(
    "rap_analyzer_items_total",
    "Work items finished by this process, by state (done, failed, skipped)",
    ["analyzer", "state"],
)
BATCH_SECONDS = Histogram(
    "rap_analyzer_batch_seconds",
    "Wall time of one batch: fetch, analyze and commit",
    ["analyzer"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ANALYZER_SECONDS = Histogram(
    "rap_analyzer_analyzer_seconds",
    "Analyzer time per track",
    ["analyzer"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
)

# The llm analyzer (labels: model = the analyzer's model_version, e.g. novita:qwen/...@p1).
LLM_OUTCOMES = (
    "ok",
    "rate_limited",
    "rate_limit_exhausted",
    "timeout",
    "server_error",
    "connection_error",
    "bad_response",
    "unusable",
    "rejected",
    "auth_error",
    "circuit_open",
)
LLM_REQUESTS = Counter(
    "rap_analyzer_llm_requests_total",
    "Chat requests of this process, by outcome (" + ", ".join(LLM_OUTCOMES) + ")",
    ["model", "outcome"],
)
# `cached`: the part of `prompt` the provider served from its prompt cache (billed at
# the cached price), not tokens on top of it.
LLM_TOKEN_TYPES = ("prompt", "completion", "cached")
LLM_TOKENS = Counter(
    "rap_analyzer_llm_tokens_total",
    "Tokens used by this process, by type (prompt, completion; cached: of prompt, served"
    " from the provider's prompt cache)",
    ["model", "type"],
)
LLM_COST = Counter(
    "rap_analyzer_llm_cost_usd_total",
    "Estimated cost of the tokens used by this process in US dollars, from the model's"
    " price per token (spec.llm.pricing or the preset's; cached prompt tokens at the cached"
    " price); absent for a model without a price",
    ["model"],
)
LLM_CIRCUIT_STATE = Gauge(
    "rap_analyzer_llm_circuit_state",
    "Circuit breaker of this process: 0 closed, 1 open, 2 half-open (one probe)",
    ["model"],
)
LLM_FALLBACK = Counter(
    "rap_analyzer_llm_fallback_total", "Tracks analyzed by the fallback analyzer", ["model"]
)
# spec.llm.cascade: tracks its first analyzer kept (labelled, never sent) or sent on.
LLM_CASCADE_ROUTES = ("kept", "sent")
LLM_CASCADE = Counter(
    "rap_analyzer_llm_cascade_tracks_total",
    "Tracks of an llm run with a cascade: kept (labelled by the cheap first analyzer) or"
    " sent to the LLM",
    ["model", "route"],
)
# Why an answer's entries could not be trusted to belong to the tracks they name
# (schema.ParsedAnswer.untrusted): a packed answer with any of them is asked again
# track by track.
LLM_UNTRUSTED_REASONS = ("foreign_entries", "duplicate_entries", "reordered")
LLM_UNTRUSTED = Counter(
    "rap_analyzer_llm_untrusted_answers_total",
    "Answers with entries for tracks not asked, a track answered twice, or entries out of"
    " order (possible prompt injection from the lyrics), by reason",
    ["model", "reason"],
)
LLM_RATE_WAIT_SECONDS = Histogram(
    "rap_analyzer_llm_rate_wait_seconds",
    "Time a request waited for the run's global rate budget",
    ["model"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60),
)


def init_llm(model: str, priced: bool) -> None:
    """Create the llm series of a model at 0, so rate() returns data from the start."""
    for outcome in LLM_OUTCOMES:
        LLM_REQUESTS.labels(model, outcome)
    for kind in LLM_TOKEN_TYPES:
        LLM_TOKENS.labels(model, kind)
    if priced:
        LLM_COST.labels(model)
    LLM_FALLBACK.labels(model)
    for reason in LLM_UNTRUSTED_REASONS:
        LLM_UNTRUSTED.labels(model, reason)
    LLM_RATE_WAIT_SECONDS.labels(model)


def init_items(analyzer: str) -> None:
    for state in ITEM_STATES:
        ITEMS.labels(analyzer, state)
    BATCH_SECONDS.labels(analyzer)
    ANALYZER_SECONDS.labels(analyzer)


def serve(port: int) -> bool:
    """Expose /metrics; a busy port (several shards on one host) only loses metrics."""
    if port <= 0:
        return False
    try:
        start_http_server(port)
    except OSError as exc:
        log.warning("metrics disabled: cannot listen on port %d: %s", port, exc)
        return False
    return True
