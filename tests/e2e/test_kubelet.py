"""The process kubelet's contract, which the operator e2e tests build on:
env resolution, exit codes, logs, deletion signals, restarts, the pod limit,
and credentials for a ServiceAccount."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rap_devtools.cluster import LocalCluster
from rap_devtools.kubeapi import KubeApi
from rap_devtools.procs import pid_alive
from rap_devtools.waiting import wait_for

from tests.e2e.helpers import PYTHON, describe_pods, gone

pytestmark = pytest.mark.e2e
JSON = dict[str, Any]


def pod(name: str, command: list[str], **spec: Any) -> JSON:
    container = {"name": "main", "image": "ignored", "command": command}
    container.update(spec.pop("container", {}))
    body: JSON = {"metadata": {"name": name, **spec.pop("metadata", {})}}
    body["spec"] = {"restartPolicy": "Never", "containers": [container], **spec}
    return body


def pods(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def phase_is(kube: KubeApi, ns: str, name: str, *phases: str) -> JSON | None:
    p = kube.get(f"{pods(ns)}/{name}")
    return p if p["status"].get("phase") in phases else None


def terminated(p: JSON) -> JSON:
    return p["status"]["containerStatuses"][0]["state"]["terminated"]


DUMP_ENV = textwrap.dedent(
    """
    import json, os, sys
    json.dump({"env": dict(os.environ), "argv": sys.argv[1:], "cwd": os.getcwd()},
              open("env.json", "w"))
    """
)


def test_env_workdir_and_args_resolved_like_the_kubelet(
    kube: KubeApi, namespace: str, tmp_path: Path
) -> None:
    ns = namespace
    kube.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"},
              "stringData": {"password": "hunter2"}})  # fmt: skip
    kube.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "cm"},
              "data": {"mode": "fast", "A": "1", "B": "2"}})  # fmt: skip
    workdir = tmp_path / "not" / "yet"
    env = [
        {"name": "GREETING", "value": "hi"},
        {"name": "SENTENCE", "value": "$(GREETING) there, $(UNKNOWN) $$(GREETING)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "IDX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": True}}},
        {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]  # fmt: skip
    body = pod(
        "env",
        [PYTHON, "-c", DUMP_ENV],
        metadata={
            "labels": {"app": "demo"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "4"},
        },
        container={
            "args": ["$(GREETING)", "$(POD)"],
            "workingDir": str(workdir),
            "env": env,
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "resources": {"limits": {"cpu": "1500m"}},
        },
    )
    created = kube.post(pods(ns), body)

    done = wait_for(lambda: phase_is(kube, ns, "env", "Succeeded", "Failed"), timeout=60,
                    what="pod env to finish", describe=lambda: describe_pods(kube, ns))  # fmt: skip

    assert done["status"]["phase"] == "Succeeded", terminated(done)
    assert terminated(done)["exitCode"] == 0
    assert terminated(done)["reason"] == "Completed"
    out = json.loads((workdir / "env.json").read_text())
    e = out["env"]
    assert out["argv"] == ["hi", "env"]
    assert Path(out["cwd"]) == workdir
    assert e["SENTENCE"] == "hi there, $(UNKNOWN) $(GREETING)"
    assert (e["POD"], e["NS"], e["UID"]) == ("env", ns, created["metadata"]["uid"])
    assert (e["APP"], e["IDX"], e["POD_IP"]) == ("demo", "4", "127.0.0.1")
    assert e["NODE"] == done["spec"]["nodeName"]
    assert (e["PASSWORD"], e["MODE"], e["CPUS"]) == ("hunter2", "fast", "2")
    assert (e["CM_A"], e["CM_B"], e["CM_mode"]) == ("1", "2", "fast")
    assert "OPT" not in e
    # `python` in a pod is the project's interpreter.
    assert e["PATH"].split(":")[0] == str(Path(PYTHON).parent)


def test_missing_secret_waits_then_runs(kube: KubeApi, namespace: str) -> None:
    ref = {"secretKeyRef": {"name": "late", "key": "k"}}
    kube.post(pods(namespace), pod("late", ["sh", "-c", "exit 0"],
              container={"env": [{"name": "K", "valueFrom": ref}]}))  # fmt: skip

    def waiting_reason() -> str | None:
        p = kube.get(f"{pods(namespace)}/late")
        statuses = p["status"].get("containerStatuses") or [{}]
        return (statuses[0].get("state") or {}).get("waiting", {}).get("reason")

    assert (
        wait_for(waiting_reason, timeout=30, what="waiting state") == "CreateContainerConfigError"
    )
    kube.post(f"/api/v1/namespaces/{namespace}/secrets",
              {"metadata": {"name": "late"}, "stringData": {"k": "v"}})  # fmt: skip
    wait_for(lambda: phase_is(kube, namespace, "late", "Succeeded"), timeout=30, what="pod runs")


def test_exit_code_and_log_file(cluster: LocalCluster, kube: KubeApi, namespace: str) -> None:
    kube.post(
        pods(namespace), pod("fails", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"])
    )
    done = wait_for(lambda: phase_is(kube, namespace, "fails", "Failed"), timeout=30, what="Failed")
    assert terminated(done)["exitCode"] == 7
    assert terminated(done)["reason"] == "Error"
    log = cluster.kubelet.read_log(namespace, "fails")
    assert "to-stdout" in log and "to-stderr" in log
    assert cluster.kubelet.log_path(namespace, "fails").name == f"{namespace}_fails.log"


ON_SIGTERM = textwrap.dedent(
    """
    import signal, sys
    def bye(*_):
        print("got SIGTERM", flush=True)
        sys.exit(0)
    if sys.argv[1] == "polite":
        signal.signal(signal.SIGTERM, bye)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:  # until a signal ends it: the kubelet's SIGTERM, or its SIGKILL
        signal.pause()
    """
)


def test_delete_sends_sigterm_then_sigkill(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    for name in ("polite", "stubborn"):
        kube.post(pods(namespace), pod(name, [PYTHON, "-c", ON_SIGTERM, name],
                  terminationGracePeriodSeconds=2))  # fmt: skip
    pids = {}
    for name in ("polite", "stubborn"):
        wait_for(lambda n=name: "ready" in cluster.kubelet.read_log(namespace, n), timeout=30,
                 what=f"{name} to start")  # fmt: skip
        pids[name] = cluster.kubelet.pid_of(namespace, name)
        assert pids[name] and pid_alive(pids[name])
        kube.delete(f"{pods(namespace)}/{name}")

    for name, pid in pids.items():
        wait_for(lambda p=pid: not pid_alive(p), timeout=15, what=f"{name} process to end")
        wait_for(lambda n=name: gone(kube, f"{pods(namespace)}/{n}"), timeout=15,
                 what=f"pod {name} to be removed")  # fmt: skip
        assert cluster.kubelet.pid_of(namespace, name) is None
    assert "got SIGTERM" in cluster.kubelet.read_log(namespace, "polite")


def test_restart_policy_on_failure(kube: KubeApi, namespace: str, tmp_path: Path) -> None:
    script = f"test -e {tmp_path}/again || {{ touch {tmp_path}/again; exit 3; }}"
    kube.post(pods(namespace), pod("retry", ["sh", "-c", script], restartPolicy="OnFailure"))
    done = wait_for(lambda: phase_is(kube, namespace, "retry", "Succeeded"), timeout=30,
                    what="Succeeded after a restart", describe=lambda: describe_pods(kube, namespace))  # fmt: skip
    status = done["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 3


def test_pod_limit(cluster: LocalCluster, kube: KubeApi, namespace: str) -> None:
    limit = cluster.max_pods
    for i in range(limit + 2):
        kube.post(
            pods(namespace), pod(f"sleep-{i}", ["sleep", "300"], terminationGracePeriodSeconds=1)
        )

    def counts() -> tuple[int, int]:
        items = kube.get(pods(namespace))["items"]
        running = sum(1 for p in items if p["status"].get("phase") == "Running")
        unbound = sum(1 for p in items if not p["spec"].get("nodeName"))
        return running, unbound

    wait_for(lambda: counts() == (limit, 2), timeout=60, what=f"{limit} running, 2 waiting",
             describe=lambda: str(counts()))  # fmt: skip
    running = next(p for p in kube.get(pods(namespace))["items"] if p["spec"].get("nodeName"))
    kube.delete(f"{pods(namespace)}/{running['metadata']['name']}")
    wait_for(lambda: counts() == (limit, 1), timeout=30, what="a waiting pod to take the slot",
             describe=lambda: str(counts()))  # fmt: skip


def test_serviceaccount_kubeconfig_has_only_its_rbac(
    cluster: LocalCluster, kube: KubeApi, namespace: str
) -> None:
    kube.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "op"}})
    binding = {
        "metadata": {"name": "op-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": namespace}],
    }
    kube.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", binding)
    kc = cluster.make_kubeconfig_for_serviceaccount(namespace, "op")

    who = cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kc
    )
    assert who.stdout == f"system:serviceaccount:{namespace}:op", who.stderr
    # "view" gets its rules from the clusterrole-aggregation controller.
    wait_for(lambda: cluster.kubectl("get", "pods", "-n", namespace, kubeconfig=kc).returncode == 0,
             timeout=30, what="view access")  # fmt: skip
    denied = cluster.kubectl("get", "secrets", "-n", namespace, kubeconfig=kc)
    assert denied.returncode != 0 and "forbidden" in denied.stderr

    user_kc = cluster.make_kubeconfig_for_user("alice", ("devs",))
    alice = cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=user_kc)
    info = json.loads(alice.stdout)["status"]["userInfo"]
    assert info["username"] == "alice" and "devs" in info["groups"]
