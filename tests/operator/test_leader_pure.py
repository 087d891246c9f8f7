"""Leader election's decisions (rap_operator.leader), without a cluster: what a
candidate does with the Lease it read, and when a leader must step down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rap_operator.leader import (
    Action,
    LeaseRecord,
    Seen,
    Timing,
    decide,
    healthy,
    identity,
    observe,
    record_of,
    released,
    renew_overdue,
    spec_of,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
ME, OTHER = "op-a_1a2b3c", "op-b_4d5e6f"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def lease(
    holder: str, renewed: float = 0.0, duration: float = 15, transitions: int = 3
) -> LeaseRecord:
    return LeaseRecord(holder, at(renewed), at(-100), duration, transitions)


@pytest.mark.parametrize(
    ("record", "seen_at", "now", "action", "holder", "transitions"),
    [
        # No Lease: create it, holding it, no transition yet.
        (None, 0, 0, Action.CREATE, ME, 0),
        # Mine: renew, same transitions.
        (lease(ME), 0, 2, Action.RENEW, ME, 3),
        # Another's, seen renewed 14.9 s ago: still live.
        (lease(OTHER), 0, 14.9, Action.FOLLOW, None, None),
        # Another's, not seen renewed for its whole duration: take it over.
        (lease(OTHER), 0, 15, Action.TAKE_OVER, ME, 4),
        (lease(OTHER), 0, 60, Action.TAKE_OVER, ME, 4),
        # The holder's duration counts, not ours.
        (lease(OTHER, duration=30), 0, 20, Action.FOLLOW, None, None),
        (lease(OTHER, duration=5), 0, 5.5, Action.TAKE_OVER, ME, 4),
        # Released (empty holder): take it at once.
        (lease("", duration=1), 0, 0, Action.ACQUIRE, ME, 4),
        # A renewTime far in the past by the writer's clock does not expire a lease this
        # process has just seen change: clocks of two machines may disagree.
        (lease(OTHER, renewed=-3600), 10, 12, Action.FOLLOW, None, None),
    ],
)
def test_decide(
    record: LeaseRecord | None,
    seen_at: float,
    now: float,
    action: Action,
    holder: str | None,
    transitions: int | None,
) -> None:
    d = decide(Seen(record, at(seen_at)), ME, at(now))
    assert d.action is action
    if holder is None:
        assert d.write is None
        assert d.expires_in > 0
    else:
        assert d.write is not None
        assert d.write.holder == holder
        assert d.write.transitions == transitions
        assert d.write.renew_time == at(now)
        assert d.write.duration == Timing().lease_duration


def test_a_renewal_keeps_the_acquire_time() -> None:
    d = decide(Seen(lease(ME), at(0)), ME, at(2))
    assert d.write is not None and d.write.acquire_time == at(-100)


def test_follow_says_when_the_lease_expires() -> None:
    d = decide(Seen(lease(OTHER), at(0)), ME, at(4))
    assert d.expires_in == pytest.approx(11)


def test_observe_keeps_the_first_sighting_of_an_unchanged_record() -> None:
    first = observe(None, lease(OTHER), at(0))
    assert observe(first, lease(OTHER), at(10)) is first
    # Renewed (a new renewTime): seen anew, so the leader is live again.
    renewed = observe(first, lease(OTHER, renewed=2), at(10))
    assert renewed.since == at(10)
    assert decide(renewed, ME, at(20)).action is Action.FOLLOW
    # A leader that stopped renewing expires a duration after it was last seen change.
    assert decide(observe(renewed, lease(OTHER, renewed=2), at(25)), ME, at(25)).action is (
        Action.TAKE_OVER
    )


def test_released_lets_the_next_candidate_take_it_at_once() -> None:
    rel = released(lease(ME), at(5))
    assert rel.holder == "" and rel.duration == 1 and rel.transitions == 3
    assert decide(observe(None, rel, at(5)), OTHER, at(5)).action is Action.ACQUIRE


@pytest.mark.parametrize(
    ("since_renew", "overdue"), [(0, False), (2, False), (9.99, False), (10, True), (30, True)]
)
def test_renew_deadline(since_renew: float, overdue: bool) -> None:
    assert renew_overdue(100.0, 100.0 + since_renew) is overdue


def test_the_spec_round_trips_in_microtime() -> None:
    rec = LeaseRecord(ME, at(1.234567), at(0), 15, 2)
    spec = spec_of(rec)
    assert spec["renewTime"] == "2026-01-01T12:00:01.234567Z"
    assert spec["leaseDurationSeconds"] == 15
    assert record_of(spec) == rec
    assert record_of({}) == LeaseRecord("", None, None, 0.0, 0)


def test_identity() -> None:
    a, b = identity("rap-analyzer-7c9d-x2"), identity("rap-analyzer-7c9d-x2")
    # A restarted container of the same pod is a new candidate.
    assert a.startswith("rap-analyzer-7c9d-x2_") and a != b
    assert identity(None) != ""


def test_healthy_while_the_election_loop_attempts() -> None:
    assert healthy(None, 1e9)

    class E:
        last_attempt = 100.0

    # E stands in for kopf's peering state: healthy() reads only last_attempt
    assert healthy(E(), 120.0)  # type: ignore[arg-type]
    assert not healthy(E(), 131.0)  # type: ignore[arg-type]
