"""charts/rap-analyzer: lints, renders in every database/scope mode, and agrees
with the operator (its env, its CRD, the exact RBAC it is granted); renders are
reproducible (no cluster reads, no randomness: Argo CD renders without a cluster)."""

from __future__ import annotations

import ast
import base64
import json
import re
import subprocess
import tempfile
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
    helm_bin,
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

from analyzer_runtime.ledger.shards import STOP_GRACE_ENV

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

NAMESPACED = {"rbac": {"clusterWide": False}, "watchNamespaces": ["team-a", "team-b"]}
CLUSTER_WIDE = {"rbac": {"clusterWide": True}}
EXTERNAL_URL = "postgresql://rap:s3cret@db.example.com:5432/rap?sslmode=require"
EXTERNAL = {"database": {"url": EXTERNAL_URL}, "postgres": {"enabled": False}}
EXISTING = {"database": {"existingSecret": "my-db", "existingSecretKey": "dsn"}}
PG_EXISTING = {"postgres": {"auth": {"existingSecret": "my-pg", "existingSecretKey": "pw"}}}
PG_PASSWORD = {"postgres": {"auth": {"password": "p@ss w/rd"}}}

VARIANTS = {
    "defaults": None,
    "namespaced": NAMESPACED,
    "namespaced-release-ns": {"rbac": {"clusterWide": False}},
    "cluster-wide": CLUSTER_WIDE,
    "external-url": EXTERNAL,
    "existing-secret": EXISTING,
    "postgres-existing-secret": PG_EXISTING,
    "postgres-password": PG_PASSWORD,
    "secret-job-service-account": {"postgres": {"secretJob": {"serviceAccountName": "pg-admin"}}},
    "rbac-disabled": {"rbac": {"create": False}},
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
    # OwnerReferencesPermissionEnforcement (OpenShift): creating an object whose
    # ownerReference has blockOwnerDeletion needs update on the owner's finalizers.
    | _triples("rapanalyzer.io", ["analysisruns/finalizers", "scrapejobs/finalizers"], ["update"])
    # A succeeded ScrapeJob creates the AnalysisRun of its spec.analyze.
    | _triples("rapanalyzer.io", ["analysisruns"], ["create"])
    | _triples("batch", ["jobs"], ["get", "list", "watch", "create", "patch", "delete"])
    # Kueue: the queued Jobs' Workloads are watched, and patched (spec.active) to suspend.
    | _triples("kueue.x-k8s.io", ["workloads"], ["get", "list", "watch", "patch"])
    | _triples("", ["secrets"], ["get"])
    | _triples("", ["configmaps"], ["get"])
    # list: a Job without pods has its FailedCreate Events read, to say why on the run.
    | _triples("", ["events"], ["create", "patch", "list"])
    # A run's pods are listed (never watched) when its Job reports some not ready/failed.
    | _triples("", ["pods"], ["list"])
    | _triples("events.k8s.io", ["events"], ["create", "patch"])
)
# ... and cluster-wide, for kopf itself.
CLUSTER_RULES = _triples(
    "apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]
) | _triples("", ["namespaces"], ["list", "watch"])
# ... and in the release namespace, the leader election's Lease (its own Role).
LEASE_RULES = _triples("coordination.k8s.io", ["leases"], ["get", "create", "update", "watch"])
LEASE_ROLE = "-leader-election"


def _watch_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Roles of the watched namespaces (not the leader election's)."""
    return [r for r in find(docs, "Role") if not r["metadata"]["name"].endswith(LEASE_ROLE)]


def _secret_data(doc: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}


def _is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def _release(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The release's own objects (what `helm install` applies and tracks)."""
    return [d for d in docs if not _is_hook(d)]


def _is_crd_hook(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component") == "crd-upgrade"


def _is_roles_hook(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component") == "database-roles"


def _hooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The database secret hook's objects (the CRD upgrade hook's:
    test_chart_crd_upgrade.py; the db-roles Job's: test_chart_db_roles.py)."""
    return [d for d in docs if _is_hook(d) and not _is_crd_hook(d) and not _is_roles_hook(d)]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _render_text(values: dict[str, Any] | None = None, *extra: str) -> str:
    """`helm template` stdout, byte for byte (render_chart parses it)."""
    with tempfile.TemporaryDirectory(prefix="rap-helm-") as tmp:
        cmd = [str(helm_bin()), "template", "rap-analyzer", str(CHART), "--namespace", "rap"]
        if values:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(values), encoding="utf-8")
            cmd += ["--values", str(path)]
        env = {
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": f"{tmp}/cache",
            "HELM_CONFIG_HOME": f"{tmp}/config",
            "HELM_DATA_HOME": f"{tmp}/data",
            "KUBECONFIG": f"{tmp}/no-kubeconfig",
        }
        proc = subprocess.run(
            [*cmd, *extra], capture_output=True, text=True, env=env, timeout=120, check=False
        )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_chart()


@pytest.fixture(scope="module")
def defaults(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default release's objects, without the hook Job and its RBAC."""
    return _release(rendered)


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
    assert chart["appVersion"] == "0.2.0"


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
    # Two replicas electing a leader, rolled one at a time (test_chart_leader_election.py).
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(defaults, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001

    c = operator_container(defaults)
    assert c["command"] == ["python", "-m", "rap_operator"]
    # The operator's own image, at appVersion by default (test_chart_images.py).
    assert c["image"] == "ghcr.io/rap-analyzer/rap-analyzer-operator:0.2.0"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    ready = c["readinessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and ports[ready["port"]] == 8080
    assert c["resources"]["requests"]["memory"]

    # The selector picks the operator only, never the Postgres pod.
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "operator"
    pg = only(defaults, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert not all(pg.get(k) == v for k, v in selector.items())


def test_image_tag_override() -> None:
    docs = render_chart({"image": {"repository": "registry.local/rap", "tag": "dev"}})
    env = operator_env(docs)
    assert operator_container(docs)["image"] == "registry.local/rap-operator:dev"
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
    # The chart's database, which the operator migrates (database.own_database_url).
    database = (ROOT / "operator/rap_operator/database.py").read_text()
    assert 'os.environ.get("DATABASE_URL")' in database
    readable.add("DATABASE_URL")
    # ... with the owner's URL (database.roles; database.migration_url).
    assert 'MIGRATION_URL_ENV = "RAP_MIGRATION_DATABASE_URL"' in database
    readable.add("RAP_MIGRATION_DATABASE_URL")
    # Read by OperatorConfig.from_env under its constant's name and handed on to the
    # shard pods (manifests._env), which read it (worker.StopFlag).
    config_py = (ROOT / "operator/rap_operator/config.py").read_text()
    assert "e.get(STOP_GRACE_ENV)" in config_py
    assert STOP_GRACE_ENV == "RAP_STOP_GRACE_SECONDS"
    readable.add(STOP_GRACE_ENV)
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
    assert cfg.namespaces == ["rap"]  # the release namespace alone
    assert OperatorConfig.from_env(operator_env(render_chart(CLUSTER_WIDE))).namespaces == []
    # The Job pods run the worker image, not the operator's.
    assert cfg.image == "ghcr.io/rap-analyzer/rap-analyzer:0.2.0"
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


def test_default_in_cluster_postgres(
    defaults: list[dict[str, Any]], rendered: list[dict[str, Any]]
) -> None:
    sts = only(defaults, "StatefulSet")
    assert sts["metadata"]["namespace"] == "rap"
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "pgvector/pgvector:pg16"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    # As the API server stores it, so Argo CD's diff sees no drift (argo-cd#11143).
    assert (claim["apiVersion"], claim["kind"]) == ("v1", "PersistentVolumeClaim")
    assert claim["spec"]["volumeMode"] == "Filesystem"
    svc = only(defaults, "Service", sts["spec"]["serviceName"])
    assert svc["spec"]["ports"][0]["port"] == 5432

    # No password (nor URL) at render time: the hook Job writes both Secrets.
    assert find(defaults, "Secret") == []
    ref = _env(c)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rap-analyzer-postgres", "key": "password"}

    job = only(_hooks(rendered), "Job")
    env = {
        k: v.get("value") for k, v in _env(job["spec"]["template"]["spec"]["containers"][0]).items()
    }
    assert env["NAMESPACE"] == "rap"
    assert (env["PASSWORD_SECRET"], env["PASSWORD_KEY"]) == ("rap-analyzer-postgres", "password")
    assert env["PASSWORD_GENERATE"] == "true"
    # The URL Secret the operator is told about is the one the hook writes.
    op = operator_env(defaults)
    assert (env["URL_SECRET"], env["URL_KEY"]) == (
        op["RAP_DATABASE_SECRET"],
        op["RAP_DATABASE_SECRET_KEY"],
    )
    assert (env["URL_SECRET"], env["URL_KEY"]) == ("rap-analyzer-db", "url")
    # ... and its host is the Postgres Service, namespace-qualified.
    assert env["POSTGRES_HOST"] == f"{svc['metadata']['name']}.rap.svc"
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"], env["POSTGRES_PORT"]) == (
        "rap",
        "rap",
        "5432",
    )


def test_secret_hook_job(rendered: list[dict[str, Any]]) -> None:
    hooks = _hooks(rendered)
    assert sorted(d["kind"] for d in hooks) == ["Job", "Role", "RoleBinding", "ServiceAccount"]
    weights = {}
    for d in hooks:
        ann = d["metadata"]["annotations"]
        assert d["metadata"]["name"] == "rap-analyzer-db-secret"
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        weights[d["kind"]] = int(ann["helm.sh/hook-weight"])
    # Its RBAC exists before the Job (Helm and Argo CD run hooks by weight).
    assert weights["ServiceAccount"] < weights["Role"] < weights["RoleBinding"] < weights["Job"]

    job = only(hooks, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "rap-analyzer-db-secret"
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    # The project image (python + the kubernetes client), running files/db-secret.py.
    assert c["image"] == operator_container(rendered)["image"]
    assert c["command"] == ["python", "-c"]
    script = (CHART / "files" / "db-secret.py").read_text()
    assert c["args"] == [script]
    # The kubelet expands $(NAME) in args: the script must contain none.
    assert "$(" not in script
    labels = json.loads(_env(c)["SECRET_LABELS"]["value"])
    annotations = json.loads(_env(c)["SECRET_ANNOTATIONS"]["value"])
    # Not tracked by Argo CD (it would prune it), never deleted by Helm, and adoptable.
    assert "app.kubernetes.io/instance" not in labels
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert annotations == {
        "helm.sh/resource-policy": "keep",
        "meta.helm.sh/release-name": "rap-analyzer",
        "meta.helm.sh/release-namespace": "rap",
    }
    # The hook pod must never be selected by the Postgres or operator Services.
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    for svc in find(rendered, "Service"):
        sel = svc["spec"]["selector"]
        assert not all(pod_labels.get(k) == v for k, v in sel.items())

    sa = only(hooks, "ServiceAccount")
    binding = only(hooks, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": only(hooks, "Role")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "rap"}
    ]


def _hook_rules(docs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(resource, verb, resourceName or '*') of the hook Role."""
    role = only(_hooks(docs), "Role")
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or ["*"]
    }


def test_secret_hook_rbac_is_minimal(rendered: list[dict[str, Any]]) -> None:
    assert _hook_rules(rendered) == {
        ("", "secrets", "create", "*"),  # create cannot be limited by name
        ("", "secrets", "get", "rap-analyzer-postgres"),
        ("", "secrets", "patch", "rap-analyzer-postgres"),
        ("", "secrets", "get", "rap-analyzer-db"),
        ("", "secrets", "patch", "rap-analyzer-db"),
        # database.roles: the roles' passwords and the owner's and search's URLs.
        *{
            ("", "secrets", verb, name)
            for verb in ("get", "patch")
            for name in ("rap-analyzer-db-roles", "rap-analyzer-db-owner", "rap-analyzer-db-search")
        },
    }
    # The hook's Role is its own: the operator's rules do not change.
    assert rule_triples(rbac_rules(_release(rendered))) == (
        NAMESPACED_RULES | CLUSTER_RULES | LEASE_RULES
    )


def test_postgres_existing_secret() -> None:
    docs = render_chart(PG_EXISTING)
    release = _release(docs)
    # Nothing with a password is rendered: Postgres reads the user's Secret ...
    assert find(release, "Secret") == []
    c = only(release, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    ref = _env(c)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-pg", "key": "pw"}
    # ... and the hook only reads it, to write the URL Secret.
    env = {
        k: v.get("value")
        for k, v in _env(
            only(_hooks(docs), "Job")["spec"]["template"]["spec"]["containers"][0]
        ).items()
    }
    assert (env["PASSWORD_SECRET"], env["PASSWORD_KEY"], env["PASSWORD_GENERATE"]) == (
        "my-pg",
        "pw",
        "false",
    )
    assert _hook_rules(docs) == {
        ("", "secrets", "create", "*"),
        ("", "secrets", "get", "rap-analyzer-db"),
        ("", "secrets", "patch", "rap-analyzer-db"),
        ("", "secrets", "get", "my-pg"),
        *{
            ("", "secrets", verb, name)
            for verb in ("get", "patch")
            for name in ("rap-analyzer-db-roles", "rap-analyzer-db-owner", "rap-analyzer-db-search")
        },
    }
    assert operator_env(docs)["RAP_DATABASE_SECRET"] == "rap-analyzer-db"


@pytest.mark.parametrize(
    "values",
    [PG_PASSWORD, {"postgres": {"password": "p@ss w/rd"}}],  # postgres.password: the old name
    ids=["auth.password", "legacy-password"],
)
def test_postgres_password_value(values: dict[str, Any]) -> None:
    docs = render_chart(values)
    assert _hooks(docs) == []  # known at render time: no hook needed
    secret = only(docs, "Secret", "rap-analyzer-postgres")
    assert _secret_data(secret) == {"password": "p@ss w/rd"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    url = urlsplit(_secret_data(only(docs, "Secret", "rap-analyzer-db"))["url"])
    assert url.scheme == "postgresql"
    assert url.hostname == "rap-analyzer-postgres.rap.svc"
    assert (url.port, url.path, url.username) == (5432, "/rap", "rap")
    assert url.password is not None and "@" not in url.password and "/" not in url.password
    c = only(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    ref = _env(c)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rap-analyzer-postgres", "key": "password"}


def test_secret_hook_with_own_service_account_or_without_rbac() -> None:
    docs = render_chart({"postgres": {"secretJob": {"serviceAccountName": "pg-admin"}}})
    assert [d["kind"] for d in _hooks(docs)] == ["Job"]
    assert only(_hooks(docs), "Job")["spec"]["template"]["spec"]["serviceAccountName"] == "pg-admin"

    docs = render_chart({"rbac": {"create": False}})
    assert sorted(d["kind"] for d in _hooks(docs)) == ["Job", "ServiceAccount"]
    assert find(docs, "Role") == [] and find(docs, "ClusterRole") == []


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


def test_default_rbac_is_namespaced_to_the_release_namespace(
    defaults: list[dict[str, Any]],
) -> None:
    """No cluster-wide grant by default: Secrets, Jobs and runs only in the release
    namespace; cluster-wide only kopf's reads of CRDs and Namespaces."""
    assert [
        (r["metadata"]["namespace"], rule_triples(r["rules"])) for r in _watch_roles(defaults)
    ] == [("rap", NAMESPACED_RULES)]
    assert rule_triples(only(defaults, "ClusterRole")["rules"]) == CLUSTER_RULES
    assert ("", "secrets", "get") not in rule_triples(only(defaults, "ClusterRole")["rules"])
    assert operator_env(defaults)["RAP_NAMESPACES"] == "rap"


def test_cluster_wide_rbac_is_exactly_the_minimal_rules() -> None:
    docs = _release(render_chart(CLUSTER_WIDE))
    assert _watch_roles(docs) == []
    assert [b["metadata"]["name"] for b in find(docs, "RoleBinding")] == [
        "rap-analyzer" + LEASE_ROLE
    ]
    role = only(docs, "ClusterRole")
    assert rule_triples(role["rules"]) == NAMESPACED_RULES | CLUSTER_RULES
    assert rule_triples(rbac_rules(docs)) == NAMESPACED_RULES | CLUSTER_RULES | LEASE_RULES
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = only(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "rap"}
    ]


def test_namespaced_rbac() -> None:
    docs = _release(render_chart(NAMESPACED))
    roles = _watch_roles(docs)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rule_triples(role["rules"]) == NAMESPACED_RULES
    names = {r["metadata"]["name"] for r in roles}
    bindings = [b for b in find(docs, "RoleBinding") if b["roleRef"]["name"] in names]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"][0]["namespace"] == "rap"  # the operator's SA, in the release ns
    # The ClusterRole grants only kopf's cluster-scoped reads, nothing namespaced.
    cluster = only(docs, "ClusterRole")
    assert rule_triples(cluster["rules"]) == CLUSTER_RULES
    assert only(docs, "ClusterRoleBinding")["roleRef"]["name"] == cluster["metadata"]["name"]
    assert rule_triples(rbac_rules(docs)) == NAMESPACED_RULES | CLUSTER_RULES | LEASE_RULES
    assert operator_env(docs)["RAP_NAMESPACES"] == "team-a,team-b"


def test_namespaced_rbac_defaults_to_the_release_namespace() -> None:
    docs = _release(render_chart({"rbac": {"clusterWide": False}}, namespace="rap-ops"))
    assert [r["metadata"]["namespace"] for r in _watch_roles(docs)] == ["rap-ops"]
    assert operator_env(docs)["RAP_NAMESPACES"] == "rap-ops"


def test_role_and_cluster_role_share_one_rule_set() -> None:
    cluster_wide = only(_release(render_chart(CLUSTER_WIDE)), "ClusterRole")["rules"]
    role = find(_release(render_chart(NAMESPACED)), "Role")[0]["rules"]
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


def test_operator_may_update_the_finalizers_of_its_owners() -> None:
    """OwnerReferencesPermissionEnforcement (OpenShift) refuses a Job whose
    ownerReference has blockOwnerDeletion unless its creator may update the
    owner's finalizers: both for the ClusterRole and for the namespaced Roles."""
    wanted = _triples(
        "rapanalyzer.io", ["analysisruns/finalizers", "scrapejobs/finalizers"], ["update"]
    )
    assert wanted <= rule_triples(
        only(_release(render_chart(CLUSTER_WIDE)), "ClusterRole")["rules"]
    )
    for role in _watch_roles(_release(render_chart(NAMESPACED))):
        assert wanted <= rule_triples(role["rules"])


# --- reproducible renders -----------------------------------------------------

# Template functions whose result depends on the cluster, the clock or chance.
NONDETERMINISTIC = (
    "lookup",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "randBytes",
    "randInt",
    "uuidv4",
    "now",
    "genPrivateKey",
    "genCA",
    "genSelfSignedCert",
    "genSignedCert",
    "derivePassword",
    "bcrypt",
    "htpasswd",
    "shuffle",
)
_ACTION = re.compile(r"\{\{-?(?!\s*/\*)(.*?)-?\}\}", re.DOTALL)


def _template_files() -> list[Path]:
    files = sorted(p for p in (CHART / "templates").rglob("*") if p.is_file())
    assert any(p.name == "_helpers.tpl" for p in files)
    return files


def test_no_template_reads_the_cluster_or_generates_a_password() -> None:
    """Argo CD renders without cluster access and on every sync: a `lookup`
    finds nothing there and a random value changes each time."""
    for path in _template_files():
        text = path.read_text()
        for word in ("lookup", "randAlphaNum"):
            assert word not in text, f"{path.relative_to(CHART)} mentions {word}"
        for action in _ACTION.findall(text):
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", action))
            bad = words & set(NONDETERMINISTIC)
            assert not bad, f"{path.relative_to(CHART)}: {{{{{action.strip()}}}}} uses {bad}"


REPRODUCIBLE = {
    "defaults": None,
    "postgres-disabled": EXTERNAL,
    "database-existing-secret": EXISTING,
    "postgres-existing-secret": PG_EXISTING,
    "postgres-password": PG_PASSWORD,
}


@pytest.mark.parametrize("name", REPRODUCIBLE)
def test_two_renders_are_byte_identical(name: str) -> None:
    first = _render_text(REPRODUCIBLE[name], "--include-crds")
    second = _render_text(REPRODUCIBLE[name], "--include-crds")
    assert first == second
    assert "kind: Deployment" in first


def test_runtime_pod_run_as_user() -> None:
    """The Job pods' uid (RAP_POD_RUN_AS_USER): the image's 10001 by default, none
    when unset (OpenShift assigns one), and a large uid from a values file stays
    an integer (Helm reads YAML numbers as floats)."""
    assert OperatorConfig.from_env(operator_env(render_chart())).pod_run_as_user == 10001
    unset = render_chart({"runtime": {"podRunAsUser": None}})
    assert operator_env(unset)["RAP_POD_RUN_AS_USER"] == ""
    assert OperatorConfig.from_env(operator_env(unset)).pod_run_as_user is None
    big = operator_env(render_chart({"runtime": {"podRunAsUser": 1000680000}}))
    assert big["RAP_POD_RUN_AS_USER"] == "1000680000"


def test_connection_budget_settings() -> None:
    """The budget is read from the server by default (the chart's Postgres gets its
    max_connections as an argument); database.connectionBudget sets it outright."""
    default = OperatorConfig.from_env(operator_env(render_chart()))
    assert (default.connection_budget, default.reserved_connections) == (None, 10)
    set_ = render_chart({"database": {"connectionBudget": 200, "reservedConnections": 4}})
    cfg = OperatorConfig.from_env(operator_env(set_))
    assert (cfg.connection_budget, cfg.reserved_connections) == (200, 4)
    docs = render_chart({"postgres": {"maxConnections": 300}})
    pg = next(d for d in docs if d["kind"] == "StatefulSet")
    assert pg["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "-c",
        "max_connections=300",
    ]
