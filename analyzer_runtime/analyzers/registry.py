"""Analyzers by registry name, the name an AnalysisRun spec uses.

Factories are imported lazily so that asking for `emotion` does not load
VADER and later heavy analyzers (embedding, llm) cost nothing until chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from analyzer_runtime.analyzers.base import Analyzer

# name -> "module:class".
_FACTORIES: dict[str, str] = {
    "algorithmic": "analyzer_runtime.analyzers.algorithmic:AlgorithmicAnalyzer",
    "emotion": "analyzer_runtime.analyzers.emotion:EmotionAnalyzer",
    "llm": "analyzer_runtime.analyzers.llm.analyzer:LLMAnalyzer",
    "embedding": "analyzer_runtime.analyzers.embedding:EmbeddingAnalyzer",
    "quality": "analyzer_runtime.analyzers.quality:QualityAnalyzer",
}


class UnknownAnalyzerError(ValueError):
    """Raised for a name that is not registered; the message lists valid names."""


def available() -> list[str]:
    """Registered analyzer names, sorted."""
    return sorted(_FACTORIES)


def _factory(name: str) -> Callable[..., Analyzer]:
    target = _FACTORIES.get(name)
    if target is None:
        raise UnknownAnalyzerError(
            f"unknown analyzer {name!r}; available: {', '.join(available())}"
        )
    module, _, attr = target.partition(":")
    factory: Callable[..., Analyzer] = getattr(import_module(module), attr)
    return factory


def create(name: str, **options: Any) -> Analyzer:
    """A new analyzer instance; `options` go to its constructor."""
    return _factory(name)(**options)
