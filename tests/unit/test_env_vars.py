"""Every environment variable the shipped code reads is in contract/env.py's ENV_VARS,
the table the documentation's configuration reference is generated from: a variable
read by a literal name and missing from the table fails here, so the reference
cannot fall behind the code.

Reads are found in the AST of analyzer_runtime and rap_operator (devtools, tests and
bench are development tooling, not configuration): `os.environ.get("X")`,
`os.environ["X"]`, `os.getenv("X")`, the same through a name bound to an expression
of os.environ (`e = os.environ if env is None else env; e.get("X")`), and module
constants `SOMETHING_ENV = "X"`, and typer options' `envvar="X"`."""

from __future__ import annotations

import ast
from pathlib import Path

from analyzer_runtime.contract.env import BY_NAME, ENV_VARS, READERS, EnvVar

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "analyzer_runtime", ROOT / "operator" / "rap_operator")


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _mentions_environ(node: ast.AST) -> bool:
    return any(_is_environ(n) for n in ast.walk(node))


def env_reads(source: str) -> list[tuple[str, int]]:
    """(variable name, line) of every read of a literal name in `source`."""
    tree = ast.parse(source)
    aliases = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _mentions_environ(node.value)
        for t in node.targets
        if isinstance(t, ast.Name)
    }

    def environ_like(obj: ast.AST) -> bool:
        return _mentions_environ(obj) or (isinstance(obj, ast.Name) and obj.id in aliases)

    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        arg: ast.AST | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            f = node.func
            if f.attr in ("get", "pop", "setdefault") and environ_like(f.value):
                arg = node.args[0]
            elif f.attr == "getenv":
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and environ_like(node.value):
            arg = node.slice
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.endswith("_ENV")
        ):
            arg = node.value
        if isinstance(node, ast.Call):  # typer.Option(envvar="X")
            arg = next((k.value for k in node.keywords if k.arg == "envvar"), arg)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            out.append((arg.value, node.lineno))
    return out


def _all_reads() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            for name, line in env_reads(path.read_text()):
                found.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_variable_read_is_in_the_table() -> None:
    missing = {name: where for name, where in _all_reads().items() if name not in BY_NAME}
    assert not missing, (
        "read from the environment but not in analyzer_runtime/contract/env.py ENV_VARS"
        f" (add an EnvVar with its description): {missing}"
    )


def test_the_table_is_well_formed() -> None:
    names = [v.name for v in ENV_VARS]
    assert len(names) == len(set(names)), "a variable is listed twice"
    for v in ENV_VARS:
        assert v.description.strip() and v.description.rstrip().endswith("."), v
        assert v.used_by and set(v.used_by) <= set(READERS), v


def test_the_scan_sees_each_form_of_read() -> None:
    source = """
import os
from os import environ
A_ENV = "A"
x = os.environ.get("B")
y = os.environ["C"]
z = os.getenv("D")
def f(env=None):
    e = os.environ if env is None else env
    return e.get("E"), environ.get("F"), (os.environ if env is None else env).get("G")
other = {}.get("NOT_ENV")
port = typer.Option(envvar="H", help="...")
"""
    assert sorted(n for n, _ in env_reads(source)) == ["A", "B", "C", "D", "E", "F", "G", "H"]


def test_an_unlisted_variable_is_caught() -> None:
    assert "RAP_NO_SUCH_SETTING" not in BY_NAME
    assert env_reads('import os\nos.environ.get("RAP_NO_SUCH_SETTING")\n') == [
        ("RAP_NO_SUCH_SETTING", 2)
    ]
    assert isinstance(ENV_VARS[0], EnvVar)
