"""The process kubelet's Node object and heartbeat (status + Lease)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import threading
from collections.abc import Callable
from typing import Any

from rap_devtools.kubeapi import MERGE, ApiError, KubeApi

log = logging.getLogger("rap_devtools.kubelet")
JSON = dict[str, Any]
LEASE_SECONDS = 40


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime, the format Lease.spec.renewTime wants."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _memory_ki() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 4 * 1024 * 1024


class NodeAgent:
    def __init__(
        self, api: KubeApi, name: str, max_pods: int, heartbeat_seconds: float = 10.0
    ) -> None:
        self.api = api
        self.name = name
        self.heartbeat_seconds = heartbeat_seconds
        self.allocatable = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{_memory_ki()}Ki",
            "pods": str(max_pods),
            "ephemeral-storage": "100Gi",
        }
        self.arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        )
        self.on_registered: Callable[[], None] | None = None
        self._lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": self.arch,
                    "rapanalyzer.io/process-kubelet": "true",
                },
            },
        }
        try:
            self.api.post("/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
        # The TaintNodesByCondition admission plugin adds a not-ready taint at
        # creation; the node lifecycle controller would lift it once Ready.
        # That controller does not run here, so lift it ourselves.
        self.api.patch(f"/api/v1/nodes/{self.name}", {"spec": {"taints": None}}, MERGE)
        self._patch_status()
        self._renew_lease()
        if self.on_registered:
            self.on_registered()

    def _patch_status(self) -> None:
        now = now_rfc3339()

        def cond(ctype: str, status: str, reason: str, message: str) -> JSON:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        version = self.api.get("/version").get("gitVersion", "v0.0.0")
        status = {
            "capacity": self.allocatable,
            "allocatable": self.allocatable,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                cond("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "process kubelet (rap-analyzer dev tools)",
                "containerRuntimeVersion": "process://local",
                "kubeletVersion": version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": self.arch,
            },
        }
        # lastTransitionTime is rewritten on every heartbeat; harmless here
        # and it keeps the patch a single idempotent merge.
        self.api.patch(f"/api/v1/nodes/{self.name}/status", {"status": status})

    def _renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        }
        try:
            self.api.patch(self._lease_path, {"spec": spec}, MERGE)
        except ApiError as e:
            if e.status != 404:
                raise
            node = self.api.get(f"/api/v1/nodes/{self.name}")
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": "kube-node-lease",
                    # Like the kubelet: deleting the Node deletes its Lease.
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.name,
                            "uid": node["metadata"]["uid"],
                        }
                    ],
                },
                "spec": spec,
            }
            self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease)

    def heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            try:
                self._renew_lease()
                self._patch_status()
            except Exception as e:  # apiserver restarting; try again next beat
                log.debug("heartbeat failed: %s", e)
