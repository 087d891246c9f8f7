"""Observability (issue 14): the alert rules and the Grafana dashboard's PromQL
checked by the real promtool (bin/promtool, built by `make prometheus`, which
`make test` and `make test-observability` depend on)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = REPO / "bin" / "promtool"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.observability)


@pytest.fixture(scope="session")
def promtool() -> Path:
    if not PROMTOOL.is_file():
        pytest.fail(f"{PROMTOOL} is missing: run `make prometheus`", pytrace=False)
    return PROMTOOL


def load_dashboard() -> ModuleType:
    """deploy/grafana/dashboard.py, by path (deploy is not a package)."""
    path = REPO / "deploy" / "grafana" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("rap_grafana_dashboard", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
