"""GitOps with a real Argo CD (issue 14): Argo CD's application controller and
repo server (built from its Go module, bin/argocd) with Redis and a git daemon,
syncing the shipped Applications (deploy/argocd) into the real node.

- the chart's Application syncs the operator (Healthy, Synced; the namespace it
  creates enforces Pod Security "restricted");
- the runs Application carries examples/analysisrun.yaml: its health goes
  Progressing -> Healthy as the run succeeds, through our Lua health checks
  (argocd-cm-health.yaml), with the run's progress as the resource's message;
- a run that fails makes it Degraded; removing that run from git (prune)
  makes it Healthy again.

The tests run in order on one Argo CD (module fixture); the same flow is
`make gitops-demo` (rap_devtools.gitops_demo)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from rap_devtools import chart_demo
from rap_devtools import gitops_demo as flow
from rap_devtools.argocd import ArgoCD, GitServer
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

NS = flow.NAMESPACE
# Enough for the run to last a while after Argo CD's first sync (algorithmic is fast).
TRACKS = 20000
RUN = "algorithmic-demo"  # examples/analysisrun.yaml


@pytest.fixture(scope="module")
def gitops(
    node_cluster: RealNodeCluster,
) -> Iterator[tuple[RealNodeCluster, ArgoCD, GitServer]]:
    git = GitServer(node_cluster.workdir)
    git.start()
    argo = ArgoCD(node_cluster, node_cluster.workdir).start()
    try:
        yield node_cluster, argo, git
    finally:
        # The Applications' finalizers make Argo CD delete what it deployed, so
        # a later module can install the chart (its ClusterRoles) again.
        node_cluster.kubectl("-n", "argocd", "delete", "applications", "--all",
                             "--timeout=180s", timeout=200)  # fmt: skip
        argo.stop()
        git.stop()
        node_cluster.kubectl("delete", "namespace", NS, "--timeout=120s", timeout=150)


def test_chart_application_syncs_the_operator(
    gitops: tuple[RealNodeCluster, ArgoCD, GitServer],
) -> None:
    cluster, argo, git = gitops
    watch = flow.sync_operator(argo, git, NS)
    assert watch.history[-1] == "Healthy", watch.history
    app = argo.application("rap-analyzer")
    assert app["status"]["sync"]["status"] == "Synced"
    kinds = {(r["kind"], r["name"]) for r in app["status"]["resources"]}
    assert ("Deployment", "rap-analyzer") in kinds and (
        "StatefulSet",
        "rap-analyzer-postgres",
    ) in kinds
    assert ("CustomResourceDefinition", "analysisruns.rapanalyzer.io") in kinds
    ns = json.loads(cluster.kubectl("get", "ns", NS, "-o", "json", check=True).stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deploy = json.loads(cluster.kubectl("-n", NS, "get", "deploy", "rap-analyzer", "-o", "json",
                                        check=True).stdout)  # fmt: skip
    assert deploy["status"].get("readyReplicas") == 2  # two replicas electing a leader


def test_runs_application_follows_the_run(
    gitops: tuple[RealNodeCluster, ArgoCD, GitServer],
) -> None:
    cluster, argo, git = gitops
    assert f"seeded {TRACKS} tracks" in chart_demo.seed(cluster, TRACKS, namespace=NS)
    lines: list[str] = []
    watch = flow.sync_runs(argo, git, NS, report=lines.append)
    print("\n".join(lines))
    assert watch.history[0] in ("Progressing", "Missing"), watch.history
    assert "Progressing" in watch.history and watch.history[-1] == "Healthy", watch.history
    assert chart_demo.run_phase(cluster, NS, RUN) == "Succeeded"
    run = chart_demo.get(cluster, NS, "analysisrun", RUN) or {}
    assert run["status"]["progress"] == f"{TRACKS}/{TRACKS} (100.0%)"
    # The run's own health as Argo CD reports it (our Lua): its progress while it
    # ran, then the final count.
    seen = "\n".join(lines)
    assert re.search(rf"AnalysisRun {RUN}: (Pending|Running): \d+/{TRACKS}", seen), seen
    final = next(r for r in argo.resources("rap-analyzer-runs") if r["kind"] == "AnalysisRun")
    assert final["health"]["status"] == "Healthy"
    assert f"{TRACKS}/{TRACKS}" in final["health"]["message"], final


def test_a_failing_run_degrades_the_app_until_it_is_removed(
    gitops: tuple[RealNodeCluster, ArgoCD, GitServer],
) -> None:
    cluster, argo, git = gitops
    watch = flow.HealthWatch(argo, "rap-analyzer-runs")
    flow.fail_a_run(argo, git, watch)
    assert chart_demo.run_phase(cluster, NS, "deadline-too-short") == "Failed"
    degraded = next(r for r in argo.resources("rap-analyzer-runs")
                    if r["name"] == "deadline-too-short")  # fmt: skip
    assert degraded["health"]["status"] == "Degraded"
    assert "failed" in degraded["health"]["message"], degraded
    flow.remove_failed_run(argo, git, watch)
    wait_for(lambda: chart_demo.get(cluster, NS, "analysisrun", "deadline-too-short") is None,
             timeout=60, what="the pruned run to be gone")  # fmt: skip
    # The successful run stays, and so does its Healthy status.
    assert chart_demo.run_phase(cluster, NS, RUN) == "Succeeded"
