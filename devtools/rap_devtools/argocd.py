"""A real Argo CD next to a test cluster: test infrastructure.

Argo CD's own processes, as its local development setup runs them (goreman's
Procfile in the Argo CD repository), against our control plane:

- ``redis-server`` (Debian's) on a loopback port, Argo CD's cache;
- ``argocd-repo-server`` (bin/argocd under that name): clones from git and
  renders the chart with bin/helm;
- ``argocd-application-controller``: ``ARGOCD_FAKE_IN_CLUSTER=true`` +
  ``KUBECONFIG`` make the in-cluster destination ``https://kubernetes.default.svc``
  this cluster, as in Argo CD's local development;
- a ``git daemon`` on loopback serving a repository the test commits to.

Argo CD's CRDs (from the module bin/argocd was built from: bin/argocd-crds.yaml),
the ``argocd`` namespace, ``argocd-cm`` (our health checks,
deploy/argocd/argocd-cm-health.yaml), ``argocd-secret`` and the ``default``
AppProject are created in the cluster. No argocd-server, no UI, no Dex: the
tests read Applications with kubectl, as ``kubectl get applications`` users do.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from rap_devtools.cluster import REPO_ROOT, ClusterAccess
from rap_devtools.procs import ManagedProcess, free_port
from rap_devtools.waiting import wait_for

NAMESPACE = "argocd"
HEALTH_CM = REPO_ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml"
JSON = dict[str, Any]


class GitServer:
    """A bare repository served by ``git daemon`` on 127.0.0.1, and a working
    clone the test commits to."""

    def __init__(self, workdir: Path, name: str = "gitops") -> None:
        self.root = workdir / "git"
        self.bare = self.root / f"{name}.git"
        self.work = workdir / "git-work"
        self.port = free_port()
        self.url = f"git://127.0.0.1:{self.port}/{name}.git"
        self._daemon = ManagedProcess(
            "git-daemon",
            ["git", "daemon", f"--base-path={self.root}", "--export-all", "--reuseaddr",
             "--listen=127.0.0.1", f"--port={self.port}", "--informative-errors",
             str(self.root)],
            workdir / "logs" / "git-daemon.log",
        )  # fmt: skip

    def start(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.root.mkdir(parents=True)
        self._git(self.root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        self._git(self.root, "init", "-q", "-b", "main", str(self.work))
        self._git(self.work, "remote", "add", "origin", str(self.bare))
        self._daemon.start()
        wait_for(self._answers, timeout=15, what="git daemon to answer",
                 describe=self._daemon.log_tail)  # fmt: skip

    def _answers(self) -> bool:
        return _listening(self.port)

    def commit(self, files: dict[str, str | Path], message: str) -> str:
        """Write ``files`` (path in the repo -> text, or a file/directory to copy),
        commit, push; returns the commit id."""
        for rel, content in files.items():
            dest = self.work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                if content.is_dir():
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(content, dest)
                else:
                    shutil.copyfile(content, dest)
            else:
                dest.write_text(content)
        self._git(self.work, "add", "-A")
        self._git(self.work, "-c", "user.name=rap-tests", "-c", "user.email=tests@rap.invalid",
                  "commit", "-q", "-m", message)  # fmt: skip
        self._git(self.work, "push", "-q", "origin", "main")
        return self._git(self.work, "rev-parse", "HEAD").strip()

    def remove(self, rel: str, message: str) -> str:
        self._git(self.work, "rm", "-q", "-r", rel)
        self._git(self.work, "-c", "user.name=rap-tests", "-c", "user.email=tests@rap.invalid",
                  "commit", "-q", "-m", message)  # fmt: skip
        self._git(self.work, "push", "-q", "origin", "main")
        return self._git(self.work, "rev-parse", "HEAD").strip()

    @staticmethod
    def _git(cwd: Path, *args: str) -> str:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def stop(self) -> None:
        self._daemon.stop(grace=3)


class ArgoCD:
    """Argo CD's application controller and repo server (plus Redis) for ``cluster``."""

    def __init__(self, cluster: ClusterAccess, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir / "argocd"
        self.argocd = cluster.bin_dir / "argocd"
        self.crds = cluster.bin_dir / "argocd-crds.yaml"
        self.redis_port, self.repo_port = free_port(), free_port()
        self.repo_metrics_port, self.controller_metrics_port = free_port(), free_port()
        self.procs: list[ManagedProcess] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> ArgoCD:
        for path, what in ((self.argocd, "make argocd"), (self.crds, "make argocd")):
            if not path.is_file():
                raise RuntimeError(f"{path} is missing: run `{what}`")
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is missing: run `make node-packages`")
        shutil.rmtree(self.workdir, ignore_errors=True)
        (self.workdir / "home").mkdir(parents=True)
        self._install_in_cluster()
        logs = self.workdir / "logs"
        self._spawn(ManagedProcess(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            logs / "redis.log",
        ))  # fmt: skip
        self._spawn(ManagedProcess(
            "argocd-repo-server",
            [str(self.argocd), "--address=127.0.0.1", f"--port={self.repo_port}",
             "--metrics-address=127.0.0.1", f"--metrics-port={self.repo_metrics_port}",
             f"--redis=127.0.0.1:{self.redis_port}", "--disable-tls", "--logformat=text"],
            logs / "repo-server.log", env=self._env("argocd-repo-server"),
        ))  # fmt: skip
        self._spawn(ManagedProcess(
            "argocd-application-controller",
            [str(self.argocd), f"--kubeconfig={self.cluster.kubeconfig}",
             f"--namespace={NAMESPACE}", f"--redis=127.0.0.1:{self.redis_port}",
             f"--repo-server=127.0.0.1:{self.repo_port}", "--repo-server-plaintext",
             f"--metrics-port={self.controller_metrics_port}", "--status-processors=2",
             "--operation-processors=2", "--app-resync=15", "--app-resync-jitter=0",
             "--self-heal-timeout-seconds=2", "--logformat=text",
             # Each resource's health (our Lua's status and message) in the
             # Application's status, as Argo CD 2.x kept it: what kubectl shows.
             "--persist-resource-health"],
            logs / "application-controller.log", env=self._env("argocd-application-controller"),
        ))  # fmt: skip
        wait_for(self._ready, timeout=60, what="Argo CD's processes to listen",
                 describe=self.log_tails)  # fmt: skip
        return self

    def _env(self, binary_name: str) -> dict[str, str]:
        home = self.workdir / "home"
        return {
            "PATH": f"{self.cluster.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "ARGOCD_BINARY_NAME": binary_name,  # the multi-call binary's role
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
            "TMPDIR": str(self.workdir),
        }

    def _spawn(self, proc: ManagedProcess) -> None:
        proc.start()
        self.procs.append(proc)

    def _ready(self) -> bool:
        for proc in self.procs:
            if not proc.running():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        ports = (self.redis_port, self.repo_port, self.controller_metrics_port)
        return all(_listening(port) for port in ports)

    def _install_in_cluster(self) -> None:
        install_crds(self.cluster)
        kubectl = self.cluster.kubectl
        cm = yaml.safe_load(HEALTH_CM.read_text())
        cm["metadata"] = {"name": "argocd-cm", "namespace": NAMESPACE,
                          "labels": {"app.kubernetes.io/part-of": "argocd"}}  # fmt: skip
        docs: list[JSON] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            cm,
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "argocd-secret", "namespace": NAMESPACE,
                          "labels": {"app.kubernetes.io/part-of": "argocd"}},
             "stringData": {"server.secretkey": os.urandom(16).hex()}},
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
             "metadata": {"name": "default", "namespace": NAMESPACE},
             "spec": {"sourceRepos": ["*"],
                      "destinations": [{"server": "*", "namespace": "*"}],
                      "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
        ]  # fmt: skip
        for doc in docs:
            kubectl("apply", "-f", "-", input=json.dumps(doc), check=True)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(grace=5)
        self.procs.clear()

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(30)}" for p in self.procs)

    # -- Applications --------------------------------------------------------

    def apply(self, app: JSON) -> None:
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(app), check=True)

    def application(self, name: str) -> JSON:
        out = self.cluster.kubectl("-n", NAMESPACE, "get", "application", name, "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def health(self, name: str) -> tuple[str | None, str | None]:
        """(health status, sync status) of the Application."""
        status = self.application(name).get("status") or {}
        return (status.get("health") or {}).get("status"), (status.get("sync") or {}).get("status")

    def resources(self, name: str) -> list[JSON]:
        """The Application's resources with their sync status and (persisted) health."""
        return list((self.application(name).get("status") or {}).get("resources") or [])

    def refresh(self, name: str) -> None:
        """What `argocd app get --refresh` asks for: look at git again now."""
        self.cluster.kubectl("-n", NAMESPACE, "annotate", "--overwrite", "application", name,
                             "argocd.argoproj.io/refresh=normal", check=True)  # fmt: skip

    def describe(self, name: str) -> str:
        status = self.application(name).get("status") or {}
        keep = {k: status.get(k) for k in ("health", "sync", "conditions", "operationState")}
        keep["resources"] = [
            {k: r.get(k) for k in ("kind", "name", "status", "health")}
            for r in status.get("resources") or []
        ]
        return json.dumps(keep, indent=1)[:6000] + "\n" + self.log_tails()


def install_crds(cluster: ClusterAccess) -> None:
    """Argo CD's CRDs (bin/argocd-crds.yaml), once the API server serves them."""
    crds = cluster.bin_dir / "argocd-crds.yaml"
    if not crds.is_file():
        raise RuntimeError(f"{crds} is missing: run `make argocd`")
    cluster.kubectl("apply", "--server-side", "-f", str(crds), check=True, timeout=120)

    def established() -> bool:
        # Not `kubectl wait`: it errors out while a new CRD has no conditions yet.
        out = cluster.kubectl("get", "crd", "-l", "app.kubernetes.io/part-of=argocd", "-o",
                              "jsonpath={.items[*].status.conditions[?(@.type=='Established')].status}")  # fmt: skip
        return out.stdout.split() == ["True"] * 3

    wait_for(established, timeout=60, what="Argo CD's CRDs to be established")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def application_from(path: Path, *, repo_url: str, namespace: str,
                     values: JSON | None = None) -> JSON:  # fmt: skip
    """A shipped Application (deploy/argocd/*.yaml) pointed at the test's git
    server and namespace: everything else is as users get it."""
    app: JSON = yaml.safe_load(path.read_text())
    app["spec"]["source"]["repoURL"] = repo_url
    app["spec"]["source"]["targetRevision"] = "main"
    app["spec"]["destination"]["namespace"] = namespace
    if values is not None:
        app["spec"]["source"].setdefault("helm", {})["valuesObject"] = values
    return app
