"""rap_devtools.kueue's pure side: upstream's Kueue v0.17.0 manifests (an
excerpt of the render, tests/fixtures/kueue-v0.17.0-excerpt.yaml) turned into
what the kind tests install, and the queue objects and Workload readers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_devtools import kueue

EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "kueue-v0.17.0-excerpt.yaml"


@pytest.fixture(scope="module")
def upstream() -> list[dict[str, Any]]:
    return kueue.parse_manifests(EXCERPT.read_text())


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def manager(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (dep,) = by_kind(docs, "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return container


def config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = by_kind(docs, "ConfigMap")
    return yaml.safe_load(cm["data"][kueue.CONFIG_KEY])


def test_image_is_ours_and_never_pulled(upstream: list[dict[str, Any]]) -> None:
    assert "k8s-staging-images/kueue" in manager(upstream)["image"]
    out = kueue.adapt(upstream, image="rap-analyzer-kueue:v0.17.0", pull_policy="Never")
    assert manager(out)["image"] == "rap-analyzer-kueue:v0.17.0"
    assert manager(out)["imagePullPolicy"] == "Never"
    assert manager(kueue.adapt(upstream))["imagePullPolicy"] == "IfNotPresent"


def test_input_is_not_changed(upstream: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(upstream)
    kueue.adapt(upstream)
    assert upstream == before


def test_visibility_apiservices_dropped_and_gate_off(upstream: list[dict[str, Any]]) -> None:
    assert len(by_kind(upstream, "APIService")) == 2
    out = kueue.adapt(upstream)
    assert by_kind(out, "APIService") == []
    assert config(out)["featureGates"] == {"VisibilityOnDemand": False}
    # A gate in the file and --feature-gates on the command line are refused together.
    assert not any(a.startswith("--feature-gates") for a in manager(out)["args"])


def test_configuration_only_batch_job_and_only_labelled_jobs(
    upstream: list[dict[str, Any]],
) -> None:
    before = config(upstream)
    assert "pod" in before["integrations"]["frameworks"]
    after = config(kueue.adapt(upstream))
    assert after["integrations"]["frameworks"] == ["batch/job"]
    assert after["manageJobsWithoutQueueName"] is False
    # The rest of upstream's configuration is kept as it was.
    for key in ("health", "metrics", "webhook", "leaderElection", "controller", "clientConnection"):
        assert after[key] == before[key]
    assert after["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"


def test_only_job_and_kueue_webhooks_remain(upstream: list[dict[str, Any]]) -> None:
    out = kueue.adapt(upstream)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (before,) = by_kind(upstream, kind)
        (after,) = by_kind(out, kind)
        names = {w["name"] for w in after["webhooks"]}
        assert {"mpod.kb.io", "vpod.kb.io", "mdeployment.kb.io", "vstatefulset.kb.io"}.isdisjoint(
            names
        )
        assert {"mjob.kb.io", "vjob.kb.io"} & names
        groups = {g for w in after["webhooks"] for r in w["rules"] for g in r["apiGroups"]}
        assert groups == {"batch", "kueue.x-k8s.io"}
        resources = {res for w in after["webhooks"] for r in w["rules"] for res in r["resources"]}
        assert {"pods", "deployments", "statefulsets", "jobsets", "rayjobs"}.isdisjoint(resources)
        # Kept hooks are upstream's, unchanged (failurePolicy, service, paths).
        kept = [w for w in before["webhooks"] if w["name"] in names]
        assert after["webhooks"] == kept
    mutating = {w["name"] for w in by_kind(out, "MutatingWebhookConfiguration")[0]["webhooks"]}
    assert {
        "mjob.kb.io",
        "mworkload.kb.io",
        "mclusterqueue.kb.io",
        "mresourceflavor.kb.io",
    } <= mutating


def test_other_documents_pass_through(upstream: list[dict[str, Any]]) -> None:
    out = kueue.adapt(upstream)
    assert by_kind(out, "Namespace") == by_kind(upstream, "Namespace")
    assert by_kind(out, "CustomResourceDefinition") == by_kind(upstream, "CustomResourceDefinition")
    assert len(out) == len(upstream) - 2


def test_uninstall_order_inputs(upstream: list[dict[str, Any]]) -> None:
    out = kueue.adapt(upstream)
    assert kueue.webhook_configurations(out) == [
        ("MutatingWebhookConfiguration", "kueue-mutating-webhook-configuration"),
        ("ValidatingWebhookConfiguration", "kueue-validating-webhook-configuration"),
    ]
    assert kueue.crd_plurals(out) == ["workloadpriorityclasses.kueue.x-k8s.io"]


def test_dump_round_trips(upstream: list[dict[str, Any]]) -> None:
    out = kueue.adapt(upstream)
    assert kueue.parse_manifests(kueue.dump(out)) == out


def test_cluster_queue_with_pod_quota() -> None:
    cq = kueue.cluster_queue("shards", {"cpu": "1", "pods": 2})
    assert cq["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    spec = cq["spec"]
    assert spec["namespaceSelector"] == {}
    assert spec["preemption"] == {"withinClusterQueue": "LowerPriority"}
    (group,) = spec["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "pods"]
    assert group["flavors"] == [
        {
            "name": "default",
            "resources": [
                {"name": "cpu", "nominalQuota": "1"},
                {"name": "pods", "nominalQuota": "2"},
            ],
        }
    ]


def test_queue_objects() -> None:
    assert kueue.resource_flavor("f")["kind"] == "ResourceFlavor"
    lq = kueue.local_queue("ns", "q", "shards")
    assert lq["metadata"] == {"name": "q", "namespace": "ns"}
    assert lq["spec"] == {"clusterQueue": "shards"}
    pc = kueue.workload_priority_class("high", 1000, "urgent")
    assert (pc["kind"], pc["value"], pc["description"]) == ("WorkloadPriorityClass", 1000, "urgent")
    assert "description" not in kueue.workload_priority_class("low", 1)


def test_workload_of_follows_the_job_owner_reference() -> None:
    def wl(name: str, kind: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "ownerReferences": [{"kind": kind, "uid": uid}]}}

    workloads = [wl("a", "Job", "u1"), wl("b", "JobSet", "u2"), wl("c", "Job", "u2")]
    # found: workload_of returns None only when no workload matches
    assert kueue.workload_of(workloads, "u2")["metadata"]["name"] == "c"  # type: ignore[index]
    assert kueue.workload_of(workloads, "u3") is None


def test_conditions_and_admitted_counts() -> None:
    workload = {
        "status": {
            "conditions": [
                {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"},
                {"type": "Admitted", "status": "False", "reason": "NoChecks"},
            ],
            "admission": {
                "clusterQueue": "shards",
                "podSetAssignments": [{"name": "main", "count": 2}],
            },
        }
    }
    assert kueue.is_true(workload, "QuotaReserved")
    assert not kueue.is_true(workload, "Admitted")
    assert not kueue.is_true(workload, "Evicted")
    assert kueue.condition(workload, "Admitted") == {
        "type": "Admitted",
        "status": "False",
        "reason": "NoChecks",
    }
    assert kueue.admitted_counts(workload) == {"main": 2}
    assert kueue.admitted_counts({"status": {}}) == {}
