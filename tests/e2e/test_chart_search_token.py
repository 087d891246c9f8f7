"""The search API's token hook (templates/search-token-job.yaml) against a real
kube-apiserver: its script (files/search-token.py, kubernetes_asyncio as in its
pod) runs with exactly the hook's rendered RBAC (a token of its ServiceAccount).
It creates the token Secret once, a second run (an upgrade, an Argo CD sync)
leaves it as it is, and a Secret that exists already is never changed. Its pod
passing PodSecurity `restricted`: tests/e2e/test_chart_podsecurity.py."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from rap_devtools.cluster import LocalCluster
from rap_devtools.kubeapi import KubeApi

from tests.e2e.test_chart_podsecurity import Hook

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
SECRET = "rap-analyzer-search-token"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def hook(cluster: LocalCluster, kube: KubeApi, namespace: str) -> Iterator[Hook]:
    made = Hook(
        cluster,
        kube,
        namespace,
        {"search": {"enabled": True}},
        "rap-analyzer",
        component="search-token",
        script="search-token.py",
        entry="ensure_token",
    )
    try:
        yield made
    finally:
        made.api.close()


def _secret(kube: KubeApi, namespace: str) -> JSON:
    return kube.get(f"/api/v1/namespaces/{namespace}/secrets/{SECRET}")


def test_the_token_is_generated_once(hook: Hook, kube: KubeApi, namespace: str) -> None:
    assert hook.env["TOKEN_SECRET"] == SECRET
    assert hook.run() is True
    first = _secret(kube, namespace)
    token = base64.b64decode(first["data"]["token"]).decode()
    # token_urlsafe(32): 43 URL-safe characters, 256 random bits.
    assert len(token) == 43 and token.replace("-", "").replace("_", "").isalnum()
    meta = first["metadata"]
    assert meta["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "app.kubernetes.io/instance" not in meta["labels"]
    assert meta["labels"]["app.kubernetes.io/part-of"] == "rap-analyzer"
    assert not any(token in line for line in hook.log)

    # An upgrade / Argo CD sync: nothing written, the same token.
    assert hook.run() is False
    again = _secret(kube, namespace)
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    assert again["data"] == first["data"]


def test_an_existing_secret_is_never_changed(hook: Hook, kube: KubeApi, namespace: str) -> None:
    """A Secret made by hand (the NOTES.txt command of earlier chart versions)."""
    made = kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": SECRET, "labels": {"mine": "yes"}}, "data": {"token": _b64("t0k")}},
    )
    assert hook.run() is False
    now = _secret(kube, namespace)
    assert now["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert now["data"] == {"token": _b64("t0k")}
    assert now["metadata"]["labels"] == {"mine": "yes"}


def test_a_secret_without_the_key_fails_the_hook_unchanged(
    hook: Hook, kube: KubeApi, namespace: str
) -> None:
    made = kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": SECRET}, "data": {"other": _b64("x")}},
    )
    with pytest.raises(SystemExit) as failed:
        hook.run()
    assert "without the key 'token'" in str(failed.value)
    now = _secret(kube, namespace)
    assert now["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_the_hooks_rbac_reads_the_token_secret_only(
    hook: Hook, kube: KubeApi, namespace: str
) -> None:
    assert hook.run() is True
    kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "someone-elses"}, "data": {"k": _b64("v")}},
    )
    denied_calls = [
        lambda: hook.core.read_namespaced_secret("someone-elses", namespace),
        lambda: hook.core.list_namespaced_secret(namespace),
        # Read only: it may not change (or delete) the token it made.
        lambda: hook.core.patch_namespaced_secret(
            SECRET,
            namespace,
            {"data": {"token": _b64("x")}},
            _content_type="application/merge-patch+json",
        ),
        lambda: hook.core.delete_namespaced_secret(SECRET, namespace),
    ]
    for call in denied_calls:
        with pytest.raises(k8s.exceptions.ApiException) as denied:
            call()
        assert denied.value.status == 403
    assert hook.core.read_namespaced_secret(SECRET, namespace).metadata.name == SECRET
