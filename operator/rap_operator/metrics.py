"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

RUNS = Gauge("rap_operator_runs", "AnalysisRuns known to this operator, by phase", ["phase"])
RECONCILE_SECONDS = Histogram(
    "rap_operator_reconcile_seconds", "Duration of one reconcile pass of a run", ["handler"]
)
STATUS_REFRESH_SECONDS = Histogram(
    "rap_operator_status_refresh_seconds",
    "Duration of one status refresh (Postgres counters + Job + status patch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_phases: dict[str, str] = {}


def set_phase(uid: str, phase: str | None) -> None:
    """Track each run's phase; the gauge counts runs per phase."""
    if phase is None:
        _phases.pop(uid, None)
    else:
        _phases[uid] = phase
    counts: dict[str, int] = {}
    for p in _phases.values():
        counts[p] = counts.get(p, 0) + 1
    for p in ("Pending", "Running", "Suspended", "Succeeded", "Failed"):
        RUNS.labels(p).set(counts.get(p, 0))


def serve(port: int) -> bool:
    from analyzer_runtime.metrics import serve as serve_metrics

    return serve_metrics(port)
