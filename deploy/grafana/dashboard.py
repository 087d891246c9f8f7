"""The rap-analyzer Grafana dashboard, generated from code (issue 14).

    python deploy/grafana/dashboard.py           # rewrite rap-analyzer.json
    python deploy/grafana/dashboard.py --check   # exit 1 when it is stale
    python -m deploy.grafana.dashboard           # the same, from the repo root

Plain dicts, no grafanalib. Every PromQL expression of the dashboard is in
EXPRESSIONS, so a test can parse or evaluate each one against a real
Prometheus (promql() replaces Grafana's $__ variables with durations).
tests/unit/test_grafana_dashboard.py checks that rap-analyzer.json is what
this module generates and that every metric it uses is one the code defines.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("rap-analyzer.json")
UID = "rap-analyzer"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"

JSON = dict[str, Any]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    stack: bool = False
    mappings: tuple[tuple[int, str, str], ...] = field(default_factory=tuple)


def p95(metric: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({metric}_bucket[{RATE}])))"


def rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE}]))"


CIRCUIT_STATES = ((0, "closed", "green"), (1, "open", "red"), (2, "half-open", "orange"))

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Operator",
        (
            Panel(
                "Runs by phase",
                "AnalysisRuns known to the operator, by phase (rap_operator_runs).",
                (Query("sum by (phase) (rap_operator_runs)", "{{phase}}"),),
                stack=True,
            ),
            Panel(
                "Reconcile p95",
                "95th percentile of one reconcile pass of a run.",
                (Query(p95("rap_operator_reconcile_seconds", "handler"), "{{handler}}"),),
                unit="s",
            ),
            Panel(
                "Status refresh p95",
                "95th percentile of one status refresh: Postgres counters, Job, status patch.",
                (Query(p95("rap_operator_status_refresh_seconds"), "p95"),),
                unit="s",
            ),
        ),
    ),
    (
        "Shards",
        (
            Panel(
                "Items/s by analyzer and state",
                "Work items finished by the shard processes per second (done, failed, skipped).",
                (
                    Query(
                        rate("rap_analyzer_items_total", "analyzer, state"),
                        "{{analyzer}} {{state}}",
                    ),
                ),
                unit="ops",
                stack=True,
            ),
            Panel(
                "Batch latency p95",
                "95th percentile wall time of one batch (fetch, analyze, commit), by analyzer.",
                (Query(p95("rap_analyzer_batch_seconds", "analyzer"), "{{analyzer}}"),),
                unit="s",
            ),
            Panel(
                "Analyzer time per track p95",
                "95th percentile of the analyzer's time per track.",
                (Query(p95("rap_analyzer_analyzer_seconds", "analyzer"), "{{analyzer}}"),),
                unit="s",
            ),
        ),
    ),
    (
        "LLM",
        (
            Panel(
                "LLM tokens/s",
                "Tokens used per second by model and kind (prompt, completion).",
                (
                    Query(
                        rate("rap_analyzer_llm_tokens_total", "model, kind"), "{{model}} {{kind}}"
                    ),
                ),
                stack=True,
            ),
            Panel(
                "LLM requests/s by outcome",
                "Chat requests per second by model and outcome.",
                (
                    Query(
                        rate("rap_analyzer_llm_requests_total", "model, outcome"),
                        "{{model}} {{outcome}}",
                    ),
                ),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "LLM circuit state",
                "The circuit breaker per model, worst shard: closed, open, half-open (one probe).",
                (Query("max by (model) (rap_analyzer_llm_circuit_state)", "{{model}}"),),
                kind="state-timeline",
                mappings=CIRCUIT_STATES,
            ),
            Panel(
                "LLM fallback tracks/s",
                "Tracks analyzed by the fallback analyzer per second.",
                (Query(rate("rap_analyzer_llm_fallback_total", "model"), "{{model}}"),),
                unit="ops",
            ),
            Panel(
                "LLM rate-limit wait p95",
                "95th percentile of the time a request waited for the run's global rate budget.",
                (Query(p95("rap_analyzer_llm_rate_wait_seconds", "model"), "{{model}}"),),
                unit="s",
            ),
        ),
    ),
    (
        "Scraper and search API",
        (
            Panel(
                "Scraper requests/s by outcome",
                "ScrapeJob shards' HTTP requests to upstream APIs per second.",
                (
                    Query(
                        rate("rap_scraper_requests_total", "upstream, outcome"),
                        "{{upstream}} {{outcome}}",
                    ),
                ),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Search API requests/s",
                "Search API requests per second by route and status.",
                (
                    Query(
                        rate("rap_search_requests_total", "route, status"),
                        "{{route}} {{status}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Search API latency p95",
                "95th percentile search latency by route (query embedding included).",
                (Query(p95("rap_search_request_seconds", "route"), "{{route}}"),),
                unit="s",
            ),
        ),
    ),
)

EXPRESSIONS: list[str] = [q.expr for _, panels in ROWS for p in panels for q in p.queries]


def promql(expr: str) -> str:
    """expr with Grafana's interval variables replaced: plain PromQL for Prometheus."""
    return expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")


def _panel(panel: Panel, pid: int, x: int, y: int, w: int) -> JSON:
    defaults: JSON = {"unit": panel.unit}
    custom: JSON = {}
    if panel.kind == "timeseries":
        custom = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        if panel.stack:
            custom["stacking"] = {"group": "A", "mode": "normal"}
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    str(v): {"text": text, "color": color, "index": i}
                    for i, (v, text, color) in enumerate(panel.mappings)
                },
            }
        ]
        defaults["color"] = {"mode": "thresholds"}
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
        }
    defaults["custom"] = custom
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "datasource": dict(DATASOURCE),
                "expr": q.expr,
                "legendFormat": q.legend,
                "range": True,
                "refId": chr(ord("A") + i),
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def dashboard() -> JSON:
    panels: list[JSON] = []
    pid, y = 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y = pid + 1, y + 1
        per_line = 3
        w = 24 // per_line
        for i, panel in enumerate(row_panels):
            x = (i % per_line) * w
            if i and i % per_line == 0:
                y += 8
            panels.append(_panel(panel, pid, x, y, w))
            pid += 1
        y += 8
    return {
        "uid": UID,
        "title": "rap-analyzer",
        "description": "AnalysisRuns, shard throughput, LLM usage and the operator "
        "(generated by deploy/grafana/dashboard.py; do not edit the JSON).",
        "tags": ["rap-analyzer"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(EXPRESSIONS)} expressions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
