"""The preemption benchmark's reading of its in-database samples (rap_devtools.queued_runs)."""

from __future__ import annotations

from rap_devtools.queued_runs import Sample, first_progress_at, parse_samples, released_at


def test_parse_samples_reads_psql_notices() -> None:
    text = "psql:x: NOTICE:  S 100.25 4 30\nsomething else\npsql:x: NOTICE:  S 100.30 0 34\n"
    assert parse_samples(text) == [Sample(100.25, 4, 30), Sample(100.30, 0, 34)]


def _timeline(leased: list[int], finished: list[int] | None = None) -> list[Sample]:
    finished = finished or [0] * len(leased)
    return [
        Sample(100 + i * 0.5, n, f) for i, (n, f) in enumerate(zip(leased, finished, strict=True))
    ]


def test_the_last_lease_is_where_nothing_is_leased_for_a_while() -> None:
    # A gap between two batches (one 0) is not the release; the run of zeros is.
    s = _timeline([4, 0, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4])
    assert released_at(s, after=100.0, quiet=3.0) == 102.0
    assert released_at(s, after=100.0, quiet=10.0) is None  # never quiet that long


def test_first_progress_after_readmission() -> None:
    s = _timeline([0, 0, 0, 4, 4], finished=[50, 50, 50, 50, 60])
    assert first_progress_at(s, after=100.6) == 102.0
    assert first_progress_at(s, after=99.0) is None  # no sample before: no baseline
