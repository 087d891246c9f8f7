"""The Grafana dashboard (deploy/grafana) and the alert rules (deploy/prometheus):
the committed JSON is the generated one, every panel queries a datasource, and
every metric and grouping label they use is one the code defines.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PY = REPO / "deploy" / "grafana" / "dashboard.py"
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"

# Every module that defines Prometheus metrics (grep prometheus_client).
METRIC_MODULES = (
    "analyzer_runtime.metrics",
    "rap_operator.metrics",
    "analyzer_runtime.scrape.http",
    "analyzer_runtime.api.app",
)
# Labels Prometheus adds (target labels: the shard pods' run labels, see the chart's
# PodMonitor) or histograms carry.
EXTRA_LABELS = {"le", "job", "instance", "pod", "namespace", "name", "kind"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def load_dashboard() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rap_grafana_dashboard", DASHBOARD_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dash() -> ModuleType:
    return load_dashboard()


def defined_metrics() -> dict[str, set[str]]:
    """Sample name -> label names of every metric the code defines."""
    out: dict[str, set[str]] = {}
    for name in METRIC_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, MetricWrapperBase):
                for suffix in SUFFIXES[obj._type]:
                    out[obj._name + suffix] = set(obj._labelnames)
        # The operator's per-run gauges come from a collector, declared in RUN_METRICS.
        for metric, (_, extra) in getattr(module, "RUN_METRICS", {}).items():
            out[metric] = {*module.RUN_LABELS, *extra}
    return out


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def metric_names(expr: str) -> set[str]:
    """The project's metric names in expr (all of them start with rap_; no label does)."""
    return set(re.findall(r"\brap_[a-z0-9_]+", expr))


def grouping_labels(expr: str) -> set[str]:
    out: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        out |= {label.strip() for label in group.split(",") if label.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        out |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return out


def all_panels(board: dict) -> Iterator[dict]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_committed_json_is_generated(dash: ModuleType) -> None:
    assert dash.OUT.read_text() == dash.render(), (
        "deploy/grafana/rap-analyzer.json is stale: run python deploy/grafana/dashboard.py"
    )


def test_chart_copies_are_current(dash: ModuleType) -> None:
    """The chart's copies of the dashboard and the rules (charts/rap-analyzer/files)
    are the sources' (Helm reads only files inside the chart)."""
    for path, text in dash.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python deploy/grafana/dashboard.py"
    assert {copy for _, copy in dash.COPIES} <= dash.outputs().keys()


def test_dashboard_shape(dash: ModuleType) -> None:
    board = json.loads(dash.OUT.read_text())
    assert board["uid"] == "rap-analyzer"
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in all_panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    data_panels = [p for p in all_panels(board) if p["type"] != "row"]
    assert len(data_panels) >= 6
    exprs: list[str] = []
    for panel in data_panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]
            exprs.append(target["expr"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    # EXPRESSIONS is every expression of the dashboard, in panel order.
    assert exprs == dash.EXPRESSIONS
    titles = " | ".join(p["title"] for p in data_panels)
    for wanted in ("Runs by phase", "Tracks/s per run", "Shard progress", "Failures by reason",
                   "LLM requests/s", "LLM tokens/s", "LLM cost", "429s", "rate-limit wait",
                   "LLM circuit state", "Scraper requests/s", "Scraper blocks/s",
                   "Reconcile p95"):  # fmt: skip
        assert wanted in titles


def test_promql_replaces_grafana_variables(dash: ModuleType) -> None:
    for expr in dash.EXPRESSIONS:
        assert "$" not in dash.promql(expr), expr


def test_dashboard_metrics_are_defined(dash: ModuleType) -> None:
    defined = defined_metrics()
    labels_of_all = set().union(*defined.values()) | EXTRA_LABELS
    for expr in dash.EXPRESSIONS:
        names = metric_names(expr)
        assert names or expr.startswith("max by (job) (up{"), f"no rap_ metric in {expr!r}"
        assert names <= defined.keys(), f"{expr!r}: unknown {names - defined.keys()}"
        allowed = set().union(*(defined[n] for n in names)) | EXTRA_LABELS
        assert grouping_labels(expr) <= allowed, f"{expr!r}: unknown labels"
    assert labels_of_all  # the modules were found


def test_rule_metrics_are_defined() -> None:
    defined = defined_metrics()
    seen: set[str] = set()
    for alert, expr in rule_exprs():
        names = metric_names(expr)
        assert names <= defined.keys(), f"{alert}: unknown {names - defined.keys()}"
        allowed = set().union(*(defined[n] for n in names)) | EXTRA_LABELS
        assert grouping_labels(expr) <= allowed, f"{alert}: unknown labels in {expr!r}"
        seen |= names
    # The rules cover the operator, the shards and the LLM analyzer.
    assert {"rap_operator_run_phase", "rap_operator_run_items"} <= seen
    assert {"rap_operator_run_shard_pod_failures", "rap_analyzer_llm_circuit_state"} <= seen


def test_rules_have_severity_and_annotations() -> None:
    alerts = list(rule_exprs())
    assert len(alerts) >= 5
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].startswith("RapAnalyzer")
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load(RULES.with_name("rules.test.yaml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {name for name, _ in rule_exprs()}
    assert alerts <= firing, f"never tested firing: {alerts - firing}"
    assert alerts <= quiet, f"never tested not firing: {alerts - quiet}"


def test_grouping_label_parser() -> None:
    expr = 'sum by (model, kind) (rate(rap_x_total{outcome!="ok", le=~"1"}[5m]))'
    assert grouping_labels(expr) == {"model", "kind", "outcome", "le"}
    assert metric_names(expr) == {"rap_x_total"}
