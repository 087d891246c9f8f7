"""Prometheus metrics of the operator.

Two kinds of series:

- operator-wide: rap_operator_runs{phase} (runs this operator knows, by phase),
  the reconcile / status-refresh histograms, and per database server the shard pods
  its connection budget allows and those granted (rap_operator_db_*_shard_pods);
- per run, from what each status refresh already computes (observe_run), labelled
  {namespace, name, kind, analyzer} - never the uid, so a run re-created under the
  same name continues its series. kind is the lower-case kind ("analysisrun",
  "scrapejob"), the same value as the shard pods' `rapanalyzer.io/kind` label.
  A run's series go away when the run is deleted and RUN_RETENTION_SECONDS after
  it reached a terminal phase (Succeeded, Failed), so the label sets stay bounded
  by the runs alive or recently finished. They are produced by a collector at
  scrape time, which is also when expired runs are dropped.

The operator's own endpoint should be scraped with honor_labels (the chart's
ServiceMonitor sets honorLabels: true): the per-run `namespace` label is the
run's namespace, not the operator pod's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rap_operator import budget

log = logging.getLogger(__name__)

PHASES = ("Pending", "Running", "Suspended", "Succeeded", "Failed")
TERMINAL = ("Succeeded", "Failed")
ITEM_STATES = ("done", "failed", "skipped")
SHARD_STATES = ("done", "running", "retrying", "failed", "pending")
RUN_LABELS = ("namespace", "name", "kind", "analyzer")
# How long a finished run's series stay (so dashboards and alerts see its end).
RUN_RETENTION_SECONDS = float(os.environ.get("RAP_METRICS_RUN_RETENTION_SECONDS", "900"))

# The per-run gauges (labels RUN_LABELS + these): name -> (help, extra labels).
RUN_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rap_operator_run_phase": ("1 for the run's current phase, 0 for the others", ("phase",)),
    "rap_operator_run_items": (
        "Tracks of the run finished so far, by state (done, failed, skipped)",
        ("state",),
    ),
    "rap_operator_run_items_planned": ("Tracks the run has to analyze", ()),
    "rap_operator_run_tracks_per_second": (
        "Finished tracks per second of the run since it started",
        (),
    ),
    "rap_operator_run_shards": (
        "Shards of the run by state (done, running, retrying, failed, pending)",
        ("state",),
    ),
    "rap_operator_run_shard_pod_failures": (
        "Failed shard pods of the run's Job (its status.failed: crashes, OOM kills, evictions)",
        (),
    ),
    "rap_operator_run_last_progress_timestamp_seconds": (
        "When the run last finished a track (or started Running), Unix time",
        (),
    ),
}

RUNS = Gauge("rap_operator_runs", "AnalysisRuns known to this operator, by phase", ["phase"])
RECONCILE_SECONDS = Histogram(
    "rap_operator_reconcile_seconds", "Duration of one reconcile pass of a run", ["handler"]
)
STATUS_REFRESH_SECONDS = Histogram(
    "rap_operator_status_refresh_seconds",
    "Duration of one status refresh (Postgres counters + Job + status patch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Failed reconcile passes by the run's kind (AnalysisRun, ScrapeJob) and a reason
# from the bounded set of errors.REASONS (Unexpected: a bug, with a traceback in the log).
RECONCILE_ERRORS = Counter(
    "rap_operator_reconcile_errors",
    "Reconcile passes of a run that failed, by the run's kind and the reason"
    " (temporary ones are retried with backoff, Unexpected is a bug)",
    ["kind", "reason"],
)
for _p in PHASES:
    RUNS.labels(_p).set(0)
RECONCILE_SECONDS.labels("reconcile")

_phases: dict[str, str] = {}


def set_phase(uid: str, phase: str | None) -> None:
    """Track each run's phase; the gauge counts runs per phase. None: the run is gone
    (deleted), and so are its per-run series."""
    if phase is None:
        _phases.pop(uid, None)
        _runs.pop(uid, None)
    else:
        _phases[uid] = phase
        if uid in _runs:
            _runs[uid].phase(phase, time.time())
    counts: dict[str, int] = {}
    for p in _phases.values():
        counts[p] = counts.get(p, 0) + 1
    for p in PHASES:
        RUNS.labels(p).set(counts.get(p, 0))


@dataclass
class _Run:
    labels: tuple[str, str, str, str]
    current: str = "Pending"
    items: dict[str, float] = field(default_factory=dict)
    planned: float = 0.0
    throughput: float = 0.0
    shards: dict[str, float] = field(default_factory=dict)
    pod_failures: float = 0.0
    last_progress: float = 0.0
    terminal_since: float | None = None
    answered: float = 0.0  # batch requests the provider answered (llm.mode batch)

    def phase(self, phase: str, now: float) -> None:
        if phase != self.current and phase == "Running":
            self.last_progress = now  # a run (re)starting has made no progress yet
        self.current = phase
        if phase in TERMINAL:
            self.terminal_since = self.terminal_since or now
        else:
            self.terminal_since = None


_runs: dict[str, _Run] = {}


def observe_run(body: Mapping[str, Any], status: Mapping[str, Any], job: Any = None) -> None:
    """Record a run's per-run gauges from the status a refresh computed (and its Job)."""
    meta, spec = body["metadata"], body.get("spec") or {}
    kind = str(body.get("kind", "")).lower()
    labels = (meta["namespace"], meta["name"], kind, str(spec.get("analyzer") or kind))
    now = time.time()
    run = _runs.get(meta["uid"])
    if run is None or run.labels != labels:
        run = _runs[meta["uid"]] = _Run(labels, last_progress=now)
    items = {
        "done": float(status.get("processed") or 0),
        "failed": float(status.get("failed") or 0),
        "skipped": float(status.get("skipped") or 0),
    }
    # A batch-mode run finishes no track for hours while the provider answers its
    # batches: requests the provider answered (or failed) are progress too.
    batches = (status.get("llmBatches") or {}).get("requests") or {}
    answered = float((batches.get("completed") or 0) + (batches.get("failed") or 0))
    if sum(items.values()) != sum(run.items.values()) or answered != run.answered:
        run.last_progress = now
    run.items, run.answered = items, answered
    run.planned = float(status.get("total") or 0)
    run.throughput = float(status.get("throughput") or 0)
    summary = status.get("shards") or {}
    run.shards = {s: float((summary.get(s) or {}).get("count") or 0) for s in SHARD_STATES}
    job_status = (job.get("status") or {}) if isinstance(job, Mapping) else {}
    run.pod_failures = float(job_status.get("failed") or 0)
    run.phase(str(status.get("phase") or "Pending"), now)


class _RunCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        # The HTTP server's thread: copy first (atomic under the GIL), the event loop
        # may add a run meanwhile.
        now, runs = time.time(), []
        for uid, r in list(_runs.items()):
            if r.terminal_since is not None and now - r.terminal_since > RUN_RETENTION_SECONDS:
                _runs.pop(uid, None)
            else:
                runs.append(r)

        fam = {
            name: GaugeMetricFamily(name, doc, labels=[*RUN_LABELS, *extra])
            for name, (doc, extra) in RUN_METRICS.items()
        }
        phase, items, planned, tps, shards, pods, progress = fam.values()
        for r in runs:
            lbl = list(r.labels)
            for p in PHASES:
                phase.add_metric([*lbl, p], 1.0 if p == r.current else 0.0)
            for s in ITEM_STATES:
                items.add_metric([*lbl, s], r.items.get(s, 0.0))
            planned.add_metric(lbl, r.planned)
            tps.add_metric(lbl, r.throughput)
            for s in SHARD_STATES:
                shards.add_metric([*lbl, s], r.shards.get(s, 0.0))
            pods.add_metric(lbl, r.pod_failures)
            progress.add_metric(lbl, r.last_progress)
        yield from fam.values()

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # unchecked: the samples vary from scrape to scrape


REGISTRY.register(_RunCollector())


class _BudgetCollector(Collector):
    """The connection budget per database server (host:port, or a socket directory),
    read from the ledger at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        allowed = GaugeMetricFamily(
            "rap_operator_db_budget_shard_pods",
            "Shard pods the database server's connection budget allows at once",
            labels=["server"],
        )
        held = GaugeMetricFamily(
            "rap_operator_db_granted_shard_pods",
            "Shard pods the runs on the database server may run now (their Jobs' parallelism"
            " within the budget)",
            labels=["server"],
        )
        for server, (pods, granted) in sorted(budget.LEDGER.servers().items()):
            allowed.add_metric([server], pods)
            held.add_metric([server], granted)
        yield allowed
        yield held

    def describe(self) -> list[GaugeMetricFamily]:
        return []


REGISTRY.register(_BudgetCollector())


_serving: dict[int, bool] = {}


def serve(port: int) -> bool:
    """Once per process and port: __main__ serves before the election (followers are
    scraped too), the startup handler again when this process leads."""
    if port not in _serving:
        _serving[port] = _listen(port)
    return _serving[port]


def _listen(port: int) -> bool:
    # The runtime's metrics.serve does the same for shard pods; the operator does not
    # import the runtime (tests/unit/test_import_layers.py).
    if port <= 0:
        return False
    try:
        start_http_server(port)
    except OSError as exc:
        log.warning("metrics disabled: cannot listen on port %d: %s", port, exc)
        return False
    return True


# Leader election (leader.py): which replica reconciles. Every replica exports both;
# sum(rap_operator_leader) is 1 when one leads.
LEADER = Gauge("rap_operator_leader", "1 while this operator process leads (reconciles), else 0")
LEADER_TRANSITIONS = Counter(
    "rap_operator_leader_transitions",
    "Changes of the Lease's holder this process saw (it or another replica taking the lead,"
    " or a leader releasing it)",
)


def set_leader(leading: bool) -> None:
    LEADER.set(1 if leading else 0)


def leader_transition() -> None:
    LEADER_TRANSITIONS.inc()
