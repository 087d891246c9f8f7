"""compute_status(observation) returns the pydantic status model the CRD schema is
generated from; its JSON (`to_json()`, what is patched onto `.status`) is held byte
for byte to what the dict-building compute_status wrote for the same observations
(tests/fixtures/status_golden.json, recorded from that implementation before it was
removed), and the model round-trips through its own JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.contract.status import (
    RunObservation,
    ShardCounters,
    TokenPricing,
    compute_status,
)
from analyzer_runtime.contract.status_model import AnalysisRunStatus, Phase
from analyzer_runtime.contract.wording import SCRAPE_WORDING
from tests import builders
from tests.builders import T0, job

NOW = T0 + timedelta(seconds=100)


def shard(i: int, state: str, total: int = 10, done: int = 0, **kw: Any) -> ShardCounters:
    """Shard i started i seconds after T0 (unless pending), finished at 50 + i s."""
    started = None if state == "pending" else T0 + timedelta(seconds=i)
    ended = T0 + timedelta(seconds=50 + i) if state in ("done", "failed") else None
    kw.setdefault("finished_at", ended)
    return builders.shard(i, state, total, done, started_at=started, **kw)


PRICING = TokenPricing(0.15, 0.6, cached_prompt_per_1k=0.075)
RUNNING = [shard(0, "done", done=10), shard(1, "running", done=4), shard(2, "pending")]
PREVIOUS = {
    "phase": "Running",
    "startTime": "2026-03-01T11:59:00Z",
    "conditions": [
        {"type": "Valid", "status": "True", "lastTransitionTime": "2026-03-01T11:58:00Z"},
        {"type": "Running", "status": "True", "lastTransitionTime": "2026-03-01T11:59:00Z"},
        {"type": "Succeeded", "status": "Unknown", "lastTransitionTime": "2026-03-01T11:59:30Z"},
    ],
}

# name -> the observation's fields (RunObservation's keyword arguments).
OBSERVATIONS: dict[str, dict[str, Any]] = {
    "not planned": {"shards": [], "job": None},
    "invalid spec": {"shards": [], "job": None, "valid": False, "invalid_message": "bad x"},
    "waiting for a cause": {
        "shards": [],
        "job": None,
        "valid": False,
        "invalid_reason": "DatabaseUnavailable",
        "invalid_message": "down",
        "invalid_until_fixed": False,
    },
    "nothing selected": {"shards": [], "job": None, "planned_total": 0},
    "dry run": {"shards": [], "job": None, "planned_total": 120, "dry_run": True},
    "planned, no shard started": {
        "shards": [shard(0, "pending"), shard(1, "pending")],
        "job": job(),
        "job_name": "r-1",
    },
    "running": {"shards": RUNNING, "job": job(active=2, completed_indexes={0}), "job_name": "r"},
    "running, previous kept": {
        "shards": RUNNING,
        "job": job(active=2, completed_indexes={0}),
        "previous": PREVIOUS,
        "generation": 3,
    },
    "suspended": {"shards": RUNNING, "job": job(suspended=True), "suspend": True},
    "held by the queue": {
        "shards": [shard(0, "pending")],
        "job": job(suspended=True),
        "held": ("Pending", "QueuedForQuota", "waiting for quota in queue q"),
    },
    "preempted by the queue": {
        "shards": RUNNING,
        "job": job(suspended=True, completed_indexes={0}),
        "held": ("Suspended", "Preempted", "preempted by a workload of higher priority"),
    },
    "retrying with an error": {
        "shards": [shard(0, "failed", done=3, last_error="boom " * 60), shard(1, "running")],
        "job": job(active=1),
    },
    "failed index, others running": {
        "shards": [shard(0, "failed", last_error="OOM"), shard(1, "running", done=2)],
        "job": job(active=1, failed_indexes={0}),
    },
    "job failed by its indexes": {
        "shards": [shard(0, "failed", last_error="OOM"), shard(1, "done", done=10)],
        "job": job(failed=True, failed_indexes={0}, completed_indexes={1}),
    },
    "job failed as a whole": {
        "shards": [shard(0, "running", done=5)],
        "job": job(failed=True, failure_reason="DeadlineExceeded", failure_message="too slow"),
    },
    "all done": {
        "shards": [shard(0, "done", done=10), shard(1, "done", done=8, skipped=2)],
        "job": job(complete=True, completed_indexes={0, 1}),
        "previous": PREVIOUS,
    },
    "completed with errors": {
        "shards": [shard(0, "done", done=7, failed=3), shard(1, "done", done=10)],
        "job": job(complete=True, completed_indexes={0, 1}),
    },
    "too many failures": {
        "shards": [shard(0, "done", done=2, failed=8)],
        "job": job(complete=True),
        "failure_threshold": 0.5,
    },
    "local shard failed": {
        "shards": [shard(0, "failed", done=1, last_error="db gone"), shard(1, "done", done=10)],
        "job": None,
    },
    "tokens, cost, cache, fallback": {
        "shards": [
            shard(
                0,
                "done",
                done=10,
                tokens_prompt=5000,
                tokens_completion=700,
                tokens_cached=1200,
                fallback_used=2,
            ),
            shard(1, "running", done=3, tokens_prompt=1000, tokens_completion=100),
        ],
        "job": job(active=1),
        "pricing": PRICING,
    },
    "tokens without a price": {
        "shards": [shard(0, "running", done=3, tokens_prompt=100, tokens_completion=10)],
        "job": job(active=1),
    },
    "cascade": {
        "shards": [
            shard(0, "done", done=10, cascade_kept=6, tokens_prompt=400, tokens_completion=80),
            shard(1, "done", done=9, failed=1, cascade_kept=5, fallback_used=1),
        ],
        "job": job(complete=True),
        "pricing": PRICING,
        "cascade": "quality",
    },
    "cascade before the LLM answered": {
        "shards": [shard(0, "running", done=4, cascade_kept=4)],
        "job": job(active=1),
        "cascade": "algorithmic",
    },
    "many shards": {
        "shards": [
            shard(
                i,
                ("done", "running", "pending", "failed")[i % 4],
                total=100,
                done=(i * 7) % 100,
                last_error="x" if i % 4 == 3 else None,
            )
            for i in range(40)
        ],
        "job": job(active=10, completed_indexes=set(range(0, 40, 4))),
    },
    "scrape wording": {
        "shards": [shard(0, "done", done=3, failed=1, total=4)],
        "job": job(complete=True),
        "wording": SCRAPE_WORDING,
        "job_name": "sj-abc",
    },
}


GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "status_golden.json"


def observation(name: str) -> RunObservation:
    kw = {"generation": 1, "previous": None, "now": NOW, **OBSERVATIONS[name]}
    return RunObservation(**kw)


def canonical(status: dict[str, Any]) -> str:
    """The JSON text with sorted keys: 1 and 1.0, a null and a missing key all differ."""
    return json.dumps(status, sort_keys=True)


@pytest.mark.parametrize("name", list(OBSERVATIONS))
def test_status_json_is_byte_for_byte_what_the_dict_builder_wrote(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert canonical(compute_status(observation(name)).to_json()) == canonical(golden[name])


@pytest.mark.parametrize("name", list(OBSERVATIONS))
def test_status_model_round_trips_through_its_json(name: str) -> None:
    status = compute_status(observation(name))
    written = status.to_json()
    assert AnalysisRunStatus.model_validate(written).to_json() == written
    if observation(name).wording is SCRAPE_WORDING:  # a ScrapeJob's schema takes it too
        assert ScrapeJobStatus.model_validate(written).to_json() == written


def test_the_table_covers_every_phase_and_the_reasons() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(OBSERVATIONS)
    phases = {compute_status(observation(n)).phase for n in OBSERVATIONS}
    assert phases == set(Phase)
    reasons = {c.reason for n in OBSERVATIONS for c in compute_status(observation(n)).conditions}
    assert {
        "InvalidSpec", "DryRun", "NothingToDo", "ShardsRunning", "SuspendRequested",
        "ShardFailed", "DeadlineExceeded", "AllShardsDone", "TooManyTrackFailures",
        "ItemsFailed", "Preempted",
    } <= reasons  # fmt: skip


def test_a_cleared_field_is_written_as_null_and_an_absent_one_not_at_all() -> None:
    # In a JSON merge patch a null removes the stale value (eta after completion);
    # inside list items the API server prunes nulls, so a shard without a message
    # has no message key at all.
    done = compute_status(observation("all done")).to_json()
    assert "eta" in done and done["eta"] is None
    assert all("message" not in d for d in done["shards"]["detail"])
    assert "tokens" not in done and "cascade" not in done
    cascade = compute_status(observation("cascade before the LLM answered")).to_json()
    assert cascade["cascade"]["costSaved"] is None
