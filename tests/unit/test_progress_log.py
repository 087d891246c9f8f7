"""The shard's progress lines (what `kubectl logs` of a shard pod shows)."""

from analyzer_runtime.worker import ProgressLog, ShardReport


def test_first_batch_logs_then_one_line_per_interval() -> None:
    now = [100.0]
    progress = ProgressLog(interval=5.0, clock=lambda: now[0])
    report = ShardReport(run_uid="u", shard=3, attempt=1)

    now[0] = 102.0
    report.batches, report.done, report.failed = 1, 48, 2
    first = progress.line(report)
    assert first == "shard 3: 48 done, 2 failed, 0 skipped in 1 batches (25.0 items/s)"

    now[0] = 106.9  # within the interval: quiet
    report.batches, report.done = 2, 98
    assert progress.line(report) is None

    now[0] = 107.0
    report.skipped = 1
    assert progress.line(report) == (
        "shard 3: 98 done, 2 failed, 1 skipped in 2 batches (14.4 items/s)"
    )
