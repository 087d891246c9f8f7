"""`helm upgrade` from the previous release (v0.1.0) brings the new CRD schema, with
the real bin/helm against the real kube-apiserver.

The previous release installed its CRDs from crds/ (no Helm ownership metadata).
The working tree's chart applies them from a pre-upgrade hook Job. The process
kubelet runs a pod's command on this machine, without the volumes and the
in-cluster credentials a real kubelet gives it, so the upgrade here runs with
--no-hooks and the test then runs the release's own stored hook (`helm get
hooks`) the way the kubelet would: its ConfigMap, ServiceAccount and RBAC
created, the ConfigMap's files in a folder, the Job's command with a token of
the hook's ServiceAccount. tests/node runs the hook Job itself on a real node.

Also here: why not templated CRDs (Helm refuses to adopt the 0.1.0 ones), and the
control (without the hook a new field is pruned).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.helm import CHART, helm_bin
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.previous_release import CHART_VERSION, materialise

pytestmark = pytest.mark.e2e

JSON = dict[str, Any]
CRD = "analysisruns.rapanalyzer.io"
RELEASE = "rap-analyzer"
# No pods (the operator would crash-loop without in-cluster credentials) and no
# in-cluster Postgres: the CRDs are the subject here.
VALUES = ["--set=postgres.enabled=false", "--set=database.url=postgresql://u:p@db.invalid/rap"]


def _helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="rap-helm-") as tmp:
        env = {
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": f"{tmp}/cache",
            "HELM_CONFIG_HOME": f"{tmp}/config",
            "HELM_DATA_HOME": f"{tmp}/data",
            "KUBECONFIG": str(cluster.kubeconfig),
        }
        return subprocess.run(
            [str(helm_bin()), *args], capture_output=True, text=True, env=env, timeout=300
        )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _schema(kube: KubeApi) -> JSON:
    crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]


def _selection_fields(kube: KubeApi) -> set[str]:
    spec = _schema(kube)["properties"]["spec"]["properties"]
    return set(spec["selection"]["properties"])


def _apply_run(kube: KubeApi, namespace: str, name: str) -> JSON:
    """Create an AnalysisRun with selection.skipAnalyzedBy; what the API server stored."""
    body = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": "algorithmic", "selection": {"skipAnalyzedBy": ["qwen-3-4b-fp8"]}},
    }
    return kube.post(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{namespace}/analysisruns", body)


@pytest.fixture(scope="module")
def previous() -> Iterator[Path]:
    with materialise() as tree:
        yield tree


@pytest.fixture
def release_ns(cluster: LocalCluster, kube: KubeApi, namespace: str) -> Iterator[str]:
    """The test namespace with a quota of zero pods, and no release left behind."""
    kube.post(
        f"/api/v1/namespaces/{namespace}/resourcequotas",
        {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}},
    )
    yield namespace
    _helm(cluster, "uninstall", RELEASE, f"--namespace={namespace}", "--no-hooks")


@pytest.fixture
def old_crds(cluster: LocalCluster, kube: KubeApi, previous: Path) -> None:
    """The CRDs as v0.1.0 installed them. On a fresh cluster `helm install` creates
    them; other tests of this session may have applied the working tree's, which
    Helm would then leave alone: put back the old ones (same objects, old schema)."""
    for path in sorted((previous / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        try:
            kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        except ApiError as e:
            if e.status == 404:
                continue
            raise
        _ok(cluster.kubectl("replace", "-f", str(path)))


def _install_previous(cluster: LocalCluster, previous: Path, namespace: str) -> None:
    chart = previous / "charts" / "rap-analyzer"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == CHART_VERSION
    # --no-hooks: the 0.1.0 Postgres secret hook is not wanted (no Postgres here).
    _ok(_helm(cluster, "install", RELEASE, str(chart), f"--namespace={namespace}",
              "--no-hooks", *VALUES))  # fmt: skip


def _run_stored_hook(cluster: LocalCluster, kube: KubeApi, namespace: str, tmp: Path) -> str:
    """The release's crd-upgrade hook as Helm stored it, run as a kubelet would."""
    hooks = [
        d
        for d in yaml.safe_load_all(_ok(_helm(cluster, "get", "hooks", RELEASE, "-n", namespace)))
        if d
        and (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "crd-upgrade"
    ]
    by_kind = {d["kind"]: d for d in hooks}
    assert sorted(by_kind) == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Job",
                               "ServiceAccount"]  # fmt: skip
    for kind in ("ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        _ok(cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(by_kind[kind])))
    job = by_kind["Job"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "crds"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "crds"]
    # The mounted ConfigMap: as stored in the API server, one file per key.
    cm = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{volume['configMap']['name']}")
    folder = tmp / "crds"
    folder.mkdir(parents=True)
    for key, text in cm["data"].items():
        (folder / key).write_text(text)
    sa_kubeconfig = cluster.make_kubeconfig_for_serviceaccount(
        namespace, pod["serviceAccountName"], path=tmp / "sa-kubeconfig"
    )
    command = [folder.as_posix() if a == mount["mountPath"] else a for a in container["command"]]
    assert command[:3] == ["python", "-m", "rap_operator.crd_apply"], command
    proc = subprocess.run(
        [sys.executable, *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(sa_kubeconfig)},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _can_i(cluster: LocalCluster, namespace: str, sa: str, *what: str) -> bool:
    out = cluster.kubectl("auth", "can-i", *what, f"--as=system:serviceaccount:{namespace}:{sa}")
    return out.stdout.strip() == "yes"


def test_upgrade_from_the_previous_release_brings_the_new_crd_schema(
    cluster: LocalCluster,
    kube: KubeApi,
    release_ns: str,
    previous: Path,
    old_crds: None,
    tmp_path: Path,
) -> None:
    ns = release_ns
    _install_previous(cluster, previous, ns)
    assert "skipAnalyzedBy" not in _selection_fields(kube)
    crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    # Installed from crds/: Helm does not own it (hence no templated CRDs).
    assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {})

    # The control: the upgrade alone (no hook) keeps the old schema, and the API
    # server prunes the new field.
    _ok(_helm(cluster, "upgrade", RELEASE, str(CHART), f"--namespace={ns}", "--no-hooks",
              *VALUES))  # fmt: skip
    assert "skipAnalyzedBy" not in _selection_fields(kube)
    pruned = _apply_run(kube, ns, "before-the-hook")
    assert "skipAnalyzedBy" not in pruned["spec"].get("selection", {})

    out = _run_stored_hook(cluster, kube, ns, tmp_path)
    assert f"applied {CRD}" in out and f"{CRD} established" in out
    assert "skipAnalyzedBy" in _selection_fields(kube)
    kept = _apply_run(kube, ns, "after-the-hook")
    assert kept["spec"]["selection"]["skipAnalyzedBy"] == ["qwen-3-4b-fp8"]
    # Read back through a new request: stored, not only echoed.
    stored = kube.get(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/analysisruns/after-the-hook")
    assert stored["spec"]["selection"]["skipAnalyzedBy"] == ["qwen-3-4b-fp8"]
    # The run created before the upgrade is still there (the CRD was patched, never
    # deleted or replaced).
    kube.get(f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/analysisruns/before-the-hook")

    # The schema is the working tree's, field for field, under the hook's manager.
    crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
    generated = yaml.safe_load((CHART / "crds" / "analysisrun.yaml").read_text())
    assert crd["spec"]["versions"] == generated["spec"]["versions"]
    managers = {m["manager"] for m in crd["metadata"]["managedFields"]}
    assert "rap-analyzer-crds" in managers

    # Least privilege: the hook's ServiceAccount touches our two CRDs only, never deletes.
    sa = f"{RELEASE}-crds"
    for name in (CRD, "scrapejobs.rapanalyzer.io"):
        for verb in ("get", "create", "patch", "update"):
            assert _can_i(cluster, ns, sa, verb, f"customresourcedefinitions/{name}"), verb
        assert not _can_i(cluster, ns, sa, "delete", f"customresourcedefinitions/{name}")
    assert not _can_i(cluster, ns, sa, "patch", "customresourcedefinitions/other.example.com")
    assert not _can_i(cluster, ns, sa, "list", "customresourcedefinitions")
    assert not _can_i(cluster, ns, sa, "get", "secrets", "-n", ns)

    # A second upgrade runs the hook again: idempotent.
    out = _run_stored_hook(cluster, kube, ns, tmp_path / "again")
    assert f"applied {CRD}" in out
    assert "skipAnalyzedBy" in _selection_fields(kube)


def test_templated_crds_would_fail_the_upgrade(
    cluster: LocalCluster, release_ns: str, previous: Path, old_crds: None, tmp_path: Path
) -> None:
    """Why the CRDs stay in crds/: a chart with them in templates/ cannot upgrade a
    0.1.0 release, whose CRDs Helm did not record as its own."""
    ns = release_ns
    _install_previous(cluster, previous, ns)
    chart = tmp_path / "rap-analyzer"
    shutil.copytree(CHART, chart)
    for path in sorted((chart / "crds").glob("*.yaml")):
        path.rename(chart / "templates" / f"crd-{path.name}")
    out = _helm(cluster, "upgrade", RELEASE, str(chart), f"--namespace={ns}", "--no-hooks",
                *VALUES)  # fmt: skip
    assert out.returncode != 0
    assert "invalid ownership metadata" in out.stderr, out.stderr
    assert "CustomResourceDefinition" in out.stderr
