"""charts/rap-analyzer: lints, renders in every database/scope mode, and agrees
with the operator (its env, its CRD, the exact RBAC it is granted)."""

from __future__ import annotations

import ast
import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from rap_devtools.helm import (
    CHART,
    ROOT,
    HelmError,
    find,
    lint_chart,
    only,
    operator_container,
    operator_deployment,
    operator_env,
    rbac_rules,
    render_chart,
    rule_triples,
)
from rap_operator.config import OperatorConfig

NAMESPACED = {"rbac": {"clusterWide": False}, "watchNamespaces": ["team-a", "team-b"]}
EXTERNAL_URL = "postgresql://rap:s3cret@db.example.com:5432/rap?sslmode=require"
EXTERNAL = {"database": {"url": EXTERNAL_URL}, "postgres": {"enabled": False}}
EXISTING = {"database": {"existingSecret": "my-db", "existingSecretKey": "dsn"}}

VARIANTS = {
    "defaults": None,
    "namespaced": NAMESPACED,
    "namespaced-release-ns": {"rbac": {"clusterWide": False}},
    "external-url": EXTERNAL,
    "existing-secret": EXISTING,
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True}}},
}


def _triples(group: str, resources: list[str], verbs: list[str]) -> set[tuple[str, str, str]]:
    return {(group, r, v) for r in resources for v in verbs}


# Exactly what the operator may do inside a watched namespace ...
NAMESPACED_RULES = (
    _triples(
        "rapanalyzer.io",
        ["analysisruns", "scrapejobs"],
        ["get", "list", "watch", "patch", "update"],
    )
    | _triples(
        "rapanalyzer.io", ["analysisruns/status", "scrapejobs/status"], ["get", "patch", "update"]
    )
    # A succeeded ScrapeJob creates the AnalysisRun of its spec.analyze.
    | _triples("rapanalyzer.io", ["analysisruns"], ["create"])
    | _triples("batch", ["jobs"], ["get", "list", "watch", "create", "patch", "delete"])
    | _triples("", ["secrets"], ["get"])
    | _triples("", ["configmaps"], ["get"])
    | _triples("", ["events"], ["create", "patch"])
    | _triples("events.k8s.io", ["events"], ["create", "patch"])
)
# ... and cluster-wide, for kopf itself.
CLUSTER_RULES = _triples(
    "apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]
) | _triples("", ["namespaces"], ["list", "watch"])


def _secret_data(doc: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render_chart()


# --- lint ---------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_helm_lint_passes(name: str) -> None:
    lint_chart(VARIANTS[name], strict=True)


def test_no_database_is_refused() -> None:
    with pytest.raises(HelmError, match=r"no database: set database\.url"):
        render_chart({"postgres": {"enabled": False}})


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"


# --- the CRD ------------------------------------------------------------------


def test_chart_crd_is_the_generated_crd() -> None:
    for source in sorted((ROOT / "crds").glob("*.yaml")):
        copy = CHART / "crds" / source.name
        assert copy.exists(), f"{copy} is missing: run `make crds`"
        assert copy.read_bytes() == source.read_bytes(), (
            f"{copy} differs from {source}: run `make crds`"
        )


def test_include_crds_renders_the_crd() -> None:
    docs = render_chart(include_crds=True)
    names = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition")
    assert names == ["analysisruns.rapanalyzer.io", "scrapejobs.rapanalyzer.io"]


# --- the operator Deployment --------------------------------------------------


def test_operator_deployment(defaults: list[dict[str, Any]]) -> None:
    dep = operator_deployment(defaults)
    assert dep["metadata"]["namespace"] == "rap"
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(defaults, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001

    c = operator_container(defaults)
    assert c["command"] == ["python", "-m", "rap_operator"]
    assert c["image"] == "ghcr.io/rap-analyzer/rap-analyzer:0.1.0"  # appVersion by default
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    assert c["resources"]["requests"]["memory"]

    # The selector picks the operator only, never the Postgres pod.
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "operator"
    pg = only(defaults, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert not all(pg.get(k) == v for k, v in selector.items())


def test_image_tag_override() -> None:
    docs = render_chart({"image": {"repository": "registry.local/rap", "tag": "dev"}})
    env = operator_env(docs)
    assert operator_container(docs)["image"] == "registry.local/rap:dev"
    assert env["RAP_RUNTIME_IMAGE"] == "registry.local/rap:dev"


def _from_env_names() -> set[str]:
    """Every env var name OperatorConfig.from_env reads (string keys of e.get(...))."""
    tree = ast.parse(Path(ROOT / "operator/rap_operator/config.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "from_env")
    return {
        call.args[0].value
        for call in ast.walk(fn)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "get"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }


def test_env_names_are_what_the_operator_reads() -> None:
    readable = _from_env_names()
    assert {"RAP_NAMESPACES", "RAP_DATABASE_SECRET", "RAP_STATUS_INTERVAL"} <= readable
    main = (ROOT / "operator/rap_operator/__main__.py").read_text()
    assert 'os.environ.get("LOG_LEVEL"' in main
    readable.add("LOG_LEVEL")
    values = {"runtime": {"serviceAccountName": "rap-runner"}}
    for docs in (render_chart(), render_chart(values), render_chart(NAMESPACED)):
        names = set(operator_env(docs))
        assert names <= readable, f"the chart sets env the operator never reads: {names - readable}"
    assert {
        "RAP_NAMESPACES",
        "RAP_RUNTIME_IMAGE",
        "RAP_DATABASE_SECRET",
        "RAP_DATABASE_SECRET_KEY",
        "RAP_STATUS_INTERVAL",
        "RAP_METRICS_PORT",
    } <= set(operator_env(render_chart()))


def test_env_comes_through_from_env(defaults: list[dict[str, Any]]) -> None:
    cfg = OperatorConfig.from_env(operator_env(defaults))
    assert cfg.namespaces == []  # all namespaces
    assert cfg.image == operator_container(defaults)["image"]
    assert cfg.image_pull_policy == "IfNotPresent"
    assert cfg.database_secret == "rap-analyzer-db"
    assert cfg.database_secret_key == "url"
    assert cfg.status_interval == 5.0
    assert cfg.metrics_port == 9090
    assert cfg.service_account is None

    docs = render_chart(
        {
            **NAMESPACED,
            **EXISTING,
            "operator": {"statusInterval": 2.5},
            "metrics": {"port": 9191},
            "runtime": {"serviceAccountName": "rap-runner"},
            "image": {"pullPolicy": "Always"},
        }
    )
    cfg = OperatorConfig.from_env(operator_env(docs))
    assert cfg.namespaces == ["team-a", "team-b"]
    assert cfg.database_secret == "my-db"
    assert cfg.database_secret_key == "dsn"
    assert cfg.status_interval == 2.5
    assert cfg.metrics_port == 9191
    assert cfg.service_account == "rap-runner"
    assert cfg.image_pull_policy == "Always"
    ports = {p["name"]: p["containerPort"] for p in operator_container(docs)["ports"]}
    assert ports["metrics"] == 9191
    svc = only(docs, "Service", "rap-analyzer-metrics")
    assert svc["spec"]["ports"][0]["port"] == 9191


# --- database modes -----------------------------------------------------------


def test_default_in_cluster_postgres(defaults: list[dict[str, Any]]) -> None:
    sts = only(defaults, "StatefulSet")
    assert sts["metadata"]["namespace"] == "rap"
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "pgvector/pgvector:pg16"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    svc = only(defaults, "Service", sts["spec"]["serviceName"])
    assert svc["spec"]["ports"][0]["port"] == 5432

    password = _secret_data(only(defaults, "Secret", "rap-analyzer-postgres"))["password"]
    assert len(password) == 32
    db = only(defaults, "Secret", "rap-analyzer-db")
    assert db["metadata"]["namespace"] == "rap"  # the release namespace
    url = urlsplit(_secret_data(db)["url"])
    assert url.scheme == "postgresql"
    assert (url.username, url.password) == ("rap", password)  # one password per render
    assert url.hostname == "rap-analyzer-postgres.rap.svc"
    assert (url.port, url.path) == (5432, "/rap")
    env = {e["name"]: e for e in c["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rap-analyzer-postgres"


def test_postgres_storage_size() -> None:
    docs = render_chart({"postgres": {"persistence": {"size": "50Gi", "storageClass": "fast"}}})
    claim = only(docs, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    assert claim["storageClassName"] == "fast"


def test_external_database_url() -> None:
    docs = render_chart(EXTERNAL)
    assert find(docs, "StatefulSet") == []
    assert find(docs, "Secret", "rap-analyzer-postgres") == []
    secret = only(docs, "Secret", "rap-analyzer-db")
    assert _secret_data(secret) == {"url": EXTERNAL_URL}
    env = operator_env(docs)
    assert (env["RAP_DATABASE_SECRET"], env["RAP_DATABASE_SECRET_KEY"]) == (
        "rap-analyzer-db",
        "url",
    )


def test_database_url_wins_over_postgres() -> None:
    docs = render_chart({"database": {"url": EXTERNAL_URL}})  # postgres.enabled left true
    assert find(docs, "StatefulSet") == []
    assert _secret_data(only(docs, "Secret"))["url"] == EXTERNAL_URL


def test_existing_secret() -> None:
    docs = render_chart(EXISTING)
    assert find(docs, "Secret") == []
    assert find(docs, "StatefulSet") == []
    env = operator_env(docs)
    assert (env["RAP_DATABASE_SECRET"], env["RAP_DATABASE_SECRET_KEY"]) == ("my-db", "dsn")


# --- RBAC ---------------------------------------------------------------------


def test_cluster_wide_rbac_is_exactly_the_minimal_rules(defaults: list[dict[str, Any]]) -> None:
    assert find(defaults, "Role") == [] and find(defaults, "RoleBinding") == []
    role = only(defaults, "ClusterRole")
    assert rule_triples(role["rules"]) == NAMESPACED_RULES | CLUSTER_RULES
    assert rule_triples(rbac_rules(defaults)) == NAMESPACED_RULES | CLUSTER_RULES
    binding = only(defaults, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = only(defaults, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "rap"}
    ]


def test_namespaced_rbac() -> None:
    docs = render_chart(NAMESPACED)
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rule_triples(role["rules"]) == NAMESPACED_RULES
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"][0]["namespace"] == "rap"  # the operator's SA, in the release ns
    # The ClusterRole grants only kopf's cluster-scoped reads, nothing namespaced.
    cluster = only(docs, "ClusterRole")
    assert rule_triples(cluster["rules"]) == CLUSTER_RULES
    assert only(docs, "ClusterRoleBinding")["roleRef"]["name"] == cluster["metadata"]["name"]
    assert rule_triples(rbac_rules(docs)) == NAMESPACED_RULES | CLUSTER_RULES
    assert operator_env(docs)["RAP_NAMESPACES"] == "team-a,team-b"


def test_namespaced_rbac_defaults_to_the_release_namespace() -> None:
    docs = render_chart({"rbac": {"clusterWide": False}}, namespace="rap-ops")
    assert [r["metadata"]["namespace"] for r in find(docs, "Role")] == ["rap-ops"]
    assert operator_env(docs)["RAP_NAMESPACES"] == "rap-ops"


def test_role_and_cluster_role_share_one_rule_set() -> None:
    cluster_wide = only(render_chart(), "ClusterRole")["rules"]
    role = find(render_chart(NAMESPACED), "Role")[0]["rules"]
    assert cluster_wide[: len(role)] == role


def test_two_releases_do_not_collide_on_cluster_objects() -> None:
    a = {d["metadata"]["name"] for d in find(render_chart(namespace="a"), "ClusterRole")}
    b = {d["metadata"]["name"] for d in find(render_chart(namespace="b"), "ClusterRole")}
    assert a.isdisjoint(b)


def test_rbac_can_be_disabled() -> None:
    docs = render_chart({"rbac": {"create": False}})
    assert rbac_rules(docs) == []
    assert find(docs, "ClusterRoleBinding") == [] and find(docs, "RoleBinding") == []


# --- metrics ------------------------------------------------------------------


def test_metrics_service_and_service_monitor(defaults: list[dict[str, Any]]) -> None:
    svc = only(defaults, "Service", "rap-analyzer-metrics")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        svc["spec"]["selector"] == operator_deployment(defaults)["spec"]["selector"]["matchLabels"]
    )
    assert find(defaults, "ServiceMonitor") == []

    docs = render_chart({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"r": "p"}}}})
    sm = only(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["r"] == "p"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
