"""status.shards stays compact at the CRD's 1,000 shards: counts and index ranges per
state, a few shards in detail, nothing that changes unless work moved - and the whole
status within 8 KB even when every shard failed with a long error."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.contract.status import (
    JobObservation,
    ShardCounters,
    TokenPricing,
    clip_indexes,
    clip_text,
    failure_note,
    parse_indexes,
    render_status_text,
)
from analyzer_runtime.contract.status_model import (
    SHARD_DETAIL_ALL,
    SHARD_DETAIL_TOP,
    SHARD_INDEXES_MAX_CHARS,
    SHARD_MESSAGE_MAX_CHARS,
)
from analyzer_runtime.contract.wording import SCRAPE_WORDING
from tests.builders import T0, shard, status

MAX_STATUS_BYTES = 8 * 1024
STATES = ("done", "running", "retrying", "failed", "pending")


def size(st: dict[str, Any]) -> int:
    """Bytes of the status as the API server stores it (compact JSON)."""
    return len(json.dumps(st, separators=(",", ":")).encode())


# ---- the shape ----------------------------------------------------------------------


def test_four_shards() -> None:
    shards = [
        shard(0, "done", done=100),
        shard(1, done=40),
        shard(2, "failed", done=20, attempt=2, last_error="connection reset"),
        shard(3, "pending"),
    ]
    st = status(shards, JobObservation(exists=True, active=2, completed_indexes={0}))
    assert st["shards"] | {"detail": None} == {
        "total": 4,
        "done": {"count": 1, "indexes": "0"},
        "running": {"count": 1, "indexes": "1"},
        "retrying": {"count": 1, "indexes": "2"},
        "failed": {"count": 0, "indexes": ""},
        "pending": {"count": 1, "indexes": "3"},
        "detail": None,
    }
    # A small run: every shard, in index order.
    assert [(d["index"], d["state"], d["progress"]) for d in st["shards"]["detail"]] == [
        (0, "done", "100/100"), (1, "running", "40/100"), (2, "retrying", "20/100"),
        (3, "pending", "0/100"),
    ]  # fmt: skip
    assert st["shards"]["detail"][2]["message"] == "last error: connection reset"
    assert st["shards"]["detail"][2]["attempt"] == 2
    assert "message" not in st["shards"]["detail"][0]


def test_every_key_is_always_there_for_merge_patches() -> None:
    # A merge patch keeps keys the new value leaves out: every state is always written.
    for shards in ([], [shard(0, "pending")], [shard(i, "done", done=100) for i in range(40)]):
        st = status(shards, JobObservation(exists=True))
        assert set(st["shards"]) == {"total", "detail", *STATES}
        assert all(set(st["shards"][s]) == {"count", "indexes"} for s in STATES)


def test_1000_shards_counts_and_ranges() -> None:
    shards = [shard(i, "done", done=100) for i in range(996)]
    shards += [
        shard(996, done=90),
        shard(997, done=10),
        shard(998, "pending"),
        shard(999, "done", done=100),
    ]
    job = JobObservation(exists=True, active=2, completed_indexes=set(range(996)) | {999},
                         failed_indexes=set())  # fmt: skip
    st = status(shards, job)
    sh = st["shards"]
    assert sh["total"] == 1000
    assert sh["done"] == {"count": 997, "indexes": "0-995,999"}
    assert sh["running"] == {"count": 2, "indexes": "996-997"}
    assert sh["pending"] == {"count": 1, "indexes": "998"}
    # A big run details only the notable shards: here the running ones, least along first.
    assert [d["index"] for d in sh["detail"]] == [997, 996]
    assert parse_indexes(sh["done"]["indexes"]) == set(range(996)) | {999}


def test_big_run_details_failed_then_retrying_then_slowest_running() -> None:
    n = 200
    shards = [shard(i, done=i % 100) for i in range(n)]
    shards[150] = replace(shards[150], state="failed", last_error="boom")  # retrying
    failed = {7, 120, 3}
    job = JobObservation(exists=True, active=n - 4, failed_indexes=failed)
    detail = status(shards, job)["shards"]["detail"]
    assert len(detail) == SHARD_DETAIL_TOP
    assert [d["index"] for d in detail[:4]] == [3, 7, 120, 150]
    assert [d["state"] for d in detail[:4]] == ["failed"] * 3 + ["retrying"]
    assert detail[0]["message"].startswith("shard 3 exhausted its pod retries")
    assert [d["index"] for d in detail[4:]] == [0, 100, 1, 101, 2, 102]  # least done first
    assert all(d["state"] == "running" for d in detail[4:])


def test_all_shards_in_detail_up_to_the_limit_then_only_notable_ones() -> None:
    small = [shard(i, "done", done=100) for i in range(SHARD_DETAIL_ALL)]
    job = JobObservation(exists=True, complete=True, completed_indexes=set(range(len(small))))
    assert len(status(small, job)["shards"]["detail"]) == SHARD_DETAIL_ALL
    big = [*small, shard(SHARD_DETAIL_ALL, "done", done=100)]
    job = replace(job, completed_indexes=set(range(len(big))))
    assert status(big, job)["shards"]["detail"] == []  # all done: nothing notable


def test_nothing_changes_while_no_work_moves() -> None:
    shards = [shard(i, done=10 * i, heartbeat_at=T0) for i in range(30)]
    job = JobObservation(exists=True, active=30)
    first = status(shards, job)
    beat = [replace(s, heartbeat_at=T0 + timedelta(seconds=55)) for s in shards]
    later = status(beat, job, now=T0 + timedelta(seconds=60), previous=first)
    assert later["shards"] == first["shards"]
    moved = status([replace(beat[0], processed=11), *beat[1:]], job, previous=first)
    assert moved["shards"] != first["shards"]


def test_scrapejob_status_schema_takes_the_compact_form() -> None:
    shards = [shard(i, "done", total=5, done=5) for i in range(3)]
    done = JobObservation(exists=True, complete=True, completed_indexes={0, 1, 2})
    st = status(shards, done, now=T0, wording=SCRAPE_WORDING, schema=ScrapeJobStatus)
    assert st["shards"]["done"] == {"count": 3, "indexes": "0-2"}


# ---- 8 KB at 1,000 shards, whatever happened ---------------------------------------


def _long_error(i: int) -> str:
    return f"Traceback (most recent call last):\n  shard {i}: " + "psycopg.OperationalError " * 80


def _worst(i: int, state: str, **kw: Any) -> ShardCounters:
    return shard(i, state, total=10**7, done=9_999_000, failed=900, skipped=99, attempt=11,
                 last_error=_long_error(i), tokens_prompt=10**12, tokens_completion=10**12,
                 fallback_used=10**7, **kw)  # fmt: skip


def _cases() -> dict[str, tuple[list[ShardCounters], JobObservation | None]]:
    cycle = ("done", "running", "failed", "pending", "failed")
    every = range(1000)
    return {
        "1000 failed, no Job": ([_worst(i, "failed") for i in every], None),
        "1000 failed indexes": (
            [_worst(i, "failed") for i in every],
            JobObservation(exists=True, failed=True, failure_reason="FailedIndexes",
                           failed_indexes=set(every)),
        ),
        "1000 in every state, no Job": ([_worst(i, cycle[i % 5]) for i in every], None),
        "1000 in every state": (
            [_worst(i, cycle[i % 5]) for i in every],
            JobObservation(exists=True, active=400, completed_indexes=set(every[::5]),
                           failed_indexes=set(every[2::5])),
        ),
        "1000 running": ([_worst(i, "running") for i in every], JobObservation(exists=True)),
        f"{SHARD_DETAIL_ALL} failed, no Job": (
            [_worst(i, "failed") for i in range(SHARD_DETAIL_ALL)], None,
        ),
        f"{SHARD_DETAIL_ALL + 1} failed indexes": (
            [_worst(i, "failed") for i in range(SHARD_DETAIL_ALL + 1)],
            JobObservation(exists=True, failed_indexes=set(range(SHARD_DETAIL_ALL + 1))),
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_cases()))
def test_status_fits_8kb(case: str) -> None:
    shards, job = _cases()[case]
    st = status(shards, job, generation=2**31 - 1, job_name="x" * 63,
                pricing=TokenPricing(1.0, 1.0))  # fmt: skip
    assert size(st) <= MAX_STATUS_BYTES, (case, size(st))
    for d in st["shards"]["detail"]:
        assert len(d.get("message", "")) <= SHARD_MESSAGE_MAX_CHARS
    for s in STATES:
        assert len(st["shards"][s]["indexes"]) <= SHARD_INDEXES_MAX_CHARS
    # Counts stay exact when the index lists are cut.
    assert sum(st["shards"][s]["count"] for s in STATES) == len(shards)


def test_the_status_at_1000_shards_is_much_smaller_than_a_list_of_shards() -> None:
    shards = [shard(i, "done", done=100) for i in range(1000)]
    job = JobObservation(exists=True, complete=True, completed_indexes=set(range(1000)))
    assert size(status(shards, job)) < 2 * 1024


# ---- helpers --------------------------------------------------------------------------


def test_clip_indexes_cuts_at_a_comma() -> None:
    assert clip_indexes("0-9") == "0-9"
    text = ",".join(str(i) for i in range(0, 2000, 2))
    cut = clip_indexes(text, 40)
    assert len(cut) <= 40 and cut.endswith(",...")
    assert cut.removesuffix(",...") == text[: len(cut) - 4]
    assert clip_indexes("123456789,1", 5) == "123456789,..."  # never cuts inside a number


def test_clip_text_is_one_short_line() -> None:
    assert clip_text("a\n  b") == "a b"
    long = clip_text("x" * 500, 50)
    assert len(long) == 50 and long.endswith("...")


def test_failure_note_groups_shards_by_reason() -> None:
    assert failure_note({1: "exhausted its pod retries (x)"}) == (
        "shard 1 exhausted its pod retries (x)"
    )
    many = {i: "exhausted its pod retries (x)" for i in range(1000)}
    assert failure_note(many) == "1000 shards (0-999) exhausted their pod retries (x)"
    distinct = {i: f"failed: error number {i}" for i in range(1000)}
    note = failure_note(distinct)
    assert note.startswith("shard 0 failed: error number 0; shard 1 failed: error number 1; ")
    assert note.endswith("998 more shards failed for other reasons (status.shards)")
    assert failure_note({}) == ""


# ---- the CLI's text -------------------------------------------------------------------


def test_render_compact_status_of_a_big_run() -> None:
    shards = [shard(i, "done", done=100) for i in range(997)]
    shards += [shard(997, done=5), shard(998, "failed", done=1), shard(999, "pending")]
    st = status(shards, None)
    text = render_status_text(st, name="big")
    lines = text.splitlines()
    assert (
        "Shards:     1000: 997 done (0-996), 1 running (997), 1 failed (998), 1 pending (999)"
        in lines
    )
    assert any(line.split()[:3] == ["998", "failed", "1/100"] for line in lines)
    assert "        shard 998 failed" in lines
    assert "  ... 998 more shards (counted above)" in lines
    assert "HEARTBEAT" not in text


def test_render_a_status_written_before_the_compact_form() -> None:
    old = {"phase": "Running", "shards": [
        {"index": 0, "state": "running", "progress": "1/2", "failed": 0, "skipped": 0,
         "attempt": 1, "lastHeartbeat": "2026-03-01T12:00:00Z"},
    ]}  # fmt: skip
    lines = render_status_text(old).splitlines()
    assert "Shards:     1" in lines
    assert any(line.split()[:3] == ["0", "running", "1/2"] for line in lines)
