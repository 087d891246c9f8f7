"""The chart as users install it, on the real node: the operator logs in
in-cluster with its ServiceAccount, pods run from the image under Pod Security
"restricted", reach Postgres through its Service by DNS name, `kubectl logs`
shows a shard's progress, a force-deleted shard pod is retried with results
exactly once, and `helm upgrade` / `helm uninstall` leave nothing stuck.

The tests run in order on one installation (module fixture)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest
from rap_devtools import chart_demo as demo
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

NS = demo.NAMESPACE
TRACKS = 12000


@pytest.fixture(scope="module")
def installed(node_cluster: RealNodeCluster) -> Iterator[RealNodeCluster]:
    demo.create_restricted_namespace(node_cluster, NS)
    demo.install(node_cluster, "dev", NS)
    yield node_cluster


def kubectl(c: RealNodeCluster, *args: str, check: bool = True) -> str:
    return c.kubectl("-n", NS, *args, check=check, timeout=120).stdout


def psql(c: RealNodeCluster, sql: str) -> str:
    return demo.psql(c, sql, NS)


def pods(c: RealNodeCluster, selector: str) -> list[dict]:
    return json.loads(kubectl(c, "get", "pods", "-l", selector, "-o", "json"))["items"]


def test_operator_logs_in_in_cluster(installed: RealNodeCluster) -> None:
    deploy = json.loads(kubectl(installed, "get", "deploy", "rap-analyzer", "-o", "json"))
    # Two replicas, both ready; only the leader runs kopf, which logs in.
    assert deploy["status"].get("readyReplicas") == 2
    sa = deploy["spec"]["template"]["spec"]["serviceAccountName"]
    logs = wait_for(
        lambda: (out := kubectl(installed, "logs", "-l", "app.kubernetes.io/component=operator",
                                "--tail=-1")) and "logged in" in out and out,
        timeout=60, what="the leader's login line",
    )  # fmt: skip
    assert f"logged in in-cluster as system:serviceaccount:{NS}:{sa}" in logs
    # The `kubernetes` Service by name: CoreDNS answers, kube-proxy routes.
    assert "API server https://kubernetes.default.svc" in logs


def test_namespace_enforces_restricted(installed: RealNodeCluster) -> None:
    ns = json.loads(installed.kubectl("get", "ns", NS, "-o", "json", check=True).stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Enforcement is live: a root pod is refused here...
    refused = installed.kubectl("-n", NS, "run", "root-probe", "--image=rap-analyzer:dev",
                                "--image-pull-policy=Never", "--restart=Never",
                                "--overrides", json.dumps({"spec": {"securityContext":
                                                                    {"runAsUser": 0}}}))  # fmt: skip
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
    # ...and everything the chart made runs: operator, Postgres (StatefulSet + PVC).
    # The chart's Postgres image (built from the pgserver wheel) carries pgvector.
    assert psql(installed, "SELECT default_version FROM pg_available_extensions "
                "WHERE name = 'vector'").startswith("0.")  # fmt: skip
    phases = {p["metadata"]["name"]: p["status"]["phase"] for p in
              json.loads(kubectl(installed, "get", "pods", "-o", "json"))["items"]}  # fmt: skip
    assert phases.get("rap-analyzer-postgres-0") == "Running", phases


def test_run_with_a_force_deleted_shard_pod_is_exactly_once(installed: RealNodeCluster) -> None:
    seed_log = demo.seed(installed, TRACKS)
    assert f"seeded {TRACKS} tracks" in seed_log
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "node-exactly-once"},
        "spec": {"analyzer": "emotion", "shards": 2, "parallelism": 2, "batchSize": 25,
                 "selection": {"onlyMissing": True}},
    }  # fmt: skip
    installed.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(run), check=True)
    selector = "batch.kubernetes.io/job-name"

    def shard_pod_with_progress() -> str | None:
        for pod in pods(installed, selector):
            if pod["status"].get("phase") != "Running":
                continue
            name = pod["metadata"]["name"]
            out = installed.kubectl("-n", NS, "logs", name).stdout
            if re.search(r"shard \d+: \d+ done, \d+ failed, \d+ skipped in \d+ batches", out):
                return name
        return None

    victim = wait_for(shard_pod_with_progress, timeout=240, interval=0.5,
                      what="a shard pod whose `kubectl logs` shows progress",
                      describe=lambda: kubectl(installed, "get", "pods,jobs", check=False))  # fmt: skip
    kubectl(installed, "delete", "pod", victim, "--grace-period=0", "--force")
    phase = demo.wait_for_phase(installed, NS, "node-exactly-once", ("Succeeded", "Failed"), 600)
    status = json.loads(kubectl(installed, "get", "analysisrun", "node-exactly-once", "-o",
                                "json"))["status"]  # fmt: skip
    assert phase == "Succeeded", status
    # The killed pod was replaced: its Job saw more pods than shards.
    total, distinct = psql(installed,
        "SELECT count(*), count(DISTINCT track_id) FROM analysis_results "
        "WHERE analyzer_type = 'emotion'").split("|")  # fmt: skip
    assert int(total) == int(distinct) == TRACKS
    done, crashed_twice = psql(installed,
        "SELECT count(*) FILTER (WHERE i.state = 'done'), count(*) FILTER (WHERE i.attempts > 2) "
        "FROM run_items i JOIN runs r ON r.id = i.run_id WHERE r.name = 'node-exactly-once'"
    ).split("|")  # fmt: skip
    assert int(done) == TRACKS and int(crashed_twice) == 0


def test_embedding_run_uses_the_model_inside_the_image(installed: RealNodeCluster) -> None:
    """The model's weights ship in the image (no download, read-only root)."""
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "node-embedding"},
        "spec": {"analyzer": "embedding", "shards": 2, "batchSize": 10,
                 "selection": {"limit": 40}},
    }  # fmt: skip
    installed.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(run), check=True)
    phase = demo.wait_for_phase(installed, NS, "node-embedding", ("Succeeded", "Failed"), 600)
    assert phase == "Succeeded", kubectl(
        installed, "get", "analysisrun", "node-embedding", "-o", "yaml"
    )
    vectors, dims = psql(installed,
        "SELECT count(*), min(vector_dims(embedding)) FROM track_embeddings").split("|")  # fmt: skip
    assert (int(vectors), int(dims)) == (40, 384)


def test_helm_upgrade_to_a_new_image_tag(installed: RealNodeCluster) -> None:
    for old, new in zip(demo.app_images("dev"), demo.app_images("dev-upgrade"), strict=True):
        subprocess.run(["docker", "tag", old, new], check=True)
    installed.load_docker_images(demo.app_images("dev-upgrade"))
    demo.upgrade(installed, "dev-upgrade", NS)
    wait_for(
        lambda: [p for p in pods(installed, "app.kubernetes.io/component=operator")
                 if p["status"].get("phase") == "Running"
                 and p["spec"]["containers"][0]["image"] == f"{demo.OPERATOR_IMAGE_REPO}:dev-upgrade"
                 and all(cs.get("ready") for cs in p["status"].get("containerStatuses", []))],
        timeout=180, what="the operator pod on the new image",
    )  # fmt: skip
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "after-upgrade"},
        "spec": {"analyzer": "algorithmic", "shards": 1, "selection": {"limit": 200}},
    }  # fmt: skip
    installed.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(run), check=True)
    assert (
        demo.wait_for_phase(installed, NS, "after-upgrade", ("Succeeded", "Failed")) == "Succeeded"
    )
    job_pods = pods(installed, "batch.kubernetes.io/job-name")
    images = {p["spec"]["containers"][0]["image"] for p in job_pods
              if p["metadata"]["labels"].get("batch.kubernetes.io/job-name", "").startswith("after-upgrade")}  # fmt: skip
    assert images == {f"{demo.IMAGE_REPO}:dev-upgrade"}  # the worker image


def test_helm_upgrade_to_pgbouncer(installed: RealNodeCluster) -> None:
    """pgbouncer.enabled on the installed release (the default generated password):
    the hook writes PgBouncer's URL Secret, PgBouncer runs from the Postgres image
    under "restricted", and a run's pods reach Postgres only through it."""
    repo, tag = demo.POSTGRES_IMAGE
    demo.upgrade(installed, "dev-upgrade", NS, "--set=pgbouncer.enabled=true",
                 f"--set=pgbouncer.image.repository={repo}", f"--set=pgbouncer.image.tag={tag}",
                 "--set=pgbouncer.image.pullPolicy=Never")  # fmt: skip
    wait_for(
        lambda: any(
            e.get("name") == "DATABASE_POOL_MODE"
            for p in pods(installed, "app.kubernetes.io/component=operator")
            if p["status"].get("phase") == "Running"
            and all(cs.get("ready") for cs in p["status"].get("containerStatuses", []))
            for e in p["spec"]["containers"][0].get("env", [])
        ),
        timeout=180, what="the operator pod configured for PgBouncer",
    )  # fmt: skip
    (bouncer,) = pods(installed, "app.kubernetes.io/component=pgbouncer")
    url = kubectl(installed, "get", "secret", "rap-analyzer-db-pgbouncer",
                  "-o", "jsonpath={.data.url}")  # fmt: skip
    assert url, "the hook wrote no URL Secret for PgBouncer"
    run = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "via-pgbouncer"},
        # algorithmic: every track has emotion results by now; 200 have algorithmic ones.
        "spec": {"analyzer": "algorithmic", "shards": 3, "parallelism": 3,
                 "selection": {"limit": 600}},
    }  # fmt: skip
    installed.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(run), check=True)
    assert (
        demo.wait_for_phase(installed, NS, "via-pgbouncer", ("Succeeded", "Failed")) == "Succeeded"
    )
    ar = json.loads(kubectl(installed, "get", "ar", "via-pgbouncer", "-o", "json"))
    assert ar["status"]["total"] == 600, ar["status"]
    uid = ar["metadata"]["uid"]
    rows = psql(installed,
                "SELECT count(*), count(DISTINCT r.track_id) FROM analysis_results r"
                " JOIN run_items i ON i.item_id = r.track_id JOIN runs u ON u.id = i.run_id"
                f" WHERE u.uid = '{uid}' AND r.analyzer_type = 'algorithmic'")  # fmt: skip
    assert rows == "600|600", rows
    # PgBouncer keeps its server connections open after the run: Postgres sees them
    # coming from the PgBouncer pod.
    ip = bouncer["status"]["podIP"]
    seen = psql(installed, f"SELECT count(*) FROM pg_stat_activity WHERE client_addr = '{ip}'")
    assert int(seen) >= 1, seen


def test_helm_uninstall_leaves_nothing_stuck(installed: RealNodeCluster) -> None:
    demo.uninstall(installed, NS)
    gone = installed.kubectl("delete", "namespace", NS, "--wait", "--timeout=180s", timeout=200)
    assert gone.returncode == 0, gone.stderr
    assert installed.kubectl("get", "namespace", NS).returncode != 0
    left = installed.kubectl("get", "analysisruns", "-A", "-o", "name").stdout.strip()
    assert left == ""
