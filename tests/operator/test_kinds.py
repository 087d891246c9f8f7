"""Each kind is a class implementing the RunKind protocol: mypy checks the
assignments below (and kinds.registry()'s dict[str, RunKind]) member by member, and
isinstance checks that every member is there at run time."""

from __future__ import annotations

import pytest
from rap_operator import kinds
from rap_operator.kinds import RunKind
from rap_operator.kinds.analysisrun import AnalysisRun
from rap_operator.kinds.scrapejob import ScrapeJob

# Checked by mypy: an incompatible or missing method makes this assignment an error.
ANALYSIS_KIND: RunKind = AnalysisRun()
SCRAPE_KIND: RunKind = ScrapeJob()


@pytest.mark.parametrize("kind", [ANALYSIS_KIND, SCRAPE_KIND], ids=lambda k: k.kind)
def test_each_kind_class_satisfies_the_protocol(kind: RunKind) -> None:
    assert isinstance(kind, RunKind)
    assert kinds.registry()[kind.kind].__class__ is kind.__class__


def test_a_class_missing_a_member_is_not_a_kind() -> None:
    members = {n: getattr(AnalysisRun, n) for n in dir(AnalysisRun) if not n.startswith("_")}
    without = {n: m for n, m in members.items() if n != "on_succeeded"}
    assert not isinstance(type("NoChaining", (), without)(), RunKind)
    assert isinstance(type("Complete", (), members)(), RunKind)


def test_registry_names_one_kind_per_class() -> None:
    reg = kinds.registry()
    assert sorted(reg) == ["AnalysisRun", "ScrapeJob"]
    assert {type(k) for k in reg.values()} == {AnalysisRun, ScrapeJob}
    assert kinds.of({"kind": "ScrapeJob"}) is kinds.SCRAPE


async def test_only_a_scrapejob_with_analyze_chains_something() -> None:
    # AnalysisRun ends the chain; ScrapeJob without spec.analyze adds nothing either.
    assert await kinds.ANALYSIS.on_succeeded({"spec": {}}, {}) == {}
    assert await kinds.SCRAPE.on_succeeded({"spec": {}, "metadata": {"uid": "u"}}, {}) == {}


def test_dry_run_is_the_analysisrun_spec_flag() -> None:
    assert kinds.ANALYSIS.dry_run({"dryRun": True}) is True
    assert kinds.ANALYSIS.dry_run({}) is False
    assert kinds.SCRAPE.dry_run({"dryRun": True}) is False
