"""A cgroup of the node's own, under which its kubelet puts every pod.

Kubelets sharing the default root ("/kubepods") take each other's pods for
orphans and kill them; with ``cgroupRoot: /rapnode-<pid>`` two nodes (a
developer's `make cluster-up NODE=real` and the test run) never meet. The
host has cgroup v1 hierarchies (plus the unified one): the root must exist in
every one of them before the kubelet starts.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    return [p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink()]


def create(name: str) -> str:
    """Create /<name> in every hierarchy; returns the kubelet's cgroupRoot."""
    for h in hierarchies():
        d = h / name
        d.mkdir(exist_ok=True)
        if h.name == "cpuset":
            # A v1 cpuset cgroup takes no task until it has CPUs and memory nodes.
            for f in ("cpuset.cpus", "cpuset.mems"):
                with contextlib.suppress(OSError):
                    (d / f).write_text((h / f).read_text())
    return f"/{name}"


def remove(name: str) -> None:
    """Remove the node's cgroups, deepest first (only empty ones can go)."""
    for h in hierarchies():
        root = h / name
        if not root.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
