"""Kueue v0.17.0 built here (`make kueue kueue-image`), installed into the kind
cluster as users install it (rap_devtools.kueue): the install is what we say
(our image, no visibility APIServices, Jobs without a queue label left alone),
the unit tests' manifest excerpt is still what `make kueue` renders, and an
uninstall leaves Job creation working.

What Kueue does with queued Jobs - partial admission, a LocalQueue that does not
exist, priority preemption with SIGTERM and readmission - is checked through the
product in test_kueue_runs_on_kind.py (the same Kueue, the operator's Jobs); the
exact conditions Kueue wrote when those were first checked with plain Jobs are
in docs/guides/kueue.md and the issue 24 notes.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rap_devtools import kueue
from rap_devtools.cluster import REPO_ROOT
from rap_devtools.kind import KindCluster
from rap_devtools.waiting import wait_for

NS = "kueue-smoke"
# The shard pods' own image (the kind_cluster fixture loads it). Not the
# Postgres image: its STOPSIGNAL is SIGINT, which the kubelet sends instead of
# SIGTERM.
IMAGE = "rap-analyzer:dev"
EXCERPT = REPO_ROOT / "tests" / "fixtures" / "kueue-v0.17.0-excerpt.yaml"
OBSERVED = REPO_ROOT / "build" / "kueue-on-kind.json"
observed: dict[str, Any] = {}


def record(key: str, value: Any) -> None:
    observed[key] = value
    OBSERVED.parent.mkdir(exist_ok=True)
    OBSERVED.write_text(json.dumps(observed, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def cluster(kind_cluster: KindCluster) -> Iterator[KindCluster]:
    if not kueue.MANIFESTS.is_file():
        pytest.fail(f"{kueue.MANIFESTS} is missing: run `make kueue`", pytrace=False)
    if subprocess.run(["docker", "image", "inspect", kueue.IMAGE], capture_output=True).returncode:
        pytest.fail(f"{kueue.IMAGE} is missing: run `make kueue-image`", pytrace=False)
    start = time.monotonic()
    kind_cluster.load_docker_images([kueue.IMAGE])
    record("kind_load_seconds", round(time.monotonic() - start, 1))
    record("install_seconds", round(kueue.install(kind_cluster), 1))
    kueue.kubectl(kind_cluster, "create", "namespace", NS)
    kueue.apply(
        kind_cluster,
        kueue.resource_flavor("default"),
        kueue.workload_priority_class("low", 100, "preemptible"),
        kueue.workload_priority_class("high", 1000, "preempts low"),
        kueue.cluster_queue("smoke-partial", {"cpu": "1", "pods": 2}),
        kueue.cluster_queue("smoke-preempt", {"cpu": "1", "pods": 2}),
        kueue.local_queue(NS, "partial", "smoke-partial"),
        kueue.local_queue(NS, "preempt", "smoke-preempt"),
    )
    yield kind_cluster
    kueue.kubectl(kind_cluster, "delete", "namespace", NS, "--ignore-not-found", "--wait",
                  timeout=180)  # fmt: skip
    kueue.uninstall(kind_cluster)


def job(
    name: str,
    queue: str,
    script: str,
    *,
    parallelism: int,
    completions: int,
    priority: str | None = None,
    min_parallelism: int | None = None,
) -> dict[str, Any]:
    """An Indexed Job queued in ``queue``, as the operator's shard Jobs are."""
    labels = {kueue.QUEUE_LABEL: queue}
    if priority:
        labels[kueue.PRIORITY_LABEL] = priority
    annotations = {}
    if min_parallelism is not None:
        annotations[kueue.MIN_PARALLELISM] = str(min_parallelism)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels, "annotations": annotations},
        "spec": {
            "completionMode": "Indexed",
            "parallelism": parallelism,
            "completions": completions,
            # Pods deleted by a suspension may be counted as failed (recorded below).
            "backoffLimit": 10,
            "template": {
                "metadata": {"labels": {"smoke-job": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 20,
                    "containers": [
                        {
                            "name": "shard",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script],
                            # Only resources the ClusterQueue covers (cpu, and
                            # pods, which Kueue counts by itself).
                            "resources": {"requests": {"cpu": "10m"}},
                        }
                    ],
                },
            },
        },
    }


def create(c: KindCluster, doc: dict[str, Any]) -> None:
    kueue.kubectl(c, "create", "-f", "-", input=json.dumps(doc))


def get_job(c: KindCluster, name: str) -> dict[str, Any]:
    found = kueue.get(c, "job", name, NS)
    assert found is not None, name
    return found


def workload(c: KindCluster, name: str) -> dict[str, Any] | None:
    return kueue.job_workload(c, NS, name)


def job_condition(c: KindCluster, name: str, type_: str) -> bool:
    return kueue.is_true(get_job(c, name), type_)


def test_manifest_excerpt_matches_the_render() -> None:
    """The unit tests' excerpt is still what `make kueue` renders."""
    render = kueue.parse_manifests(kueue.MANIFESTS.read_text())
    excerpt = kueue.parse_manifests(EXCERPT.read_text())
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    by_key = {key(d): d for d in render}
    for doc in excerpt:
        assert by_key.get(key(doc)) == doc, key(doc)


def test_installed_as_configured(cluster: KindCluster) -> None:
    dep = kueue.get(cluster, "deployment", kueue.DEPLOYMENT, kueue.NAMESPACE)
    assert dep is not None
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == kueue.IMAGE
    (pod,) = json.loads(
        kueue.kubectl(cluster, "get", "pods", "-n", kueue.NAMESPACE, "-o", "json").stdout
    )["items"]
    assert pod["status"]["containerStatuses"][0]["ready"] is True
    # The visibility APIServices are absent, so discovery is whole.
    assert (
        kueue.kubectl(
            cluster, "get", "apiservices", "v1beta2.visibility.kueue.x-k8s.io", check=False
        ).returncode
        != 0
    )
    assert kueue.kubectl(cluster, "api-resources").returncode == 0
    # A Job without a queue label is left alone (manageJobsWithoutQueueName: false).
    plain = job("plain", "unused", "true", parallelism=1, completions=1)
    del plain["metadata"]["labels"][kueue.QUEUE_LABEL]
    create(cluster, plain)
    assert get_job(cluster, "plain")["spec"].get("suspend") is False
    wait_for(
        lambda: job_condition(cluster, "plain", "Complete"), timeout=120, what="plain Job complete"
    )
    assert workload(cluster, "plain") is None


def test_uninstall_frees_job_creation(cluster: KindCluster) -> None:
    """After uninstall (webhook configurations first) Jobs can be created
    again; with Kueue stopped but its webhooks left, they could not. Last in
    the module: the fixture's own uninstall then finds nothing to do."""
    kueue.uninstall(cluster)
    for kind, name in kueue.webhook_configurations(kueue.installed_manifests()):
        assert kueue.kubectl(cluster, "get", kind, name, check=False).returncode != 0
    create(cluster, job("after-uninstall", "partial", "true", parallelism=1, completions=1))
    assert get_job(cluster, "after-uninstall")["spec"].get("suspend") is not True
    wait_for(lambda: job_condition(cluster, "after-uninstall", "Complete"), timeout=120,
             what="a queue-labelled Job runs with Kueue gone")  # fmt: skip
