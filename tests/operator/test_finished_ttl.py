"""A finished run's Job gets the spec's TTL level-triggered (issue 22): a TTL patch
that failed, or an operator restarted between the final phase and the TTL, is made
good by the next look at the run - whichever of the run and its Job the watch
delivers first."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from rap_devtools.waiting import wait_for_async
from rap_operator import handlers, kube

UID = "6a7b0c3e-0000-4000-8000-00000000a7a1"
JOB = {
    "metadata": {"name": "r-job", "namespace": "ns", "labels": {"rapanalyzer.io/run-uid": UID}},
    "spec": {"completions": 2},
    "status": {"succeeded": 2},
}


def _run(ttl: int | None = 30) -> dict[str, Any]:
    spec: dict[str, Any] = {"analyzer": "algorithmic", "shards": 2}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": UID, "generation": 1},
        "spec": spec,
        "status": {"phase": "Succeeded", "runId": UID, "jobName": "r-job"},
    }


class _Meta(dict):  # what the handlers read of kopf's Body
    uid = UID
    labels: ClassVar[dict[str, str]] = {"rapanalyzer.io/run-uid": UID}


class _Body(dict):
    metadata = _Meta()


@pytest.fixture
def patches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The Job patches made; the first one fails as an API server in trouble would."""
    made: list[tuple[str, dict[str, Any]]] = []

    async def patch_job(namespace: str, name: str, patch: dict[str, Any]) -> None:
        made.append((name, patch))
        if len(made) == 1:
            raise ApiException(status=500, reason="etcdserver: request timed out")

    monkeypatch.setattr(kube, "patch_job", patch_job)
    monkeypatch.setattr(handlers, "RETRY_SECONDS", 0.05)
    for name in ("_loops", "_ended", "_jobs", "_ttl_waiting"):
        monkeypatch.setattr(handlers, name, {})
    return made


TTL = {"spec": {"ttlSecondsAfterFinished": 30}}


async def test_a_failed_ttl_patch_is_retried_until_the_job_has_it(
    patches: list[tuple[str, dict[str, Any]]],
) -> None:
    # _Body is a plain-dict stand-in for kopf's Body (the handlers read it as a mapping)
    await handlers.job_event(type="ADDED", body=_Body(JOB))  # type: ignore[arg-type]
    await handlers.run_event(type="MODIFIED", body=_Body(_run()))  # type: ignore[arg-type]
    await wait_for_async(
        lambda: len(patches) == 2 and not handlers._loops,
        within=10,
        interval=0.01,
        what="patched again, loop ended",
    )
    assert patches == [("r-job", TTL), ("r-job", TTL)]
    # The Job now has it: a later look at the run patches nothing.
    with_ttl = {**JOB, "spec": {**JOB["spec"], **TTL["spec"]}}
    # _Body is a plain-dict stand-in for kopf's Body (the handlers read it as a mapping)
    await handlers.job_event(type="MODIFIED", body=_Body(with_ttl))  # type: ignore[arg-type]
    await handlers.run_event(type="MODIFIED", body=_Body(_run()))  # type: ignore[arg-type]
    assert not handlers._loops and len(patches) == 2


async def test_the_run_seen_before_its_job_gets_the_ttl_on_the_jobs_event(
    patches: list[tuple[str, dict[str, Any]]],
) -> None:
    patches.append(("earlier", {}))  # no failure this time
    # _Body is a plain-dict stand-in for kopf's Body (the handlers read it as a mapping)
    await handlers.run_event(type="MODIFIED", body=_Body(_run()))  # type: ignore[arg-type]
    assert not handlers._loops and UID in handlers._ttl_waiting
    # _Body is a plain-dict stand-in for kopf's Body (the handlers read it as a mapping)
    await handlers.job_event(type="ADDED", body=_Body(JOB))  # type: ignore[arg-type]
    await wait_for_async(
        lambda: len(patches) == 2 and not handlers._loops,
        within=10,
        interval=0.01,
        what="TTL patched",
    )
    assert patches[1] == ("r-job", TTL)
    assert UID not in handlers._ttl_waiting


async def test_a_finished_run_without_a_ttl_costs_nothing(
    patches: list[tuple[str, dict[str, Any]]],
) -> None:
    # _Body is a plain-dict stand-in for kopf's Body (the handlers read it as a mapping)
    await handlers.job_event(type="ADDED", body=_Body(JOB))  # type: ignore[arg-type]
    await handlers.run_event(type="MODIFIED", body=_Body(_run(ttl=None)))  # type: ignore[arg-type]
    assert not handlers._loops and not handlers._ttl_waiting and patches == []
