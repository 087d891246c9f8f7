"""The reconcile's pure parts: when a run is finished, what the Job is built from,
and how pod failures read."""

from __future__ import annotations

from typing import Any

from rap_operator import pods
from rap_operator.decide import job_body
from rap_operator.reconcile import finished

from tests.builders import planned_run


def _body(**status: object) -> dict[str, Any]:
    return {
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u", "generation": 2},
        "spec": {"analyzer": "emotion", "shards": 3, "suspend": True, "parallelism": 1},
        "status": status,
    }


def test_finished_only_after_planning_or_for_a_seen_invalid_generation() -> None:
    assert finished(_body(phase="Succeeded", runId="u"))
    assert not finished(_body(phase="Running", runId="u"))
    assert not finished(_body(phase="Pending"))
    # Invalid before planning: final for that generation only; a fixed spec is looked at.
    assert finished(_body(phase="Failed", observedGeneration=2))
    assert not finished(_body(phase="Failed", observedGeneration=1))


def test_the_job_is_built_from_the_planned_spec_with_the_live_fields() -> None:
    run = planned_run(100, 4, analyzer="emotion", batchSize=10)
    spec = job_body(_body(), run)["spec"]
    # shards from the plan (a refused change to 3 does not reach the Job) ...
    assert spec["shards"] == 4 and spec["batchSize"] == 10
    # ... suspend and parallelism from the live resource.
    assert spec["suspend"] is True and spec["parallelism"] == 1


def test_pod_failures_in_words() -> None:
    pending = {
        "metadata": {"name": "p0"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient memory."}
            ],
        },
    }  # fmt: skip
    pulling = {
        "metadata": {"name": "p1"},
        "status": {
            "containerStatuses": [
                {"state": {"waiting": {"reason": "ImagePullBackOff",
                                       "message": "Back-off pulling image nope:1"}}}
            ]
        },
    }  # fmt: skip
    oom = {
        "metadata": {"name": "p2"},
        "status": {"containerStatuses": [{"state": {"terminated": {"reason": "OOMKilled"}}}]},
    }
    healthy = {"metadata": {"name": "p3"}, "status": {"containerStatuses": [{"state": {}}]}}
    got = pods.from_pods([pending, pulling, oom, healthy])
    assert [p.reason for p in got] == ["Unschedulable", "ImagePullBackOff", "OOMKilled"]
    assert "Insufficient memory" in got[0].message and "p1" in got[1].message
    assert "spec.resources.limits.memory" in got[2].message
