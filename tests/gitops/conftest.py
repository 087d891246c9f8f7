"""Argo CD health checks (deploy/argocd), evaluated by Argo CD's own binary
(bin/argocd, `make argocd`). `make test-gitops` runs these; `make test` and
`make test-fast` leave them out: they are selected only by `-m gitops` or by
naming this folder on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
ARGOCD = REPO_ROOT / "bin" / "argocd"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gitops: needs bin/argocd (make argocd; make test-gitops)")


def _asked_for(config: pytest.Config) -> bool:
    """Whether this run asked for these tests: `-m` names gitops, or an argument is
    this folder or a file in it."""
    if "gitops" in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == HERE or path.is_relative_to(HERE):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if Path(str(item.fspath)).is_relative_to(HERE)]
    for item in mine:
        item.add_marker(pytest.mark.gitops)
    if mine and not _asked_for(config):
        # Not wired into `make test` yet: a plain `pytest` run leaves them out
        # instead of failing for want of bin/argocd.
        config.hook.pytest_deselected(items=mine)
        kept = set(map(id, mine))
        items[:] = [item for item in items if id(item) not in kept]


@pytest.fixture(scope="session")
def argocd() -> Path:
    if not (ARGOCD.is_file() and ARGOCD.stat().st_mode & 0o111):
        pytest.fail(
            f"{ARGOCD} is missing: run `make argocd` (make test-gitops does)", pytrace=False
        )
    return ARGOCD
