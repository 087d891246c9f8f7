"""``KindCluster``: a one-node kind cluster from the node image built here.

    with KindCluster() as c:                       # kind create cluster
        c.load_docker_images(["rap-analyzer:dev"])  # kind load docker-image
        c.kubectl("apply", "-f", "...")

The node image (``make kind-node-image``) carries Kubernetes v1.36.3 built from
this repository's pins, a bridge CNI (kindnet's image is not available
offline: the cluster is made with ``disableDefaultCNI``) and rancher's
local-path-provisioner as the default StorageClass ``standard``. kind runs with
``tools/kind/shim/docker`` first on PATH (why: that file); its kubeconfig is
``<workdir>/kubeconfig``, so ``~/.kube/config`` is never touched.

CLI (``make kind-demo``)::

    python -m rap_devtools.kind demo [--keep]   # create, load, helm install, run the example
    python -m rap_devtools.kind up | down       # the cluster alone (workdir .kind/)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from rap_devtools import chart_demo
from rap_devtools.cluster import REPO_ROOT, ClusterAccess
from rap_devtools.waiting import wait_for

CLUSTER_NAME = "rap-kind"
K8S_VERSION = "v1.36.3"
NODE_IMAGE = f"rap-analyzer-kind-node:{K8S_VERSION}"
SHIM_DIR = REPO_ROOT / "tools" / "kind" / "shim"
# The docker network kind creates for its nodes and leaves behind on delete.
KIND_NETWORK = "kind"
STORAGE_CLASS = "standard"
PROVISIONER = "rancher.io/local-path"


class KindError(RuntimeError):
    pass


def kind_config(name: str, image: str) -> dict:
    """The kind Cluster config (pure: tests read it)."""
    kubelet_patch = {
        "kind": "KubeletConfiguration",
        # Hosts on cgroup v1 (this one): kubelet >= 1.35 refuses to start
        # there unless told otherwise.
        "failCgroupV1": False,
    }
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": name,
        # kindnet's image cannot be pulled offline; the node image's
        # /etc/cni/net.d has a bridge + host-local conf (one node, one subnet).
        "networking": {"disableDefaultCNI": True},
        "nodes": [{"role": "control-plane", "image": image}],
        "kubeadmConfigPatches": [yaml.safe_dump(kubelet_patch)],
    }


def kind_env(bin_dir: Path, kubeconfig: Path, shim: bool = True) -> dict[str, str]:
    """kind's environment: the docker shim first on PATH, then bin/ (pure)."""
    path = [str(bin_dir), os.environ.get("PATH", "")]
    if shim:
        path.insert(0, str(SHIM_DIR))
    return {**os.environ, "PATH": os.pathsep.join(path), "KUBECONFIG": str(kubeconfig)}


class KindCluster(ClusterAccess):
    """A kind cluster named ``name``; ``workdir`` holds its kubeconfig and
    config (default ``<repo>/.kind/<name>``). ``create()`` replaces a cluster
    of that name left behind by an earlier process."""

    def __init__(
        self,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
        *,
        name: str = CLUSTER_NAME,
        image: str = NODE_IMAGE,
        ready_timeout: float = 300.0,
        shim: bool | None = None,
    ) -> None:
        self.name = name
        self.image = image
        self.workdir = Path(workdir or REPO_ROOT / ".kind" / name).resolve()
        self.bin_dir = Path(bin_dir or REPO_ROOT / "bin").resolve()
        self.ready_timeout = ready_timeout
        # RAP_KIND_SHIM=0 where `docker run --privileged` works (see the shim).
        self.shim = shim if shim is not None else os.environ.get("RAP_KIND_SHIM", "1") != "0"
        self.create_seconds: float | None = None

    # -- ClusterAccess ---------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        doc = yaml.safe_load(self.kubeconfig.read_text())
        return str(doc["clusters"][0]["cluster"]["server"])

    def ca_pem(self) -> bytes:
        # kind's kubeconfig embeds the cluster CA (kubeadm's, made in the node).
        doc = yaml.safe_load(self.kubeconfig.read_text())
        return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])

    @property
    def node_container(self) -> str:
        """The node's docker container (also its Node name)."""
        return f"{self.name}-control-plane"

    # -- kind ------------------------------------------------------------------

    def kind(
        self, *args: str, check: bool = True, timeout: float = 600.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "kind"), *args],
            env=kind_env(self.bin_dir, self.kubeconfig, self.shim),
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise KindError(f"kind {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def exists(self) -> bool:
        out = self.kind("get", "clusters", check=False).stdout
        return self.name in out.split()

    def create(self) -> KindCluster:
        for what in ("kind", "kubectl"):
            if not (self.bin_dir / what).is_file():
                raise KindError(f"{self.bin_dir / what} is missing: run `make kind controlplane`")
        if subprocess.run(["docker", "image", "inspect", self.image],
                          capture_output=True).returncode:  # fmt: skip
            raise KindError(f"no image {self.image}: run `make kind-node-image`")
        if self.exists():
            self.kind("delete", "cluster", "--name", self.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        config = self.workdir / "kind-config.yaml"
        config.write_text(yaml.safe_dump(kind_config(self.name, self.image), sort_keys=False))
        start = time.monotonic()
        self.kind("create", "cluster", f"--config={config}", f"--kubeconfig={self.kubeconfig}",
                  f"--wait={int(self.ready_timeout)}s", timeout=self.ready_timeout + 120)  # fmt: skip
        try:
            self.wait_ready()
        except BaseException:
            self.delete()
            raise
        self.create_seconds = time.monotonic() - start
        return self

    def wait_ready(self) -> None:
        """CoreDNS and the local-path provisioner available: DNS answers and a
        PVC can bind (``kind create --wait`` waits for the node only)."""
        for ns, deploy in (("kube-system", "coredns"), ("local-path-storage",
                                                         "local-path-provisioner")):  # fmt: skip
            wait_for(
                lambda ns=ns, deploy=deploy: self.kubectl(
                    "-n", ns, "get", "deploy", deploy,
                    "-o", "jsonpath={.status.availableReplicas}",
                ).stdout.strip() not in ("", "0"),
                timeout=self.ready_timeout, interval=1.0, what=f"{ns}/{deploy} available",
                describe=lambda: self.kubectl("get", "pods", "-A", "-o", "wide").stdout,
            )  # fmt: skip

    def load_docker_images(self, images: Iterable[str]) -> None:
        """Images from the Docker engine into the node (kind load docker-image)."""
        images = list(images)
        if images:
            self.kind("load", "docker-image", "--name", self.name, *images)

    def node_exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command inside the node container (crictl, ctr, journalctl...)."""
        return subprocess.run(["docker", "exec", self.node_container, *args],
                              capture_output=True, text=True, check=check)  # fmt: skip

    def delete(self) -> None:
        """kind delete cluster; then the ``kind`` docker network, which kind
        leaves behind, when no other container uses it."""
        self.kind("delete", "cluster", "--name", self.name, check=False)
        net = subprocess.run(["docker", "network", "inspect", KIND_NETWORK, "-f",
                              "{{json .Containers}}"], capture_output=True, text=True)  # fmt: skip
        if net.returncode == 0 and json.loads(net.stdout or "null") in (None, {}):
            subprocess.run(["docker", "network", "rm", KIND_NETWORK], capture_output=True)

    stop = delete

    def __enter__(self) -> KindCluster:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()


# -- make kind-demo --------------------------------------------------------------


def demo(
    cluster: KindCluster, tag: str = "dev", tracks: int = 3000, load: bool = True
) -> dict[str, float | str]:
    """The chart on kind as a user runs it: load the images, helm install with
    its Postgres (its PVC bound by the local-path provisioner), seed, apply
    examples/analysisrun.yaml, wait for it to finish. Returns the phase and
    the seconds each step took."""
    ns = chart_demo.NAMESPACE
    times: dict[str, float | str] = {}

    def step(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.monotonic()
        out = fn(*args)
        times[name] = round(time.monotonic() - start, 1)
        print(f"[kind-demo] {name}: {times[name]} s", file=sys.stderr)
        return out

    images = [*chart_demo.app_images(tag), ":".join(chart_demo.POSTGRES_IMAGE)]
    if load:
        step("kind load", cluster.load_docker_images, images)
    chart_demo.create_restricted_namespace(cluster, ns)
    step("helm install", chart_demo.install, cluster, tag, ns)
    step("seed", chart_demo.seed, cluster, tracks, tag, ns)
    run = REPO_ROOT / "examples" / "analysisrun.yaml"
    cluster.kubectl("-n", ns, "delete", "-f", str(run), "--ignore-not-found", "--wait")
    cluster.kubectl("-n", ns, "apply", "-f", str(run), check=True)
    times["phase"] = str(step("run", chart_demo.wait_for_phase, cluster, ns, "algorithmic-demo",
                              ("Succeeded", "Failed")))  # fmt: skip
    return times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rap_devtools.kind")
    ap.add_argument("command", choices=("up", "down", "demo"))
    ap.add_argument("--name", default=CLUSTER_NAME)
    ap.add_argument("--tag", default="dev")
    ap.add_argument("--tracks", type=int, default=3000)
    ap.add_argument("--keep", action="store_true", help="demo: leave the cluster running")
    args = ap.parse_args(argv)
    cluster = KindCluster(name=args.name)
    if args.command == "down":
        cluster.delete()
        return
    total = time.monotonic()
    cluster.create()
    print(f"[kind-demo] kind create cluster: {cluster.create_seconds:.1f} s", file=sys.stderr)
    if args.command == "up":
        print(f"kubectl --kubeconfig {cluster.kubeconfig} get pods -A")
        return
    try:
        times = demo(cluster, args.tag, args.tracks)
        print(cluster.kubectl("-n", "rap-analyzer", "get", "analysisruns,pvc").stdout)
        print(f"{times['phase']} in {time.monotonic() - total:.0f} s end to end "
              f"(create {cluster.create_seconds:.0f} s, {times})")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept: kubectl --kubeconfig {cluster.kubeconfig} ...; "
                  f"python -m rap_devtools.kind down --name {args.name}")  # fmt: skip
        else:
            cluster.delete()
    sys.exit(0 if times["phase"] == "Succeeded" else 1)


if __name__ == "__main__":
    main()
