"""Prometheus metrics of the runtime (one shard process)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

ITEMS = Counter(
    "rap_analyzer_items_total", "Work items finished by this process", ["analyzer", "state"]
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
LLM_REQUESTS = Counter(
    "rap_analyzer_llm_requests_total",
    "Chat requests sent by this process, by outcome (ok, rate_limited, timeout,"
    " server_error, connection_error, rejected, auth_error)",
    ["model", "outcome"],
)
LLM_TOKENS = Counter(
    "rap_analyzer_llm_tokens_total", "Tokens used by this process", ["model", "kind"]
)
LLM_CIRCUIT_STATE = Gauge(
    "rap_analyzer_llm_circuit_state",
    "Circuit breaker of this process: 0 closed, 1 open, 2 half-open (one probe)",
    ["model"],
)
LLM_FALLBACK = Counter(
    "rap_analyzer_llm_fallback_total", "Tracks analyzed by the fallback analyzer", ["model"]
)
LLM_RATE_WAIT_SECONDS = Histogram(
    "rap_analyzer_llm_rate_wait_seconds",
    "Time a request waited for the run's global rate budget",
    ["model"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60),
)


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
