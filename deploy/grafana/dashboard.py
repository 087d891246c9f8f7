"""The rap-analyzer Grafana dashboard, generated from code (issue 14).

    python deploy/grafana/dashboard.py           # rewrite rap-analyzer.json and the chart's copies
    python deploy/grafana/dashboard.py --check   # exit 1 when one of them is stale

Built with the Grafana Foundation SDK (grafana-foundation-sdk, the dev extra).
The panels are data (ROWS): every PromQL expression of the dashboard is in
EXPRESSIONS, so tests can parse each one (tests/observability) and evaluate it
against a real Prometheus (tests/observability/expressions.py replaces the
Grafana variables). tests/unit/test_grafana_dashboard.py checks that
rap-analyzer.json is what this module generates and that every metric it uses is
one the code defines.

Per-run panels read the operator's per-run gauges (rap_operator_run_*, labels
namespace, name, kind, analyzer) and the shard pods' metrics, whose namespace,
name (the run) and kind labels the scrape attaches from the pod's labels (the
chart's PodMonitor, deploy/prometheus/scrape-config.yaml). The $namespace and
$run variables always filter with `=~`, so "All" (`.*`) also matches series
without those labels.

The chart ships copies of this JSON and of deploy/prometheus/rules.yaml
(charts/rap-analyzer/files/; Helm reads only files inside the chart): this
script writes them too, and its --check compares them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = HERE / "rap-analyzer.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
CHART_FILES = REPO / "charts" / "rap-analyzer" / "files"
# The chart's copies: (source, copy).
COPIES = (
    (OUT, CHART_FILES / "grafana" / "rap-analyzer.json"),
    (RULES, CHART_FILES / "prometheus" / "rules.yaml"),
)
UID = "rap-analyzer"
DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
# Every per-run selector: the dashboard's $namespace and $run variables.
RUN = 'namespace=~"$namespace", name=~"$run"'
FAILED = 'state="failed"'
# Value variables and their default (none today; expressions.py substitutes them).
VARIABLE_DEFAULTS: dict[str, str] = {}

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


def p95(metric: str, by: str = "", sel: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    sel = f"{{{sel}}}" if sel else ""
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({metric}_bucket{sel}[{RATE}])))"


def rate(metric: str, by: str, sel: str = "") -> str:
    sel = f"{{{sel}}}" if sel else ""
    return f"sum by ({by}) (rate({metric}{sel}[{RATE}]))"


def run_sel(extra: str = "") -> str:
    return f"{RUN}, {extra}" if extra else RUN


CIRCUIT_STATES = ((0, "closed", "green"), (1, "open", "red"), (2, "half-open", "orange"))

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Runs",
        (
            Panel(
                "Runs by phase",
                "AnalysisRuns and ScrapeJobs known to the operator, by phase (rap_operator_runs).",
                (Query("sum by (phase) (rap_operator_runs)", "{{phase}}"),),
                stack=True,
            ),
            Panel(
                "Tracks/s per run",
                "Tracks the run's shards finish per second, now (shard metrics) and on"
                " average since the run started (the operator's status.throughput).",
                (
                    Query(
                        rate("rap_analyzer_items_total", "namespace, name", run_sel()),
                        "{{namespace}}/{{name}} now",
                    ),
                    Query(
                        "sum by (namespace, name) "
                        f"(rap_operator_run_tracks_per_second{{{run_sel()}}})",
                        "{{namespace}}/{{name}} since start",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Run progress",
                "Finished (done, failed, skipped) over planned tracks, per run.",
                (
                    Query(
                        f"sum by (namespace, name) (rap_operator_run_items{{{run_sel()}}})"
                        " / sum by (namespace, name) "
                        f"(rap_operator_run_items_planned{{{run_sel()}}})",
                        "{{namespace}}/{{name}}",
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Shard progress",
                "Shards of the selected runs by state (done, running, retrying, failed, pending).",
                (
                    Query(
                        f"sum by (state) (rap_operator_run_shards{{{run_sel()}}})",
                        "{{state}}",
                    ),
                ),
                stack=True,
            ),
            Panel(
                "Failures by reason",
                "Per run: failed tracks, failed shards, failed shard pods (the Job's"
                " status.failed: crashes, OOM kills, evictions).",
                (
                    Query(
                        f"sum by (namespace, name) (rap_operator_run_items{{{run_sel(FAILED)}}})",
                        "{{namespace}}/{{name}} failed tracks",
                    ),
                    Query(
                        f"sum by (namespace, name) (rap_operator_run_shards{{{run_sel(FAILED)}}})",
                        "{{namespace}}/{{name}} failed shards",
                    ),
                    Query(
                        "sum by (namespace, name) "
                        f"(rap_operator_run_shard_pod_failures{{{run_sel()}}})",
                        "{{namespace}}/{{name}} failed shard pods",
                    ),
                ),
            ),
            Panel(
                "Tracks/s by state",
                "Finished tracks per second of the selected runs by state (done, failed, skipped).",
                (
                    Query(
                        rate("rap_analyzer_items_total", "analyzer, state", run_sel()),
                        "{{analyzer}} {{state}}",
                    ),
                ),
                unit="ops",
                stack=True,
            ),
        ),
    ),
    (
        "Shards",
        (
            Panel(
                "Batch latency p95",
                "95th percentile wall time of one batch (fetch, analyze, commit), by analyzer.",
                (Query(p95("rap_analyzer_batch_seconds", "analyzer", run_sel()), "{{analyzer}}"),),
                unit="s",
            ),
            Panel(
                "Analyzer time per track p95",
                "95th percentile of the analyzer's time per track.",
                (
                    Query(
                        p95("rap_analyzer_analyzer_seconds", "analyzer", run_sel()),
                        "{{analyzer}}",
                    ),
                ),
                unit="s",
            ),
        ),
    ),
    (
        "LLM",
        (
            Panel(
                "LLM requests/s by outcome",
                "Chat requests per second by model and outcome (rate_limited = HTTP 429).",
                (
                    Query(
                        rate("rap_analyzer_llm_requests_total", "model, outcome", run_sel()),
                        "{{model}} {{outcome}}",
                    ),
                ),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "LLM tokens/s",
                "Tokens used per second by model and type (prompt, completion).",
                (
                    Query(
                        rate("rap_analyzer_llm_tokens_total", "model, type", run_sel()),
                        "{{model}} {{type}}",
                    ),
                ),
                stack=True,
            ),
            Panel(
                "LLM cost (USD/hour)",
                "Estimated spend per hour by model, from the model's price per token"
                " (rap_analyzer_llm_cost_usd_total; models without a price have none).",
                (
                    Query(
                        rate("rap_analyzer_llm_cost_usd_total", "model", run_sel()) + " * 3600",
                        "{{model}}",
                    ),
                ),
                unit="currencyUSD",
            ),
            Panel(
                "LLM 429s and rate-limit waits",
                "HTTP 429 answers per second, and the seconds per second requests spent"
                " waiting for the run's global rate budget.",
                (
                    Query(
                        rate(
                            "rap_analyzer_llm_requests_total",
                            "model",
                            run_sel('outcome=~"rate_limited|rate_limit_exhausted"'),
                        ),
                        "{{model}} 429/s",
                    ),
                    Query(
                        rate("rap_analyzer_llm_rate_wait_seconds_sum", "model", run_sel()),
                        "{{model}} waiting (s/s)",
                    ),
                ),
            ),
            Panel(
                "LLM rate-limit wait p95",
                "95th percentile of the time a request waited for the run's global rate budget.",
                (
                    Query(
                        p95("rap_analyzer_llm_rate_wait_seconds", "model", run_sel()), "{{model}}"
                    ),
                ),
                unit="s",
            ),
            Panel(
                "LLM circuit state",
                "The circuit breaker per model, worst shard: closed, open, half-open (one probe).",
                (
                    Query(
                        f"max by (model) (rap_analyzer_llm_circuit_state{{{run_sel()}}})",
                        "{{model}}",
                    ),
                ),
                kind="state-timeline",
                mappings=CIRCUIT_STATES,
            ),
            Panel(
                "LLM fallback tracks/s",
                "Tracks analyzed by the fallback analyzer per second.",
                (Query(rate("rap_analyzer_llm_fallback_total", "model", run_sel()), "{{model}}"),),
                unit="ops",
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
                        rate("rap_scraper_requests_total", "upstream, outcome", run_sel()),
                        "{{upstream}} {{outcome}}",
                    ),
                ),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Scraper blocks/s",
                "Requests an upstream blocked per second: throttled (HTTP 429) or"
                " challenged (a bot-challenge page).",
                (
                    Query(
                        rate(
                            "rap_scraper_requests_total",
                            "upstream, outcome",
                            run_sel('outcome=~"throttled|challenged"'),
                        ),
                        "{{upstream}} {{outcome}}",
                    ),
                ),
                unit="reqps",
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
    (
        "Operator",
        (
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
            Panel(
                "Operator up",
                "1 while Prometheus scrapes the operator (job rap-analyzer-metrics).",
                (Query('max by (job) (up{job="rap-analyzer-metrics"})', "{{job}}"),),
                kind="state-timeline",
                mappings=((0, "down", "red"), (1, "up", "green")),
            ),
        ),
    ),
)

EXPRESSIONS: list[str] = [q.expr for _, panels in ROWS for p in panels for q in p.queries]


def promql(expr: str) -> str:
    """expr with Grafana's variables replaced: plain PromQL for Prometheus."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return expr.replace("$namespace", ".*").replace("$run", ".*")


def _query(q: Query, i: int) -> prom_b.Dataquery:
    return (
        prom_b.Dataquery()
        .expr(q.expr)
        .legend_format(q.legend)
        .range()
        .ref_id(chr(ord("A") + i))
        .datasource(DATASOURCE)
    )


def _panel(panel: Panel, pid: int, x: int, y: int, w: int) -> Any:
    builder: Any
    if panel.kind == "state-timeline":
        builder = statetimeline.Panel()
    else:
        builder = (
            timeseries.Panel()
            .fill_opacity(10)
            .line_width(1)
            .show_points(common_m.VisibilityMode.NEVER)
        )
        if panel.stack:
            builder = builder.stacking(
                common_b.StackingConfig().group("A").mode(common_m.StackingMode.NORMAL)
            )
    builder = (
        builder.id(pid)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .unit(panel.unit)
        .grid_pos(dash_m.GridPos(h=8, w=w, x=x, y=y))
        .targets([_query(q, i) for i, q in enumerate(panel.queries)])
    )
    if panel.mappings:
        builder = builder.mappings(
            [
                dash_m.ValueMap(
                    options={
                        str(v): dash_m.ValueMappingResult(text=text, color=color, index=i)
                        for i, (v, text, color) in enumerate(panel.mappings)
                    }
                )
            ]
        )
    return builder.legend(
        common_b.VizLegendOptions()
        .display_mode(common_m.LegendDisplayMode.LIST)
        .placement(common_m.LegendPlacement.BOTTOM)
        .show_legend(True)
    ).tooltip(
        common_b.VizTooltipOptions()
        .mode(common_m.TooltipDisplayMode.MULTI)
        .sort(common_m.SortOrder.DESCENDING)
    )


def _label_variable(name: str, label: str, query: str) -> dash_b.QueryVariable:
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def dashboard() -> JSON:
    board = (
        dash_b.Dashboard("rap-analyzer")
        .uid(UID)
        .description(
            "AnalysisRuns and ScrapeJobs, shard throughput, LLM usage and cost, the scraper,"
            " the search API and the operator (generated by deploy/grafana/dashboard.py;"
            " do not edit the JSON)."
        )
        .tags(["rap-analyzer"])
        .annotations([])  # Grafana wants the list, even empty
        .editable()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(
            dash_b.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .with_variable(
            _label_variable(
                "namespace", "Namespace", "label_values(rap_operator_run_phase, namespace)"
            )
        )
        .with_variable(
            _label_variable(
                "run", "Run", 'label_values(rap_operator_run_phase{namespace=~"$namespace"}, name)'
            )
        )
    )
    pid, y = 1, 0
    for row_title, row_panels in ROWS:
        board = board.with_row(
            dash_b.Row(row_title).id(pid).grid_pos(dash_m.GridPos(h=1, w=24, x=0, y=y))
        )
        pid, y = pid + 1, y + 1
        per_line = 3
        w = 24 // per_line
        for i, panel in enumerate(row_panels):
            x = (i % per_line) * w
            if i and i % per_line == 0:
                y += 8
            board = board.with_panel(_panel(panel, pid, x, y, w))
            pid += 1
        y += 8
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its content: the JSON and the chart's copies."""
    text = render()
    out = {OUT: text}
    for src, copy in COPIES:
        out[copy] = text if src == OUT else src.read_text()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    files = outputs()
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
        for p in stale:
            print(f"{p} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        print(f"wrote {p.relative_to(REPO)}")
    print(f"{len(EXPRESSIONS)} dashboard expressions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
