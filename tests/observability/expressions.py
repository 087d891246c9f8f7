"""Every PromQL expression of the dashboard and the alert rules, as plain PromQL
that a real Prometheus can evaluate (issue 14). A stable interface: the node test
(tests/node/test_prometheus_on_node.py) imports all_expressions() and requires
each query to return data after real runs.

Dashboard queries: deploy/grafana/dashboard.py's panels, with Grafana's interval
variables ($__rate_interval, $__interval, $__range) replaced by `rate_interval`,
the dashboard's value variables (e.g. the LLM price per token) by their default
(dashboard.VARIABLE_DEFAULTS) and every other template variable ($namespace,
$run, ...; always used as `label=~"$var"`) by `.*`.

Alert expressions: deploy/prometheus/rules.yaml, each alert's `expr` with the
rule below applied, so what remains is the part that must return data whenever
the metrics it reads exist (an alert that does not fire returns nothing, so the
raw expression cannot be checked that way):

  1. `absent(X)` (the whole expression) -> X;
  2. `A <op> N` where `<op> N` is a comparison (==, !=, >, <, >=, <=) against a
     number literal at the end of the expression, outside any parentheses -> A;
  3. otherwise the whole expression.

The rules are written so that rule 2 applies to every alert but the absent() ones.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PY = REPO / "deploy" / "grafana" / "dashboard.py"
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"


@dataclass(frozen=True)
class Expression:
    source: Literal["dashboard", "alert"]
    name: str
    query: str


def _dashboard() -> ModuleType:
    name = "rap_grafana_dashboard"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DASHBOARD_PY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_TRAILING_CMP = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$")


def grafana_to_promql(expr: str, rate_interval: str = "1m", defaults: dict | None = None) -> str:
    """A dashboard query with its Grafana variables replaced (see the module docstring)."""
    defaults = defaults or {}

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if var in ("__rate_interval", "__interval", "__range"):
            return rate_interval
        if var in defaults:
            return str(defaults[var])
        return ".*"

    return _VAR.sub(sub, expr)


def strip_threshold(expr: str) -> str:
    """An alert's expression without its final comparison (rules 1-3 above)."""
    e = expr.strip()
    m = re.fullmatch(r"absent\((.*)\)", e, re.S)
    if m:
        return m.group(1).strip()
    m = _TRAILING_CMP.search(e)
    if m:
        head = e[: m.start()]
        depth = 0
        for ch in head:
            depth += ch == "("
            depth -= ch == ")"
        if depth == 0:
            return head.strip()
    return e


def all_expressions(rate_interval: str = "1m") -> list[Expression]:
    dash = _dashboard()
    defaults = getattr(dash, "VARIABLE_DEFAULTS", {})
    out: list[Expression] = []
    for _, panels in dash.ROWS:
        for panel in panels:
            for i, q in enumerate(panel.queries):
                name = panel.title if len(panel.queries) == 1 else f"{panel.title} #{i + 1}"
                out.append(
                    Expression(
                        "dashboard", name, grafana_to_promql(q.expr, rate_interval, defaults)
                    )
                )
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.append(Expression("alert", rule["alert"], strip_threshold(rule["expr"])))
    return out
