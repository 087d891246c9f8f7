"""compute_status: phases, conditions, progress, timings - pure, no cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from analyzer_runtime.contract.status import (
    JobObservation,
    TokenPricing,
    format_duration,
    format_indexes,
    format_progress,
    format_time,
    is_terminal,
    parse_indexes,
    phase_changed,
    render_status_text,
)
from tests.builders import T0, cond, job, shard, status

# ---- helpers ------------------------------------------------------------------------


def test_parse_and_format_indexes() -> None:
    assert parse_indexes("0-2,5") == {0, 1, 2, 5}
    assert parse_indexes("") == set() and parse_indexes(None) == set()
    assert parse_indexes("7") == {7}
    assert format_indexes({5, 0, 1, 2}) == "0-2,5"
    assert format_indexes([]) == ""


@pytest.mark.parametrize(
    ("done", "total", "complete", "text"),
    [
        (1234, 5000, False, "1234/5000 (24.7%)"),
        (0, 5000, False, "0/5000 (0.0%)"),
        (4999, 5000, False, "4999/5000 (99.9%)"),  # never rounds up to 100% early
        (5000, 5000, True, "5000/5000 (100.0%)"),
        (1, 3, False, "1/3 (33.3%)"),
        (0, 0, False, "0/0 (0.0%)"),
        (0, 0, True, "0/0 (100.0%)"),
    ],
)
def test_format_progress(done: int, total: int, complete: bool, text: str) -> None:
    assert format_progress(done, total, complete=complete) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (44.2, "45s"), (192, "3m12s"), (3600, "1h0m0s"), (3723, "1h2m3s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_time_is_utc_z() -> None:
    assert format_time(T0.replace(microsecond=123)) == "2026-03-01T12:00:00Z"
    naive = datetime(2026, 3, 1, 12, 0, 0)
    assert format_time(naive) == "2026-03-01T12:00:00Z"
    assert format_time(None) is None


def test_job_observation_from_job_dict() -> None:
    obs = JobObservation.from_job_status(
        {
            "spec": {"suspend": False, "completions": 4},
            "status": {
                "active": 2,
                "completedIndexes": "0,2",
                "failedIndexes": "3",
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "FailedIndexes",
                     "message": "Job has failed indexes"},
                    {"type": "Suspended", "status": "False"},
                ],
            },
        }
    )  # fmt: skip
    assert obs.exists and obs.active == 2 and not obs.suspended
    assert obs.completed_indexes == {0, 2} and obs.failed_indexes == {3}
    assert obs.failed and obs.failure_reason == "FailedIndexes" and not obs.complete
    assert JobObservation.from_job_status(None) == JobObservation(exists=False)
    suspended = JobObservation.from_job_status({"spec": {"suspend": True}})
    assert suspended.suspended and suspended.active == 0
    done = JobObservation.from_job_status(
        {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    )
    assert done.complete and not done.failed


def test_phase_helpers() -> None:
    assert is_terminal("Succeeded") and is_terminal("Failed")
    assert not is_terminal("Running") and not is_terminal(None)
    assert phase_changed(None, {"phase": "Pending"})
    assert phase_changed({"phase": "Pending"}, "Running")
    assert not phase_changed({"phase": "Running"}, {"phase": "Running", "processed": 5})


# ---- phases -------------------------------------------------------------------------


def test_not_planned_is_pending() -> None:
    st = status([], None)
    assert st["phase"] == "Pending" and st["progress"] == "0/0 (0.0%)"
    assert [c["type"] for c in st["conditions"]] == [
        "Valid", "Running", "Suspended", "Failed", "CompletedWithErrors", "Succeeded"
    ]  # fmt: skip
    assert cond(st, "Succeeded")["status"] == "Unknown"
    assert cond(st, "Valid")["status"] == "True"
    assert st["startTime"] is None and st["throughput"] is None and st["eta"] is None


def test_planned_but_not_started_is_pending() -> None:
    st = status([shard(0, "pending"), shard(1, "pending")], job(active=0), job_name="r-job")
    assert st["phase"] == "Pending"
    assert st["total"] == 200 and st["jobName"] == "r-job"
    assert cond(st, "Succeeded")["reason"] == "Pending"


def test_running_progress_throughput_eta() -> None:
    shards = [shard(0, total=2500, done=1000, failed=10), shard(1, total=2500, done=224)]
    st = status(shards, job(active=2))
    assert st["phase"] == "Running"
    assert st["progress"] == "1234/5000 (24.7%)"
    assert (st["processed"], st["failed"], st["skipped"]) == (1224, 10, 0)
    assert st["throughput"] == 12.34  # 1234 items in 100 s
    assert st["eta"] == "5m6s"  # 3766 left at 12.34/s = 305.2 s
    assert st["startTime"] == "2026-03-01T12:00:00Z" and st["completionTime"] is None
    assert cond(st, "Running")["status"] == "True"
    assert cond(st, "Succeeded") | {"lastTransitionTime": None} == {
        "type": "Succeeded", "status": "Unknown", "reason": "InProgress",
        "message": "0/2 shards done, 1234/5000 tracks finished",
        "lastTransitionTime": None, "observedGeneration": 1,
    }  # fmt: skip
    assert [s["progress"] for s in st["shards"]["detail"]] == ["1010/2500", "224/2500"]
    assert st["shards"]["running"] == {"count": 2, "indexes": "0-1"}
    # No heartbeat times: the status changes only when work moves.
    assert "lastHeartbeat" not in str(st)


def test_suspended() -> None:
    shards = [shard(0, done=10), shard(1, done=5)]
    st = status(shards, job(suspended=True), suspend=True)
    assert st["phase"] == "Suspended"
    assert cond(st, "Suspended")["status"] == "True"
    assert cond(st, "Running")["status"] == "False"
    assert st["eta"] is None
    # spec.suspend alone (Job not patched yet, or not created yet) is enough
    assert status(shards, job(active=2), suspend=True)["phase"] == "Suspended"
    assert status([], None, suspend=True, planned_total=10)["phase"] == "Suspended"


def test_succeeded_clean() -> None:
    end = T0 + timedelta(seconds=80)
    shards = [shard(i, "done", done=100, finished_at=end - timedelta(seconds=i)) for i in (0, 1)]
    st = status(shards, job(completed_indexes={0, 1}, complete=True))
    assert st["phase"] == "Succeeded" and st["progress"] == "200/200 (100.0%)"
    assert st["completionTime"] == "2026-03-01T12:01:20Z"  # latest shard end, not `now`
    assert st["throughput"] == 2.5 and st["eta"] is None
    assert cond(st, "Succeeded")["status"] == "True"
    assert cond(st, "CompletedWithErrors")["status"] == "False"
    assert cond(st, "Running")["status"] == "False"


def test_succeeded_with_failed_items() -> None:
    shards = [shard(0, "done", done=95, failed=5, finished_at=T0), shard(1, "done", done=100,
              finished_at=T0)]  # fmt: skip
    st = status(shards, job(complete=True, completed_indexes={0, 1}))
    assert st["phase"] == "Succeeded" and st["failed"] == 5
    c = cond(st, "CompletedWithErrors")
    assert c["status"] == "True" and c["reason"] == "ItemsFailed"
    assert "5 of 200 tracks failed" in c["message"] and "onlyMissing" in c["message"]
    assert cond(st, "Succeeded")["status"] == "True"


def test_failed_index_waits_for_other_shards_then_fails() -> None:
    running = [shard(0, done=50), shard(1, "failed", done=20, attempt=4)]
    st = status(running, job(active=1, failed_indexes={1}))
    assert st["phase"] == "Running"  # shard 0 still working: counts not final yet
    assert "shard 1 exhausted its pod retries" in cond(st, "Running")["message"]
    assert st["shards"]["detail"][1]["state"] == "failed"
    assert st["shards"]["failed"] == {"count": 1, "indexes": "1"}

    finished = [shard(0, "done", done=100, finished_at=T0), running[1]]
    st = status(finished, job(completed_indexes={0}, failed_indexes={1}, failed=True,
                              failure_reason="FailedIndexes"), previous=st)  # fmt: skip
    assert st["phase"] == "Failed"
    failed = cond(st, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "ShardFailed"
    assert "shard 1 exhausted its pod retries" in failed["message"]
    assert "kept" in failed["message"]
    assert cond(st, "Succeeded")["status"] == "False"
    assert cond(st, "Succeeded")["message"] == failed["message"]
    assert st["shards"]["detail"][1]["message"].startswith("shard 1 exhausted its pod retries")
    assert st["completionTime"] is not None and st["eta"] is None


def test_failed_index_with_all_other_shards_done_fails_without_job_condition() -> None:
    shards = [shard(0, "done", done=100), shard(1, "running", done=20)]
    st = status(shards, job(completed_indexes={0}, failed_indexes={1}))
    assert st["phase"] == "Failed"


def test_shard_being_retried_is_not_failed() -> None:
    # The ledger says failed, but the Job has pod retries left for that index.
    shards = [shard(0, done=50), shard(1, "failed", done=20, attempt=2)]
    st = status(shards, job(active=1))
    assert st["phase"] == "Running"
    assert st["shards"]["detail"][1]["state"] == "retrying"
    assert st["shards"]["retrying"] == {"count": 1, "indexes": "1"}


def test_job_failed_as_a_whole() -> None:
    obs = job(failed=True, failure_reason="DeadlineExceeded",
              failure_message="Job was active longer than specified deadline")  # fmt: skip
    st = status([shard(0, done=50), shard(1, done=60)], obs)
    assert st["phase"] == "Failed"
    assert cond(st, "Failed")["reason"] == "DeadlineExceeded"
    assert "longer than specified deadline" in cond(st, "Failed")["message"]


def test_local_runner_shard_failure() -> None:
    shards = [shard(0, "done", done=100), shard(1, "failed", done=3, last_error="db unreachable")]
    st = status(shards, None)
    assert st["phase"] == "Failed"
    assert "shard 1 failed: db unreachable" in cond(st, "Failed")["message"]
    assert status([shard(0, "done", done=100), shard(1)], None)["phase"] == "Running"


def test_nothing_to_do_succeeds_at_once() -> None:
    st = status([], None, planned_total=0)
    assert st["phase"] == "Succeeded" and st["progress"] == "0/0 (100.0%)"
    assert cond(st, "Succeeded")["reason"] == "NothingToDo"
    assert st["completionTime"] == st["startTime"] == "2026-03-01T12:01:40Z"


def test_invalid_before_planning_fails() -> None:
    st = status([], None, valid=False, invalid_message="spec.parallelism: must be <= ...")
    assert st["phase"] == "Failed"
    assert cond(st, "Valid") | {"lastTransitionTime": None} == {
        "type": "Valid", "status": "False", "reason": "InvalidSpec",
        "message": "spec.parallelism: must be <= ...", "lastTransitionTime": None,
        "observedGeneration": 1,
    }  # fmt: skip
    assert cond(st, "Succeeded")["reason"] == "InvalidSpec"


def test_refused_spec_change_after_planning_keeps_running() -> None:
    st = status([shard(0, done=5)], job(active=1), valid=False,
                invalid_reason="SpecChangeRefused", invalid_message="create a new run")  # fmt: skip
    assert st["phase"] == "Running"
    assert cond(st, "Valid")["reason"] == "SpecChangeRefused"


# ---- stability across refreshes -----------------------------------------------------


def test_last_transition_time_is_stable_until_status_flips() -> None:
    shards = [shard(0, done=10)]
    first = status(shards, job(active=1), now=T0 + timedelta(seconds=10))
    later = status([replace(shards[0], processed=50)], job(active=1),
                   now=T0 + timedelta(seconds=70), previous=first, generation=2)  # fmt: skip
    for ctype in ("Valid", "Running", "Succeeded"):
        assert cond(later, ctype)["lastTransitionTime"] == "2026-03-01T12:00:10Z"
        assert cond(later, ctype)["observedGeneration"] == 2
    assert later["observedGeneration"] == 2
    done = status([replace(shards[0], state="done", processed=100, finished_at=None)],
                  job(complete=True), now=T0 + timedelta(seconds=90), previous=later)  # fmt: skip
    assert cond(done, "Succeeded")["lastTransitionTime"] == "2026-03-01T12:01:30Z"
    assert cond(done, "Running")["lastTransitionTime"] == "2026-03-01T12:01:30Z"
    assert cond(done, "Valid")["lastTransitionTime"] == "2026-03-01T12:00:10Z"
    assert done["completionTime"] == "2026-03-01T12:01:30Z"
    again = status([replace(shards[0], state="done", processed=100)], job(complete=True),
                   now=T0 + timedelta(seconds=500), previous=done)  # fmt: skip
    assert again["completionTime"] == done["completionTime"]
    assert again["conditions"] == done["conditions"]


def test_start_time_from_previous_status_wins() -> None:
    prev = {"startTime": "2026-03-01T11:00:00Z"}
    st = status([shard(0, done=10)], job(active=1), previous=prev)
    assert st["startTime"] == "2026-03-01T11:00:00Z"


# ---- tokens, cost, fallback, rendering ----------------------------------------------


def test_tokens_cost_and_fallback() -> None:
    shards = [shard(0, done=10, tokens_prompt=2000, tokens_completion=420, fallback_used=2),
              shard(1, done=10, tokens_prompt=1000, tokens_completion=80)]  # fmt: skip
    st = status(shards, job(active=2), pricing=TokenPricing(0.1, 0.5))
    assert st["tokens"] == {"prompt": 3000, "completion": 500, "total": 3500}
    assert st["estimatedCost"] == pytest.approx(0.3 + 0.25)
    assert st["fallbackUsed"] == 2
    plain = status([shard(0, done=1)], None)
    assert "tokens" not in plain and "estimatedCost" not in plain and "fallbackUsed" not in plain


def test_render_status_text() -> None:
    shards = [shard(0, "done", done=95, failed=5, finished_at=T0 + timedelta(seconds=40)),
              shard(1, "done", done=100, finished_at=T0 + timedelta(seconds=40))]  # fmt: skip
    text = render_status_text(status(shards, None, job_name="j1"), name="demo")
    lines = text.splitlines()
    assert lines[0] == "Run:        demo"
    assert "Phase:      Succeeded" in lines
    assert "Progress:   200/200 (100.0%)" in lines
    assert "Tracks:     195 processed, 5 failed, 0 skipped (total 200)" in lines
    assert "Completed:  2026-03-01T12:00:40Z (took 40s)" in lines
    assert "Shards:     2: 2 done (0-1)" in lines
    assert any(line.split()[:3] == ["0", "done", "100/100"] for line in lines)
    assert any(line.startswith("  CompletedWithErrors=True (ItemsFailed)") for line in lines)
    assert "Valid" not in text  # only shown when the spec is invalid
