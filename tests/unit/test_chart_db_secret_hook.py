"""The chart's Postgres secret hook (charts/rap-analyzer/files/db-secret.py), run
against an in-memory CoreV1Api with exactly the environment the chart renders
for its Job: a password generated once and never changed, a URL Secret that
always matches it, and the upgrade from a chart that generated the password at
render time. The hook uses kubernetes_asyncio (the image has no sync client):
the fake's calls are coroutines, as the real client's are."""

from __future__ import annotations

import asyncio
import base64
import copy
import runpy
import subprocess
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Secret
from kubernetes_asyncio.client.exceptions import ApiException
from rap_devtools.helm import CHART, find, only, render_chart

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

SCRIPT = CHART / "files" / "db-secret.py"
NS = "rap"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


class FakeCore:
    """The three CoreV1Api Secret calls the hook makes (coroutines, as in
    kubernetes_asyncio), on a dict; merge patches of labels, annotations and
    data (None deletes a key)."""

    def __init__(self) -> None:
        self.secrets: dict[str, V1Secret] = {}
        self.calls: list[tuple[str, str]] = []
        self.before_create: Callable[[str], None] | None = None

    def put(
        self,
        name: str,
        data: dict[str, str],
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.secrets[name] = V1Secret(
            metadata=V1ObjectMeta(
                name=name, namespace=NS, labels=labels or None, annotations=annotations or None
            ),
            data={k: _b64(v) for k, v in data.items()},
            type="Opaque",
        )

    def value(self, name: str, key: str) -> str:
        return _unb64(self.secrets[name].data[key])

    async def read_namespaced_secret(self, name: str, namespace: str) -> V1Secret:
        assert namespace == NS
        self.calls.append(("get", name))
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.secrets[name])

    async def create_namespaced_secret(self, namespace: str, body: dict[str, Any]) -> V1Secret:
        assert namespace == NS
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if self.before_create is not None:
            self.before_create(name)
        if name in self.secrets:
            raise ApiException(status=409, reason="AlreadyExists")
        meta = body["metadata"]
        self.secrets[name] = V1Secret(
            metadata=V1ObjectMeta(
                name=name,
                namespace=NS,
                labels=meta.get("labels"),
                annotations=meta.get("annotations"),
            ),
            data=dict(body["data"]),
            type=body.get("type"),
        )
        return copy.deepcopy(self.secrets[name])

    async def patch_namespaced_secret(
        self, name: str, namespace: str, body: dict[str, Any], _content_type: str | None = None
    ) -> V1Secret:
        assert namespace == NS
        # A dict body must say it is a merge patch (the generated client may
        # otherwise pick application/json-patch+json, which wants a list).
        assert _content_type == "application/merge-patch+json"
        self.calls.append(("patch", name))
        secret = self.secrets[name]

        def merge(current: dict[str, str] | None, patch: dict[str, Any]) -> dict[str, str]:
            out = dict(current or {})
            for k, v in patch.items():
                if v is None:
                    out.pop(k, None)
                else:
                    out[k] = v
            return out

        meta = body.get("metadata") or {}
        if "labels" in meta:
            secret.metadata.labels = merge(secret.metadata.labels, meta["labels"])
        if "annotations" in meta:
            secret.metadata.annotations = merge(secret.metadata.annotations, meta["annotations"])
        if "data" in body:
            secret.data = merge(secret.data, body["data"])
        return copy.deepcopy(secret)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "get"]


@pytest.fixture(scope="module")
def hook() -> dict[str, Any]:
    """The script's functions (run_name != __main__: main() does not run)."""
    return runpy.run_path(str(SCRIPT), run_name="db_secret")


def _job_env(values: dict[str, Any] | None = None) -> dict[str, str]:
    job = only(render_chart(values, namespace=NS), "Job", "rap-analyzer-db-secret")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


NO_ROLES = {"database": {"roles": {"enabled": False}}}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The single-user hook (database.roles off): the superuser's URL."""
    return _job_env(NO_ROLES)


@pytest.fixture(scope="module")
def roles_env() -> dict[str, str]:
    """The chart's defaults: database.roles on."""
    return _job_env()


def _run(hook: dict[str, Any], core: FakeCore, env: dict[str, str]) -> tuple[str, list[str]]:
    logged: list[str] = []
    url = asyncio.run(hook["ensure"](core, env, logged.append))
    return url, logged


def test_first_install_generates_the_password_and_the_url(
    hook: dict[str, Any], env: dict[str, str]
) -> None:
    core = FakeCore()
    url, logged = _run(hook, core, env)
    password = core.value("rap-analyzer-postgres", "password")
    assert len(password) == 32 and password.isalnum() and password.isascii()
    assert core.value("rap-analyzer-db", "url") == url
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert (parts.username, parts.password) == ("rap", password)
    assert (parts.hostname, parts.port, parts.path) == (
        "rap-analyzer-postgres.rap.svc",
        5432,
        "/rap",
    )
    for name in ("rap-analyzer-postgres", "rap-analyzer-db"):
        meta = core.secrets[name].metadata
        assert meta.annotations["helm.sh/resource-policy"] == "keep"
        assert meta.annotations["meta.helm.sh/release-name"] == "rap-analyzer"
        assert meta.labels["app.kubernetes.io/managed-by"] == "Helm"
        assert "app.kubernetes.io/instance" not in meta.labels
    # A password never goes to the log.
    assert not any(password in line for line in logged)


def test_later_runs_change_nothing(hook: dict[str, Any], env: dict[str, str]) -> None:
    core = FakeCore()
    first, _ = _run(hook, core, env)
    password = core.value("rap-analyzer-postgres", "password")
    for _ in range(3):  # every upgrade / Argo CD sync runs the hook again
        core.calls.clear()
        again, _ = _run(hook, core, env)
        assert again == first
        assert core.writes() == []
    assert core.value("rap-analyzer-postgres", "password") == password


def test_upgrade_from_the_chart_that_rendered_the_password(
    hook: dict[str, Any], env: dict[str, str]
) -> None:
    """The previous chart rendered both Secrets (the password with `keep`, the URL
    Secret without). The hook keeps the password, and marks the URL Secret `keep`
    before Helm's upgrade would delete it (it left the rendered manifest)."""
    old_labels = {
        "app.kubernetes.io/instance": "rap-analyzer",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "rap-analyzer-0.1.0",
    }
    helm = {"meta.helm.sh/release-name": "rap-analyzer", "meta.helm.sh/release-namespace": NS}
    core = FakeCore()
    core.put(
        "rap-analyzer-postgres",
        {"password": "OldPassword123"},
        old_labels,
        {**helm, "helm.sh/resource-policy": "keep"},
    )
    old_url = "postgresql://rap:OldPassword123@rap-analyzer-postgres.rap.svc:5432/rap"
    core.put("rap-analyzer-db", {"url": old_url}, old_labels, helm)

    url, _ = _run(hook, core, env)
    assert url == old_url  # the same URL, byte for byte
    assert core.value("rap-analyzer-postgres", "password") == "OldPassword123"
    assert ("create", "rap-analyzer-postgres") not in core.calls
    for name in ("rap-analyzer-postgres", "rap-analyzer-db"):
        meta = core.secrets[name].metadata
        assert meta.annotations["helm.sh/resource-policy"] == "keep"
        # Argo CD's tracking label goes: the Secret is no longer in the manifest.
        assert "app.kubernetes.io/instance" not in meta.labels
        assert meta.labels["helm.sh/chart"] == "rap-analyzer-0.1.0"  # others stay
    # The password Secret's data is never written.
    assert core.value("rap-analyzer-postgres", "password") == "OldPassword123"


def test_a_stale_url_is_rewritten(hook: dict[str, Any], env: dict[str, str]) -> None:
    core = FakeCore()
    core.put("rap-analyzer-postgres", {"password": "Right1"})
    core.put("rap-analyzer-db", {"url": "postgresql://rap:Wrong@elsewhere/rap", "other": "x"})
    url, _ = _run(hook, core, env)
    assert urlsplit(core.value("rap-analyzer-db", "url")).password == "Right1"
    assert core.value("rap-analyzer-db", "url") == url
    assert core.value("rap-analyzer-db", "other") == "x"  # other keys untouched
    assert core.value("rap-analyzer-postgres", "password") == "Right1"


def test_a_concurrent_create_wins(hook: dict[str, Any], env: dict[str, str]) -> None:
    core = FakeCore()

    def racer(name: str) -> None:
        if name == "rap-analyzer-postgres" and name not in core.secrets:
            core.put(name, {"password": "TheOtherHook9"})

    core.before_create = racer
    url, _ = _run(hook, core, env)
    assert urlsplit(url).password == "TheOtherHook9"


@pytest.fixture(scope="module")
def existing_env() -> dict[str, str]:
    return _job_env(
        {
            "postgres": {"auth": {"existingSecret": "my-pg", "existingSecretKey": "pw"}},
            **NO_ROLES,
        }
    )


def test_existing_secret_is_only_read(hook: dict[str, Any], existing_env: dict[str, str]) -> None:
    core = FakeCore()
    password = "p@ss:w/rd %?#"
    core.put("my-pg", {"pw": password}, {"team": "db"})
    url, _ = _run(hook, core, existing_env)
    assert core.writes() == [("create", "rap-analyzer-db")]
    assert core.secrets["my-pg"].metadata.labels == {"team": "db"}
    parts = urlsplit(url)
    assert parts.hostname == "rap-analyzer-postgres.rap.svc"
    assert unquote(parts.password or "") == password  # percent-encoded in the URL
    assert "rap-analyzer-postgres" not in core.secrets


def test_existing_secret_missing_or_without_the_key(
    hook: dict[str, Any], existing_env: dict[str, str]
) -> None:
    core = FakeCore()
    with pytest.raises(SystemExit, match=r"Secret rap/my-pg does not exist.*'pw'"):
        _run(hook, core, existing_env)
    assert core.writes() == []  # never generated: it is the user's Secret
    core.put("my-pg", {"password": "x"})
    with pytest.raises(SystemExit, match=r"no \(or an empty\) key 'pw'"):
        _run(hook, core, existing_env)


def test_hook_url_equals_the_rendered_url_for_the_same_password(
    hook: dict[str, Any], env: dict[str, str]
) -> None:
    """postgres.auth.password renders the URL Secret; the hook builds the same URL."""
    docs = render_chart({"postgres": {"auth": {"password": "Abc123xyz"}}}, namespace=NS)
    secret = next(d for d in find(docs, "Secret") if d["metadata"]["name"] == "rap-analyzer-db")
    rendered = _unb64(secret["data"]["url"])
    assert hook["database_url"](env, "Abc123xyz") == rendered


def test_the_script_runs_as_python_dash_c() -> None:
    """What the Job runs: `python -c <script>`; outside a cluster it stops at the
    in-cluster config (so it parsed and imported fine)."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.read_text()],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode != 0
    assert "ConfigException" in proc.stderr or "service host/port" in proc.stderr, proc.stderr


ROLE_URL_SECRETS = {
    "rap_runtime": ("rap-analyzer-db", "runtime-password"),
    "rap_owner": ("rap-analyzer-db-owner", "owner-password"),
    "rap_search": ("rap-analyzer-db-search", "search-password"),
}


def test_roles_get_generated_passwords_and_a_url_secret_each(
    hook: dict[str, Any], roles_env: dict[str, str]
) -> None:
    core = FakeCore()
    url, logged = _run(hook, core, roles_env)
    superuser = core.value("rap-analyzer-postgres", "password")
    passwords = {
        key: core.value("rap-analyzer-db-roles", key)
        for key in ("owner-password", "runtime-password", "search-password")
    }
    assert len(set(passwords.values()) | {superuser}) == 4
    for user, (secret, key) in ROLE_URL_SECRETS.items():
        parts = urlsplit(core.value(secret, "url"))
        assert (parts.username, parts.password) == (user, passwords[key])
        assert (parts.hostname, parts.port, parts.path) == (
            "rap-analyzer-postgres.rap.svc",
            5432,
            "/rap",
        )
    # What the operator and the runs read is the runtime role's URL; no Secret holds
    # the superuser's.
    assert url == core.value("rap-analyzer-db", "url")
    assert not any(
        superuser in _unb64(v)
        for s in core.secrets.values()
        if s.metadata.name != "rap-analyzer-postgres"
        for v in s.data.values()
    )
    assert not any(p in line for line in logged for p in [superuser, *passwords.values()])
    meta = core.secrets["rap-analyzer-db-roles"].metadata
    assert meta.annotations["helm.sh/resource-policy"] == "keep"
    assert "app.kubernetes.io/instance" not in meta.labels

    # Every later run (upgrade, sync) changes nothing.
    core.calls.clear()
    _run(hook, core, roles_env)
    assert core.writes() == []


def test_upgrade_from_the_single_user_chart_moves_the_url_to_the_runtime_role(
    hook: dict[str, Any], env: dict[str, str], roles_env: dict[str, str]
) -> None:
    """0.1.0 wrote the superuser's URL into database.secretName; the first hook with
    roles keeps the superuser's password and points that Secret at the runtime role.
    A roles Secret missing a key (edited by hand) gets only that key back."""
    core = FakeCore()
    _run(hook, core, env)
    superuser = core.value("rap-analyzer-postgres", "password")
    assert urlsplit(core.value("rap-analyzer-db", "url")).username == "rap"
    _run(hook, core, roles_env)
    assert core.value("rap-analyzer-postgres", "password") == superuser
    assert urlsplit(core.value("rap-analyzer-db", "url")).username == "rap_runtime"
    owner = core.value("rap-analyzer-db-roles", "owner-password")
    del core.secrets["rap-analyzer-db-roles"].data["search-password"]
    core.calls.clear()
    _run(hook, core, roles_env)
    assert core.value("rap-analyzer-db-roles", "owner-password") == owner
    search = core.value("rap-analyzer-db-roles", "search-password")
    assert urlsplit(core.value("rap-analyzer-db-search", "url")).password == search
    assert ("patch", "rap-analyzer-db-roles") in core.writes()


def test_the_roles_job_and_postgres_read_the_same_passwords() -> None:
    """The db-roles Job, the Postgres init script and PgBouncer take the roles' names
    and passwords from the Secret the hook writes; the Job's superuser URL has no
    password (PGPASSWORD), so no rendered value holds one."""
    docs = render_chart({"pgbouncer": {"enabled": True}}, namespace=NS)
    env = _job_env()
    job = only(docs, "Job", "rap-analyzer-db-roles")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "post-install"
    assert int(ann["helm.sh/hook-weight"]) > 0  # after the database-Secret hook
    assert ann["argocd.argoproj.io/hook"] == "PostSync"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["command"][:5] == ["python", "-m", "analyzer_runtime", "db", "roles"]
    assert "--skip-unknown-host" not in c["command"]  # the install/PostSync one
    job_env = {e["name"]: e for e in c["env"]}
    url = urlsplit(job_env["DATABASE_URL"]["value"])
    assert (url.username, url.password, url.hostname) == (
        "rap",
        None,
        "rap-analyzer-postgres.rap.svc",
    )
    assert job_env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": env["PASSWORD_SECRET"],
        "key": env["PASSWORD_KEY"],
    }
    sts = only(docs, "StatefulSet")
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    pg_env = {e["name"]: e for e in pg["env"]}
    for role in ("OWNER", "RUNTIME", "SEARCH"):
        name = env[f"ROLE_{role}"]
        assert job_env[f"RAP_DB_{role}_ROLE"]["value"] == name
        assert pg_env[f"RAP_DB_{role}_ROLE"]["value"] == name
        ref = {"name": env["ROLES_SECRET"], "key": f"{role.lower()}-password"}
        assert job_env[f"RAP_DB_{role}_PASSWORD"]["valueFrom"]["secretKeyRef"] == ref
        assert pg_env[f"RAP_DB_{role}_PASSWORD"]["valueFrom"]["secretKeyRef"] == ref
    (bouncer,) = only(docs, "Deployment", "rap-analyzer-pgbouncer")["spec"]["template"]["spec"][
        "containers"
    ]
    b_env = {e["name"]: e for e in bouncer["env"]}
    assert b_env["PGBOUNCER_RUNTIME_USER"]["value"] == env["ROLE_RUNTIME"]
    assert b_env["PGBOUNCER_RUNTIME_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": env["ROLES_SECRET"],
        "key": "runtime-password",
    }
