"""The operator's per-run gauges (rap_operator.metrics): labelled by namespace,
name, kind and analyzer (never the uid), gone when the run is deleted and
RUN_RETENTION_SECONDS after it reached a terminal phase."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from rap_operator import metrics


def body(uid: str, name: str = "r") -> dict[str, Any]:
    return {
        "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {"analyzer": "llm"},
    }


def status(phase: str, done: int = 0) -> dict[str, Any]:
    return {
        "phase": phase, "processed": done, "failed": 1, "skipped": 0, "total": 10,
        "throughput": 2.5, "shards": {"done": {"count": 1}, "running": {"count": 2}},
    }  # fmt: skip


def value(metric: str, name: str = "r", **extra: str) -> float | None:
    labels = {"namespace": "ns", "name": name, "kind": "analysisrun", "analyzer": "llm", **extra}
    return REGISTRY.get_sample_value(metric, labels)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_runs", {})
    monkeypatch.setattr(metrics, "_phases", {})


def test_gauges_from_a_status(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "time", lambda: clock[0])
    metrics.observe_run(body("u1"), status("Running", 3), {"status": {"failed": 2}})
    assert value("rap_operator_run_phase", phase="Running") == 1
    assert value("rap_operator_run_phase", phase="Pending") == 0
    assert value("rap_operator_run_items", state="done") == 3
    assert value("rap_operator_run_items", state="failed") == 1
    assert value("rap_operator_run_items_planned") == 10
    assert value("rap_operator_run_tracks_per_second") == 2.5
    assert value("rap_operator_run_shards", state="running") == 2
    assert value("rap_operator_run_shards", state="pending") == 0
    assert value("rap_operator_run_shard_pod_failures") == 2
    assert value("rap_operator_run_last_progress_timestamp_seconds") == 1000
    clock[0] = 1060.0  # no new tracks: progress time stays
    metrics.observe_run(body("u1"), status("Running", 3), None)
    assert value("rap_operator_run_last_progress_timestamp_seconds") == 1000
    clock[0] = 1120.0
    metrics.observe_run(body("u1"), status("Running", 5), None)
    assert value("rap_operator_run_last_progress_timestamp_seconds") == 1120


def test_a_batch_run_progresses_while_the_provider_answers_its_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "time", lambda: clock[0])

    def batch_status(completed: int) -> dict[str, Any]:
        requests = {"total": 100, "completed": completed, "failed": 0}
        return {**status("Running", 0), "llmBatches": {"requests": requests}}

    metrics.observe_run(body("u1"), batch_status(0), None)
    clock[0] = 1300.0  # no track finished, but the provider answered 40 requests
    metrics.observe_run(body("u1"), batch_status(40), None)
    assert value("rap_operator_run_last_progress_timestamp_seconds") == 1300
    clock[0] = 1600.0
    metrics.observe_run(body("u1"), batch_status(40), None)
    assert value("rap_operator_run_last_progress_timestamp_seconds") == 1300


def test_terminal_runs_expire_and_deleted_runs_go(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "time", lambda: clock[0])
    metrics.observe_run(body("u1"), status("Succeeded", 9), None)
    metrics.observe_run(body("u2", "other"), status("Running", 1), None)
    clock[0] += metrics.RUN_RETENTION_SECONDS - 1
    assert value("rap_operator_run_phase", phase="Succeeded") == 1
    clock[0] += 2
    assert value("rap_operator_run_phase", phase="Succeeded") is None  # expired
    assert value("rap_operator_run_phase", "other", phase="Running") == 1  # still running
    metrics.set_phase("u2", None)  # deleted
    assert value("rap_operator_run_phase", "other", phase="Running") is None


def test_no_uid_label() -> None:
    metrics.observe_run(body("6a7b0c3e-uid"), status("Running"), None)
    text = "\n".join(
        str(s) for m in REGISTRY.collect() if m.name.startswith("rap_operator") for s in m.samples
    )
    assert "6a7b0c3e-uid" not in text
