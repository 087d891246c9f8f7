"""Analyzer registry by name."""

from __future__ import annotations

import pytest

from analyzer_runtime.analyzers.base import Analyzer
from analyzer_runtime.analyzers.registry import UnknownAnalyzerError, available, create


def test_available_lists_builtin_analyzers() -> None:
    names = available()
    assert {"algorithmic", "emotion"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", ["algorithmic", "emotion"])
def test_create_returns_analyzer_stored_under_its_name(name: str) -> None:
    analyzer = create(name)
    assert isinstance(analyzer, Analyzer)
    assert analyzer.name == analyzer.analyzer_type == name
    assert analyzer.version == "1.0.0"


def test_create_returns_new_instances() -> None:
    assert create("emotion") is not create("emotion")


def test_unknown_name_lists_available() -> None:
    with pytest.raises(UnknownAnalyzerError) as err:
        create("sentimentz")
    message = str(err.value)
    assert "sentimentz" in message
    for name in available():
        assert name in message
    assert isinstance(err.value, ValueError)
