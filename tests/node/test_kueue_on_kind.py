"""Kueue v0.17.0 built here (`make kueue kueue-image`), installed into the kind
cluster as users install it (rap_devtools.kueue), with plain Jobs shaped like
the operator's shard Jobs (Indexed, labelled with a queue):

- partial admission: 6 pods asked for, quota for 2 -> Kueue admits 2, sets the
  Job's parallelism to 2, and the Job completes;
- a LocalQueue that does not exist -> the Job stays suspended and its
  Workload says why;
- a higher-priority Job preempts a running one: the lower Job is suspended,
  its pods get SIGTERM, its Workload records the eviction, and it is admitted
  again and completes once the higher one is done.

What Kueue wrote (conditions, reasons, messages) is saved to
build/kueue-on-kind.json: the operator maps these onto a run's status.
"""

from __future__ import annotations

import json
import subprocess
import threading
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


def pods(c: KindCluster, job_name: str) -> list[dict[str, Any]]:
    out = kueue.kubectl(c, "get", "pods", "-n", NS, "-l", f"smoke-job={job_name}", "-o", "json")
    return json.loads(out.stdout)["items"]


def job_condition(c: KindCluster, name: str, type_: str) -> bool:
    return kueue.is_true(get_job(c, name), type_)


def state(c: KindCluster, *names: str) -> str:
    out = []
    for n in names:
        out.append(
            json.dumps(
                {
                    "job": get_job(c, n).get("status"),
                    "workload": (workload(c, n) or {}).get("status"),
                }
            )
        )
    return "\n".join(out)


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


def test_partial_admission(cluster: KindCluster) -> None:
    name = "partial"
    create(
        cluster, job(name, "partial", "sleep 3", parallelism=6, completions=6, min_parallelism=1)
    )
    wl = wait_for(
        lambda: (w := workload(cluster, name)) and kueue.is_true(w, "Admitted") and w,
        timeout=60, what="partial Job's Workload admitted", describe=lambda: state(cluster, name),
    )  # fmt: skip
    assert kueue.admitted_counts(wl) == {"main": 2}, wl["status"]
    assert get_job(cluster, name)["spec"]["parallelism"] == 2
    record("partial_admission", {
        "podSetAssignments": wl["status"]["admission"]["podSetAssignments"],
        "conditions": wl["status"]["conditions"],
        "job_parallelism": 2,
    })  # fmt: skip
    most_active = 0

    def complete() -> bool:
        nonlocal most_active
        j = get_job(cluster, name)
        most_active = max(most_active, j.get("status", {}).get("active", 0))
        return kueue.is_true(j, "Complete")

    wait_for(complete, timeout=240, interval=0.5, what="partial Job complete",
             describe=lambda: state(cluster, name))  # fmt: skip
    assert get_job(cluster, name)["status"]["succeeded"] == 6
    assert most_active <= 2


def test_missing_local_queue(cluster: KindCluster) -> None:
    name = "no-queue"
    create(cluster, job(name, "no-such-queue", "true", parallelism=1, completions=1))
    wl = wait_for(
        lambda: (w := workload(cluster, name)) and kueue.condition(w, "QuotaReserved") and w,
        timeout=60, what="a QuotaReserved condition on the Workload", describe=lambda: state(cluster, name),
    )  # fmt: skip
    reserved = kueue.condition(wl, "QuotaReserved")
    assert reserved is not None and reserved["status"] == "False", reserved
    record("missing_local_queue", {"conditions": wl["status"]["conditions"]})
    assert get_job(cluster, name)["spec"]["suspend"] is True
    assert pods(cluster, name) == []


# The low Job's pods say which signal stopped them (read through `kubectl logs
# -f`, which ends with the container) and exit 128+N as an untrapped one would.
LOW = (
    'trap "echo got SIGTERM; exit 143" TERM; trap "echo got SIGINT; exit 130" INT; '
    "echo started; sleep 45 & wait $!; echo done"
)


class ConditionHistory:
    """Every distinct set of a Job's Workload conditions, polled in a thread:
    Kueue moves through eviction, release of the quota and readmission within
    seconds, faster than a test can look at each step."""

    def __init__(self, cluster: KindCluster, job_name: str) -> None:
        self.cluster, self.job_name = cluster, job_name
        self.snapshots: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConditionHistory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                w = workload(self.cluster, self.job_name)
            except Exception:
                w = None
            if w is not None:
                conds = [
                    {k: c.get(k) for k in ("type", "status", "reason", "message")}
                    for c in w.get("status", {}).get("conditions", [])
                ]
                if conds != last:
                    self.snapshots.append(
                        {"t": round(time.monotonic() - self._start, 1), "conditions": conds}
                    )
                    last = conds
            self._stop.wait(0.2)

    def first(self, type_: str, status: str, after: int = 0) -> int | None:
        """Index of the first snapshot from ``after`` on with that condition."""
        for i, snap in enumerate(self.snapshots[after:], start=after):
            if any(c["type"] == type_ and c["status"] == status for c in snap["conditions"]):
                return i
        return None

    def get(self, i: int, type_: str) -> dict[str, Any]:
        (c,) = [c for c in self.snapshots[i]["conditions"] if c["type"] == type_]
        return c


def test_preemption_by_priority(cluster: KindCluster) -> None:
    low, high = "low", "high"
    create(cluster, job(low, "preempt", LOW, parallelism=2, completions=2, priority="low"))

    def low_running() -> list[dict[str, Any]] | None:
        ps = pods(cluster, low)
        running = [p for p in ps if p["status"].get("phase") == "Running"]
        return running if len(running) == 2 else None

    running = wait_for(low_running, timeout=120, what="the low Job's 2 pods Running",
                       describe=lambda: state(cluster, low))  # fmt: skip
    first_uids = {p["metadata"]["uid"] for p in running}
    followers = [
        subprocess.Popen(
            [
                str(kueue.KUBECTL),
                f"--kubeconfig={cluster.kubeconfig}",
                "logs",
                "-f",
                "-n",
                NS,
                p["metadata"]["name"],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in running
    ]
    with ConditionHistory(cluster, low) as history:
        try:
            # Both log streams attached (each has printed "started") before preempting.
            firsts = [f.stdout.readline() if f.stdout else "" for f in followers]
            assert firsts == ["started\n"] * 2, firsts
            create(cluster, job(high, "preempt", "sleep 5", parallelism=2, completions=2,
                                priority="high"))  # fmt: skip
            wait_for(lambda: get_job(cluster, low)["spec"].get("suspend") is True, timeout=60,
                     what="the low Job suspended", describe=lambda: state(cluster, low, high))  # fmt: skip
            suspended_job = get_job(cluster, low)
            logs = [
                first + f.communicate(timeout=60)[0]
                for first, f in zip(firsts, followers, strict=True)
            ]
        finally:
            for f in followers:
                if f.poll() is None:
                    f.kill()
        wait_for(lambda: job_condition(cluster, high, "Complete"), timeout=120,
                 what="the high Job complete", describe=lambda: state(cluster, low, high))  # fmt: skip
        wait_for(lambda: job_condition(cluster, low, "Complete"), timeout=180,
                 what="the low Job complete after readmission",
                 describe=lambda: state(cluster, low, high))  # fmt: skip
    done = get_job(cluster, low)
    record("preemption", {
        "low_workload_condition_history": history.snapshots,
        "low_job_spec_suspend_after_eviction": suspended_job["spec"].get("suspend"),
        "low_job_status_after_eviction": suspended_job.get("status"),
        "low_pod_logs": logs,
        "low_job_final_status": done["status"],
    })  # fmt: skip
    # The kubelet sent SIGTERM (the grace period let the trap run).
    for text in logs:
        assert text == "started\ngot SIGTERM\n", text
    evicted = history.first("Evicted", "True")
    assert evicted is not None, history.snapshots
    assert history.get(evicted, "Evicted")["reason"] == "Preempted"
    assert history.get(evicted, "Preempted")["reason"] == "InClusterQueue"
    released = history.first("QuotaReserved", "False", after=evicted)
    assert released is not None, history.snapshots
    readmitted = history.first("Admitted", "True", after=released)
    assert readmitted is not None, history.snapshots
    assert history.get(readmitted, "Evicted")["status"] == "False"
    assert done["status"]["succeeded"] == 2
    # New pods ran after readmission; the preempted ones are gone.
    assert not first_uids & {p["metadata"]["uid"] for p in pods(cluster, low)}


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
