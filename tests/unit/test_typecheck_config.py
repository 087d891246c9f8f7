"""The mypy configuration (pyproject.toml [tool.mypy], run by `make typecheck` and
`make lint`) as mypy itself reads it: the operator, the contract and the ledger get
every per-module check --strict turns on, the rest of the runtime has every function
typed and its body checked, and every `# type: ignore` must name its error code."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy.main import process_options
from mypy.options import PER_MODULE_OPTIONS, Options

ROOT = Path(__file__).resolve().parents[2]
STRICT_MODULES = [
    "rap_operator.reconcile",
    "rap_operator.kinds.scrapejob",
    "analyzer_runtime.contract.status",
    "analyzer_runtime.ledger.shards",
]


def _options(*args: str) -> Options:
    _, options = process_options([*args])
    return options


def _strict_per_module() -> dict[str, object]:
    """What --strict changes among the per-module options, per this mypy's version."""
    default = _options("--config-file", "", "-c", "pass")
    strict = _options("--strict", "--config-file", "", "-c", "pass")
    return {
        k: getattr(strict, k)
        for k in sorted(PER_MODULE_OPTIONS)
        if getattr(strict, k, None) != getattr(default, k, None)
    }


@pytest.fixture(scope="module")
def project() -> Options:
    return _options("--config-file", str(ROOT / "pyproject.toml"))


def test_strict_changes_something() -> None:
    assert {"disallow_untyped_defs", "disallow_any_generics"} <= set(_strict_per_module())


@pytest.mark.parametrize("module", STRICT_MODULES)
def test_strict_modules_get_every_strict_check(project: Options, module: str) -> None:
    got = project.clone_for_module(module)
    missing = {k: v for k, v in _strict_per_module().items() if getattr(got, k) != v}
    assert not missing, f"{module} lacks --strict's {missing}"


def test_the_runtime_is_typed_and_checked_inside_functions(project: Options) -> None:
    got = project.clone_for_module("analyzer_runtime.worker")
    assert got.disallow_untyped_defs and got.disallow_incomplete_defs
    assert got.disallow_any_generics and not got.implicit_reexport
    assert got.check_untyped_defs
    assert got.warn_unused_ignores


def test_ignores_name_their_error_code(project: Options) -> None:
    assert "ignore-without-code" in project.enable_error_code


def test_the_operator_folder_is_not_a_module(project: Options) -> None:
    # operator/ on the path as a package would shadow the stdlib's `operator`.
    assert project.mypy_path == ["operator"]
    assert "operator/rap_operator" in project.files
