"""deploy/argocd's Application, runs Application and ApplicationSet are valid
Argo CD objects: the real API server validates them against Argo CD's own CRDs
(from the module bin/argocd is built from, bin/argocd-crds.yaml) with a
server-side dry run. What they do when Argo CD syncs them:
tests/node/test_gitops_on_node.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rap_devtools.argocd import install_crds
from rap_devtools.cluster import REPO_ROOT, LocalCluster

pytestmark = pytest.mark.e2e

DEPLOY = REPO_ROOT / "deploy" / "argocd"
MANIFESTS = ("application.yaml", "runs-application.yaml", "applicationset.yaml")


@pytest.fixture(scope="module")
def argocd_crds(cluster: LocalCluster) -> LocalCluster:
    install_crds(cluster)
    cluster.kubectl("create", "namespace", "argocd")
    return cluster


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_accepted_by_argocds_crds(argocd_crds: LocalCluster, name: str) -> None:
    path = DEPLOY / name
    out = argocd_crds.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(path))
    assert out.returncode == 0, out.stderr
    assert "(server dry run)" in out.stdout


def test_a_misspelt_field_is_refused(argocd_crds: LocalCluster, tmp_path: Path) -> None:
    """The check above can fail: strict validation refuses an unknown field."""
    app = yaml.safe_load((DEPLOY / "application.yaml").read_text())
    app["spec"]["syncPolicy"]["syncOption"] = app["spec"]["syncPolicy"].pop("syncOptions")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(app))
    out = argocd_crds.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(bad))
    assert out.returncode != 0 and "syncOption" in out.stderr, out
