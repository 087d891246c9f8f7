"""The kinds of run the operator reconciles, by kind name: one class per kind
(analysisrun.py, scrapejob.py), each implementing the RunKind protocol (base.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rap_operator.kinds.analysisrun import ANALYSIS, AnalysisRun
from rap_operator.kinds.base import JSON, RunKind, SecretRef
from rap_operator.kinds.scrapejob import SCRAPE, ScrapeJob

__all__ = [
    "ANALYSIS",
    "JSON",
    "SCRAPE",
    "AnalysisRun",
    "RunKind",
    "ScrapeJob",
    "SecretRef",
    "of",
    "registry",
]

_KINDS: dict[str, RunKind] = {k.kind: k for k in (ANALYSIS, SCRAPE)}


def registry() -> dict[str, RunKind]:
    """Kind name -> the kind."""
    return dict(_KINDS)


def of(body: Mapping[str, Any]) -> RunKind:
    return _KINDS[str(body.get("kind"))]
