"""The chart as users install it, on the real node (`make chart-demo`).

    python -m rap_devtools.chart_demo [--tag dev] [--keep]

Needs `make cluster-up NODE=real` running and the images built (`make image
postgres-image`); loads them into the node, `helm install`s
charts/rap-analyzer with its own Postgres into a namespace that enforces Pod
Security "restricted", seeds a demo corpus with examples/seed-job.yaml,
applies examples/analysisrun.yaml and waits for `Succeeded`. The e2e test
tests/node/ runs the same steps and checks more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rap_devtools.cluster import REPO_ROOT, ClusterAccess
from rap_devtools.helm import CHART, helm_bin
from rap_devtools.waiting import wait_for

RELEASE = "rap-analyzer"
NAMESPACE = "rap-analyzer"
# `make image`: the worker image (values `image`) and the operator's, which the
# chart finds beside it (operator.image.repository empty: <repository>-operator).
IMAGE_REPO = "rap-analyzer"
OPERATOR_IMAGE_REPO = f"{IMAGE_REPO}-operator"
POSTGRES_IMAGE = ("rap-analyzer-postgres", "16-pgvector")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def helm(cluster: ClusterAccess, *args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(helm_bin()), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed:\n{result.stderr}")
    return result.stdout


def app_images(tag: str = "dev") -> list[str]:
    """The project's two images at `tag`: what a node needs to run the chart."""
    return [f"{IMAGE_REPO}:{tag}", f"{OPERATOR_IMAGE_REPO}:{tag}"]


def chart_values(tag: str) -> list[str]:
    """--set flags for images loaded into the node (never pulled)."""
    repo, pg_tag = POSTGRES_IMAGE
    return [
        f"--set=image.repository={IMAGE_REPO}",
        f"--set=image.tag={tag}",
        "--set=image.pullPolicy=Never",
        f"--set=postgres.image.repository={repo}",
        f"--set=postgres.image.tag={pg_tag}",
        "--set=postgres.image.pullPolicy=Never",
        "--set=postgres.persistence.size=1Gi",
    ]


def create_restricted_namespace(cluster: ClusterAccess, namespace: str = NAMESPACE) -> None:
    doc = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": namespace, "labels": RESTRICTED}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=True)


def install(cluster: ClusterAccess, tag: str = "dev", namespace: str = NAMESPACE) -> str:
    return helm(cluster, "install", RELEASE, str(CHART), f"--namespace={namespace}",
                *chart_values(tag), "--wait", "--timeout=6m")  # fmt: skip


def upgrade(cluster: ClusterAccess, tag: str, namespace: str = NAMESPACE, *extra: str) -> str:
    """`helm upgrade` to `tag`, with `extra` flags (--set=...) on top of chart_values."""
    return helm(cluster, "upgrade", RELEASE, str(CHART), f"--namespace={namespace}",
                *chart_values(tag), *extra, "--wait", "--timeout=6m")  # fmt: skip


def uninstall(cluster: ClusterAccess, namespace: str = NAMESPACE) -> str:
    return helm(cluster, "uninstall", RELEASE, f"--namespace={namespace}", "--wait",
                "--timeout=3m")  # fmt: skip


def seed(
    cluster: ClusterAccess,
    tracks: int,
    tag: str = "dev",
    namespace: str = NAMESPACE,
    previous_release: bool = False,
) -> str:
    """examples/seed-job.yaml with the image and size set; returns its log. With
    `previous_release` (0.1.0: no database roles, no `db migrate --wait`) it reads
    the one URL Secret rap-analyzer-db and migrates without waiting."""
    text = (REPO_ROOT / "examples" / "seed-job.yaml").read_text()
    if previous_release:
        for new_only in ("name: rap-analyzer-db-owner", "db migrate --wait 180"):
            assert new_only in text, new_only
        text = text.replace("name: rap-analyzer-db-owner", "name: rap-analyzer-db")
        text = text.replace("db migrate --wait 180", "db migrate")
    text = text.replace("image: rap-analyzer:dev", f"image: {IMAGE_REPO}:{tag}")
    text = text.replace("rap-analyzer seed 3000", f"rap-analyzer seed {tracks}")
    cluster.kubectl("-n", namespace, "delete", "job", "seed-demo-corpus", "--ignore-not-found",
                    "--wait")  # fmt: skip
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=text, check=True)
    wait_for(
        lambda: job_finished(cluster, namespace, "seed-demo-corpus"),
        timeout=300, interval=1.0, what="the seed Job to finish",
        describe=lambda: cluster.kubectl("-n", namespace, "get", "pods,events").stdout,
    )  # fmt: skip
    if job_finished(cluster, namespace, "seed-demo-corpus") != "Complete":
        raise RuntimeError(
            "seed Job failed:\n"
            + cluster.kubectl("-n", namespace, "logs", "job/seed-demo-corpus").stdout
        )
    # The pod that succeeded: `logs job/...` picks any one of them, and a Job applied
    # while the install is still settling (Argo CD's PostSync roles hook) may have
    # failed attempts before it.
    done = cluster.kubectl("-n", namespace, "get", "pods", "-l", "job-name=seed-demo-corpus",
                           "--field-selector=status.phase=Succeeded", "-o", "name",
                           check=True).stdout.split()  # fmt: skip
    return cluster.kubectl("-n", namespace, "logs", done[0]).stdout


# psql inside the chart's Postgres pod, as the user the chart made it for.
PSQL = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'


def psql(cluster: ClusterAccess, sql: str, namespace: str = NAMESPACE) -> str:
    """One statement through `kubectl exec` into the chart's Postgres (what a user
    would do); its rows unaligned, `|`-separated."""
    out = cluster.kubectl("-n", namespace, "exec", "rap-analyzer-postgres-0", "--", "sh", "-c",
                          f'{PSQL} -tAc "$0"', sql, check=True, timeout=120)  # fmt: skip
    return out.stdout.strip()


def job_finished(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    got = get(cluster, namespace, "job", name)
    for cond in (got or {}).get("status", {}).get("conditions", []):
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def get(cluster: ClusterAccess, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json")
    return json.loads(out.stdout) if out.returncode == 0 else None


def run_phase(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    return ((get(cluster, namespace, "analysisrun", name) or {}).get("status") or {}).get("phase")


def wait_for_phase(
    cluster: ClusterAccess, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 600
) -> str:
    return wait_for(
        lambda: (p := run_phase(cluster, namespace, name)) in phases and p,
        timeout=timeout, interval=1.0, what=f"AnalysisRun {name} to reach {phases}",
        describe=lambda: cluster.kubectl("-n", namespace, "get", "analysisruns,jobs,pods",
                                         "-o", "wide").stdout,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from rap_devtools.cluster_cli import _paths

    ap = argparse.ArgumentParser(prog="python -m rap_devtools.chart_demo")
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / ".cluster")
    ap.add_argument("--tag", default="dev")
    ap.add_argument("--tracks", type=int, default=3000)
    args = ap.parse_args(argv)

    class Running(ClusterAccess):
        def __init__(self, workdir: Path) -> None:
            self.workdir = workdir
            self.bin_dir = REPO_ROOT / "bin"

        @property
        def kubeconfig(self) -> Path:
            return _paths(self.workdir)["kubeconfig"]

    cluster = Running(args.workdir.resolve())
    if not (cluster.workdir / "node" / "containerd" / "containerd.sock").exists():
        sys.exit("no real node: run `make cluster-up NODE=real` first")
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "rap_devtools.cluster_cli", "load",
                    f"--workdir={cluster.workdir}", *app_images(args.tag),
                    ":".join(POSTGRES_IMAGE)], check=True)  # fmt: skip
    create_restricted_namespace(cluster)
    if helm(cluster, "list", f"--namespace={NAMESPACE}", "-q").strip() == RELEASE:
        print(upgrade(cluster, args.tag))
    else:
        print(install(cluster, args.tag))
    print(seed(cluster, args.tracks, args.tag))
    run = REPO_ROOT / "examples" / "analysisrun.yaml"
    cluster.kubectl("-n", NAMESPACE, "delete", "-f", str(run), "--ignore-not-found", "--wait")
    print(cluster.kubectl("-n", NAMESPACE, "apply", "-f", str(run), check=True).stdout, end="")
    phase = wait_for_phase(cluster, NAMESPACE, "algorithmic-demo", ("Succeeded", "Failed"))
    print(cluster.kubectl("-n", NAMESPACE, "get", "analysisruns").stdout)
    print(f"{phase} in {time.monotonic() - start:.0f}s; "
          f"kubectl --kubeconfig {cluster.kubeconfig} -n {NAMESPACE} get all")  # fmt: skip
    sys.exit(0 if phase == "Succeeded" else 1)


if __name__ == "__main__":
    main()


# -- helpers for tests that run more than the chart on the node (appended) -------------


def start_fake_on(cls: Any, host: str, timeout: float | None = None, **config: Any) -> Any:
    """Start a fake internet service (``cls`` = FakeLLM, FakeGeniusServer) listening
    on ``host`` instead of loopback: pods reach the host only on the veth's host-side
    address (the API server's, ``cluster.controlplane.address``). The returned
    server's ``base`` (and the URLs derived from it) name that address; ``stop()`` it."""

    class OnHost(cls):
        @property
        def base(self) -> str:
            return f"http://{host}:{self.port}"

        def start(self, timeout: float | None = None) -> Any:
            timeout = self.start_timeout if timeout is None else timeout
            port_file, log = self._dir / "port", self._dir / "out.log"
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--host", host, "--port", "0",
                 "--port-file", str(port_file), "--config", json.dumps(self.config)],
                stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

            def bound() -> str | None:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.output()}")
                return (port_file.exists() and port_file.read_text().strip()) or None

            self.port = int(wait_for(bound, timeout=timeout, interval=0.05,
                                     what=f"{self.name} on {host}", describe=self.output))  # fmt: skip
            return self

    OnHost.__name__ = f"{cls.__name__}OnHost"
    return OnHost(**config).start(timeout)


def create_secret(cluster: ClusterAccess, namespace: str, name: str, data: dict[str, str]) -> None:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "type": "Opaque", "stringData": data}  # fmt: skip
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=True)


def scrapejob_phase(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    return ((get(cluster, namespace, "scrapejob", name) or {}).get("status") or {}).get("phase")


def pod_ips(cluster: ClusterAccess, namespace: str, selector: str) -> list[str]:
    """IPs of the Running pods matching ``selector`` (reachable from the host)."""
    out = cluster.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json", check=True)
    return [p["status"]["podIP"] for p in json.loads(out.stdout)["items"]
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")]  # fmt: skip


_GET_STATUSES = """
import os, sys, urllib.error, urllib.request
token = os.environ.get("BEARER_TOKEN")
headers = {"Authorization": f"Bearer {token}"} if token else {}
codes = []
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            resp.read()
            codes.append(resp.status)
    except urllib.error.HTTPError as e:
        codes.append(e.code)
print(" ".join(map(str, codes)))
"""


def get_in_node(cluster: Any, urls: list[str], token: str | None = None) -> list[int]:
    """GET each URL from inside the real node's network namespace (where pod IPs are
    routed; the host has no route to them) and return the HTTP status codes.
    ``cluster`` is a RealNodeCluster. ``token``: sent as a bearer token (through the
    environment, never on a command line)."""
    env = dict(os.environ)
    env.pop("BEARER_TOKEN", None)
    if token:
        env["BEARER_TOKEN"] = token
    out = subprocess.run(
        [*cluster.network.nsenter(), sys.executable, "-c", _GET_STATUSES, *urls],
        capture_output=True, text=True, timeout=300, check=True, env=env,
    )  # fmt: skip
    return [int(code) for code in out.stdout.split()]
