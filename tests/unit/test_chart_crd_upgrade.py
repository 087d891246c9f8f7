"""The chart's pre-upgrade CRD hook (templates/crd-upgrade-hook.yaml), rendered."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rap_devtools.helm import CHART, find, only, render_chart

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

JSON = dict[str, Any]
HOOK_KINDS = ["ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"]


def _hook_docs(docs: list[JSON]) -> list[JSON]:
    return [
        d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "crd-upgrade"
    ]


@pytest.fixture(scope="module")
def docs() -> list[JSON]:
    return render_chart(namespace="rap", release="rap-analyzer")


def test_the_hook_is_pre_upgrade_only_and_cleaned_up(docs: list[JSON]) -> None:
    hook = _hook_docs(docs)
    assert sorted(d["kind"] for d in hook) == sorted(HOOK_KINDS)
    weights = {}
    for d in hook:
        ann = d["metadata"]["annotations"]
        # Not pre-install (Helm installs crds/ first), not pre-rollback (a rollback
        # must never take the schema back and prune newer runs' fields).
        assert ann["helm.sh/hook"] == "pre-upgrade", d["kind"]
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        weights[d["kind"]] = int(ann["helm.sh/hook-weight"])
    # Everything the Job needs exists before it.
    assert all(w < weights["Job"] for k, w in weights.items() if k != "Job")
    assert weights["ClusterRole"] < weights["ClusterRoleBinding"]


def test_the_crds_are_never_a_hook_nor_a_template(docs: list[JSON]) -> None:
    """Deleting a CRD deletes every run: no hook delete policy, no Helm ownership."""
    assert find(docs, "CustomResourceDefinition") == []
    with_crds = render_chart(include_crds=True)
    for crd in find(with_crds, "CustomResourceDefinition"):
        assert "helm.sh/hook" not in (crd["metadata"].get("annotations") or {})


def test_the_configmap_carries_the_charts_crd_files_byte_for_byte(docs: list[JSON]) -> None:
    cm = only(_hook_docs(docs), "ConfigMap")
    files = {p.name: p.read_text() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert cm["data"] == files


def test_least_privilege_rbac(docs: list[JSON]) -> None:
    hook = _hook_docs(docs)
    role = only(hook, "ClusterRole")
    names = sorted(
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in (CHART / "crds").glob("*.yaml")
    )
    assert role["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "resourceNames": names,
            "verbs": ["get", "create", "patch", "update"],
        }
    ]
    binding = only(hook, "ClusterRoleBinding")
    sa = only(hook, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "rap"}
    ]
    # Not the operator's ClusterRole's name (both cluster-scoped).
    others = [d["metadata"]["name"] for d in find(docs, "ClusterRole") if d not in hook]
    assert role["metadata"]["name"] not in others
    assert role["metadata"]["name"].startswith("rap-")  # the namespace prefixes it


def test_the_job_runs_crd_apply_on_the_mounted_configmap(docs: list[JSON]) -> None:
    hook = _hook_docs(docs)
    job = only(hook, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == only(hook, "ServiceAccount")["metadata"]["name"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    # rap_operator.crd_apply: the operator's image, which has it.
    assert c["image"] == "ghcr.io/rap-analyzer/rap-analyzer-operator:0.2.0"
    assert c["command"][:3] == ["python", "-m", "rap_operator.crd_apply"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "crds")
    assert c["command"][3] == mount["mountPath"] and mount["readOnly"] is True
    vol = next(v for v in pod["volumes"] if v["name"] == "crds")
    assert vol["configMap"]["name"] == only(hook, "ConfigMap")["metadata"]["name"]


def test_long_names_keep_the_suffix() -> None:
    docs = render_chart({"fullnameOverride": "x" * 63}, namespace="n" * 63)
    hook = _hook_docs(docs)
    for d in hook:
        assert len(d["metadata"]["name"]) <= 63 and d["metadata"]["name"].endswith("-crds")


def test_switched_off_by_a_value() -> None:
    assert _hook_docs(render_chart({"crds": {"upgrade": False}})) == []
