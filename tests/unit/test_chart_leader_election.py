"""The chart's operator replicas and leader election (issue 22), rendered by the real
`helm template`: two replicas by default, RollingUpdate, a PodDisruptionBudget, a
preferred anti-affinity, the Lease's Role, the downward-API env, a readiness probe."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.helm import (
    HelmError,
    find,
    only,
    operator_container,
    operator_deployment,
    operator_env,
    rbac_documents,
    render_chart,
    rule_triples,
)
from rap_operator.config import OperatorConfig

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

DB = {"postgres": {"enabled": False}, "database": {"url": "postgresql://rap@db/rap"}}
ONE = {**DB, "operator": {"replicas": 1}}
NO_ELECTION = {**DB, "operator": {"replicas": 1, "leaderElection": {"enabled": False}}}
NAMESPACED = {**DB, "rbac": {"clusterWide": False}, "watchNamespaces": ["team-a"]}


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render_chart(DB)


def _env_sources(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in operator_container(docs)["env"]}


def _lease_role(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in find(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]


def test_two_replicas_elect_a_leader_by_default(defaults: list[dict[str, Any]]) -> None:
    dep = operator_deployment(defaults)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    env = _env_sources(defaults)
    assert env["RAP_LEADER_ELECTION"] == "true"
    assert env["RAP_LEADER_ELECTION_LEASE"] == "rap-analyzer-operator"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # What the operator makes of it (POD_NAMESPACE is the pod's, set by the kubelet).
    cfg = OperatorConfig.from_env({**operator_env(defaults), "POD_NAMESPACE": "rap"})
    assert cfg.leader_election is True
    assert (cfg.lease_name, cfg.lease_namespace) == ("rap-analyzer-operator", "rap")


def test_a_disruption_budget_keeps_one_replica(defaults: list[dict[str, Any]]) -> None:
    pdb = only(defaults, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    dep = operator_deployment(defaults)
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert pdb["metadata"]["namespace"] == "rap"
    # One replica: a budget of one would block every node drain.
    assert find(render_chart(ONE), "PodDisruptionBudget") == []


def test_anti_affinity_is_preferred_never_required(defaults: list[dict[str, Any]]) -> None:
    dep = operator_deployment(defaults)
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"] == dep["spec"]["selector"]
    # The user's own affinity replaces it; one replica has none.
    own = {"nodeAffinity": {"x": 1}}
    dep = operator_deployment(render_chart({**DB, "operator": {"affinity": own}}))
    assert dep["spec"]["template"]["spec"]["affinity"] == own
    assert "affinity" not in operator_deployment(render_chart(ONE))["spec"]["template"]["spec"]


@pytest.mark.parametrize("values", [DB, NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_the_lease_role_is_in_the_release_namespace(values: dict[str, Any]) -> None:
    docs = render_chart(values, namespace="rap-ops")
    (role,) = _lease_role(docs)
    assert role["metadata"]["namespace"] == "rap-ops"
    assert rule_triples(role["rules"]) == {
        ("coordination.k8s.io", "leases", v) for v in ("get", "create", "update", "watch")
    }
    # get, update and watch only on the operator's Lease (create cannot name one).
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["rap-analyzer-operator"],
            "verbs": ["get", "update", "watch"],
        }
    ]
    binding = only(docs, "RoleBinding", role["metadata"]["name"])
    sa = only(rbac_documents(docs), "ServiceAccount")["metadata"]["name"]  # not a hook's
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": "rap-ops"}]


def test_without_election_one_replica_recreated() -> None:
    docs = render_chart(NO_ELECTION)
    dep = operator_deployment(docs)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert _lease_role(docs) == []
    env = _env_sources(docs)
    assert env["RAP_LEADER_ELECTION"] == "false" and "POD_NAME" not in env
    assert OperatorConfig.from_env(operator_env(docs)).leader_election is False


def test_two_replicas_without_election_are_refused() -> None:
    with pytest.raises(HelmError, match=r"leaderElection\.enabled=true"):
        render_chart({**DB, "operator": {"leaderElection": {"enabled": False}}})


def test_probes_and_sweep_interval(defaults: list[dict[str, Any]]) -> None:
    c = operator_container(defaults)
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert operator_env(defaults)["RAP_SWEEP_INTERVAL"] == "180"
    docs = render_chart({**DB, "operator": {"sweepInterval": 30}})
    assert OperatorConfig.from_env(operator_env(docs)).sweep_interval == 30.0
