"""The operator validates analyzer names against the contract's list (it does not
import the runtime's registry); the registry must implement exactly those names."""

from __future__ import annotations

from analyzer_runtime.analyzers import registry
from analyzer_runtime.contract.types import ANALYZER_VERSIONS, AnalyzerName
from analyzer_runtime.ledger.planner import planned_version


def test_the_registry_implements_the_contracts_analyzers() -> None:
    assert registry.available() == sorted(a.value for a in AnalyzerName)
    assert set(ANALYZER_VERSIONS) == set(AnalyzerName)


def test_each_analyzer_implements_the_contracts_versions() -> None:
    for name in AnalyzerName:
        if name == AnalyzerName.llm:  # its version is its provider, model and prompt
            continue
        analyzer = registry.create(name.value)
        assert analyzer.versions == ANALYZER_VERSIONS[name], name
        assert analyzer.analyzer_type == name.value


def test_the_planner_stores_results_under_each_analyzers_own_version() -> None:
    # The operator plans with ledger.planner.planned_version, without the analyzers.
    for name in AnalyzerName:
        if name == AnalyzerName.llm:
            continue
        assert planned_version({"analyzer": name.value}) == (
            name.value,
            registry.create(name.value).version,
        )
