"""charts/rap-analyzer's NetworkPolicies (templates/networkpolicy.yaml), rendered and
read with the Kubernetes semantics (rap_devtools.netpol): each pod the chart and the
operator create reaches what it needs and nothing else. That a CNI enforces them
is not testable here; tests/e2e/test_chart_networkpolicy.py has the API server
validate them."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rap_devtools.helm import ROOT, find, only, render_chart
from rap_devtools.netpol import Pod, allowed_egress, allowed_ingress, connects, selects
from rap_operator import manifests

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

JSON = dict[str, Any]
NS = "rap"
PUBLIC = "93.184.216.34"
METADATA = "169.254.169.254"
API_SERVER = "10.0.0.1"


def _policies(docs: list[JSON]) -> list[JSON]:
    return find(docs, "NetworkPolicy")


def _pod_templates(docs: list[JSON]) -> dict[str, Pod]:
    """Each workload's pod as it runs: its namespace, labels and named ports, keyed by
    its app.kubernetes.io/component."""
    pods: dict[str, Pod] = {}
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        template = spec.get("template")
        if doc["kind"] not in ("Deployment", "StatefulSet", "CronJob", "Job") or not template:
            continue
        labels = template["metadata"]["labels"]
        ports = {
            p["name"]: p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports") or []
            if "name" in p
        }
        pods[labels["app.kubernetes.io/component"]] = Pod(
            doc["metadata"].get("namespace", NS), labels, ports
        )
    return pods


def _shard(namespace: str) -> Pod:
    """A shard pod as the operator labels it (rap_operator.manifests)."""
    labels = manifests.labels("AnalysisRun", "run-a", "uid-1")
    return Pod(namespace, labels, {"metrics": 9102}, ip="10.2.0.9")


def test_default_renders_policies_for_every_long_running_pod() -> None:
    docs = render_chart()
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in _policies(docs)}
    assert names == {
        (NS, "rap-analyzer-operator"),
        (NS, "rap-analyzer-postgres"),
        (NS, "rap-analyzer-ledger-gc"),
        (NS, "rap-analyzer-shards"),  # the release namespace is the one watched
    }
    pods = _pod_templates(docs)
    for policy in _policies(docs):
        selected = [c for c, pod in pods.items() if _selects(policy, pod)]
        if policy["metadata"]["name"].endswith("-shards"):
            assert _selects(policy, _shard(NS)) and selected == []
        else:
            assert len(selected) == 1, (policy["metadata"]["name"], selected)


def _selects(policy: JSON, pod: Pod) -> bool:
    return policy["metadata"]["namespace"] == pod.namespace and selects(
        policy["spec"]["podSelector"], pod.labels
    )


def test_disabled_renders_none() -> None:
    assert _policies(render_chart({"networkPolicy": {"enabled": False}})) == []


def test_every_named_port_is_one_of_the_selected_pods() -> None:
    docs = render_chart({"search": {"enabled": True}, "pgbouncer": {"enabled": True}})
    pods = [*_pod_templates(docs).values(), _shard(NS)]
    for policy in _policies(docs):
        named = {
            p["port"]
            for rule in policy["spec"].get("ingress") or []
            for p in rule.get("ports") or []
            if isinstance(p["port"], str)
        }
        for pod in (p for p in pods if _selects(policy, p)):
            assert named <= set(pod.ports), (policy["metadata"]["name"], named, pod.ports)


def test_the_database_admits_the_release_and_the_watched_shards_only() -> None:
    docs = render_chart({"watchNamespaces": [NS, "team-a"], "search": {"enabled": True}})
    policies, pods = _policies(docs), _pod_templates(docs)
    db = pods["database"]
    for client in ("operator", "search", "ledger-gc", "database-secret"):
        assert connects(policies, pods[client], db, 5432), client
    for ns in (NS, "team-a"):
        assert connects(policies, _shard(ns), db, 5432), ns
    # A shard pod of a namespace the release does not watch, a stranger in the
    # release namespace, a pod labelled like a shard but not by the operator.
    assert not allowed_ingress(policies, db, _shard("team-b"), 5432)
    assert not allowed_ingress(policies, db, Pod(NS, {"app": "psql"}), 5432)
    impostor = Pod("team-b", {"app.kubernetes.io/component": "shard"})
    assert not allowed_ingress(policies, db, impostor, 5432)
    # The opt-in label for a person's psql pod or the seed Job, in the release namespace.
    client = Pod(NS, {"rapanalyzer.io/database-client": "true"})
    assert allowed_ingress(policies, db, client, 5432)
    assert not allowed_ingress(policies, db, Pod("team-a", client.labels), 5432)
    # Postgres itself calls nothing but DNS.
    assert not allowed_egress(policies, db, PUBLIC, 443)
    assert allowed_egress(policies, db, "10.96.0.10", 53)


def test_pgbouncer_sits_between_clients_and_postgres() -> None:
    docs = render_chart({"pgbouncer": {"enabled": True}})
    policies, pods = _policies(docs), _pod_templates(docs)
    bouncer, db = pods["pgbouncer"], pods["database"]
    assert connects(policies, pods["operator"], bouncer, 6432)
    assert connects(policies, _shard(NS), bouncer, 6432)
    assert connects(policies, bouncer, db, 5432)
    assert not allowed_ingress(policies, bouncer, _shard("elsewhere"), 6432)
    assert not allowed_egress(policies, bouncer, PUBLIC, 443)


def test_operator_reaches_the_api_server_dns_and_database_only() -> None:
    docs = render_chart()
    policies, pods = _policies(docs), _pod_templates(docs)
    op = pods["operator"]
    assert allowed_egress(policies, op, API_SERVER, 443)
    assert allowed_egress(policies, op, API_SERVER, 6443)
    assert allowed_egress(policies, op, "10.96.0.10", 53)
    assert connects(policies, op, pods["database"], 5432)
    assert not allowed_egress(policies, op, PUBLIC, 80)
    assert not allowed_egress(policies, op, _shard(NS), 9102)
    # Its metrics port, from networkPolicy.metricsFrom (default: the cluster's pods).
    assert allowed_ingress(policies, op, Pod("monitoring", {}), 9090)
    assert not allowed_ingress(policies, op, Pod("monitoring", {}), 8000)

    pinned = render_chart(
        {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]}}}
    )
    op = _pod_templates(pinned)["operator"]
    assert allowed_egress(_policies(pinned), op, API_SERVER, 6443)
    assert not allowed_egress(_policies(pinned), op, API_SERVER, 443)
    assert not allowed_egress(_policies(pinned), op, "10.0.0.2", 6443)


def test_metrics_from_narrows_every_metrics_port() -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
    docs = render_chart(
        {"networkPolicy": {"metricsFrom": [monitoring]}, "search": {"enabled": True}}
    )
    policies, pods = _policies(docs), _pod_templates(docs)
    for pod, port in ((pods["operator"], 9090), (pods["search"], 9090), (_shard(NS), 9102)):
        assert allowed_ingress(policies, pod, Pod("mon", {}), port)
        assert not allowed_ingress(policies, pod, Pod("team-a", {}), port)


def test_shards_reach_dns_database_and_public_https_only() -> None:
    docs = render_chart()
    policies, pods = _policies(docs), _pod_templates(docs)
    shard = _shard(NS)
    assert connects(policies, shard, pods["database"], 5432)
    assert allowed_egress(policies, shard, "10.96.0.10", 53)
    assert allowed_egress(policies, shard, PUBLIC, 443)
    # Not the cloud metadata endpoint, the cluster's private ranges, other ports.
    assert not allowed_egress(policies, shard, METADATA, 80)
    assert not allowed_egress(policies, shard, METADATA, 443)
    for private in ("10.0.0.1", "172.20.0.5", "192.168.1.10"):
        assert not allowed_egress(policies, shard, private, 443), private
    assert not allowed_egress(policies, shard, PUBLIC, 80)
    assert not allowed_egress(policies, shard, pods["operator"], 9090)

    # An admin allowing an in-cluster model server instead of the public internet.
    ollama = {"to": [{"ipBlock": {"cidr": "10.50.0.0/16"}}], "ports": [{"port": 11434}]}
    docs = render_chart({"networkPolicy": {"shardEgress": [ollama]}})
    assert allowed_egress(_policies(docs), shard, "10.50.1.2", 11434)
    assert not allowed_egress(_policies(docs), shard, PUBLIC, 443)


def test_a_shard_policy_per_watched_namespace() -> None:
    docs = render_chart({"watchNamespaces": ["team-a", "team-b"]})
    shards = [p for p in _policies(docs) if p["metadata"]["name"].endswith("-shards")]
    assert sorted(p["metadata"]["namespace"] for p in shards) == ["team-a", "team-b"]
    assert all(p["spec"] == shards[0]["spec"] for p in shards)
    db = _pod_templates(docs)["database"]
    # The database is in the release namespace: reached across namespaces.
    assert connects(_policies(docs), _shard("team-a"), db, 5432)


def test_cluster_wide_admits_shards_of_any_namespace_and_renders_no_shard_policy() -> None:
    docs = render_chart({"rbac": {"clusterWide": True}})
    policies = _policies(docs)
    assert not [p for p in policies if p["metadata"]["name"].endswith("-shards")]
    db = _pod_templates(docs)["database"]
    assert allowed_ingress(policies, db, _shard("any-team"), 5432)


@pytest.mark.parametrize(
    ("values", "reachable", "unreachable"),
    [
        ({}, ["203.0.113.7"], []),
        ({"cidrs": ["203.0.113.0/24"]}, ["203.0.113.7"], ["198.51.100.1"]),
        ({"cidrs": ["203.0.113.0/24"], "port": 5433}, [], ["203.0.113.7"]),
    ],
)
def test_an_external_database(values: JSON, reachable: list[str], unreachable: list[str]) -> None:
    docs = render_chart(
        {
            "postgres": {"enabled": False},
            "database": {"url": "postgresql://u:p@db.example.com:5432/rap"},
            "networkPolicy": {"database": values},
        }
    )
    policies, pods = _policies(docs), _pod_templates(docs)
    assert find(docs, "NetworkPolicy", "rap-analyzer-postgres") == []
    for who in (pods["operator"], _shard(NS), pods["ledger-gc"]):
        for ip in reachable:
            assert allowed_egress(policies, who, ip, 5432), (who.labels, ip)
        for ip in unreachable:
            assert not allowed_egress(policies, who, ip, 5432), (who.labels, ip)


def test_search_ingress_from_its_peers() -> None:
    ingress_ns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    docs = render_chart(
        {"search": {"enabled": True}, "networkPolicy": {"search": {"from": [ingress_ns]}}}
    )
    policies, pods = _policies(docs), _pod_templates(docs)
    search = pods["search"]
    assert allowed_ingress(policies, search, Pod("ingress", {}), 8000)
    assert not allowed_ingress(policies, search, Pod("team-a", {}), 8000)
    assert connects(policies, search, pods["database"], 5432)
    assert not allowed_egress(policies, search, PUBLIC, 443)
    only(docs, "NetworkPolicy", "rap-analyzer-search")
    # Default: any pod in the cluster may call it (it has its own bearer token).
    default = render_chart({"search": {"enabled": True}})
    search = _pod_templates(default)["search"]
    assert allowed_ingress(_policies(default), search, Pod("team-a", {}), 8000)


def test_the_example_seed_job_reaches_the_database() -> None:
    """examples/seed-job.yaml, run in the release namespace, is a database client."""
    job = yaml.safe_load((ROOT / "examples" / "seed-job.yaml").read_text())
    seed = Pod(NS, job["spec"]["template"]["metadata"]["labels"])
    docs = render_chart()
    assert connects(_policies(docs), seed, _pod_templates(docs)["database"], 5432)
