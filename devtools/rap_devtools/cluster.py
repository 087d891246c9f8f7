"""The local cluster: control plane + process kubelet, as a Python API and a CLI.

Python (pytest fixtures)::

    with LocalCluster(bin_dir=Path("bin")) as c:
        c.kubectl("apply", "-f", "crds/")
        api = c.api_client()                      # kubernetes.client.ApiClient
        c.kubelet.pid_of("default", "my-pod")     # PID of a running pod

CLI (``make cluster-up`` / ``make cluster-down``)::

    python -m rap_devtools.cluster_cli up|down|status [--workdir .cluster]

``up`` starts a detached supervisor process that owns the cluster; state,
logs and pidfiles live under ``.cluster/`` and the kubeconfig is always
``.cluster/kubeconfig``. ``down`` stops the supervisor, and then kills
anything it recorded that is somehow still alive.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rap_devtools import pki as pkimod
from rap_devtools.controlplane import ControlPlane, ControlPlaneError, write_kubeconfig
from rap_devtools.kubeapi import KubeApi
from rap_devtools.kubelet import DEFAULT_NODE, pod_log_path, read_pid
from rap_devtools.procs import (
    ManagedProcess,
    make_owned_tempdir,
    pid_alive,
    sweep_stale_tempdirs,
    terminate_group,
)
from rap_devtools.waiting import wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMP_PREFIX = "rap-cluster-"


class ClusterAccess:
    """kubectl and API clients for a cluster that has ``controlplane``,
    ``bin_dir`` and ``workdir`` (the process-kubelet and real-node clusters)."""

    controlplane: ControlPlane
    bin_dir: Path
    workdir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.controlplane.kubeconfig

    @property
    def server(self) -> str:
        return self.controlplane.server

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run bin/kubectl against this cluster; text output, never raises
        on a non-zero exit unless ``check``."""
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            # Discovery cache inside the cluster's dir, not the user's ~/.kube.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
        ]
        return subprocess.run(
            [*argv, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def api_client(self, kubeconfig: Path | None = None) -> ApiClient:
        """A ``kubernetes`` client ApiClient (close it, or use ``with``)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def kube_api(self, kubeconfig: Path | None = None) -> KubeApi:
        """The dev tools' small JSON client (dicts in, dicts out)."""
        return KubeApi(kubeconfig or self.kubeconfig)

    def ca_pem(self) -> bytes:
        """The API server's CA certificate (PEM)."""
        pki = self.controlplane.pki
        assert pki is not None
        return pki.ca.cert.read_bytes()

    def make_kubeconfig_for_serviceaccount(
        self,
        namespace: str,
        name: str,
        *,
        path: Path | None = None,
        expiration_seconds: int = 86400,
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name``
        with a bound token from the TokenRequest API (so its RBAC applies)."""
        api = self.kube_api()
        try:
            resp = api.post(
                f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": expiration_seconds},
                },
            )
        finally:
            api.close()
        return write_kubeconfig(
            path or self.workdir / f"kubeconfig-sa-{namespace}-{name}",
            self.server,
            self.ca_pem(),
            user=f"system:serviceaccount:{namespace}:{name}",
            token=resp["status"]["token"],
            namespace=namespace,
        )

    def make_kubeconfig_for_user(
        self, user: str, groups: tuple[str, ...] = (), *, path: Path | None = None
    ) -> Path:
        """A kubeconfig with a client certificate for ``user`` in ``groups``
        (no RBAC granted: bind roles to the user to give it any)."""
        pki = self.controlplane.pki
        assert pki is not None
        ca = pkimod.CertificateAuthority.load(pki.ca)
        cert, key = ca.issue(user, orgs=groups)
        safe = user.replace(":", "-").replace("/", "-")
        return write_kubeconfig(
            path or self.workdir / f"kubeconfig-user-{safe}",
            self.server,
            pki.ca.cert.read_bytes(),
            user=user,
            cert_pem=cert,
            key_pem=key,
        )


class KubeletHandle:
    """What tests need from the process kubelet running beside the cluster."""

    def __init__(self, log_dir: Path, process: ManagedProcess, node_name: str) -> None:
        self.log_dir = log_dir
        self.process = process
        self.node_name = node_name

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_path(self, namespace: str, name: str) -> Path:
        """``<log_dir>/<namespace>_<name>.log``: the pod's stdout and stderr."""
        return pod_log_path(self.log_dir, namespace, name)

    pod_log_path = log_path

    def read_log(self, namespace: str, name: str) -> str:
        try:
            return self.log_path(namespace, name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid_of(self, namespace: str, name: str) -> int | None:
        """PID (= process group) of the pod's running process, else None."""
        return read_pid(self.log_dir, namespace, name)

    def pod_pids(self) -> dict[str, int]:
        """``"<ns>_<name>" -> pid`` for every pod process currently running."""
        out = {}
        for f in self.log_dir.glob("*.pid"):
            try:
                pid = int(f.read_text().strip())
            except (OSError, ValueError):
                continue
            if pid_alive(pid):
                out[f.stem] = pid
        return out


class LocalCluster(ClusterAccess):
    """etcd + kube-apiserver + kube-controller-manager + process kubelet.

    ``workdir`` None: everything lives in a temp dir removed by ``stop()``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        bin_dir: Path | None = None,
        *,
        kubeconfig: Path | None = None,
        max_pods: int = 8,
        node_name: str = DEFAULT_NODE,
        ready_timeout: float = 90.0,
    ) -> None:
        self._own_workdir = workdir is None
        if workdir is None:
            sweep_stale_tempdirs(TEMP_PREFIX)
        self.workdir = Path(workdir or make_owned_tempdir(TEMP_PREFIX)).resolve()
        self.bin_dir = Path(bin_dir or REPO_ROOT / "bin").resolve()
        self.controlplane = ControlPlane(
            self.bin_dir, self.workdir, kubeconfig=kubeconfig, ready_timeout=ready_timeout
        )
        self.max_pods = max_pods
        self.node_name = node_name
        self.ready_timeout = ready_timeout
        self.kubelet = KubeletHandle(
            self.workdir / "pods",
            ManagedProcess(
                "kubelet",
                [
                    sys.executable,
                    "-m",
                    "rap_devtools.kubelet",
                    f"--kubeconfig={self.controlplane.kubeconfig}",
                    f"--log-dir={self.workdir / 'pods'}",
                    f"--node-name={node_name}",
                    f"--max-pods={max_pods}",
                    f"--ready-file={self.workdir / 'kubelet.ready'}",
                ],
                self.controlplane.log_dir / "kubelet.log",
            ),
            node_name,
        )
        self.start_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> LocalCluster:
        started = time.monotonic()
        try:
            # Pod logs of an earlier cluster in the same workdir would mix in.
            shutil.rmtree(self.kubelet.log_dir, ignore_errors=True)
            self.controlplane.start()
            (self.workdir / "kubelet.ready").unlink(missing_ok=True)
            self.kubelet.process.start()
            wait_for(
                self._kubelet_ready,
                timeout=self.ready_timeout,
                interval=0.1,
                what="the process kubelet to register its Node",
                describe=lambda: self.kubelet.process.log_tail(20),
            )
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def _kubelet_ready(self) -> bool:
        if not self.kubelet.process.running():
            raise ControlPlaneError(f"process kubelet exited:\n{self.kubelet.process.log_tail(30)}")
        return (self.workdir / "kubelet.ready").exists()

    def stop(self) -> None:
        # Kubelet first: it SIGTERMs its pods; then sweep pidfiles in case it
        # could not (crashed, SIGKILLed), then the control plane.
        self.kubelet.process.stop(grace=10.0)
        for pid in self.kubelet.pod_pids().values():
            terminate_group(pid, grace=2.0)
        for f in self.kubelet.log_dir.glob("*.pid"):
            f.unlink(missing_ok=True)
        (self.workdir / "kubelet.ready").unlink(missing_ok=True)
        self.controlplane.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access ----------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        """Every process this cluster started that is (or was) running."""
        pids = self.controlplane.pids()
        if self.kubelet.process.popen is not None:
            pids["kubelet"] = self.kubelet.pid
        pids.update({f"pod:{k}": v for k, v in self.kubelet.pod_pids().items()})
        return pids
