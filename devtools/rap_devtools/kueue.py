"""Kueue v0.17.0 (our build, `make kueue kueue-image`) installed as users install it.

``bin/kueue-manifests.yaml`` is upstream's release manifest, rendered offline
from the pinned module (tools/build-kueue.sh). The pure functions here turn it
into what the tests install; the I/O functions install/uninstall it and create
the queue objects. See /work/shared/notes/kueue.md for why each change is made.

Everything talks to the cluster through bin/kubectl with an explicit
``--kubeconfig``: any cluster object with a ``kubeconfig`` path works (the kind
cluster of tests/node, or another).

    python -m rap_devtools.kueue manifests          # what we install, to stdout
    python -m rap_devtools.kueue install --kubeconfig K [--image I]
    python -m rap_devtools.kueue uninstall --kubeconfig K
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from rap_devtools.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSION = "v0.17.0"
IMAGE = f"rap-analyzer-kueue:{VERSION}"
MANIFESTS = REPO_ROOT / "bin" / "kueue-manifests.yaml"
KUBECTL = REPO_ROOT / "bin" / "kubectl"
NAMESPACE = "kueue-system"
DEPLOYMENT = "kueue-controller-manager"
CONFIG_MAP = "kueue-manager-config"
CONFIG_KEY = "controller_manager_config.yaml"
API_VERSION = "kueue.x-k8s.io/v1beta2"
GROUP = "kueue.x-k8s.io"

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
MIN_PARALLELISM = "kueue.x-k8s.io/job-min-parallelism"

# Webhooks kept: batch/Job and Kueue's own objects. Upstream also registers
# Pod/Deployment/StatefulSet hooks (failurePolicy Fail) which would make every
# Pod create in the cluster depend on Kueue answering, and hooks for
# frameworks that are not installed here.
KEPT_WEBHOOK_GROUPS = frozenset({"batch", GROUP})

Doc = dict[str, Any]


class Cluster(Protocol):
    @property
    def kubeconfig(self) -> Path: ...


# ----------------------------------------------------------------------------
# Pure: the rendered manifests -> what we install


def parse_manifests(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def configure(config_text: str) -> str:
    """Kueue's Configuration (the ConfigMap's file) as the tests run it."""
    config = yaml.safe_load(config_text)
    # Only batch/Job: the operator's shards are Jobs; the other frameworks'
    # CRDs are not installed and "pod"/"deployment"/"statefulset" would manage
    # every Pod.
    config["integrations"] = {**config.get("integrations", {}), "frameworks": ["batch/job"]}
    # A Job without a queue-name label (the chart's hook Jobs, anyone's) is
    # left alone.
    config["manageJobsWithoutQueueName"] = False
    # The on-demand visibility API is served through an aggregated APIService;
    # we do not install those (an APIService that does not answer breaks
    # discovery for every client), so the server is off too.
    gates = dict(config.get("featureGates") or {})
    gates["VisibilityOnDemand"] = False
    config["featureGates"] = gates
    return yaml.safe_dump(config, sort_keys=False)


def _webhook_kept(hook: Mapping[str, Any]) -> bool:
    groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
    return bool(groups) and groups <= KEPT_WEBHOOK_GROUPS


def _set_image(deployment: Doc, image: str, pull_policy: str) -> None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == "manager":
            container["image"] = image
            container["imagePullPolicy"] = pull_policy


def adapt(
    docs: Iterable[Doc], *, image: str = IMAGE, pull_policy: str = "IfNotPresent"
) -> list[Doc]:
    """Upstream's manifests with our image, without the visibility APIServices,
    with only the batch/Job framework and only its and Kueue's own webhooks.
    Returns new objects; ``docs`` is not changed."""
    out: list[Doc] = []
    for original in docs:
        doc = copy.deepcopy(original)
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name")
        if kind == "APIService" and doc["spec"].get("group") == f"visibility.{GROUP}":
            continue
        if kind == "Deployment" and name == DEPLOYMENT:
            _set_image(doc, image, pull_policy)
        elif kind == "ConfigMap" and name == CONFIG_MAP:
            doc["data"][CONFIG_KEY] = configure(doc["data"][CONFIG_KEY])
        elif kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            doc["webhooks"] = [w for w in doc["webhooks"] if _webhook_kept(w)]
        out.append(doc)
    return out


def dump(docs: Iterable[Doc]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def webhook_configurations(docs: Iterable[Doc]) -> list[tuple[str, str]]:
    """(kind, name) of the webhook configurations, which uninstall removes first."""
    return [
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d.get("kind") in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    ]


def crd_plurals(docs: Iterable[Doc]) -> list[str]:
    """``plural.group`` of Kueue's CRDs, for deleting their objects on uninstall."""
    return [
        f"{d['spec']['names']['plural']}.{d['spec']['group']}"
        for d in docs
        if d.get("kind") == "CustomResourceDefinition"
    ]


# ----------------------------------------------------------------------------
# Pure: queue objects


def resource_flavor(name: str = "default") -> Doc:
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceFlavor",
        "metadata": {"name": name},
        "spec": {},
    }


def cluster_queue(
    name: str,
    quotas: Mapping[str, str | int],
    *,
    flavor: str = "default",
    within_cluster_queue: str = "LowerPriority",
) -> Doc:
    """A ClusterQueue with one flavor and a nominal quota per resource.

    ``quotas`` may name ``pods`` (Kueue counts each pod of a Workload against
    it), so "room for 2 shard pods" is ``{"pods": 2}``. Every resource a Job
    requests must be covered, or Kueue never admits it.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            # {} = every namespace (Kueue's default, null, admits none).
            "namespaceSelector": {},
            "preemption": {"withinClusterQueue": within_cluster_queue},
            "resourceGroups": [
                {
                    "coveredResources": list(quotas),
                    "flavors": [
                        {
                            "name": flavor,
                            "resources": [
                                {"name": r, "nominalQuota": str(q)} for r, q in quotas.items()
                            ],
                        }
                    ],
                }
            ],
        },
    }


def local_queue(namespace: str, name: str, cluster_queue_name: str) -> Doc:
    return {
        "apiVersion": API_VERSION,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue_name},
    }


def workload_priority_class(name: str, value: int, description: str = "") -> Doc:
    doc: Doc = {
        "apiVersion": API_VERSION,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
    }
    if description:
        doc["description"] = description
    return doc


# ----------------------------------------------------------------------------
# Pure: reading Workloads


def workload_of(workloads: Iterable[Doc], job_uid: str) -> Doc | None:
    """The Workload Kueue made for the Job with this uid (its owner reference)."""
    for w in workloads:
        for ref in w.get("metadata", {}).get("ownerReferences", []):
            if ref.get("kind") == "Job" and ref.get("uid") == job_uid:
                return w
    return None


def condition(obj: Mapping[str, Any], type_: str) -> Doc | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def is_true(obj: Mapping[str, Any], type_: str) -> bool:
    c = condition(obj, type_)
    return c is not None and c.get("status") == "True"


def admitted_counts(workload: Mapping[str, Any]) -> dict[str, int]:
    """Pods admitted per pod set (status.admission.podSetAssignments[].count)."""
    admission = workload.get("status", {}).get("admission") or {}
    return {a["name"]: int(a.get("count", 0)) for a in admission.get("podSetAssignments", [])}


# ----------------------------------------------------------------------------
# I/O


def kubectl(
    cluster: Cluster, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(KUBECTL), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=input, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise RuntimeError(
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def apply(cluster: Cluster, *docs: Doc) -> None:
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-", input=dump(docs))


def get(cluster: Cluster, resource: str, name: str, namespace: str | None = None) -> Doc | None:
    ns = ["-n", namespace] if namespace else []
    r = kubectl(cluster, "get", resource, name, *ns, "-o", "json", check=False)
    if r.returncode != 0:
        if "NotFound" in r.stderr:
            return None
        raise RuntimeError(f"kubectl get {resource} {name}: {r.stderr}")
    return json.loads(r.stdout)


def installed_manifests(image: str = IMAGE, manifests: Path = MANIFESTS) -> list[Doc]:
    if not manifests.is_file():
        raise FileNotFoundError(f"{manifests} missing: run `make kueue`")
    return adapt(parse_manifests(manifests.read_text()), image=image)


def _probe_job(namespace: str) -> Doc:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"kueue-probe-{uuid.uuid4().hex[:8]}",
            "namespace": namespace,
            "labels": {QUEUE_LABEL: "kueue-probe"},
        },
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "probe", "command": ["true"]}],
                }
            }
        },
    }


def webhook_answers(cluster: Cluster, namespace: str = "default") -> bool:
    """A server-side dry-run create of a queue-labelled Job and of a
    ResourceFlavor: both go through Kueue's webhooks (failurePolicy Fail), so
    they succeed only once Kueue serves them with a certificate the API server
    trusts. Dry-run: nothing is stored."""
    docs = [_probe_job(namespace), resource_flavor(f"kueue-probe-{uuid.uuid4().hex[:8]}")]
    r = kubectl(cluster, "create", "--dry-run=server", "-f", "-", input=dump(docs), check=False)
    return r.returncode == 0


def _deployment_available(cluster: Cluster) -> bool:
    dep = get(cluster, "deployment", DEPLOYMENT, NAMESPACE)
    return dep is not None and is_true(dep, "Available")


def install(cluster: Cluster, *, image: str = IMAGE, timeout: float = 240) -> float:
    """Apply our manifests (the image must already be on the node: `kind load`)
    and wait until the controller is Available and its webhooks answer.
    Returns the seconds it took."""
    start = time.monotonic()
    # Server-side: the workloads CRD (~674 KB) is too big for the
    # last-applied annotation of a client-side apply.
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-",
            input=dump(installed_manifests(image)), timeout=timeout)  # fmt: skip

    def describe() -> str:
        pods = kubectl(cluster, "get", "pods", "-n", NAMESPACE, "-o", "wide", check=False)
        logs = kubectl(cluster, "logs", "-n", NAMESPACE, f"deployment/{DEPLOYMENT}", "--tail=20",
                       check=False)  # fmt: skip
        return f"{pods.stdout}{pods.stderr}\n{logs.stdout[-3000:]}{logs.stderr}"

    remaining = lambda: max(1.0, timeout - (time.monotonic() - start))  # noqa: E731
    wait_for(lambda: _deployment_available(cluster), timeout=remaining(), interval=1,
             what="Kueue's Deployment Available", describe=describe)  # fmt: skip
    # Available (readyz) can come before the webhook server has its
    # certificate and the API server's caBundle is patched in.
    wait_for(lambda: webhook_answers(cluster), timeout=remaining(), interval=1,
             what="Kueue's webhooks to answer", describe=describe)  # fmt: skip
    return time.monotonic() - start


def uninstall(cluster: Cluster, *, timeout: float = 180) -> None:
    """Remove Kueue and wait until its CRDs and namespace are gone.

    The webhook configurations go first: with failurePolicy Fail, every Job
    create in the cluster fails while they point at a Kueue that is gone.
    Kueue's objects carry finalizers that only its controller removes; those
    left once the controller is going (a Workload recreated for a Job that
    still exists) are cleared here, or the CRDs would never finish deleting.
    """
    docs = installed_manifests()
    for kind, name in webhook_configurations(docs):
        kubectl(cluster, "delete", kind, name, "--ignore-not-found")
    plurals = crd_plurals(docs)
    for plural in plurals:
        r = kubectl(cluster, "delete", plural, "--all", "--all-namespaces", "--ignore-not-found",
                    "--wait=false", check=False)  # fmt: skip
        # A CRD already gone (uninstalled before) is fine.
        if r.returncode != 0 and "doesn't have a resource type" not in r.stderr:
            raise RuntimeError(f"kubectl delete {plural} --all failed:\n{r.stderr}")
    kubectl(cluster, "delete", "-f", "-", "--ignore-not-found", "--wait=false", input=dump(docs))

    def gone() -> bool:
        left = False
        for plural in plurals:
            r = kubectl(cluster, "get", plural, "-A", "-o", "json", check=False)
            if r.returncode != 0:
                continue  # the CRD is gone
            for item in json.loads(r.stdout)["items"]:
                left = True
                meta = item["metadata"]
                ns = ["-n", meta["namespace"]] if meta.get("namespace") else []
                kubectl(cluster, "patch", plural, meta["name"], *ns, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
        if left or get(cluster, "namespace", NAMESPACE) is not None:
            return False
        return all(get(cluster, "crd", p) is None for p in plurals)

    wait_for(gone, timeout=timeout, interval=1, what="Kueue's CRDs and namespace deleted")


def job_workload(cluster: Cluster, namespace: str, job_name: str) -> Doc | None:
    """The Workload Kueue made for this Job, or None (no Job, or none yet)."""
    job = get(cluster, "job", job_name, namespace)
    if job is None:
        return None
    r = kubectl(cluster, "get", f"workloads.{GROUP}", "-n", namespace, "-o", "json")
    return workload_of(json.loads(r.stdout)["items"], job["metadata"]["uid"])


def main(argv: list[str] | None = None) -> None:
    import argparse
    from dataclasses import dataclass

    ap = argparse.ArgumentParser(prog="python -m rap_devtools.kueue")
    ap.add_argument("command", choices=("manifests", "install", "uninstall"))
    ap.add_argument("--kubeconfig", type=Path, help="install/uninstall: the cluster")
    ap.add_argument("--image", default=IMAGE)
    args = ap.parse_args(argv)
    if args.command == "manifests":
        print(dump(installed_manifests(args.image)), end="")
        return

    @dataclass
    class Target:
        kubeconfig: Path

    if args.kubeconfig is None:
        ap.error(f"{args.command} needs --kubeconfig")
    target = Target(args.kubeconfig.resolve())
    if args.command == "install":
        print(f"Kueue {VERSION} ready in {install(target, image=args.image):.0f} s")
    else:
        uninstall(target)


if __name__ == "__main__":
    main()
