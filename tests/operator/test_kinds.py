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
    class NoChaining:  # every member of AnalysisRun but on_succeeded
        kind, plural, subcommand, wording = "X", "xs", "x", AnalysisRun.wording

    for name in dir(AnalysisRun):
        if not name.startswith("_") and name != "on_succeeded":
            setattr(NoChaining, name, getattr(AnalysisRun, name))
    assert not isinstance(NoChaining(), RunKind)
    # the class is built attribute by attribute in this test
    NoChaining.on_succeeded = AnalysisRun.on_succeeded  # type: ignore[attr-defined]
    assert isinstance(NoChaining(), RunKind)


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
