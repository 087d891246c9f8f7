"""`make test-unit` runs tests/unit and tests/operator with nothing but Python: a test
module there that needs bin/helm says so with the `helm` marker (which the tier leaves
out), and none reaches for Postgres, the control plane or another tier's fixtures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIER = sorted([*(ROOT / "tests/unit").glob("test_*.py"), *(ROOT / "tests/operator").glob("*.py")])
# Modules whose import means the test renders the chart with bin/helm.
HELM = ("rap_devtools.helm", "rap_devtools.operator_setup", "tests.unit.test_chart")
# What the Python-only tier must not import: Postgres, the control plane, other tiers.
BEYOND = ("pgserver", "rap_devtools.controlplane", "tests.integration", "tests.e2e", "tests.node")


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _uses(imports: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in imports if any(n == p or n.startswith(p + ".") for p in prefixes))


def _marked_helm(tree: ast.Module) -> bool:
    """`pytestmark = pytest.mark.helm` (or a list holding it) at module level."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "pytest.mark.helm" in ast.unparse(node.value)
    return False


@pytest.mark.parametrize("path", TIER, ids=[str(p.relative_to(ROOT)) for p in TIER])
def test_the_python_only_tier_says_what_it_needs(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imports = _imports(tree)
    helm = _uses(imports, HELM)
    # Marked exactly when it renders the chart: a stray marker would hide a pure test
    # from make test-unit.
    assert _marked_helm(tree) == bool(helm), f"helm marker vs its imports {helm}"
    assert not _uses(imports, BEYOND), "tests/unit and tests/operator need only Python"


def test_the_check_sees_a_helm_import_and_a_marker() -> None:
    tree = ast.parse("import pytest\nfrom rap_devtools.helm import render_chart\n"
                     "pytestmark = [pytest.mark.helm]\n")  # fmt: skip
    assert _uses(_imports(tree), HELM) == ["rap_devtools.helm", "rap_devtools.helm.render_chart"]
    assert _marked_helm(tree)
    assert not _marked_helm(ast.parse("pytestmark = pytest.mark.slow\n"))
