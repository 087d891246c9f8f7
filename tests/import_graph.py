"""Our modules and the imports between them, read from the AST (nothing is imported):
shared by the import-cycle test and the layer test.

Imports inside functions count (a lazy import hides a dependency, it does not remove
it); imports under `if TYPE_CHECKING:` are for type checkers only and do not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "analyzer_runtime": ROOT / "analyzer_runtime",
    "rap_operator": ROOT / "operator" / "rap_operator",
    "rap_devtools": ROOT / "devtools" / "rap_devtools",
}


def modules() -> dict[str, Path]:
    """Dotted module name -> its file, for every module of PACKAGES."""
    found = {}
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [pkg, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of `known` that `module` (at `path`) imports."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (target := resolve(alias.name)) is not None:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}") or resolve(base)
                if target is not None:
                    out.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(module)
    # A package's __init__ is imported with each of its modules: not an edge back.
    return {t for t in out if not module.startswith(t + ".")}


def graph() -> dict[str, set[str]]:
    """Every module of ours -> the modules of ours it imports."""
    mods = modules()
    known = set(mods)
    return {m: imports(p, m, known) for m, p in mods.items()}
