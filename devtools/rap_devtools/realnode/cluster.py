"""``RealNodeCluster``: the local control plane plus a real node.

Host network namespace: etcd, kube-apiserver (on the host end of the node's
veth), kube-controller-manager, kube-scheduler. Node network namespace:
containerd, kubelet, kube-proxy (iptables), and the pods on their bridge.
CoreDNS runs as the usual kube-system Deployment behind the kube-dns Service.

    with RealNodeCluster(bin_dir=Path("bin")) as c:
        c.load_docker_images(["rap-analyzer:dev"])
        c.kubectl("apply", "-f", "...")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from rap_devtools import pki as pkimod
from rap_devtools.cluster import REPO_ROOT, ClusterAccess
from rap_devtools.controlplane import ControlPlane, ControlPlaneError, write_kubeconfig
from rap_devtools.procs import ManagedProcess, make_owned_tempdir, sweep_stale_tempdirs
from rap_devtools.realnode import cgroups, configs, network, oci
from rap_devtools.realnode.runtime import Containerd, unmount_under
from rap_devtools.waiting import wait_for

TEMP_PREFIX = "rap-realnode-"
NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "coredns", "pause")
HOST_TOOLS = ("containerd", "ctr", "runc", "iptables", "nsenter", "ip")


class RealNodeCluster(ClusterAccess):
    def __init__(
        self,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
        *,
        kubeconfig: Path | None = None,
        node_name: str = "rap-node",
        max_pods: int = 40,
        ready_timeout: float = 180.0,
        local_volumes: int = 4,
    ) -> None:
        self._own_workdir = workdir is None
        if workdir is None:
            sweep_stale_tempdirs(TEMP_PREFIX)
        self.workdir = Path(workdir or make_owned_tempdir(TEMP_PREFIX)).resolve()
        self.bin_dir = Path(bin_dir or REPO_ROOT / "bin").resolve()
        self.node_name = node_name
        self.max_pods = max_pods
        self.ready_timeout = ready_timeout
        self.local_volumes = local_volumes
        self.network = network.NodeNetwork()
        self.paths = configs.NodePaths(self.workdir / "node")
        self.controlplane = ControlPlane(
            self.bin_dir, self.workdir, kubeconfig=kubeconfig, ready_timeout=ready_timeout,
            # It lifts the not-ready taint a kubelet registers with.
            extra_controllers=("node-lifecycle-controller",),
        )  # fmt: skip
        self.log_dir = self.controlplane.log_dir
        self.containerd = Containerd(self.paths, self.network, self.log_dir)
        self.processes: list[ManagedProcess] = []
        self.start_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------

    def check_prerequisites(self) -> None:
        missing = [b for b in NODE_BINARIES if not (self.bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(
                f"{', '.join(missing)} missing in {self.bin_dir}: run `make node` "
                "(builds kubelet, kube-scheduler, kube-proxy, CoreDNS and pause)"
            )
        tools = [t for t in HOST_TOOLS if shutil.which(t) is None]
        if tools or not Path(configs.CNI_BIN_DIR, "bridge").exists():
            raise ControlPlaneError(
                f"missing host tools {tools or ''} / CNI plugins in {configs.CNI_BIN_DIR}: "
                "run `bash tools/install-node-packages.sh`"
            )
        if os.geteuid() != 0:
            raise ControlPlaneError("the real node needs root (network namespaces, containerd)")

    def start(self) -> RealNodeCluster:
        started = time.monotonic()
        self.check_prerequisites()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _start(self) -> None:
        self._clean_node_dir()
        self.network.create()
        self.controlplane.address = self.network.host_ip
        self.controlplane.start()
        kubeconfigs = self._write_kubeconfigs()
        self._spawn("kube-scheduler", [
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ])  # fmt: skip
        self.containerd.start()
        self._import_node_images()
        self._write_node_configs()
        self._spawn("kubelet", [
            *self.network.nsenter(),
            str(self.bin_dir / "kubelet"),
            f"--config={self.paths.kubelet_dir / 'config.yaml'}",
            f"--kubeconfig={kubeconfigs['kubelet']}",
            f"--root-dir={self.paths.kubelet_dir}",
            f"--cert-dir={self.paths.kubelet_dir / 'pki'}",
            f"--hostname-override={self.node_name}",
            f"--node-ip={self.network.node_ip}",
            "--v=1",
        ])  # fmt: skip
        self._spawn("kube-proxy", [
            *self.network.nsenter(),
            str(self.bin_dir / "kube-proxy"),
            f"--config={self.paths.root / 'kube-proxy.yaml'}",
            "--v=1",
        ])  # fmt: skip
        wait_for(
            self._node_ready,
            timeout=self.ready_timeout,
            interval=0.5,
            what=f"Node {self.node_name} to be Ready",
            describe=lambda: self._tails("kubelet", "containerd"),
        )
        self._apply(configs.coredns_manifests())
        self._apply(self._local_storage())
        wait_for(
            self._coredns_ready,
            timeout=self.ready_timeout,
            interval=0.5,
            what="CoreDNS to be Ready",
            describe=lambda: (
                self.kubectl("-n", "kube-system", "get", "pods,events", "-o", "wide").stdout
                + self._tails("kubelet")
            ),
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = ManagedProcess(name, argv, self.log_dir / f"{name}.log", cwd=self.workdir)
        proc.start()
        self.processes.append(proc)

    def _tails(self, *names: str) -> str:
        procs = [*self.processes, self.containerd.process]
        return "\n".join(f"== {p.name}\n{p.log_tail(15)}" for p in procs if p.name in names)

    def _clean_node_dir(self) -> None:
        # A crashed earlier run in the same workdir may have left mounts.
        unmount_under(self.paths.root)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        self.paths.root.mkdir(parents=True)

    def _write_kubeconfigs(self) -> dict[str, Path]:
        pki = self.controlplane.pki
        assert pki is not None
        ca = pkimod.CertificateAuthority.load(pki.ca)
        users = {
            # The Node authorizer knows a kubelet by this name and group.
            "kubelet": (f"system:node:{self.node_name}", ("system:nodes",)),
            # Bound to system:node-proxier by the default RBAC policy.
            "kube-proxy": ("system:kube-proxy", ()),
        }
        out = {}
        for name, (user, groups) in users.items():
            cert, key = ca.issue(user, orgs=groups)
            out[name] = write_kubeconfig(
                self.paths.root / f"{name}.kubeconfig", self.server, pki.ca.cert.read_bytes(),
                user=user, cert_pem=cert, key_pem=key,
            )  # fmt: skip
        return out

    def _write_node_configs(self) -> None:
        assert self.controlplane.pki is not None
        self.paths.kubelet_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.root / "resolv.conf").write_text("")
        (self.paths.kubelet_dir / "config.yaml").write_text(
            configs.kubelet_config(
                self.paths,
                node_ip=self.network.node_ip,
                ca_file=self.controlplane.pki.ca.cert,
                max_pods=self.max_pods,
                cgroup_root=cgroups.create(self.network.name),
            )
        )
        (self.paths.root / "kube-proxy.yaml").write_text(
            configs.kube_proxy_config(
                kubeconfig=self.paths.root / "kube-proxy.kubeconfig", node_name=self.node_name
            )
        )

    def _import_node_images(self) -> None:
        images = self.paths.root / "images"
        images.mkdir(exist_ok=True)
        for name, binary, entry, user in (
            (configs.PAUSE_IMAGE, "pause", ["/pause"], "65535:65535"),
            (configs.COREDNS_IMAGE, "coredns", ["/coredns"], ""),
        ):
            archive = oci.write_single_binary_image(
                images / f"{binary}.tar", name=name, binary=self.bin_dir / binary,
                entrypoint=entry, user=user,
            )  # fmt: skip
            self.containerd.import_archive(archive)

    def _local_storage(self) -> list[dict]:
        base = self.paths.root / "volumes"
        for i in range(self.local_volumes):
            (base / f"local-{i}").mkdir(parents=True, exist_ok=True)
        return configs.local_storage_manifests(self.node_name, base, self.local_volumes)

    def _apply(self, docs: list[dict]) -> None:
        text = yaml.safe_dump_all(docs, sort_keys=False)
        result = self.kubectl("apply", "--server-side", "-f", "-", input=text)
        if result.returncode != 0:
            raise ControlPlaneError(f"kubectl apply failed: {result.stderr}")

    def _node_ready(self) -> bool:
        for proc in [*self.processes, self.containerd.process]:
            if not proc.running():
                raise ControlPlaneError(f"{proc.name} exited:\n{proc.log_tail(30)}")
        out = self.kubectl("get", "node", self.node_name, "-o",
                           "jsonpath={.status.conditions[?(@.type=='Ready')].status}")  # fmt: skip
        return out.returncode == 0 and out.stdout.strip() == "True"

    def _coredns_ready(self) -> bool:
        out = self.kubectl("-n", "kube-system", "get", "deploy", "coredns", "-o",
                           "jsonpath={.status.readyReplicas}")  # fmt: skip
        return out.stdout.strip() == "1"

    def load_docker_images(self, images: Iterable[str]) -> None:
        """Images from the Docker engine into the node (docker save | ctr import)."""
        self.containerd.import_docker_images(images)

    def stop(self) -> None:
        # Controllers and scheduler first, so nothing recreates what goes away;
        # then the kubelet (its pods are killed through runc below: a kubelet
        # stopping leaves its containers running by design), kube-proxy,
        # containerd, and the network namespace.
        self._stop_controllers()
        for proc in reversed(self.processes):
            proc.stop(grace=10.0)
        self.containerd.stop()
        cgroups.remove(self.network.name)
        remove_unused_pod_netns()
        self.network.delete()
        self.controlplane.stop()
        unmount_under(self.workdir)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_controllers(self) -> None:
        for proc in self.controlplane.processes:
            if proc.name == "kube-controller-manager":
                proc.stop(grace=5.0)

    def __enter__(self) -> RealNodeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> dict[str, int]:
        pids = self.controlplane.pids()
        for proc in [*self.processes, self.containerd.process]:
            if proc.popen is not None:
                pids[proc.name] = proc.pid
        return pids


def remove_unused_pod_netns() -> None:
    """Delete pod network namespaces (cni-*) that no process is in any more:
    a sandbox killed without the CNI DEL leaves its namespace handle behind."""
    netns_dir = Path("/run/netns")
    in_use = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                in_use.add(os.stat(proc / "ns" / "net").st_ino)
            except OSError:
                continue
    for ns in netns_dir.glob("cni-*"):
        try:
            inode = os.stat(ns).st_ino
        except OSError:
            continue
        if inode not in in_use:
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
