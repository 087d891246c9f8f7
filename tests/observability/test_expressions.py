"""tests/observability/expressions.py: every dashboard query and every alert
(threshold stripped) is plain PromQL that Prometheus's parser accepts, and every
alert is written in the form the stripping rule expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .expressions import RULES, Expression, all_expressions, grafana_to_promql, strip_threshold
from .test_rules import check_as_recording_rule, output

EXPRESSIONS = all_expressions()


def test_every_panel_and_alert_is_there() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {e.name for e in EXPRESSIONS if e.source == "alert"} == alerts
    names = [e.name for e in EXPRESSIONS]
    assert len(names) == len(set(names))
    assert {"Runs by phase", "Tracks/s per run #1", "Shard progress"} <= set(names)


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=lambda e: f"{e.source}:{e.name}")
def test_expression_is_plain_promql(promtool: Path, tmp_path: Path, expr: Expression) -> None:
    assert "$" not in expr.query
    proc = check_as_recording_rule(promtool, tmp_path, expr.query)
    assert proc.returncode == 0, f"{expr.query}\n{output(proc)}"


def test_every_alert_has_a_strippable_threshold() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert strip_threshold(rule["expr"]) != rule["expr"].strip(), rule["alert"]


def test_strip_rules() -> None:
    assert strip_threshold("absent(up{job='x'})") == "up{job='x'}"
    assert strip_threshold("a / b > 0.25") == "a / b"
    assert strip_threshold("(x > 1) and y") == "(x > 1) and y"
    assert strip_threshold("max by (m) (s) >= 1") == "max by (m) (s)"
    assert grafana_to_promql('rate(x{a=~"$run"}[$__rate_interval])', "2m") == (
        'rate(x{a=~".*"}[2m])'
    )
