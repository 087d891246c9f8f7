"""etcd + kube-apiserver + kube-controller-manager as local processes.

The recipe is envtest's (controller-runtime's test control plane) plus the
controller manager envtest leaves out: without it there are no Job pods, no
garbage collection, no namespace deletion and no ServiceAccounts, and those
are exactly what the operator's e2e tests are about.

    cp = ControlPlane(bin_dir=Path("bin"))
    cp.start()          # returns when /readyz is ok and "default" SA exists
    ... cp.kubeconfig ...
    cp.stop()
"""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from rap_devtools import pki as pkimod
from rap_devtools.procs import (
    ManagedProcess,
    free_port,
    make_owned_tempdir,
    sweep_stale_tempdirs,
)
from rap_devtools.waiting import WaitAbandoned, WaitTimeout, wait_for

SERVICE_CIDR = "10.0.0.0/24"

# Controllers the operator depends on, plus the few that make the cluster
# look normal to a person using kubectl (aggregated admin/edit/view roles,
# kube-root-ca.crt, Deployments for running the operator in-cluster).
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    # A real node runs Services (kube-proxy reads EndpointSlices) and the
    # chart's StatefulSet Postgres with its PersistentVolumeClaim.
    "endpointslice-controller",
    "statefulset-controller",
    "persistentvolume-binder-controller",
    # They lift the pvc/pv-protection finalizers the API server's admission
    # puts on every claim and volume; without them a namespace with a PVC
    # never finishes deleting.
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    # The chart's PodDisruptionBudget: without its status (currentHealthy), Argo CD
    # holds the Application at Progressing, as on no real cluster.
    "disruption-controller",
)


class ControlPlaneError(RuntimeError):
    pass


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    *,
    user: str,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
    namespace: str = "default",
    context: str = "rap-local",
) -> Path:
    """Write a self-contained kubeconfig (credentials embedded, not referenced)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    creds: dict[str, str] = {}
    if cert_pem is not None and key_pem is not None:
        creds = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
    if token is not None:
        creds["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rap-local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": "rap-local", "user": user, "namespace": namespace},
            }
        ],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class ControlPlane:
    """Start/stop the three control-plane processes under ``workdir``.

    ``workdir`` None means a fresh temp dir that ``stop()`` deletes; a given
    directory is kept (only the etcd data and PKI inside it are removed), so
    ``make cluster-up`` leaves its logs behind for a post-mortem.
    """

    def __init__(
        self,
        bin_dir: Path,
        workdir: Path | None = None,
        *,
        kubeconfig: Path | None = None,
        ready_timeout: float = 90.0,
        verbosity: int = 1,
        address: str = "127.0.0.1",
        extra_controllers: tuple[str, ...] = (),
    ) -> None:
        self.controllers = (*CONTROLLERS, *extra_controllers)
        # Where the API server listens and what it advertises (the `kubernetes`
        # Service's endpoint): loopback for the process kubelet; the host end
        # of the real node's veth, so pods can reach it.
        self.address = address
        self.bin_dir = Path(bin_dir).resolve()
        self._own_workdir = workdir is None
        if workdir is None:
            sweep_stale_tempdirs("rap-controlplane-")
        self.workdir = Path(workdir or make_owned_tempdir("rap-controlplane-")).resolve()
        self.kubeconfig = Path(kubeconfig or self.workdir / "kubeconfig").resolve()
        self.ready_timeout = ready_timeout
        self.verbosity = verbosity
        self.etcd_port = 0
        self.apiserver_port = 0
        self.pki: pkimod.Pki | None = None
        self.processes: list[ManagedProcess] = []
        self.start_seconds: float | None = None

    # -- paths -----------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.apiserver_port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def binary(self, name: str) -> Path:
        path = self.bin_dir / name
        if not path.is_file():
            raise ControlPlaneError(
                f"{path} is missing: run `make controlplane` first "
                "(builds etcd, kube-apiserver, kube-controller-manager, kubectl into bin/)"
            )
        return path

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes if p.popen is not None}

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _start(self) -> None:
        for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
            self.binary(name)
        # Always a fresh cluster: a crashed earlier run may have left data.
        for sub in ("etcd-data", "pki", "apiserver-certs"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pki = pkimod.generate(self.workdir / "pki", extra_ips=(self.address,))
        self.etcd_port, self.apiserver_port = free_port(), free_port()
        write_kubeconfig(
            self.kubeconfig,
            self.server,
            self.pki.ca.cert.read_bytes(),
            user="admin",
            cert_pem=self.pki.admin.cert.read_bytes(),
            key_pem=self.pki.admin.key.read_bytes(),
        )
        # All three start at once: the apiserver retries etcd and the
        # controller manager retries the apiserver, so nothing waits in series.
        self._spawn("etcd", self._etcd_argv())
        self._spawn("kube-apiserver", self._apiserver_argv())
        self._spawn("kube-controller-manager", self._kcm_argv())
        self._wait_ready()

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = ManagedProcess(name, argv, self.log_dir / f"{name}.log", cwd=self.workdir)
        proc.start()
        self.processes.append(proc)

    def stop(self) -> None:
        # Reverse order: controllers first so they do not log storms of
        # connection errors while the apiserver goes away.
        for proc in reversed(self.processes):
            proc.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            for sub in ("etcd-data", "pki", "apiserver-certs"):
                shutil.rmtree(self.workdir / sub, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- command lines ---------------------------------------------------------

    def _etcd_argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        return [
            str(self.binary("etcd")),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Throw-away data: fsync only costs time on a shared 2-core box.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        assert self.pki is not None
        p = self.pki
        return [
            str(self.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p.serving.cert}",
            f"--tls-private-key-file={p.serving.key}",
            f"--client-ca-file={p.ca.cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer=https://{self.address}:{self.apiserver_port}",
            f"--service-account-key-file={p.sa_public_key}",
            f"--service-account-signing-key-file={p.sa_private_key}",
            # ServiceAccount admission stays on: the controller manager runs
            # the serviceaccount controllers that make it satisfiable. As strict as
            # OpenShift about ownerReferences: blockOwnerDeletion needs `update` on
            # the owner's finalizers (PodSecurity is on by default).
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            "--allow-privileged=true",
            # `kubectl logs/exec` on a real node: the kubelet authenticates the
            # API server by this certificate (system:masters).
            f"--kubelet-client-certificate={p.admin.cert}",
            f"--kubelet-client-key={p.admin.key}",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]

    def _kcm_argv(self) -> list[str]:
        assert self.pki is not None
        kc = str(self.kubeconfig)
        return [
            str(self.binary("kube-controller-manager")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--controllers={','.join(self.controllers)}",
            f"--service-account-private-key-file={self.pki.sa_private_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--v={self.verbosity}",
        ]

    # -- readiness -------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        assert self.pki is not None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        ctx.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return ctx

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET ``path`` as the admin; (status, body), status 0 when unreachable."""
        req = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        checks = [
            ("apiserver /readyz", "/readyz"),
            ("namespace default", "/api/v1/namespaces/default"),
            # Created by the serviceaccount controller: proves the controller
            # manager is up and the ServiceAccount admission can pass.
            (
                "ServiceAccount default/default",
                "/api/v1/namespaces/default/serviceaccounts/default",
            ),
        ]

        def exited() -> str | None:
            gone = next((p for p in self.processes if not p.running()), None)
            if gone is None:
                return None
            return f"{gone.name} exited; last lines of {gone.log_path}:\n{gone.log_tail()}"

        def tails() -> str:
            return "\n".join(f"== {p.name}\n{p.log_tail(15)}" for p in self.processes)

        for what, path in checks:
            try:
                wait_for(lambda path=path: self.get(path, timeout=2.0)[0] == 200,
                         timeout=max(0.0, deadline - time.monotonic()), interval=0.1,
                         what=what, describe=tails, give_up=exited)  # fmt: skip
            except (WaitTimeout, WaitAbandoned) as e:
                raise ControlPlaneError(f"control plane not ready: {e}") from None

    def version(self) -> dict[str, str]:
        status, body = self.get("/version")
        if status != 200:
            raise ControlPlaneError(f"/version returned {status}")
        return json.loads(body)
