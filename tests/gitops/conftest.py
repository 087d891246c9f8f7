"""Argo CD health checks (deploy/argocd), evaluated by Argo CD's own binary
(bin/argocd, `make argocd`, which `make test` and `make test-gitops` depend on)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
ARGOCD = REPO_ROOT / "bin" / "argocd"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.gitops)


@pytest.fixture(scope="session")
def argocd() -> Path:
    if not (ARGOCD.is_file() and ARGOCD.stat().st_mode & 0o111):
        pytest.fail(f"{ARGOCD} is missing: run `make argocd` (make test does)", pytrace=False)
    return ARGOCD
