"""deploy/prometheus/rules.yaml and the Grafana dashboard's PromQL, checked by
the real promtool: the rules load, their unit tests (rules.test.yaml) pass,
and every dashboard expression parses (as a recording rule, by Prometheus's
own parser)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .conftest import REPO, load_dashboard

RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
RULES_TEST = REPO / "deploy" / "prometheus" / "rules.test.yaml"
DASHBOARD = load_dashboard()


def run(promtool: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(promtool), *args], input=stdin, capture_output=True, timeout=120, cwd=REPO
    )


def output(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout + proc.stderr).decode(errors="replace")


def test_promtool_version(promtool: Path) -> None:
    proc = run(promtool, "--version")
    assert proc.returncode == 0, output(proc)
    assert "promtool, version 3." in output(proc)


def test_check_rules(promtool: Path) -> None:
    proc = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert proc.returncode == 0, output(proc)
    alerts = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {alerts} rules found" in output(proc)


def test_rule_unit_tests(promtool: Path) -> None:
    proc = run(promtool, "test", "rules", str(RULES_TEST))
    assert proc.returncode == 0, output(proc)
    assert "SUCCESS" in output(proc)


def check_as_recording_rule(
    promtool: Path, tmp_path: Path, expr: str
) -> subprocess.CompletedProcess:
    rule_file = tmp_path / "dashboard.rules.yaml"
    group = {"name": "dashboard", "rules": [{"record": "rap:dashboard:expr", "expr": expr}]}
    rule_file.write_text(yaml.safe_dump({"groups": [group]}))
    return run(promtool, "check", "rules", str(rule_file))


@pytest.mark.parametrize("expr", DASHBOARD.EXPRESSIONS)
def test_dashboard_expression_parses(promtool: Path, tmp_path: Path, expr: str) -> None:
    proc = check_as_recording_rule(promtool, tmp_path, DASHBOARD.promql(expr))
    assert proc.returncode == 0, f"{expr}\n{output(proc)}"


def test_a_broken_expression_is_caught(promtool: Path, tmp_path: Path) -> None:
    # The check above is only worth something if promtool rejects bad PromQL.
    proc = check_as_recording_rule(promtool, tmp_path, "sum by (le (rate(rap_x[5m]))")
    assert proc.returncode != 0
    assert "parse error" in output(proc)


def test_exposition_format_lints_clean(promtool: Path) -> None:
    """The metrics as the code declares them (same names, types, labels, help)
    pass `promtool check metrics` (Prometheus's naming conventions)."""
    import importlib

    from prometheus_client.metrics import MetricWrapperBase

    registry = CollectorRegistry()
    kinds = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
    modules = (
        "analyzer_runtime.metrics",
        "rap_operator.metrics",
        "analyzer_runtime.scrape.http",
        "analyzer_runtime.api.app",
    )
    count = 0
    for name in modules:
        for obj in vars(importlib.import_module(name)).values():
            if not isinstance(obj, MetricWrapperBase):
                continue
            copy = kinds[obj._type](
                obj._name, obj._documentation, obj._labelnames, registry=registry
            )
            child = copy.labels(*("x" for _ in obj._labelnames)) if obj._labelnames else copy
            if obj._type == "histogram":
                child.observe(1)
            else:
                child.inc()
            count += 1
    assert count >= 10
    proc = run(promtool, "check", "metrics", stdin=generate_latest(registry))
    assert proc.returncode == 0, output(proc)
