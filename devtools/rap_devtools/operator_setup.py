"""Put the operator on a local cluster the way the Helm chart would: the CRDs, the
chart's ServiceAccount and RBAC (rendered by helm), a database Secret, and the
operator as a process authenticated as that ServiceAccount.

Used by the e2e tests and by `make operator-up` / `make cluster-demo`."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from rap_devtools.cluster import REPO_ROOT
from rap_devtools.helm import rbac_documents, rbac_rules, render_chart
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.procs import stop_process
from rap_devtools.waiting import wait_for

OPERATOR_NS = "rap-system"
# The chart's default Lease (operator.leaderElection.leaseName).
LEASE_NAME = "rap-analyzer-operator"
# The admin policy of the local operator (`make operator-up`, the e2e suite): the
# operator's defaults (the presets' official hosts) plus the fake providers on
# loopback, and the Secret names the tests and examples/ use. put_db_secret's
# Secrets carry the usable-by-runs label, as the chart's do.
_LOOPBACK = "127.0.0.1,localhost"
DEV_POLICY = {
    "RAP_POLICY_ALLOWED_HOSTS_LLM": f"api.novita.ai,api.openai.com,ollama,{_LOOPBACK}",
    "RAP_POLICY_ALLOWED_HOSTS_GENIUS": f"api.genius.com,{_LOOPBACK}",
    "RAP_POLICY_ALLOWED_HOSTS_SPOTIFY": f"api.spotify.com,accounts.spotify.com,{_LOOPBACK}",
    "RAP_POLICY_ALLOWED_SECRETS": "llm-key,genius,spotify,novita-api-key",
}
USABLE_BY_RUNS = {"rapanalyzer.io/usable-by-runs": "true"}


def election_env(pod_name: str, namespace: str = OPERATOR_NS) -> dict[str, str]:
    """An OperatorProcess's env for leader election as the chart sets it: the Lease in
    the release namespace (whose Role install_operator_rbac applied), a pod name."""
    return {"RAP_LEADER_ELECTION": "true", "POD_NAMESPACE": namespace, "POD_NAME": pod_name}


def lease_holder(kube: KubeApi, namespace: str = OPERATOR_NS, name: str = LEASE_NAME) -> str:
    """The Lease's holderIdentity; "" when released or when there is no Lease."""
    try:
        lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    except ApiError as e:
        if e.status == 404:
            return ""
        raise
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO_ROOT / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=input, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def create_namespace(kube: KubeApi, name: str, labels: dict[str, str] | None = None) -> None:
    """A namespace, returned once its "default" ServiceAccount exists: until then the
    ServiceAccount admission plugin refuses its pods."""
    kube.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})

    def sa_exists() -> bool:
        try:
            kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return True
        except ApiError:
            return False

    wait_for(sa_exists, timeout=30, what=f"ServiceAccount {name}/default")


def install_crds(kubeconfig: Path, crds: Path | None = None) -> None:
    """Apply the CRDs (this checkout's, or those in `crds`) and wait until served."""
    crds = crds or REPO_ROOT / "crds"
    res = kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    if res.returncode != 0:
        raise RuntimeError(f"kubectl apply -f crds/ failed: {res.stderr}")
    for path in sorted(crds.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        res = kubectl(
            kubeconfig, "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}",
            "--timeout=60s",
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(res.stderr)


# The e2e tests put each run in a namespace of its own, created on the fly: the
# operator they share is installed cluster-wide (the chart's opt-in). The chart's
# default, namespaced install has its own test (tests/e2e/runs/test_namespaced_install.py).
CLUSTER_WIDE: dict[str, Any] = {"rbac": {"clusterWide": True}}


def render_operator_chart(
    namespace: str = OPERATOR_NS, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`helm template` of the chart as release "rap-analyzer" in `namespace`, with
    `values` (default: cluster-wide) and an external database (none is installed)."""
    return render_chart(
        {"postgres": {"enabled": False}, "database": {"url": "postgresql://unused@localhost/x"},
         **(CLUSTER_WIDE if values is None else values)},
        namespace=namespace, release="rap-analyzer",
    )  # fmt: skip


def install_operator_rbac(
    kubeconfig: Path,
    kube: KubeApi,
    namespace: str = OPERATOR_NS,
    values: dict[str, Any] | None = None,
) -> str:
    """The chart's ServiceAccount, roles and bindings exactly as `helm template` renders
    them with `values` (default: cluster-wide); returns the ServiceAccount's name.
    The namespaces of a namespaced install's watchNamespaces must exist."""
    docs = render_operator_chart(namespace, values)
    if not rbac_rules(docs):
        raise RuntimeError("the chart renders no RBAC rules")
    objs = rbac_documents(docs)
    try:
        kube.post("/api/v1/namespaces", {"metadata": {"name": namespace}})
    except ApiError as e:
        if e.status != 409:
            raise
    # No -n: every namespaced object names its own (a watched namespace's Role is
    # not in the release namespace).
    res = kubectl(kubeconfig, "apply", "-f", "-", input=yaml.safe_dump_all(objs))
    if res.returncode != 0:
        raise RuntimeError(f"applying the chart's RBAC failed: {res.stderr}")
    return str(next(d for d in objs if d["kind"] == "ServiceAccount")["metadata"]["name"])


def put_db_secret(kube: KubeApi, namespace: str, url: str, name: str = "rap-analyzer-db") -> None:
    """The Secret runs read their database URL from (what the chart creates in a cluster)."""
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": USABLE_BY_RUNS},
        "type": "Opaque",
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }
    try:
        kube.post(f"/api/v1/namespaces/{namespace}/secrets", body)
    except ApiError as e:
        if e.status != 409:
            raise
        kube.put(f"/api/v1/namespaces/{namespace}/secrets/{name}", body)


class OperatorProcess:
    """`python -m rap_operator` with a given kubeconfig, as a process group of its own."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        interval: float = 1.0,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`env` adds to the environment, `cwd` is where it runs (a benchmark runs
        another checkout's operator with PYTHONPATH and a neutral directory)."""
        self.kubeconfig, self.log, self.interval = kubeconfig, log, interval
        self.extra_env, self.cwd = dict(env or {}), cwd or REPO_ROOT
        self.proc: subprocess.Popen[bytes] | None = None
        self.health = free_port()
        self.metrics_port = free_port()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, *, detach: bool = False) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "RAP_STATUS_INTERVAL": str(self.interval),
            "RAP_METRICS_PORT": str(self.metrics_port),
            "RAP_LIVENESS": f"http://127.0.0.1:{self.health}/healthz",
            # Shards share this host: no fixed metrics port to fight over.
            "RAP_POD_METRICS_PORT": "0",
            **DEV_POLICY,
            **self.extra_env,
        }
        env.pop("DATABASE_URL", None)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rap_operator"], env=env, stdout=out, stderr=out,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd,
            )  # fmt: skip
        wait_for(self._healthy, timeout=60, what="operator liveness", describe=self.tail)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.tail()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/healthz", timeout=2) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        stop_process(self.proc, grace=30.0)

    def signal(self, sig: int) -> None:
        """Send `sig` to the operator (a test's SIGKILL or SIGTERM of a leader)."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """The operator's exit status, once it exited within `timeout` seconds."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def serviceaccount_kubeconfig(admin: Path, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig with a bound token (TokenRequest API) for ServiceAccount
    `namespace/name`, next to an admin kubeconfig of the same cluster."""
    from rap_devtools.controlplane import write_kubeconfig

    cfg = yaml.safe_load(admin.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    kube = KubeApi(admin)
    try:
        resp = kube.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 86400}},
        )  # fmt: skip
    finally:
        kube.close()
    return write_kubeconfig(
        path, cluster["server"], base64.b64decode(cluster["certificate-authority-data"]),
        user=f"system:serviceaccount:{namespace}:{name}", token=resp["status"]["token"],
    )  # fmt: skip
