"""Circuit breaker, backoff, Retry-After, redaction, window counting, dry-run status."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from analyzer_runtime.analyzers.llm.breaker import CircuitBreaker, State
from analyzer_runtime.analyzers.llm.client import RetrySettings, retry_after_seconds
from analyzer_runtime.analyzers.llm.redaction import Redactor, _RedactingFilter
from analyzer_runtime.contract.status_model import AnalysisRunStatus
from analyzer_runtime.ratelimit import max_in_window
from tests.builders import shard, status


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_five_consecutive_failures_then_probes_once() -> None:
    clock = Clock()
    seen: list[State] = []
    b = CircuitBreaker(clock=clock, on_change=seen.append)  # the issue's defaults
    assert (b.threshold, b.open_seconds) == (5, 60.0)
    for _ in range(4):
        b.failure()
    b.success()  # a success resets the count: failures must be consecutive
    for _ in range(4):
        b.failure()
    assert b.state is State.closed and b.allow()
    b.failure()
    assert b.state is State.open and not b.allow()
    clock.t += 59.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()  # the probe
    assert b.state is State.half_open
    assert not b.allow() and not b.allow()  # only one probe at a time
    b.failure()  # the probe failed: open for another 60 s
    assert b.state is State.open and not b.allow()
    clock.t += 60
    assert b.allow()
    b.success()
    assert b.state is State.closed and b.allow()
    assert seen == [State.closed, State.open, State.half_open, State.open, State.half_open,
                    State.closed]  # fmt: skip


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, open_seconds=10, clock=clock)
    b.failure()
    clock.t += 10
    assert b.allow() and b.state is State.half_open
    b.abandon()
    assert b.state is State.open and b.allow()


def test_breaker_state_is_a_metric() -> None:
    from analyzer_runtime import metrics

    gauge = metrics.LLM_CIRCUIT_STATE.labels("unit-test-model")
    b = CircuitBreaker(threshold=1, open_seconds=0, on_change=lambda s: gauge.set(int(s)))

    def value() -> float | None:
        return REGISTRY.get_sample_value(
            "rap_analyzer_llm_circuit_state", {"model": "unit-test-model"}
        )

    assert value() == 0
    b.failure()
    assert value() == 1
    b.allow()
    assert value() == 2
    b.success()
    assert value() == 0


def test_backoff_is_2_4_8_seconds_with_20_percent_jitter() -> None:
    r = RetrySettings()
    assert (r.retries, r.initial_backoff) == (3, 2.0)
    rng = random.Random(1)
    for n, base in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        waits = [r.backoff(n, rng) for _ in range(500)]
        assert base * 0.8 <= min(waits) < base * 0.85
        assert base * 1.15 < max(waits) <= base * 1.2
    capped = RetrySettings(initial_backoff=2.0, max_backoff=5.0, jitter=0.0)
    assert capped.backoff(3) == 5.0


def test_retry_after_in_every_form() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "3", "retry-after-ms": "1250"}) == 1.25
    assert retry_after_seconds({"retry-after": "99999"}) == 300.0  # capped
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= (retry_after_seconds({"retry-after": date}) or 0) <= 30
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


KEY = "sk-live-0123456789abcdefghijklmnop"


def test_redactor_masks_the_key_and_anything_like_a_key() -> None:
    r = Redactor(KEY)
    msg = f"401: Incorrect API key provided: {KEY}. Header was 'Authorization: Bearer {KEY}'"
    out = r.redact(msg)
    assert KEY not in out and "Bearer ***" in out
    assert KEY[:12] not in r.redact(f"key {KEY[:12]}...{KEY[-4:]}")
    assert "sk-other" not in Redactor(None).redact("oops sk-otherkey12345678 leaked")
    assert Redactor(None).redact("nothing secret") == "nothing secret"


def test_log_records_and_their_tracebacks_are_redacted() -> None:
    f = _RedactingFilter(Redactor(KEY))
    try:
        raise RuntimeError(f"boom {KEY}")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed with %s", (KEY,), (type(exc), exc, None)
        )
    assert f.filter(record)
    text = logging.Formatter().format(record)
    assert KEY not in text and "failed with ***" in text and "RuntimeError: boom ***" in text


def test_max_in_window_is_a_sliding_half_open_window() -> None:
    assert max_in_window([], 60) == 0
    assert max_in_window([0, 59.9, 60], 60) == 2  # 0 and 60 are a window apart
    assert max_in_window([0, 1, 2, 3, 61, 62], 60) == 4
    assert max_in_window([5, 1, 3], 10) == 3  # unsorted input


def test_a_dry_run_ends_succeeded_without_a_job() -> None:
    pending = [shard(0, "pending", total=10, attempt=0)]
    st = status(pending, planned_total=10, dry_run=True)
    st["estimate"] = {
        "requests": 2, "tracksPerRequest": 8, "duration": "3s", "durationSeconds": 2.7,
        "tokens": {"prompt": 10, "completion": 5, "total": 15}, "cost": 0.1,
        "requestsPerMinute": 45,
    }  # fmt: skip
    AnalysisRunStatus.model_validate(st)  # the CRD's status schema has room for it
    succeeded = next(c for c in st["conditions"] if c["type"] == "Succeeded")
    assert st["phase"] == "Succeeded" and succeeded["reason"] == "DryRun"
    assert st["processed"] == 0 and "nothing was analyzed" in succeeded["message"]
    not_dry = status(pending, planned_total=10)
    assert not_dry["phase"] == "Pending"


@pytest.mark.parametrize("analyzer", ["llm", "algorithmic"])
def test_the_api_key_reaches_pods_only_by_secret_reference(analyzer: str) -> None:
    from rap_operator.config import OperatorConfig
    from rap_operator.kinds import ANALYSIS
    from rap_operator.manifests import kind_job

    spec: dict[str, Any] = {"analyzer": analyzer, "shards": 2}
    if analyzer == "llm":
        spec["llm"] = {"provider": "novita", "apiKeySecretRef": {"name": "nk", "key": "token"}}
    body = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun", "spec": spec,
        "metadata": {"name": "r", "namespace": "ns", "uid": "u-1"},
    }  # fmt: skip
    env = kind_job(body, OperatorConfig(), ANALYSIS)["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    keys = [e for e in env if e["name"] == "LLM_API_KEY"]
    if analyzer == "llm":
        assert keys == [
            {"name": "LLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "nk", "key": "token"}}}
        ]
    else:
        assert keys == []
    assert all("value" not in e or e["name"] != "LLM_API_KEY" for e in env)
