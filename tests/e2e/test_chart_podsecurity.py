"""The chart against a real kube-apiserver:

- its PodSecurity admission judges every pod template the chart renders (operator,
  Postgres, the secret hook Job, the ledger gc CronJob), created as Pods with
  dryRun=All in a namespace enforcing `restricted`;
- the ledger gc CronJob itself passes the API server's validation;
- the Postgres secret hook's script runs with exactly the hook's rendered RBAC
  (a token of its ServiceAccount): it may write its two Secrets and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import runpy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from rap_devtools.cluster import LocalCluster
from rap_devtools.helm import CHART, render_chart
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.waiting import wait_for

from tests.unit.test_chart_podsecurity import pod_templates

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
VALUES = {
    "defaults": None,
    "postgres-existing-secret": {"postgres": {"auth": {"existingSecret": "my-pg"}}},
    "postgres-password": {"postgres": {"auth": {"password": "pw"}}},
    # The search API and its token hook Job.
    "search": {"search": {"enabled": True}},
}


def _dry_run_pod(kube: KubeApi, namespace: str, name: str, spec: JSON) -> JSON:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return kube.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods", body, params={"dryRun": "All"}
    )


def _as_pod_spec(template: JSON) -> JSON:
    spec = copy.deepcopy(template["spec"])
    # The chart's ServiceAccounts are not in this namespace; the PodSecurity
    # verdict does not depend on which one the pod runs as.
    spec["serviceAccountName"] = "default"
    return spec


@pytest.fixture
def restricted(kube: KubeApi, namespace: str) -> str:
    """The test namespace, enforcing Pod Security `restricted` (latest)."""
    kube.patch(
        f"/api/v1/namespaces/{namespace}",
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }
            }
        },
    )
    unrestricted = {"containers": [{"name": "c", "image": "busybox"}]}

    def enforced() -> bool:
        try:
            _dry_run_pod(kube, namespace, "probe", unrestricted)
        except ApiError as e:
            if e.status == 403 and "violates PodSecurity" in str(e):
                return True
            raise
        return False

    # The admission plugin sees the label through an informer: wait until it bites.
    wait_for(enforced, timeout=30, what=f"PodSecurity restricted enforced in {namespace}")
    return namespace


def test_the_api_server_refuses_a_pod_that_is_not_restricted(
    kube: KubeApi, restricted: str
) -> None:
    """The control: the operator's pod without its seccomp profile is refused."""
    ((_, template),) = [t for t in pod_templates(render_chart()) if t[0].startswith("Deployment")]
    spec = _as_pod_spec(template)
    spec["securityContext"].pop("seccompProfile")
    with pytest.raises(ApiError) as refused:
        _dry_run_pod(kube, restricted, "unconfined", spec)
    assert refused.value.status == 403
    assert "seccompProfile" in str(refused.value)


@pytest.mark.parametrize("name", VALUES)
def test_every_chart_pod_is_admitted_as_restricted(
    kube: KubeApi, restricted: str, name: str
) -> None:
    templates = pod_templates(render_chart(VALUES[name], namespace=restricted))
    kinds = sorted(where.split("/")[0] for where, _ in templates)
    assert "Deployment" in kinds and "StatefulSet" in kinds
    for i, (where, template) in enumerate(templates):
        try:
            pod = _dry_run_pod(kube, restricted, f"chart-pod-{i}", _as_pod_spec(template))
        except ApiError as e:
            pytest.fail(f"{where} refused: {e}")
        assert pod["metadata"]["name"] == f"chart-pod-{i}", where
    # Nothing was created (dry run).
    assert kube.get(f"/api/v1/namespaces/{restricted}/pods")["items"] == []


def test_the_ledger_gc_cronjob_is_accepted(kube: KubeApi, restricted: str) -> None:
    docs = render_chart({"ledgerGC": {"timeZone": "Etc/UTC"}}, namespace=restricted)
    (cj,) = [d for d in docs if d["kind"] == "CronJob"]
    made = kube.request(
        "POST", f"/apis/batch/v1/namespaces/{restricted}/cronjobs", cj, params={"dryRun": "All"}
    )
    assert made["spec"]["concurrencyPolicy"] == "Forbid"
    assert made["spec"]["schedule"] == "17 3 * * *" and made["spec"]["timeZone"] == "Etc/UTC"
    assert kube.get(f"/apis/batch/v1/namespaces/{restricted}/cronjobs")["items"] == []


# --- the secret hook with its own RBAC ------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(kube: KubeApi, namespace: str, name: str) -> JSON:
    return kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")


def _value(kube: KubeApi, namespace: str, name: str, key: str) -> str:
    return base64.b64decode(_secret(kube, namespace, name)["data"][key]).decode()


_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


class Hook:
    """The rendered hook of one release (the Job, ServiceAccount, Role and
    RoleBinding labelled `component`): its RBAC applied, its Job's env, its
    script's `entry` function, and a CoreV1Api authenticated as its ServiceAccount."""

    def __init__(
        self,
        cluster: LocalCluster,
        kube: KubeApi,
        namespace: str,
        values: JSON,
        release: str,
        *,
        component: str = "database-secret",
        script: str = "db-secret.py",
        entry: str = "ensure",
    ) -> None:
        docs = render_chart(values, namespace=namespace, release=release)
        hooks = [
            d
            for d in docs
            if "helm.sh/hook" in (d["metadata"].get("annotations") or {})
            and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == component
        ]
        for kind in ("ServiceAccount", "Role", "RoleBinding"):
            (doc,) = [d for d in hooks if d["kind"] == kind]
            kube.post(_PATHS[kind].format(ns=namespace), doc)
        (job,) = [d for d in hooks if d["kind"] == "Job"]
        pod = job["spec"]["template"]["spec"]
        self.env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        kubeconfig: Path = cluster.make_kubeconfig_for_serviceaccount(
            namespace, pod["serviceAccountName"]
        )
        self.kubeconfig = kubeconfig
        # The sync client checks what the hook's RBAC denies; the hook itself
        # runs on kubernetes_asyncio, as in its pod.
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.core = k8s.CoreV1Api(self.api)
        self.entry = runpy.run_path(str(CHART / "files" / script), run_name="hook")[entry]
        self.log: list[str] = []

    def run(self) -> Any:
        return asyncio.run(self._run())

    async def _run(self) -> Any:
        from kubernetes_asyncio import client, config

        api = await config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            return await self.entry(client.CoreV1Api(api), self.env, self.log.append)
        finally:
            await api.close()


def _make(
    cluster: LocalCluster, kube: KubeApi, namespace: str, values: JSON | None, release: str
) -> Hook:
    return Hook(cluster, kube, namespace, values or {}, release)


def test_generated_password_with_the_hooks_rbac(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    hook = _make(cluster, kube, namespace, None, "rap-analyzer")
    try:
        url = hook.run()
        password = _value(kube, namespace, "rap-analyzer-postgres", "password")
        assert len(password) == 32
        assert _value(kube, namespace, "rap-analyzer-db", "url") == url
        # database.roles (the default): the runs' URL is the runtime role's; the
        # owner's and the search role's go to their own Secrets, all written under
        # the hook's own RBAC.
        runtime = _value(kube, namespace, "rap-analyzer-db-roles", "runtime-password")
        assert (urlsplit(url).username, urlsplit(url).password) == ("rap_runtime", runtime)
        for name, user in (
            ("rap-analyzer-db-owner", "rap_owner"),
            ("rap-analyzer-db-search", "rap_search"),
        ):
            assert urlsplit(_value(kube, namespace, name, "url")).username == user
        assert not any(
            password in _value(kube, namespace, n, "url")
            for n in ("rap-analyzer-db", "rap-analyzer-db-owner", "rap-analyzer-db-search")
        )
        assert urlsplit(url).hostname == f"rap-analyzer-postgres.{namespace}.svc"
        meta = _secret(kube, namespace, "rap-analyzer-db")["metadata"]
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "app.kubernetes.io/instance" not in meta["labels"]

        # An upgrade / Argo CD sync: the same password, the same URL.
        assert hook.run() == url
        assert _value(kube, namespace, "rap-analyzer-postgres", "password") == password

        # The URL Secret went stale (edited by hand): the hook repairs it.
        kube.patch(
            f"/api/v1/namespaces/{namespace}/secrets/rap-analyzer-db",
            {"data": {"url": _b64("postgresql://rap:wrong@elsewhere/rap")}},
        )
        assert hook.run() == url
        assert _value(kube, namespace, "rap-analyzer-db", "url") == url

        # Its RBAC covers those two Secrets only.
        kube.post(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": "someone-elses"}, "data": {"k": _b64("v")}},
        )
        with pytest.raises(k8s.exceptions.ApiException) as denied:
            hook.core.read_namespaced_secret("someone-elses", namespace)
        assert denied.value.status == 403
        with pytest.raises(k8s.exceptions.ApiException) as denied:
            hook.core.list_namespaced_secret(namespace)
        assert denied.value.status == 403
    finally:
        hook.api.close()


def test_existing_secret_and_upgrade_from_a_rendered_url_secret(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    """postgres.auth.existingSecret, with a URL Secret the previous chart rendered
    (Argo CD tracking label, no keep): the hook rewrites its URL and metadata with a
    real merge patch, and only reads the user's Secret."""
    kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "my-pg"}, "data": {"password": _b64("s3cr3t:@/")}},
    )
    kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "metadata": {
                "name": "rel2-db",
                "labels": {"app.kubernetes.io/instance": "rel2", "keep-me": "yes"},
            },
            "data": {"url": _b64("postgresql://rap:old@old/rap")},
        },
    )
    values = {
        "postgres": {"auth": {"existingSecret": "my-pg"}},
        # The single superuser URL (roles: the test above).
        "database": {"secretName": "rel2-db", "roles": {"enabled": False}},
    }
    hook = _make(cluster, kube, namespace, values, "rel2")
    try:
        url = hook.run()
        assert _value(kube, namespace, "rel2-db", "url") == url
        assert url.startswith("postgresql://rap:s3cr3t%3A%40%2F@rel2-rap-analyzer-postgres.")
        meta = _secret(kube, namespace, "rel2-db")["metadata"]
        assert "app.kubernetes.io/instance" not in meta["labels"]
        assert meta["labels"]["keep-me"] == "yes"
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "rel2-rap-analyzer-postgres" not in {
            s["metadata"]["name"]
            for s in kube.get(f"/api/v1/namespaces/{namespace}/secrets")["items"]
        }
        # Read only: the hook may not change the user's Secret.
        with pytest.raises(k8s.exceptions.ApiException) as denied:
            hook.core.patch_namespaced_secret(
                "my-pg",
                namespace,
                {"metadata": {"labels": {"x": "y"}}},
                _content_type="application/merge-patch+json",
            )
        assert denied.value.status == 403
    finally:
        hook.api.close()
