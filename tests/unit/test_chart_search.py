"""charts/rap-analyzer: the optional search API Deployment + Service (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import lint_chart, only, render_chart

from tests.unit.test_chart_podsecurity import restricted_violations

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
    assert (
        c["image"]
        == only(render_chart(), "Deployment", "rap-analyzer")["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
    )
    (env,) = c["env"]
    assert env == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "rap-analyzer-db", "key": "url"}},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
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
    ref = dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": secret, "key": key}}


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
