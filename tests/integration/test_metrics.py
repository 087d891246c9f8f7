"""The runtime's Prometheus metrics: counted from a real shard run, served over HTTP."""

from __future__ import annotations

import socket
import urllib.request

import asyncpg
from prometheus_client import REGISTRY

from analyzer_runtime import metrics, worker
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger.planner import Selection

from .conftest import insert_tracks


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_shard_run_counts_items_and_latencies(pool: asyncpg.Pool) -> None:
    await insert_tracks(pool, [("A", "one", "money on my mind all the time"), ("A", "two", "   ")])
    async with pool.acquire() as conn:
        plan = await planner.plan_analysis(
            conn, uid="metrics-run", name="m", namespace=None,
            spec={"analyzer": "algorithmic", "batchSize": 10}, selection=Selection(),
            shards=1, analyzer_type="algorithmic", model_version="1.0.0",
        )  # fmt: skip
    before = {
        s: _value("rap_analyzer_items_total", analyzer="algorithmic", state=s)
        for s in ("done", "skipped")
    }
    batches = _value("rap_analyzer_batch_seconds_count", analyzer="algorithmic")
    report = await worker.run_shard(pool, plan.run.uid, 0)
    assert report.finished and (report.done, report.skipped) == (1, 1)
    assert (
        _value("rap_analyzer_items_total", analyzer="algorithmic", state="done")
        == before["done"] + 1
    )
    assert (
        _value("rap_analyzer_items_total", analyzer="algorithmic", state="skipped")
        == before["skipped"] + 1
    )
    assert _value("rap_analyzer_batch_seconds_count", analyzer="algorithmic") == batches + 1
    assert _value("rap_analyzer_analyzer_seconds_count", analyzer="algorithmic") >= 1


def test_metrics_are_served_and_a_busy_port_is_not_fatal() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert metrics.serve(port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "rap_analyzer_items_total" in body and "rap_analyzer_batch_seconds_bucket" in body
    # A second shard on the same host: the port is taken, the shard carries on without metrics.
    assert metrics.serve(port) is False
    assert metrics.serve(0) is False
