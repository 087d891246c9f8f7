"""The pure parts of issue 22's "no stuck runs": which ledger runs the sweep may
cancel and when a resource counts as gone, when a database is due, the waiting
condition of a planned run, and the TTL patch a finished run's Job still needs."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

from rap_operator.config import OperatorConfig
from rap_operator.reconcile import ttl_patch, waiting_status
from rap_operator.sweep import due, gone, sweepable

from tests.builders import planned_run

RUN = replace(planned_run(10, 2, "planned"), uid="uid-1", namespace="team-a")
ALL = OperatorConfig()


def test_only_runs_an_operator_drives_are_swept() -> None:
    assert sweepable(RUN, ALL)
    assert sweepable(replace(RUN, kind="ScrapeJob"), ALL)
    # A local runner's run: it has a driver while it runs, and it alone is ever
    # running or interrupted.
    assert not sweepable(replace(RUN, driver="host:123"), ALL)
    assert not sweepable(replace(RUN, state="running"), ALL)
    assert not sweepable(replace(RUN, state="interrupted"), ALL)
    # No namespace: planned by `rap-analyzer run` from a YAML without one.
    assert not sweepable(replace(RUN, namespace=None), ALL)
    # Finished runs have nothing to cancel; unknown kinds are not ours.
    assert not sweepable(replace(RUN, state="succeeded"), ALL)
    assert not sweepable(replace(RUN, kind="Other"), ALL)
    # A namespace this operator does not watch is left to the one that does.
    assert sweepable(RUN, OperatorConfig(namespaces=["team-a", "team-b"]))
    assert not sweepable(RUN, OperatorConfig(namespaces=["team-b"]))


def test_a_resource_is_gone_when_missing_or_recreated_under_the_same_name() -> None:
    assert gone(RUN, None)
    assert gone(RUN, {"metadata": {"name": "r", "uid": "uid-2"}})
    assert gone(RUN, {"metadata": {}})
    assert not gone(RUN, {"metadata": {"name": "r", "uid": "uid-1"}})


def test_a_database_is_swept_when_first_known_then_every_interval() -> None:
    swept = {"a": 100.0, "b": 50.0}
    assert due(["a", "b", "new"], swept, now=200.0, interval=120.0) == ["b", "new"]
    assert due(["a", "b"], swept, now=220.0, interval=120.0) == ["a", "b"]
    assert due(["a"], swept, now=219.9, interval=120.0) == []
    assert due(["x"], {}, now=0.0, interval=math.inf) == ["x"]


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_planned_run_waiting_for_its_database_says_why_and_keeps_its_status() -> None:
    previous = {
        "phase": "Running",
        "processed": 40,
        "progress": "40/100 (40.0%)",
        "conditions": [
            {"type": "Valid", "status": "True", "reason": "SpecValid", "message": "ok",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
            {"type": "Running", "status": "True", "reason": "ShardsRunning", "message": "m",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
        ],
    }  # fmt: skip
    st = waiting_status(previous, "DatabaseUnavailable", "database at db:5432: refused", 1, NOW)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        k: v for k, v in previous.items() if k != "conditions"
    }
    valid, running = st["conditions"]
    assert valid == {
        "type": "Valid", "status": "False", "reason": "DatabaseUnavailable",
        "message": "database at db:5432: refused", "lastTransitionTime": "2026-01-02T03:04:05Z",
        "observedGeneration": 1,
    }  # fmt: skip
    assert running == previous["conditions"][1]
    # Still waiting a pass later: the transition time stays, the message follows.
    later = waiting_status(st, "DatabaseUnavailable", "timeout", 1, NOW.replace(hour=9))
    assert later["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert later["conditions"][0]["message"] == "timeout"
    # A status with no conditions yet gets the Valid one.
    assert waiting_status({}, "InputMissing", "Secret x", 2, NOW)["conditions"][0]["reason"] == (
        "InputMissing"
    )


def test_a_finished_runs_job_gets_the_ttl_until_it_has_it() -> None:
    job = {"metadata": {"name": "j", "namespace": "n"}, "spec": {"completions": 2}}
    spec = {"ttlSecondsAfterFinished": 60}
    assert ttl_patch(spec, job) == {"spec": {"ttlSecondsAfterFinished": 60}}
    # Already there: nothing to do; another value (the spec changed): patched.
    assert ttl_patch(spec, {**job, "spec": {"ttlSecondsAfterFinished": 60}}) is None
    assert ttl_patch(spec, {**job, "spec": {"ttlSecondsAfterFinished": 5}}) == {
        "spec": {"ttlSecondsAfterFinished": 60}
    }
    assert ttl_patch({"ttlSecondsAfterFinished": 0}, job) == {
        "spec": {"ttlSecondsAfterFinished": 0}
    }
    # No TTL in the spec, or no Job (gone already): nothing.
    assert ttl_patch({}, job) is None
    assert ttl_patch(spec, None) is None
