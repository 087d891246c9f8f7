"""The rules of `rap-analyzer db gc` (analyzer_runtime/ledger/gc.py), without a database;
tests/integration/test_ledger_gc.py checks the SQL that applies them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer_runtime.ledger.gc import item_is_kept, parse_duration, run_is_collectable
from analyzer_runtime.ledger.shards import TERMINAL_RUN_STATES

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
     ("1d12h", timedelta(hours=36)), ("2w", timedelta(days=14)), (" 7D ", timedelta(days=7))],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "30 days", "10s", "0d", "1.5d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("state", ["planned", "running", "interrupted"])
def test_unfinished_runs_are_never_collected_however_old(state: str) -> None:
    assert not run_is_collectable(state, NOW - timedelta(days=999), None, CUTOFF)
    assert not run_is_collectable(state, None, None, CUTOFF)


@pytest.mark.parametrize("state", TERMINAL_RUN_STATES)
def test_finished_runs_are_collected_once_older_than_the_retention(state: str) -> None:
    assert run_is_collectable(state, CUTOFF - timedelta(seconds=1), None, CUTOFF)
    assert not run_is_collectable(state, CUTOFF, None, CUTOFF)  # not yet
    assert not run_is_collectable(state, NOW, None, CUTOFF)
    assert not run_is_collectable(state, None, None, CUTOFF)
    # Compacted once: passed by.
    assert not run_is_collectable(state, CUTOFF - timedelta(days=1), NOW, CUTOFF)


def test_only_failed_items_are_kept() -> None:
    assert item_is_kept("failed")
    assert not any(item_is_kept(s) for s in ("done", "skipped", "pending"))
