"""The proof that the local control plane behaves like Kubernetes where the
operator depends on it: Indexed Jobs and per-index retries, garbage
collection through owner references, CRD schemas and printer columns, and a
clean teardown."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from rap_devtools.cluster import LocalCluster
from rap_devtools.kubeapi import KubeApi
from rap_devtools.procs import pid_alive, start_time, survivors
from rap_devtools.waiting import wait_for

from tests.e2e.conftest import require_controlplane_binaries
from tests.e2e.helpers import (
    PYTHON,
    condition,
    describe_pods,
    finished_job,
    gone,
    indexed_job,
    jobs_path,
    pods_of_job,
)

pytestmark = pytest.mark.e2e


def test_indexed_job_writes_one_file_per_index(
    kube: KubeApi, namespace: str, tmp_path: Path
) -> None:
    script = f'echo "$JOB_COMPLETION_INDEX" > {tmp_path}/out-$JOB_COMPLETION_INDEX'
    kube.post(
        jobs_path(namespace),
        indexed_job("writer", ["sh", "-c", script], completions=3, parallelism=2),
    )

    job = wait_for(
        lambda: finished_job(kube, namespace, "writer"),
        timeout=90,
        what="Job writer to finish",
        describe=lambda: describe_pods(kube, namespace),
    )

    assert condition(job, "Complete"), job["status"]
    assert job["status"]["succeeded"] == 3
    assert job["status"]["completedIndexes"] == "0-2"
    for i in range(3):
        assert (tmp_path / f"out-{i}").read_text().strip() == str(i)


# Index 1 fails on its first attempt only (a marker file remembers it).
FLAKY_INDEX = textwrap.dedent(
    """
    import os, pathlib, sys
    i = os.environ["JOB_COMPLETION_INDEX"]
    marker = pathlib.Path(sys.argv[1]) / f"attempted-{i}"
    first = not marker.exists()
    marker.touch()
    print("index", i, "first attempt" if first else "retry", flush=True)
    sys.exit(1 if i == "1" and first else 0)
    """
)


@pytest.mark.parametrize("per_index", [1, 0], ids=["retried", "not-retried"])
def test_backoff_limit_per_index(
    kube: KubeApi, namespace: str, tmp_path: Path, per_index: int
) -> None:
    command = [PYTHON, "-c", FLAKY_INDEX, str(tmp_path)]
    kube.post(
        jobs_path(namespace),
        indexed_job(
            "flaky", command, completions=3, parallelism=3, backoff_limit_per_index=per_index
        ),
    )

    # The Job controller waits ~10 s before re-creating a failed index.
    job = wait_for(
        lambda: finished_job(kube, namespace, "flaky"),
        timeout=120,
        what="Job flaky to finish",
        describe=lambda: describe_pods(kube, namespace),
    )

    status = job["status"]
    if per_index == 1:
        assert condition(job, "Complete"), status
        assert status["completedIndexes"] == "0-2"
        assert status["failed"] == 1
    else:
        failed = condition(job, "Failed")
        assert failed, status
        assert failed["reason"] == "FailedIndexes"
        assert status["failedIndexes"] == "1"
        assert status["completedIndexes"] == "0,2"
    failed_pods = [
        p for p in pods_of_job(kube, namespace, "flaky") if p["status"].get("phase") == "Failed"
    ]
    assert failed_pods, "the failed attempt's pod should still be there"
    terminated = failed_pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    assert terminated["reason"] == "Error"


def test_job_owned_by_configmap_is_garbage_collected(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    cm = kube.post(
        f"/api/v1/namespaces/{namespace}/configmaps", {"metadata": {"name": "owner"}, "data": {}}
    )
    owner = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": cm["metadata"]["uid"],
    }
    kube.post(
        jobs_path(namespace),
        indexed_job("owned", ["sleep", "300"], completions=1, parallelism=1, owner=owner),
    )
    pod_name = wait_for(
        lambda: next(
            (
                p["metadata"]["name"]
                for p in pods_of_job(kube, namespace, "owned")
                if cluster.kubelet.pid_of(namespace, p["metadata"]["name"])
            ),
            None,
        ),
        timeout=60,
        what="the owned Job's pod to run",
        describe=lambda: describe_pods(kube, namespace),
    )
    pid = cluster.kubelet.pid_of(namespace, pod_name)
    assert pid is not None

    kube.delete(f"/api/v1/namespaces/{namespace}/configmaps/owner")

    wait_for(lambda: gone(kube, f"{jobs_path(namespace)}/owned"), timeout=60, what="Job GC")
    wait_for(
        lambda: not pods_of_job(kube, namespace, "owned"),
        timeout=60,
        what="the Job's pods to be deleted",
        describe=lambda: describe_pods(kube, namespace),
    )
    wait_for(lambda: not pid_alive(pid), timeout=30, what=f"pod process {pid} to stop")


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.rapanalyzer.io
spec:
  group: e2e.rapanalyzer.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue]}
"""


def widget(name: str, size: int, color: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: e2e.rapanalyzer.io/v1
        kind: Widget
        metadata: {{name: {name}}}
        spec: {{size: {size}, color: {color}}}
        """
    )


def test_crd_schema_and_printer_columns(cluster: LocalCluster, namespace: str) -> None:
    applied = cluster.kubectl("apply", "-f", "-", input=CRD)
    assert applied.returncode == 0, applied.stderr
    try:
        established = cluster.kubectl(
            "wait", "--for=condition=Established", "crd/widgets.e2e.rapanalyzer.io", "--timeout=60s"
        )
        assert established.returncode == 0, established.stderr

        # kubectl's discovery may lag the brand-new type for a moment.
        def apply_valid() -> bool:
            r = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=widget("good", 3, "red"))
            assert "no matches for kind" in r.stderr or r.returncode == 0, r.stderr
            return r.returncode == 0

        wait_for(apply_valid, timeout=30, what="a valid Widget to be accepted")

        bad = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=widget("bad", 50, "green"))
        assert bad.returncode != 0
        assert "spec.size: Invalid value: 50" in bad.stderr
        assert "should be less than or equal to 10" in bad.stderr
        assert 'spec.color: Unsupported value: "green"' in bad.stderr

        table = cluster.kubectl("get", "widgets", "-n", namespace)
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        assert header.split() == ["NAME", "SIZE", "COLOR", "AGE"]
        assert [r.split()[:3] for r in rows] == [["good", "3", "red"]]
    finally:
        cluster.kubectl("delete", "crd", "widgets.e2e.rapanalyzer.io", "--wait=false")


def test_no_processes_left_behind(tmp_path: Path) -> None:
    """A cluster of its own, with a pod that forked a child, torn down: every
    PID it started is gone, so is every process in their groups, and so is
    its temp dir. Also holds the warm start to its budget."""
    max_start = float(os.environ.get("RAP_E2E_MAX_START_SECONDS", "15"))
    c = LocalCluster(bin_dir=require_controlplane_binaries())
    c.start()
    try:
        kube = c.kube_api()
        pod = {
            "metadata": {"name": "sleeper"},
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [
                    {"name": "main", "image": "x", "command": ["sh", "-c", "sleep 300 & wait"]}
                ],
            },
        }
        kube.post("/api/v1/namespaces/default/pods", pod)
        kube.close()
        wait_for(lambda: c.kubelet.pid_of("default", "sleeper"), timeout=60, what="pod start")
        pids = c.pids()
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kubelet"} <= set(pids)
        assert "pod:default_sleeper" in pids
        # Every member of the cluster's process groups (the pod's forked
        # `sleep` too), identified by (pid, start time) so a PID the kernel
        # reuses after teardown is not mistaken for a survivor.
        groups = set(pids.values())

        def members() -> dict[int, str | None]:
            found = {pid: start_time(pid) for pid in _all_pids() if _pgid(pid) in groups}
            return found if len(found) > len(pids) else {}  # the pod's `sleep` forked

        identities = wait_for(members, timeout=10, what="the pod's child process")
        workdir = c.workdir
        start_seconds = c.start_seconds
    finally:
        c.stop()

    left = survivors(identities)
    assert not left, f"still running after stop(): {left} of {pids}"
    assert not workdir.exists()
    assert start_seconds is not None and start_seconds < max_start, start_seconds


def _all_pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
