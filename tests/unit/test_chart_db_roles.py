"""The chart's least-privilege database roles (database.roles; docs/operations/security.md,
"Database roles"): who gets which role's URL, and the setups that keep the single URL. The
db-roles Job's and the database-Secret hook's own behaviour:
test_chart_db_secret_hook.py; the roles in a real Postgres: tests/integration/test_db_roles.py."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import find, lint_chart, only, operator_env, render_chart

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

SEARCH = {"search": {"enabled": True}}


def _container_env(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if doc["kind"] == "CronJob":
        spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = doc["spec"]["template"]["spec"]
    return {e["name"]: e for e in spec["containers"][0].get("env", [])}


def _ref(env: dict[str, dict[str, Any]], name: str) -> dict[str, str]:
    return env[name]["valueFrom"]["secretKeyRef"]


def _search(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = [
        d
        for d in find(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "search"
    ]
    return dep


def test_each_component_gets_its_roles_url_by_default() -> None:
    docs = render_chart(SEARCH)
    op = operator_env(docs)
    # The operator (and through RAP_DATABASE_SECRET its shard pods) runs as the
    # runtime role; it migrates as the owner.
    assert op["RAP_DATABASE_SECRET"] == "rap-analyzer-db"
    op_env = _container_env(only(docs, "Deployment", "rap-analyzer"))
    assert _ref(op_env, "DATABASE_URL") == {"name": "rap-analyzer-db", "key": "url"}
    assert _ref(op_env, "RAP_MIGRATION_DATABASE_URL") == {
        "name": "rap-analyzer-db-owner",
        "key": "url",
    }
    assert _ref(_container_env(_search(docs)), "DATABASE_URL") == {
        "name": "rap-analyzer-db-search",
        "key": "url",
    }
    gc = _container_env(only(docs, "CronJob"))
    assert _ref(gc, "DATABASE_URL") == {"name": "rap-analyzer-db", "key": "url"}
    # The superuser's password reaches only Postgres itself and the db-roles Job.
    readers = sorted(
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
        and any(
            (e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name")
            == "rap-analyzer-postgres"
            for e in _container_env(d).values()
        )
    )
    assert readers == [
        "Job/rap-analyzer-db-roles",
        "Job/rap-analyzer-db-roles-upgrade",
        "StatefulSet/rap-analyzer-postgres",
    ]
    init = only(docs, "ConfigMap", "rap-analyzer-postgres-init")["data"]["10-rap-roles.sh"]
    assert "CREATE ROLE :\"runtime\" LOGIN PASSWORD :'runtime_pw';" in init


@pytest.mark.parametrize(
    "values",
    [
        {"database": {"roles": {"enabled": False}}},
        {"postgres": {"auth": {"password": "pw"}}},
        {
            "database": {"url": "postgresql://u:p@db.example.com/rap"},
            "postgres": {"enabled": False},
        },
        {"database": {"existingSecret": "my-db"}, "postgres": {"enabled": False}},
    ],
    ids=["off", "password-value", "external-url", "external-secret"],
)
def test_single_url_setups_are_unchanged(values: dict[str, Any]) -> None:
    docs = render_chart({**values, **SEARCH})
    assert find(docs, "Job", "rap-analyzer-db-roles") == []
    assert find(docs, "Job", "rap-analyzer-db-roles-upgrade") == []
    assert find(docs, "ConfigMap", "rap-analyzer-postgres-init") == []
    op = operator_env(docs)
    assert "RAP_MIGRATION_DATABASE_URL" not in op
    search_ref = _ref(_container_env(_search(docs)), "DATABASE_URL")
    assert search_ref["name"] == op["RAP_DATABASE_SECRET"]


def test_role_names_and_secrets_are_configurable() -> None:
    roles = {
        "owner": {"name": "app_ddl", "secretName": "ddl-url"},
        "runtime": {"name": "app_dml"},
        "search": {"name": "app_ro", "secretName": "ro-url"},
        "passwordSecretName": "app-role-pw",
    }
    docs = render_chart({"database": {"roles": roles}, **SEARCH})
    job_env = _container_env(only(docs, "Job", "rap-analyzer-db-roles"))
    assert [job_env[f"RAP_DB_{r}_ROLE"]["value"] for r in ("OWNER", "RUNTIME", "SEARCH")] == [
        "app_ddl",
        "app_dml",
        "app_ro",
    ]
    assert _ref(job_env, "RAP_DB_SEARCH_PASSWORD")["name"] == "app-role-pw"
    op_env = _container_env(only(docs, "Deployment", "rap-analyzer"))
    assert _ref(op_env, "RAP_MIGRATION_DATABASE_URL")["name"] == "ddl-url"
    assert _ref(_container_env(_search(docs)), "DATABASE_URL")["name"] == "ro-url"
    hook_env = {
        e["name"]: e.get("value")
        for e in _container_env(only(docs, "Job", "rap-analyzer-db-secret")).values()
    }
    assert (hook_env["OWNER_URL_SECRET"], hook_env["SEARCH_URL_SECRET"]) == ("ddl-url", "ro-url")
    assert hook_env["ROLES_SECRET"] == "app-role-pw"


def test_lints_strict_with_roles_and_pgbouncer() -> None:
    lint_chart({"pgbouncer": {"enabled": True}, **SEARCH})


def test_one_roles_job_per_hook_phase() -> None:
    """Argo CD runs a manifest for one hook phase only: the install/PostSync Job does
    the work (and must not give up on a name that does not resolve for a moment); the
    upgrade/PreSync Job may find no Postgres yet on a first sync and skips then."""
    docs = render_chart()
    jobs = {
        d["metadata"]["name"]: d
        for d in find(docs, "Job")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "database-roles"
    }
    hooks = {
        n: (a["helm.sh/hook"], a["argocd.argoproj.io/hook"])
        for n, a in ((n, j["metadata"]["annotations"]) for n, j in jobs.items())
    }
    assert hooks == {
        "rap-analyzer-db-roles": ("post-install", "PostSync"),
        "rap-analyzer-db-roles-upgrade": ("pre-upgrade", "PreSync"),
    }
    args = {n: j["spec"]["template"]["spec"]["containers"][0]["command"] for n, j in jobs.items()}
    assert "--skip-unknown-host" not in args["rap-analyzer-db-roles"]
    assert "--skip-unknown-host" in args["rap-analyzer-db-roles-upgrade"]
    assert all("--wait" in a for a in args.values())
