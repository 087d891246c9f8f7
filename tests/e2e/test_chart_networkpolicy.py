"""The chart's NetworkPolicies against a real kube-apiserver: every policy rendered
in each mode passes the server's validation (`kubectl apply --dry-run=server
--validate=strict`: an unknown or misplaced field is an error, not dropped), and
applied for real it reads back as rendered (nothing pruned or rewritten).

What they allow is checked on the rendered policies (tests/unit/
test_chart_networkpolicy.py); that they are enforced needs a CNI that implements
NetworkPolicy, which the test clusters do not run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from rap_devtools.cluster import LocalCluster
from rap_devtools.helm import find, render_chart
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.operator_setup import create_namespace

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
VARIANTS: dict[str, JSON] = {
    "defaults": {},
    "everything": {
        "search": {"enabled": True},
        "pgbouncer": {"enabled": True},
        "networkPolicy": {
            "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]},
            "database": {"cidrs": ["203.0.113.0/24"], "port": 5433},
            "metricsFrom": [MONITORING],
            "search": {"from": [MONITORING, {"podSelector": {"matchLabels": {"app": "x"}}}]},
        },
    },
    "external-database": {
        "postgres": {"enabled": False},
        "database": {"url": "postgresql://u:p@db.example.com:5432/rap"},
        "networkPolicy": {"metricsFrom": [], "shardEgress": []},
    },
    "cluster-wide": {"rbac": {"clusterWide": True}},
}


@pytest.fixture
def namespaces(kube: KubeApi) -> Iterator[tuple[str, str]]:
    """The release namespace and a second watched one."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"rap-np-{suffix}", f"team-np-{suffix}")
    for name in names:
        create_namespace(kube, name)
    yield names
    for name in names:
        try:
            kube.delete(f"/api/v1/namespaces/{name}")
        except ApiError as e:
            if e.status != 404:
                raise


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_network_policies_are_valid_and_kept_as_rendered(
    cluster: LocalCluster, kube: KubeApi, namespaces: tuple[str, str], variant: str
) -> None:
    release_ns, team = namespaces
    values = dict(VARIANTS[variant])
    if variant != "cluster-wide":
        values["watchNamespaces"] = [release_ns, team]
    policies = find(render_chart(values, namespace=release_ns), "NetworkPolicy")
    assert policies
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": policies})

    dry = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("(server dry run)") == len(policies), dry.stdout

    applied = cluster.kubectl("apply", "--validate=strict", "-f", "-", input=manifest)
    assert applied.returncode == 0, applied.stderr
    for policy in policies:
        meta = policy["metadata"]
        stored = kube.get(
            f"/apis/networking.k8s.io/v1/namespaces/{meta['namespace']}"
            f"/networkpolicies/{meta['name']}"
        )
        assert stored["spec"] == _without_empty(policy["spec"]), meta["name"]


def _without_empty(spec: JSON) -> JSON:
    """An empty rule list and none are the same policy (the server omits it)."""
    return {k: v for k, v in spec.items() if v not in (None, [])}


def test_an_invalid_policy_is_refused(cluster: LocalCluster, namespaces: tuple[str, str]) -> None:
    """The check above can fail: a malformed CIDR from values is refused by the server."""
    release_ns, _ = namespaces
    values = {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1/99"]}}}
    policies = find(render_chart(values, namespace=release_ns), "NetworkPolicy")
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": policies})
    dry = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest
    )
    assert dry.returncode != 0 and "10.0.0.1/99" in dry.stderr, dry.stderr
