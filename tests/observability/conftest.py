"""Observability (issue 14): the alert rules and the Grafana dashboard's PromQL
checked by the real promtool (bin/promtool, built by `make prometheus`).
`make test-observability` runs these. They run only when selected with
`-m observability`: `make test` (`-m "not node and not image"`) deselects them,
so it does not need Prometheus built."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMTOOL = REPO / "bin" / "promtool"
HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "observability: needs bin/promtool (make prometheus; make test-observability)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [i for i in items if Path(str(i.fspath)).is_relative_to(HERE)]
    for item in ours:
        item.add_marker(pytest.mark.observability)
    if "observability" in (config.option.markexpr or ""):
        return
    # Not asked for: leave them out instead of failing without bin/promtool.
    config.hook.pytest_deselected(items=ours)
    skip = {id(i) for i in ours}
    items[:] = [i for i in items if id(i) not in skip]


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
