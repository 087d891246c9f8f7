"""The image installs `rap-analyzer[operator]` only: the product packages must not
need what the other extras bring. Neither analyzer_runtime nor rap_operator (nor
the chart's DB-secret hook, which runs in the image) imports the sync `kubernetes`
client or rap_devtools anywhere, and pgserver/platformdirs (the `local` extra)
only inside functions, when the embedded server is wanted."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {
    "analyzer_runtime": ROOT / "analyzer_runtime",
    "rap_operator": ROOT / "operator" / "rap_operator",
}
HOOK = ROOT / "charts" / "rap-analyzer" / "files" / "db-secret.py"
NEVER = {"kubernetes", "rap_devtools", "pytest"}  # not even lazily
LAZY_ONLY = {"pgserver", "platformdirs"}  # the `local` extra


def _sources() -> list[Path]:
    return [p for base in PRODUCT.values() for p in sorted(base.rglob("*.py"))] + [HOOK]


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(top-level package, at module level?) for every absolute import."""
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend((a.name.split(".")[0], top) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.module.split(".")[0], top))
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, True)
    return out


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_product_imports(path: Path) -> None:
    found = _imports(ast.parse(path.read_text()))
    assert sorted({m for m, _ in found} & NEVER) == []
    assert sorted({m for m, top in found if top} & LAZY_ONLY) == []


def test_the_import_scan_sees_lazy_and_module_level_imports() -> None:
    tree = ast.parse("import kubernetes.client\ndef f():\n    from pgserver import x\n")
    assert _imports(tree) == [("kubernetes", True), ("pgserver", False)]


@pytest.mark.slow  # a Python per product module
def test_every_product_module_imports_without_the_other_extras() -> None:
    """Import every module with the dev/local-only packages made unimportable."""
    blocked = sorted(NEVER | LAZY_ONLY)
    code = f"""
import importlib, json, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None
failed = {{}}
for pkg in ("analyzer_runtime", "rap_operator"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = repr(exc)
print(json.dumps(failed))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {}


def test_extras_split() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for r in reqs}

    base = names(project["dependencies"])
    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    assert not base & {"kopf", "kubernetes", "kubernetes_asyncio", "pgserver", "pytest"}
    # aiohttp: the operator imports it itself (probes, error classes), so it is named.
    assert extras["operator"] == {"kopf", "kubernetes_asyncio", "aiohttp"}
    assert "pgserver" in extras["local"]
    assert {"kubernetes", "pytest", "rap-analyzer"} <= extras["dev"]
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not any("rap_devtools" in p for p in find["packages"]["find"]["include"])
