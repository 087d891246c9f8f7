"""The GitOps flow with a real Argo CD on the real node (`make gitops-demo`).

    python -m rap_devtools.gitops_demo [--tracks 3000]

Starts a real node (kubelet + containerd, as `make cluster-up NODE=real`),
loads the images (`make image postgres-image` built them), starts Argo CD's
application controller and repo server (rap_devtools.argocd) and a git daemon,
then does what a GitOps user does:

1. commits charts/rap-analyzer and applies deploy/argocd/application.yaml
   (repoURL = the local git daemon): Argo CD syncs the operator;
2. seeds a corpus (examples/seed-job.yaml);
3. commits examples/analysisrun.yaml under runs/ and applies
   deploy/argocd/runs-application.yaml: the runs Application goes Progressing
   -> Healthy as the run succeeds;
4. commits a run that fails (a 1-second deadline): Degraded; removes it from
   git: Healthy again.

It prints each Application's health as it changes. tests/node/test_gitops_on_node.py
runs the same steps and asserts on them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from rap_devtools import chart_demo
from rap_devtools.argocd import ArgoCD, GitServer, application_from
from rap_devtools.cluster import REPO_ROOT, ClusterAccess
from rap_devtools.waiting import wait_for

NAMESPACE = "rap-gitops"
CHART_APP = REPO_ROOT / "deploy" / "argocd" / "application.yaml"
RUNS_APP = REPO_ROOT / "deploy" / "argocd" / "runs-application.yaml"
EXAMPLE_RUN = REPO_ROOT / "examples" / "analysisrun.yaml"
FAILING_RUN = "runs/deadline-too-short.yaml"
JSON = dict[str, Any]


def local_values(tag: str = "dev") -> JSON:
    """The chart values of the shipped Application, with the images loaded into
    the node (never pulled) - what chart_demo passes as --set flags."""
    app = yaml.safe_load(CHART_APP.read_text())
    values: JSON = app["spec"]["source"]["helm"]["valuesObject"]
    pg_repo, pg_tag = chart_demo.POSTGRES_IMAGE
    values["image"] = {"repository": chart_demo.IMAGE_REPO, "tag": tag, "pullPolicy": "Never"}
    values["postgres"] = {
        "image": {"repository": pg_repo, "tag": pg_tag, "pullPolicy": "Never"},
        "persistence": {"size": "1Gi"},
    }
    return values


def failing_run() -> str:
    """A run whose Job may run for one second: the Job fails (DeadlineExceeded),
    so the run fails."""
    return yaml.safe_dump({
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "deadline-too-short"},
        "spec": {"analyzer": "emotion", "shards": 1, "batchSize": 10,
                 "activeDeadlineSeconds": 1, "selection": {"onlyMissing": False}},
    })  # fmt: skip


class HealthWatch:
    """Polls an Application's health; remembers each change of it and reports it,
    and each change of a run's own health message (its progress) too."""

    def __init__(self, argo: ArgoCD, app: str, report: Callable[[str], None] = print) -> None:
        self.argo, self.app, self.report = argo, app, report
        self.history: list[str] = []
        self.started = time.monotonic()
        self._messages: dict[str, str] = {}

    def poll(self) -> str | None:
        app = self.argo.application(self.app).get("status") or {}
        health = (app.get("health") or {}).get("status")
        sync = (app.get("sync") or {}).get("status")
        lines = []
        if health and (not self.history or self.history[-1] != health):
            self.history.append(health)
            lines.append(f"{self._elapsed()}  {self.app}: {health} ({sync})")
        for r in app.get("resources") or []:
            message = (r.get("health") or {}).get("message")
            key = f"{r['kind']} {r['name']}"
            if (
                r.get("group") == "rapanalyzer.io"
                and message
                and self._messages.get(key) != message
            ):
                self._messages[key] = message
                lines.append(f"{self._elapsed()}    {key}: {message}")
        if lines:
            self.report("\n".join(lines))
        return health

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def until(self, wanted: str, timeout: float, synced: bool = True) -> str:
        def reached() -> bool:
            health = self.poll()
            return health == wanted and (not synced or self.argo.health(self.app)[1] == "Synced")

        wait_for(reached, timeout=timeout, interval=0.3, what=f"{self.app} to be {wanted}",
                 describe=lambda: self.argo.describe(self.app))  # fmt: skip
        return wanted


def sync_operator(argo: ArgoCD, git: GitServer, namespace: str, tag: str = "dev") -> HealthWatch:
    git.commit({"charts/rap-analyzer": REPO_ROOT / "charts" / "rap-analyzer"}, "the chart")
    argo.apply(application_from(CHART_APP, repo_url=git.url, namespace=namespace,
                                values=local_values(tag)))  # fmt: skip
    watch = HealthWatch(argo, "rap-analyzer")
    watch.until("Healthy", timeout=420)
    return watch


def sync_runs(
    argo: ArgoCD, git: GitServer, namespace: str, report: Callable[[str], None] = print
) -> HealthWatch:
    git.commit({"runs/analysisrun.yaml": EXAMPLE_RUN}, "a run")
    argo.apply(application_from(RUNS_APP, repo_url=git.url, namespace=namespace))
    watch = HealthWatch(argo, "rap-analyzer-runs", report)
    watch.until("Healthy", timeout=420)
    return watch


def fail_a_run(argo: ArgoCD, git: GitServer, watch: HealthWatch) -> None:
    git.commit({FAILING_RUN: failing_run()}, "a run that cannot finish in time")
    argo.refresh(watch.app)
    watch.until("Degraded", timeout=300)


def remove_failed_run(argo: ArgoCD, git: GitServer, watch: HealthWatch) -> None:
    git.remove(FAILING_RUN, "drop the failed run")
    argo.refresh(watch.app)
    watch.until("Healthy", timeout=300)


def main(argv: list[str] | None = None) -> None:
    from rap_devtools.realnode.cluster import RealNodeCluster

    ap = argparse.ArgumentParser(prog="python -m rap_devtools.gitops_demo")
    ap.add_argument("--tag", default="dev")
    ap.add_argument("--tracks", type=int, default=3000)
    args = ap.parse_args(argv)
    images = [*chart_demo.app_images(args.tag), ":".join(chart_demo.POSTGRES_IMAGE)]
    with RealNodeCluster() as cluster:
        cluster.load_docker_images(images)
        git = GitServer(cluster.workdir)
        git.start()
        argo = ArgoCD(cluster, cluster.workdir).start()
        try:
            run(cluster, argo, git, args.tracks)
        finally:
            argo.stop()
            git.stop()


def run(cluster: ClusterAccess, argo: ArgoCD, git: GitServer, tracks: int) -> None:
    start = time.monotonic()
    print(f"git daemon: {git.url}; Argo CD: {argo.workdir}")
    sync_operator(argo, git, NAMESPACE)
    print(chart_demo.seed(cluster, tracks, namespace=NAMESPACE).strip().splitlines()[-1])
    runs = sync_runs(argo, git, NAMESPACE)
    print(cluster.kubectl("-n", NAMESPACE, "get", "analysisruns").stdout, end="")
    fail_a_run(argo, git, runs)
    print(cluster.kubectl("-n", NAMESPACE, "get", "analysisruns").stdout, end="")
    remove_failed_run(argo, git, runs)
    print(f"done in {time.monotonic() - start:.0f}s: {' -> '.join(runs.history)}")


if __name__ == "__main__":
    sys.exit(main())
