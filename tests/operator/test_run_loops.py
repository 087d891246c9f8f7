"""The per-run loops of handlers.py: a run that finished says so once, even when its
loop is started again by a change seen while finishing or by a stale watch event
(found in CI: `Succeeded` posted twice)."""

from __future__ import annotations

from typing import Any

import pytest
from rap_devtools.waiting import wait_for_async
from rap_operator import handlers
from rap_operator.reconcile import RunMemory

UID = "6a7b0c3e-0000-4000-8000-000000000001"


def _body(phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": UID, "generation": 1},
        "status": {"phase": phase, "runId": UID},
    }


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[RunMemory]:
    """Each reconcile pass records the memory it was given; the first one finishes
    the run (as reconcile does: the Event is posted, the phase remembered) while a
    Job event wakes the loop."""
    seen: list[RunMemory] = []

    async def fake_reconcile(
        body: Any, job: Any, mem: RunMemory, config: Any, workload: Any = None
    ) -> bool:
        seen.append(mem)
        if mem.phase is None:
            mem.phase = "Succeeded"
            handlers._loops[UID].wake.set()  # a Job event arrives during the pass
        return False

    monkeypatch.setattr(handlers, "reconcile", fake_reconcile)
    monkeypatch.setattr(handlers, "_loops", {})
    monkeypatch.setattr(handlers, "_ended", {})
    return seen


async def test_a_loop_started_again_while_finishing_keeps_its_memory(
    passes: list[RunMemory],
) -> None:
    handlers._watch(_body("Running"))
    await wait_for_async(
        lambda: len(passes) == 2 and not handlers._loops,
        within=5,
        interval=0.01,
        what="two passes, then idle",
    )
    assert passes[0] is passes[1]
    assert passes[1].phase == "Succeeded"


async def test_a_stale_watch_event_after_the_end_reuses_the_memory(
    passes: list[RunMemory],
) -> None:
    handlers._watch(_body("Running"))
    await wait_for_async(
        lambda: len(passes) == 2 and not handlers._loops,
        within=5,
        interval=0.01,
        what="first loop ends",
    )
    # An event from before the final patch, delivered late: still says Running.
    handlers._watch(_body("Running"))
    await wait_for_async(
        lambda: len(passes) == 3 and not handlers._loops,
        within=5,
        interval=0.01,
        what="the late loop ends",
    )
    assert passes[2].phase == "Succeeded"


async def test_a_deleted_run_forgets_its_memory(
    passes: list[RunMemory], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def nothing(*_: Any) -> None:
        return None

    monkeypatch.setattr(handlers, "_cancelled", nothing)
    handlers._watch(_body("Running"))
    await wait_for_async(
        lambda: len(passes) == 2 and not handlers._loops,
        within=5,
        interval=0.01,
        what="first loop ends",
    )
    assert UID in handlers._ended

    class Meta(dict):  # the two attributes run_event reads of kopf's Body
        uid = UID

    class Body(dict):
        metadata = Meta()

    # a stand-in for kopf's Body (the handler reads it as a mapping)
    await handlers.run_event(type="DELETED", body=Body(_body("Succeeded")))  # type: ignore[arg-type]
    assert UID not in handlers._ended
