"""What deploy/argocd's Applications promise, checked on the files (the real Argo
CD syncs them in tests/node/test_gitops_on_node.py)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from rap_devtools.cluster import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy" / "argocd"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_chart_application_uses_server_side_apply_and_respects_ignores() -> None:
    app = load("application.yaml")
    assert app["spec"]["source"]["path"] == "charts/rap-analyzer"
    opts = app["spec"]["syncPolicy"]["syncOptions"]
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true", "CreateNamespace=true"} <= set(
        opts
    )
    labels = app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_runs_application_ignores_what_the_operator_writes() -> None:
    from analyzer_runtime.contract.labels import DATABASE_ANNOTATION

    app = load("runs-application.yaml")
    ignored = {
        (d["group"], d["kind"]): d["jqPathExpressions"] for d in app["spec"]["ignoreDifferences"]
    }
    for kind in ("AnalysisRun", "ScrapeJob"):
        paths = ignored[("rapanalyzer.io", kind)]
        assert ".status" in paths
        assert f'.metadata.annotations["{DATABASE_ANNOTATION}"]' in paths
    assert "SkipDryRunOnMissingResource=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_applicationset_elements_give_every_templated_key() -> None:
    appset = load("applicationset.yaml")
    text = yaml.safe_dump(appset["spec"]["template"]) + appset["spec"]["templatePatch"]
    used = set(re.findall(r"\{\{\s*\.(\w+)", text))
    assert used, "the template uses no per-cluster value"
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    assert len(elements) >= 2
    for element in elements:
        assert used <= set(element), (element["cluster"], used - set(element))
    # Every value the patch sets is a chart value.
    values = yaml.safe_load((REPO_ROOT / "charts" / "rap-analyzer" / "values.yaml").read_text())
    patch = yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "x", appset["spec"]["templatePatch"]))
    for top, sub in patch["spec"]["source"]["helm"]["valuesObject"].items():
        assert top in values, top
        for key in sub:
            assert key in values[top], f"{top}.{key}"
