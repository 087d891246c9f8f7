"""The node's network namespace: pods, their bridge, kube-proxy's iptables
rules and the kubelet live there, never in the host's namespace.

    host netns                       node netns (rapnode-<pid>)
    kube-apiserver on HOST_IP  <-veth->  NODE_IP: kubelet, containerd, kube-proxy
                                         rapbr0 10.244.0.1/24 -> pods

The namespace has no default route: pod traffic reaches the API server on the
veth and nothing else; nothing is routed off this machine. Names carry the
creating process's PID so a run that died without cleaning up is swept by the
next one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
from pathlib import Path

from rap_devtools.procs import pid_alive
from rap_devtools.realnode import cgroups

NETNS_DIR = Path("/run/netns")
PREFIX = "rapnode-"
# 10.201.N.0/30 per node: .1 on the host side, .2 in the namespace.
_SUBNET_BASE = ipaddress.ip_network("10.201.0.0/16")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NodeNetwork:
    def __init__(self, owner_pid: int | None = None) -> None:
        self.owner_pid = owner_pid or os.getpid()
        self.name = f"{PREFIX}{self.owner_pid}"
        # veth names are at most 15 characters.
        self.host_if = f"rapv{self.owner_pid % 1_000_000}h"
        self.node_if = "eth0"
        self.host_ip = ""
        self.node_ip = ""

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.name

    def nsenter(self) -> list[str]:
        """argv prefix running a command in the namespace. Only the network
        namespace changes (not `ip netns exec`, which also unshares mounts):
        the kubelet's volume mounts must be visible to containerd."""
        return ["nsenter", f"--net={self.netns_path}"]

    def create(self) -> NodeNetwork:
        sweep_stale()
        self.delete()
        n = _free_subnet_index()
        net = list(_SUBNET_BASE.subnets(new_prefix=30))[n]
        self.host_ip, self.node_ip = str(net[1]), str(net[2])
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.node_if,
            "netns", self.name)  # fmt: skip
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        inside = ["ip", "-n", self.name]
        for args in (
            ["addr", "add", f"{self.node_ip}/30", "dev", self.node_if],
            ["link", "set", self.node_if, "up"],
            ["link", "set", "lo", "up"],
        ):
            subprocess.run([*inside, *args], capture_output=True, text=True, check=True)
        return self

    def delete(self) -> None:
        # Deleting the namespace frees its end of the veth, and with it ours,
        # once no process is left inside.
        _ip("netns", "delete", self.name, check=False)
        _ip("link", "delete", self.host_if, check=False)


def _free_subnet_index() -> int:
    used = set()
    for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
        m = re.search(r"inet 10\.201\.(\d+)\.(\d+)/", line)
        if m:
            used.add(int(m.group(1)) * 64 + int(m.group(2)) // 4)
    for i in range(1, 16384):
        if i not in used:
            return i
    raise RuntimeError("no free 10.201.0.0/16 subnet for the node's veth")


def sweep_stale() -> None:
    """Delete namespaces (and veths) of node runs whose creator is gone."""
    if not NETNS_DIR.is_dir():
        return
    for ns in NETNS_DIR.glob(f"{PREFIX}*"):
        with contextlib.suppress(ValueError):
            pid = int(ns.name.removeprefix(PREFIX))
            if not pid_alive(pid):
                NodeNetwork(pid).delete()
                cgroups.remove(ns.name)
