"""``python -m rap_devtools.cluster_cli up|down|status`` (make cluster-up/down).

``up`` forks a detached supervisor (``serve``) that runs a LocalCluster in
``--workdir`` until SIGTERM, and returns once it is ready. Files::

    .cluster/kubeconfig           admin kubeconfig (always this path)
    .cluster/supervisor.pid       the supervisor; `down` signals it
    .cluster/pids.json            every process it started, for `down`'s sweep
    .cluster/ready                present while the cluster is usable
    .cluster/logs/*.log           etcd, apiserver, controller manager, kubelet
    .cluster/pods/<ns>_<pod>.log  each pod's output
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from rap_devtools.cluster import REPO_ROOT, LocalCluster
from rap_devtools.procs import ManagedProcess, pid_alive, terminate_group
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.realnode.runtime import import_docker_images
from rap_devtools.waiting import poll

NODES = ("process", "real")


def _paths(workdir: Path) -> dict[str, Path]:
    return {
        "pid": workdir / "supervisor.pid",
        "pids": workdir / "pids.json",
        "ready": workdir / "ready",
        "log": workdir / "logs" / "supervisor.log",
        "kubeconfig": workdir / "kubeconfig",
    }


def _supervisor_pid(workdir: Path) -> int | None:
    try:
        pid = int(_paths(workdir)["pid"].read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _watched(cluster: LocalCluster | RealNodeCluster) -> list[ManagedProcess]:
    """The node-side processes whose exit ends the cluster."""
    if isinstance(cluster, RealNodeCluster):
        return [*cluster.processes, cluster.containerd.process]
    return [cluster.kubelet.process]


def serve(workdir: Path, bin_dir: Path, max_pods: int, node: str = "process") -> int:
    p = _paths(workdir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    p["pid"].write_text(f"{os.getpid()}\n")
    cluster: LocalCluster | RealNodeCluster
    if node == "real":
        cluster = RealNodeCluster(workdir, bin_dir, kubeconfig=p["kubeconfig"])
    else:
        cluster = LocalCluster(workdir, bin_dir, kubeconfig=p["kubeconfig"], max_pods=max_pods)
    try:
        cluster.start()
        p["pids"].write_text(json.dumps(cluster.pids(), indent=2))
        p["ready"].write_text(f"{cluster.server}\n")
        print(f"ready in {cluster.start_seconds:.1f}s at {cluster.server}", flush=True)
        while not stop.wait(1.0):
            # Pods come and go; keep the sweep list current for `down`.
            p["pids"].write_text(json.dumps(cluster.pids(), indent=2))
            for proc in _watched(cluster):
                if not proc.running():
                    print(f"{proc.name} exited; stopping the cluster", flush=True)
                    stop.set()
        return 0
    finally:
        p["ready"].unlink(missing_ok=True)
        cluster.stop()
        p["pids"].unlink(missing_ok=True)
        p["pid"].unlink(missing_ok=True)
        print("stopped", flush=True)


def up(workdir: Path, bin_dir: Path, max_pods: int, timeout: float, node: str = "process") -> int:
    p = _paths(workdir)
    if _supervisor_pid(workdir) and p["ready"].exists():
        print(f"already running; kubeconfig: {p['kubeconfig']}")
        return 0
    if _supervisor_pid(workdir):
        down(workdir)  # a half-started one from before: start clean
    p["log"].parent.mkdir(parents=True, exist_ok=True)
    p["ready"].unlink(missing_ok=True)
    argv = [sys.executable, "-m", "rap_devtools.cluster_cli", "serve", f"--workdir={workdir}"]
    argv += [f"--bin-dir={bin_dir}", f"--max-pods={max_pods}", f"--node={node}"]
    with open(p["log"], "ab") as log:
        # Its own session and no tie to this process: it must outlive `make`.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    # Ready, or its server gone: either way there is nothing more to wait for.
    poll(lambda: p["ready"].exists() or proc.poll() is not None, timeout=timeout, interval=0.2)
    if not p["ready"].exists():
        tail = "\n".join(p["log"].read_text(errors="replace").splitlines()[-40:])
        print(f"cluster did not come up; {p['log']}:\n{tail}", file=sys.stderr)
        if proc.poll() is None:
            down(workdir)
        return 1
    print(f"cluster up: {p['ready'].read_text().strip()}")
    print(f"  kubectl --kubeconfig {p['kubeconfig']} get nodes")
    if node == "real":
        print(
            "  real node: kubectl logs works; images: docker save IMAGE | ctr import (make node-load)"
        )
    else:
        print(f"  pod logs: {workdir / 'pods'}/<namespace>_<pod>.log")
    print("  stop with: make cluster-down")
    return 0


def down(workdir: Path) -> int:
    p = _paths(workdir)
    pid = _supervisor_pid(workdir)
    if pid:
        terminate_group(pid, grace=60.0)
    # Sweep: whatever the supervisor recorded and is still alive (it may
    # have been SIGKILLed itself).
    try:
        recorded = json.loads(p["pids"].read_text())
    except (OSError, ValueError):
        recorded = {}
    for proc_pid in recorded.values():
        if pid_alive(int(proc_pid)):
            terminate_group(int(proc_pid), grace=5.0)
    for f in (workdir / "pods").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            if pid_alive(int(f.read_text().strip())):
                terminate_group(int(f.read_text().strip()), grace=2.0)
        f.unlink(missing_ok=True)
    for key in ("pid", "pids", "ready"):
        p[key].unlink(missing_ok=True)
    print("cluster down" if pid or recorded else "cluster was not running")
    return 0


def load(workdir: Path, images: list[str]) -> int:
    """Docker images into the running real node's containerd (like `kind load`)."""
    sock = workdir / "node" / "containerd" / "containerd.sock"
    if not sock.exists():
        print("no real node running here: `make cluster-up NODE=real` first", file=sys.stderr)
        return 1
    import_docker_images(sock, images)
    print(f"loaded into the node: {' '.join(images)}")
    return 0


def status(workdir: Path) -> int:
    p = _paths(workdir)
    pid = _supervisor_pid(workdir)
    if not pid:
        print("not running")
        return 1
    state = "ready" if p["ready"].exists() else "starting"
    print(f"{state} (supervisor pid {pid}); kubeconfig: {p['kubeconfig']}")
    with contextlib.suppress(OSError, ValueError):
        for name, proc_pid in json.loads(p["pids"].read_text()).items():
            print(f"  {name:28} {proc_pid:>8}  {'up' if pid_alive(proc_pid) else 'gone'}")
    return 0 if state == "ready" else 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rap_devtools.cluster_cli")
    ap.add_argument("command", choices=["up", "down", "status", "serve", "load"])
    ap.add_argument("images", nargs="*", help="with `load`: Docker images to load into the node")
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / ".cluster")
    ap.add_argument("--bin-dir", type=Path, default=REPO_ROOT / "bin")
    ap.add_argument("--max-pods", type=int, default=int(os.environ.get("RAP_KUBELET_MAX_PODS", 8)))
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds `up` waits")
    ap.add_argument("--node", choices=NODES, default=os.environ.get("NODE") or "process",
                    help="process: the Python process kubelet; real: kubelet + containerd")  # fmt: skip
    args = ap.parse_intermixed_args(argv)
    workdir, bin_dir = args.workdir.resolve(), args.bin_dir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if args.command == "up":
        if not (bin_dir / "kube-apiserver").exists():
            print(f"{bin_dir}/kube-apiserver missing: run `make controlplane`", file=sys.stderr)
            sys.exit(1)
        sys.exit(up(workdir, bin_dir, args.max_pods, args.timeout, args.node))
    if args.command == "serve":
        sys.exit(serve(workdir, bin_dir, args.max_pods, args.node))
    if args.command == "load":
        sys.exit(load(workdir, args.images))
    sys.exit(down(workdir) if args.command == "down" else status(workdir))


if __name__ == "__main__":
    main()
