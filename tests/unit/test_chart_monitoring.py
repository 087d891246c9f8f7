"""charts/rap-analyzer: the monitoring objects (issue 14) - the ServiceMonitor, the
PodMonitors for the shard and search pods, the PrometheusRule and the Grafana
dashboard ConfigMap, all off by default; the rules and the dashboard are the
chart's copies of deploy/prometheus/rules.yaml and deploy/grafana/rap-analyzer.json
(tests/unit/test_grafana_dashboard.py fails when a copy is stale)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_devtools.helm import find, lint_chart, only, render_chart
from rap_operator import manifests

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

REPO = Path(__file__).resolve().parents[2]
ALL_ON = {
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }
}
KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


def _meta_label(pod_label: str) -> str:
    """The Kubernetes SD meta label of a pod label, as Prometheus names it."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def _relabel(endpoint: dict[str, Any]) -> dict[str, str]:
    """target label -> its source meta label (or `=value` for a fixed replacement)."""
    out: dict[str, str] = {}
    for r in endpoint.get("relabelings", []):
        if r.get("sourceLabels"):
            out[r["targetLabel"]] = r["sourceLabels"][0]
        else:
            out[r["targetLabel"]] = "=" + r["replacement"]
    return out


def test_off_by_default() -> None:
    docs = render_chart()
    for kind in KINDS:
        assert not find(docs, kind), kind
    assert not [
        d
        for d in find(docs, "ConfigMap")
        if "grafana_dashboard" in (d["metadata"].get("labels") or {})
    ]


def test_lint_with_everything_on() -> None:
    lint_chart({**ALL_ON, "search": {"enabled": True}})


def test_service_monitor_job_and_honor_labels() -> None:
    sm = only(render_chart(ALL_ON), "ServiceMonitor")
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics"
    # The per-run gauges carry the run's namespace: it must win over the target's.
    assert ep["honorLabels"] is True
    assert _relabel(ep) == {"job": "=rap-analyzer-metrics"}
    rules = (REPO / "deploy" / "prometheus" / "rules.yaml").read_text()
    assert 'up{job="rap-analyzer-metrics"}' in rules


def test_shard_pod_monitor_selects_the_operators_shard_pods() -> None:
    docs = render_chart(ALL_ON)
    pm = only(docs, "PodMonitor", "rap-analyzer-shards")
    pod_labels = manifests.labels("AnalysisRun", "my-run", "uid-1")
    selector = pm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["port"] == "metrics"  # the shard container's port name (manifests.run_job)
    assert ep["path"] == "/metrics"
    assert _relabel(ep) == {
        "job": "=rap-analyzer-shards",
        "name": _meta_label(manifests.LABEL_RUN),
        "kind": _meta_label(manifests.LABEL_KIND),
        # deploy/prometheus/scrape-config.yaml does the same: pod label or annotation
        "shard": "__meta_kubernetes_pod_annotation_batch_kubernetes_io_job_completion_index",
    }
    # The run's uid label is never copied onto the series (unbounded).
    assert _meta_label(manifests.LABEL_RUN_UID) not in json.dumps(pm)
    # The same values the operator's per-run gauges use for name and kind.
    assert pod_labels[manifests.LABEL_KIND] == "analysisrun"
    # Runs live in the namespaces the operator watches (default: the release's).
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["rap"]}
    cluster_wide = render_chart({**ALL_ON, "rbac": {"clusterWide": True}})
    pm = only(cluster_wide, "PodMonitor", "rap-analyzer-shards")
    assert pm["spec"]["namespaceSelector"] == {"any": True}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"watchNamespaces": ["a", "b"]}, ["a", "b"]),
        ({"rbac": {"clusterWide": False}}, ["rap"]),
        ({"metrics": {"podMonitor": {"namespaces": ["x"]}}}, ["x"]),
    ],
)
def test_shard_pod_monitor_namespaces(values: dict[str, Any], expected: list[str]) -> None:
    merged = {**ALL_ON, **values}
    merged["metrics"] = {**ALL_ON["metrics"], **values.get("metrics", {})}
    merged["metrics"]["podMonitor"] = {
        "enabled": True,
        **values.get("metrics", {}).get("podMonitor", {}),
    }
    pm = only(render_chart(merged), "PodMonitor", "rap-analyzer-shards")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": expected}


def test_search_pod_monitor_only_with_search() -> None:
    assert not find(render_chart(ALL_ON), "PodMonitor", "rap-analyzer-search")
    docs = render_chart({**ALL_ON, "search": {"enabled": True}})
    pm = only(docs, "PodMonitor", "rap-analyzer-search")
    dep = only(docs, "Deployment", "rap-analyzer-search")
    pod = dep["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert ep["port"] in ports
    assert ep["path"] == "/metrics"
    assert _relabel(ep) == {
        "job": "=rap-analyzer-search",
        "release": "__meta_kubernetes_pod_label_app_kubernetes_io_instance",
    }


def test_prometheus_rule_is_the_rules_file() -> None:
    rule = only(render_chart(ALL_ON), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    source = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yaml").read_text())
    assert rule["spec"] == source
    labels = only(
        render_chart(
            {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}}
        ),
        "PrometheusRule",
    )["metadata"]["labels"]
    assert labels["release"] == "kps"


def test_dashboard_config_map() -> None:
    cm = only(render_chart(ALL_ON), "ConfigMap", "rap-analyzer-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "rap"
    board = json.loads(cm["data"]["rap-analyzer.json"])
    assert board == json.loads((REPO / "deploy" / "grafana" / "rap-analyzer.json").read_text())
    other = only(
        render_chart(
            {
                "metrics": {
                    "grafanaDashboard": {
                        "enabled": True,
                        "namespace": "grafana",
                        "annotations": {"grafana_folder": "rap"},
                    }
                }
            }
        ),
        "ConfigMap",
        "rap-analyzer-dashboard",
    )
    assert other["metadata"]["namespace"] == "grafana"
    assert other["metadata"]["annotations"] == {"grafana_folder": "rap"}
