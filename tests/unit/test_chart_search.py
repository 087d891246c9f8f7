"""charts/rap-analyzer: the optional search API Deployment + Service (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import lint_chart, only, operator_env, render_chart

from tests.unit.test_chart_podsecurity import restricted_violations

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

ON = {"search": {"enabled": True}}
EXISTING = {"database": {"existingSecret": "my-db", "existingSecretKey": "dsn"}}
EXTERNAL = {"database": {"url": "postgresql://u:p@h/db"}, "postgres": {"enabled": False}}


def _search(values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = render_chart({**ON, **(values or {})})
    return (
        only(docs, "Deployment", "rap-analyzer-search"),
        only(docs, "Service", "rap-analyzer-search"),
    )


def test_off_by_default() -> None:
    docs = render_chart()
    assert not [d for d in docs if d["metadata"]["name"].endswith("-search")]


def test_the_deployment_runs_serve_with_the_database_secret() -> None:
    dep, svc = _search()
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == [
        "python", "-m", "analyzer_runtime", "serve", "--host", "0.0.0.0", "--port", "8000",
    ]  # fmt: skip
    # The worker image (the embedding model is in it), the one the Job pods run.
    assert c["image"] == operator_env(render_chart())["RAP_RUNTIME_IMAGE"]
    env = {e["name"]: e for e in c["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    # Readiness: the management port's /readyz (its own thread and connection);
    # liveness: the API's own event loop, no database.
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert env["RAP_SEARCH_METRICS_PORT"]["value"] == "9090"
    assert pod["automountServiceAccountToken"] is False
    # The Service selects exactly the search pods, never the operator.
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "search"
    assert all(labels[k] == v for k, v in svc["spec"]["selector"].items())
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http",
                                     "protocol": "TCP"}]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "secret", "key"),
    [(EXISTING, "my-db", "dsn"), (EXTERNAL, "rap-analyzer-db", "url")],
    ids=["existing-secret", "external-url"],
)
def test_the_database_secret_follows_the_database_values(
    values: dict[str, Any], secret: str, key: str
) -> None:
    dep, _ = _search(values)
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == key


def test_the_pod_is_restricted() -> None:
    dep, _ = _search()
    assert restricted_violations(dep["spec"]["template"]) == []
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_port_replicas_and_resources_are_values() -> None:
    dep, svc = _search(
        {"search": {"enabled": True, "port": 9000, "replicas": 3,
                    "service": {"type": "NodePort", "port": 80, "annotations": {}},
                    "resources": {"limits": {"memory": "2Gi"}}}}
    )  # fmt: skip
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][-1] == "9000" and c["ports"][0]["containerPort"] == 9000
    assert dep["spec"]["replicas"] == 3 and c["resources"]["limits"] == {"memory": "2Gi"}
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["port"] == 80


def test_lints_with_search_on() -> None:
    lint_chart(ON)


def _env(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_auth_is_on_by_default_with_the_token_from_a_secret() -> None:
    dep, _ = _search()
    assert _env(dep)["RAP_SEARCH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "rap-analyzer-search-token", "key": "token"}
    }
    # Never a literal token in the manifest, and two renders are identical (Argo CD).
    assert "value" not in _env(dep)["RAP_SEARCH_TOKEN"]
    assert render_chart(ON) == render_chart(ON)


def test_auth_existing_secret_and_off() -> None:
    auth = {"existingSecret": "team-token", "existingSecretKey": "bearer"}
    dep, _ = _search({"search": {"enabled": True, "auth": auth}})
    assert _env(dep)["RAP_SEARCH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "team-token",
        "key": "bearer",
    }
    dep, _ = _search({"search": {"enabled": True, "auth": {"enabled": False}}})
    assert "RAP_SEARCH_TOKEN" not in _env(dep)


def test_limits_are_values() -> None:
    limits = {"maxInFlight": 7, "poolSize": 3, "acquireTimeoutSeconds": 0.5,
              "statementTimeoutSeconds": 1.5}  # fmt: skip
    dep, _ = _search({"search": {"enabled": True, "limits": limits, "metricsPort": 9191}})
    env = {k: v.get("value") for k, v in _env(dep).items()}
    assert env["RAP_SEARCH_MAX_IN_FLIGHT"] == "7" and env["RAP_SEARCH_POOL_SIZE"] == "3"
    assert env["RAP_SEARCH_ACQUIRE_TIMEOUT"] == "0.5"
    assert env["RAP_SEARCH_STATEMENT_TIMEOUT"] == "1.5"
    assert env["RAP_SEARCH_METRICS_PORT"] == "9191"
    ports = dep["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9191, "protocol": "TCP"} in ports


def test_the_podmonitor_scrapes_the_metrics_port_not_the_public_one() -> None:
    docs = render_chart({**ON, "metrics": {"podMonitor": {"enabled": True}}})
    pm = only(docs, "PodMonitor", "rap-analyzer-search")
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    _, svc = _search()
    # The Service exposes the API port only: /metrics is not reachable through it.
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
