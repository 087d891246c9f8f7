"""`helm upgrade` from the previous release (v0.1.0) in the middle of a run, on the
real node: the chart and image of v0.1.0 (built from its own tree, `make
previous-image`), a run started by its operator, then `helm upgrade` to the
working tree's chart and image. The chart's pre-upgrade hook Job really runs
(the CRDs get the new schema), the new operator takes the run over, the
previous release's shard pods finish on the migrated schema, the run ends
`Succeeded` with every track analyzed exactly once, and a field that only the
new schema has is kept and used."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_devtools import chart_demo as demo
from rap_devtools import previous_release
from rap_devtools.helm import CHART, helm_bin
from rap_devtools.realnode.cluster import RealNodeCluster
from rap_devtools.waiting import wait_for

NS = "rap-upgrade"
# Enough work, in small batches and one shard at a time, that the run outlasts the
# upgrade (hook Job, operator rollout) by minutes.
TRACKS = 40000
CRD = "analysisruns.rapanalyzer.io"
RUN = "across-the-upgrade"


def kubectl(c: RealNodeCluster, *args: str, check: bool = True) -> str:
    return c.kubectl("-n", NS, *args, check=check, timeout=120).stdout


def psql(c: RealNodeCluster, sql: str) -> str:
    return demo.psql(c, sql, NS)


def selection_fields(c: RealNodeCluster) -> set[str]:
    crd = json.loads(
        c.kubectl("get", "crd", CRD, "-o", "json", "--show-managed-fields", check=True).stdout
    )
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return set(spec["selection"]["properties"])


def put_back_old_crds(c: RealNodeCluster, tree: Path) -> None:
    """The CRDs as v0.1.0 installed them: other tests of the session may have
    installed the working tree's, which `helm install` would leave alone."""
    for path in sorted((tree / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        if c.kubectl("get", "crd", name).returncode == 0:
            c.kubectl("replace", "-f", str(path), check=True)


def operator_images(c: RealNodeCluster) -> set[str]:
    items = json.loads(kubectl(c, "get", "pods", "-l", "app.kubernetes.io/component=operator",
                               "-o", "json"))["items"]  # fmt: skip
    return {p["spec"]["containers"][0]["image"] for p in items if p["status"].get("phase") == "Running"}  # fmt: skip


def shard_with_progress(c: RealNodeCluster) -> str | None:
    items = json.loads(kubectl(c, "get", "pods", "-l", "batch.kubernetes.io/job-name",
                               "-o", "json"))["items"]  # fmt: skip
    for pod in items:
        if not pod["metadata"]["labels"]["batch.kubernetes.io/job-name"].startswith(f"{RUN}-"):
            continue
        if pod["status"].get("phase") != "Running":
            continue
        out = c.kubectl("-n", NS, "logs", pod["metadata"]["name"]).stdout
        if re.search(r"shard \d+: \d+ done, \d+ failed, \d+ skipped in \d+ batches", out):
            return str(pod["metadata"]["name"])
    return None


def run_status(c: RealNodeCluster, name: str) -> dict[str, Any]:
    return json.loads(kubectl(c, "get", "analysisrun", name, "-o", "json"))


def test_helm_upgrade_from_previous_release_mid_run(node_cluster: RealNodeCluster) -> None:
    c = node_cluster
    old_tag = previous_release.IMAGE.split(":")[1]
    if subprocess.run(["docker", "image", "inspect", previous_release.IMAGE],
                      capture_output=True).returncode:  # fmt: skip
        pytest.fail(
            f"{previous_release.IMAGE} is missing: run `make previous-image`", pytrace=False
        )
    c.load_docker_images([previous_release.IMAGE])
    demo.create_restricted_namespace(c, NS)
    try:
        with previous_release.materialise() as tree:
            put_back_old_crds(c, tree)
            demo.helm(c, "install", demo.RELEASE, str(tree / "charts" / "rap-analyzer"),
                      f"--namespace={NS}", *demo.chart_values(old_tag), "--wait",
                      "--timeout=6m")  # fmt: skip
        assert "skipAnalyzedBy" not in selection_fields(c)
        assert operator_images(c) == {previous_release.IMAGE}

        assert f"seeded {TRACKS} tracks" in demo.seed(c, TRACKS, old_tag, NS, previous_release=True)
        run = {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": RUN},
            # One shard at a time: later shards start from v0.1.0's Job after the upgrade.
            "spec": {"analyzer": "emotion", "shards": 4, "parallelism": 1, "batchSize": 5},
        }
        c.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(run), check=True)
        wait_for(lambda: shard_with_progress(c), timeout=300, interval=0.5,
                 what="a shard pod of v0.1.0 with progress",
                 describe=lambda: kubectl(c, "get", "pods,jobs", check=False))  # fmt: skip

        demo.helm(c, "upgrade", demo.RELEASE, str(CHART), f"--namespace={NS}",
                  *demo.chart_values("dev"), "--wait", "--timeout=6m")  # fmt: skip
        # Mid-run: the upgrade finished before the run did.
        assert run_status(c, RUN).get("status", {}).get("phase") not in ("Succeeded", "Failed")

        # The hook ran: the new schema, under its field manager; its Job and
        # ClusterRole are gone (hook-succeeded); the CRDs were never recreated.
        assert "skipAnalyzedBy" in selection_fields(c)
        crd = json.loads(
            c.kubectl("get", "crd", CRD, "-o", "json", "--show-managed-fields", check=True).stdout
        )
        assert "rap-analyzer-crds" in {m["manager"] for m in crd["metadata"]["managedFields"]}
        assert kubectl(c, "get", "jobs", "-l", "app.kubernetes.io/component=crd-upgrade",
                       "-o", "name") == ""  # fmt: skip
        assert c.kubectl("get", "clusterrole", f"{NS}-rap-analyzer-crds").returncode != 0
        # Values written for 0.1.0's single image (image.repository only): the
        # operator now runs its own image, found beside it (<repository>-operator).
        wait_for(lambda: operator_images(c) == {f"{demo.OPERATOR_IMAGE_REPO}:dev"}, timeout=180,
                 what="the operator on the new image")  # fmt: skip

        phase = demo.wait_for_phase(c, NS, RUN, ("Succeeded", "Failed"), 900)
        assert phase == "Succeeded", run_status(c, RUN).get("status")
        total, keys = psql(c, "SELECT count(*), count(DISTINCT (track_id, analyzer_type, "
                              "model_version)) FROM analysis_results "
                              "WHERE analyzer_type = 'emotion'").split("|")  # fmt: skip
        assert int(total) == int(keys) == TRACKS
        done = psql(c, "SELECT count(*) FROM run_items i JOIN runs r ON r.id = i.run_id "
                       f"WHERE r.name = '{RUN}' AND i.state = 'done'")  # fmt: skip
        assert int(done) == TRACKS
        # One writer at a time across the rollout: the run said Succeeded once, and
        # the Lease is held by one of the new release's two operator pods.
        events = json.loads(kubectl(c, "get", "events", "-o", "json",
                                    f"--field-selector=involvedObject.name={RUN}"))["items"]  # fmt: skip
        assert [e["reason"] for e in events].count("Succeeded") == 1, events
        assert all(e.get("count", 1) == 1 for e in events if e["reason"] == "Succeeded")
        pods = json.loads(kubectl(c, "get", "pods", "-l", "app.kubernetes.io/component=operator",
                                  "-o", "json"))["items"]  # fmt: skip
        holder = json.loads(kubectl(c, "get", "lease", "rap-analyzer-operator", "-o", "json"))[
            "spec"]["holderIdentity"]  # fmt: skip
        assert len(pods) == 2
        assert [p["metadata"]["name"] for p in pods if holder.startswith(p["metadata"]["name"])]
        # The previous release's shard pods did (some of) the run: its Job's image.
        (job,) = [j for j in json.loads(kubectl(c, "get", "jobs", "-o", "json"))["items"]
                  if j["metadata"]["name"].startswith(f"{RUN}-")]  # fmt: skip
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == previous_release.IMAGE
        # The new operator migrated the database.
        versions = psql(c, "SELECT max(version) FROM schema_migrations")
        assert int(versions) >= 13

        # A field only the new schema has: kept, and used (every track has an
        # emotion result, so nothing is selected).
        after = {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "skip-after-upgrade"},
            "spec": {"analyzer": "algorithmic", "selection": {"skipAnalyzedBy": ["emotion"]}},
        }
        c.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(after), check=True)
        stored = run_status(c, "skip-after-upgrade")
        assert stored["spec"]["selection"]["skipAnalyzedBy"] == ["emotion"]
        phase = demo.wait_for_phase(c, NS, "skip-after-upgrade", ("Succeeded", "Failed"), 300)
        status = run_status(c, "skip-after-upgrade")["status"]
        assert phase == "Succeeded", status
        assert status.get("total", 0) == 0, status
    finally:
        # Not demo.uninstall: the release may not exist when the install failed.
        subprocess.run([str(helm_bin()), f"--kubeconfig={c.kubeconfig}", "uninstall",
                        demo.RELEASE, f"--namespace={NS}", "--wait", "--timeout=3m"],
                       capture_output=True, timeout=240)  # fmt: skip
        c.kubectl("delete", "namespace", NS, "--wait", "--timeout=180s", timeout=200)
