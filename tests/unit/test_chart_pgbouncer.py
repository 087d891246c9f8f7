"""The chart's optional PgBouncer (pgbouncer.enabled), rendered by the real helm: off by
default; on, a restricted Deployment + Service + ConfigMap + Secret, and an operator
pointed at it (its URL Secret, DATABASE_POOL_MODE, a connection budget of PgBouncer's
client connections). No secret in a ConfigMap or in any non-Secret object.
The pgbouncer.ini it renders runs in the real pgbouncer: tests/integration/test_pgbouncer.py."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_devtools.helm import (
    CHART,
    HelmError,
    find,
    lint_chart,
    only,
    operator_env,
    render_chart,
)
from rap_operator.config import OperatorConfig

from analyzer_runtime.ledger.connect import POOL_MODE_ENV, pool_mode
from tests.unit.test_chart_podsecurity import restricted_violations

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

PASSWORD = "pgb-s3cret-pw"
IN_CLUSTER = {"pgbouncer": {"enabled": True}, "postgres": {"auth": {"password": PASSWORD}}}
EXTERNAL_URL = f"postgresql://rap:{PASSWORD}@db.example.com:5433/rapdb?sslmode=require"
EXTERNAL = {
    "pgbouncer": {"enabled": True},
    "database": {"url": EXTERNAL_URL},
    "postgres": {"enabled": False},
}
NAME = "rap-analyzer-pgbouncer"  # release rap-analyzer: the chart name is not repeated


def _pgbouncer_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in docs
        if (d.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/component")
        == "pgbouncer"
    ]


def _secret(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    data = only(docs, "Secret", name)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_off_by_default() -> None:
    docs = render_chart()
    assert _pgbouncer_docs(docs) == []
    env = operator_env(docs)
    assert env["RAP_DATABASE_SECRET"] == "rap-analyzer-db"
    assert POOL_MODE_ENV not in env and "RAP_DB_CONNECTION_BUDGET" not in env


def test_on_with_the_in_cluster_postgres() -> None:
    docs = render_chart(IN_CLUSTER)
    kinds = sorted(d["kind"] for d in _pgbouncer_docs(docs))
    assert kinds == ["ConfigMap", "Deployment", "NetworkPolicy", "Secret", "Service"]

    ini = only(docs, "ConfigMap", NAME)["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini
    assert "max_client_conn = 1000" in ini and "default_pool_size = 20" in ini
    assert "host=rap-analyzer-postgres.rap.svc port=5432" in ini
    assert "auth_type = scram-sha-256" in ini
    assert "ignore_startup_parameters" not in ini.replace("; nothing in ignore_startup", "")

    # The clients' URL: PgBouncer's Service by its cluster name (runs' pods live in
    # other namespaces), the database user and password.
    secret = _secret(docs, "rap-analyzer-db-pgbouncer")
    assert secret == {
        "password": PASSWORD,
        "url": f"postgresql://rap:{PASSWORD}@{NAME}.rap.svc:6432/rap",
    }

    # The operator (and, through it, every Job pod) goes through PgBouncer.
    env = operator_env(docs)
    assert env["RAP_DATABASE_SECRET"] == "rap-analyzer-db-pgbouncer"
    assert env["RAP_DATABASE_SECRET_KEY"] == "url"
    assert env[POOL_MODE_ENV] == "transaction"
    assert pool_mode(env) == "transaction"
    assert env["RAP_DB_CONNECTION_BUDGET"] == str(1000 - 10)
    cfg = OperatorConfig.from_env(env)
    assert cfg.database_secret == "rap-analyzer-db-pgbouncer" and cfg.connection_budget == 990

    # The Service reaches the Deployment's pods on PgBouncer's port.
    dep = only(docs, "Deployment", NAME)
    svc = only(docs, "Service", NAME)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["ports"][0]["containerPort"] == 6432 and svc["spec"]["ports"][0]["port"] == 6432
    assert c["image"] == "rap-analyzer-postgres:16-pgvector"
    pw = next(e for e in c["env"] if e["name"] == "PGBOUNCER_PASSWORD")
    assert pw["valueFrom"]["secretKeyRef"] == {
        "name": "rap-analyzer-db-pgbouncer",
        "key": "password",
    }
    assert restricted_violations(dep["spec"]["template"]) == []
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("values", [IN_CLUSTER, EXTERNAL], ids=["in-cluster", "external"])
def test_no_secret_outside_secrets(values: dict[str, Any]) -> None:
    for doc in render_chart(values):
        if doc["kind"] != "Secret":
            assert PASSWORD not in yaml.safe_dump(doc), f"{doc['kind']}/{doc['metadata']['name']}"


def test_on_with_an_external_database() -> None:
    docs = render_chart(EXTERNAL)
    ini = only(docs, "ConfigMap", NAME)["data"]["pgbouncer.ini"]
    assert "host=db.example.com port=5433" in ini
    secret = _secret(docs, "rap-analyzer-db-pgbouncer")
    assert secret["url"] == f"postgresql://rap:{PASSWORD}@{NAME}.rap.svc:6432/rapdb"
    # The direct URL Secret stays (the ledger gc CronJob uses it; so may a person).
    assert _secret(docs, "rap-analyzer-db")["url"] == EXTERNAL_URL


def test_the_values_shape_the_pool_and_the_budget() -> None:
    docs = render_chart(
        {
            **IN_CLUSTER,
            "pgbouncer": {
                "enabled": True, "maxClientConn": 300, "defaultPoolSize": 7, "budgetReserve": 20,
                "image": {"repository": "registry.example/pgbouncer", "tag": "1.18"},
                "secretName": "db-via-pgb",
            },
        }
    )  # fmt: skip
    ini = only(docs, "ConfigMap", NAME)["data"]["pgbouncer.ini"]
    assert "max_client_conn = 300" in ini and "default_pool_size = 7" in ini
    env = operator_env(docs)
    assert env["RAP_DB_CONNECTION_BUDGET"] == "280" and env["RAP_DATABASE_SECRET"] == "db-via-pgb"
    (c,) = only(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.example/pgbouncer:1.18"
    assert find(docs, "Secret", "db-via-pgb")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"pgbouncer": {"enabled": True}, "database": {"existingSecret": "mine"}},
            "not database.existingSecret",
        ),
        ({**IN_CLUSTER, "pgbouncer": {"enabled": True, "poolMode": "statement"}}, "poolMode"),
    ],
    ids=["existing-secret", "statement-mode"],
)
def test_unsupported_combinations_fail_with_a_reason(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render_chart(values)


def test_lints_strict_when_on() -> None:
    lint_chart(IN_CLUSTER)


def test_the_containers_command_writes_the_auth_file(tmp_path: Path) -> None:
    """The Deployment's shell command, run by a real sh: the auth file from the env,
    owner-only, a '"' in the password doubled as PgBouncer's format wants."""
    (c,) = only(render_chart(IN_CLUSTER), "Deployment", NAME)["spec"]["template"]["spec"][
        "containers"
    ]
    assert c["command"] == ["/bin/sh", "-c"]
    (script,) = c["args"]
    assert "exec pgbouncer /etc/pgbouncer/pgbouncer.ini" in script
    auth = tmp_path / "userlist.txt"
    local = script.replace("/var/run/pgbouncer/userlist.txt", str(auth)).replace(
        "exec pgbouncer /etc/pgbouncer/pgbouncer.ini", "exec true"
    )
    password = 'pa"ss w$rd\\x'
    res = subprocess.run(
        ["/bin/sh", "-c", local],
        env={"PATH": os.environ["PATH"], "PGBOUNCER_USER": "rap", "PGBOUNCER_PASSWORD": password},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert auth.read_text() == '"rap" "pa""ss w$rd\\x"\n'
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    # With database.roles, the runtime role's line follows the superuser's.
    res = subprocess.run(
        ["/bin/sh", "-c", local],
        env={"PATH": os.environ["PATH"], "PGBOUNCER_USER": "rap", "PGBOUNCER_PASSWORD": "a",
             "PGBOUNCER_RUNTIME_USER": "rap_runtime", "PGBOUNCER_RUNTIME_PASSWORD": 'r"t'},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert auth.read_text() == '"rap" "a"\n"rap_runtime" "r""t"\n'


@pytest.mark.parametrize(
    ("auth", "pw_secret", "pw_key"),
    [({}, "rap-analyzer-postgres", "password"),
     ({"existingSecret": "pg-auth", "existingSecretKey": "pw"}, "pg-auth", "pw")],
    ids=["generated", "existing-secret"],
)  # fmt: skip
def test_on_with_the_chart_defaults(auth: dict[str, str], pw_secret: str, pw_key: str) -> None:
    """The in-cluster Postgres's password is generated (or in your Secret) and never
    rendered: PgBouncer reads it from that Secret, and the database-Secret hook writes
    PgBouncer's URL Secret next to the direct one, from the same password."""
    from tests.unit.test_chart_db_secret_hook import NS, FakeCore, _run

    docs = render_chart({"pgbouncer": {"enabled": True}, "postgres": {"auth": auth}}, namespace=NS)
    assert not find(docs, "Secret", "rap-analyzer-db-pgbouncer")  # the hook writes it
    (c,) = only(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
    pw = next(e for e in c["env"] if e["name"] == "PGBOUNCER_PASSWORD")
    assert pw["valueFrom"]["secretKeyRef"] == {"name": pw_secret, "key": pw_key}
    assert operator_env(docs)["RAP_DATABASE_SECRET"] == "rap-analyzer-db-pgbouncer"

    job = only(docs, "Job", "rap-analyzer-db-secret")
    (hook_container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in hook_container["env"]}
    role = only(docs, "Role", "rap-analyzer-db-secret")
    assert any("rap-analyzer-db-pgbouncer" in (r.get("resourceNames") or []) for r in role["rules"])
    import runpy

    hook = runpy.run_path(str(Path(CHART) / "files" / "db-secret.py"), run_name="db_secret")
    core = FakeCore()
    if auth:
        core.put(pw_secret, {pw_key: "from-your-secret"})
    direct, _ = _run(hook, core, env)
    # database.roles (on by default): the clients' URLs are the runtime role's, whose
    # password PgBouncer's auth file gets next to the superuser's.
    password = core.value("rap-analyzer-db-roles", "runtime-password")
    assert core.value(pw_secret, pw_key) not in direct
    assert direct == (
        f"postgresql://rap_runtime:{password}@rap-analyzer-postgres.{NS}.svc:5432/rap"
    )
    assert core.value("rap-analyzer-db-pgbouncer", "url") == (
        f"postgresql://rap_runtime:{password}@{NAME}.{NS}.svc:6432/rap"
    )
    runtime = {e["name"]: e for e in c["env"]}["PGBOUNCER_RUNTIME_PASSWORD"]
    assert runtime["valueFrom"]["secretKeyRef"] == {
        "name": "rap-analyzer-db-roles",
        "key": "runtime-password",
    }
    # A second run (every upgrade) writes nothing.
    core.calls.clear()
    _run(hook, core, env)
    assert core.writes() == []
