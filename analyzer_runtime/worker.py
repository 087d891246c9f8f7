"""One shard's work loop: the runtime side of the shard protocol (see ledger/shards.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from analyzer_runtime import metrics, results
from analyzer_runtime.analyzers import registry
from analyzer_runtime.analyzers.base import (
    AnalysisResult,
    Analyzer,
    ItemOutcome,
    RunContext,
    TrackInput,
)
from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.planner import analyzer_options
from analyzer_runtime.shard_steps import (  # noqa: F401 - the scrape worker's too
    LEASE_POLL_SECONDS,
    fetch_tracks,
    finish_or_wait,
    gave_up,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_DB = 3
# A shard stopped by SIGTERM is unfinished: exiting 0 would let the Job count the index
# complete while items are still pending.
EXIT_TERMINATED = 143


class FatalError(RuntimeError):
    """Configuration problems retrying cannot fix; the message is shown to the user."""


@dataclass(slots=True)
class ShardReport:
    run_uid: str
    shard: int
    attempt: int
    batches: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    finished: bool = False
    stopped: bool = False


class ProgressLog:
    """A progress line per interval, the first after the first batch: what
    `kubectl logs` of a shard pod shows while it works."""

    def __init__(self, interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last: float | None = None

    def line(self, report: ShardReport) -> str | None:
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return None
        self.last = now
        n = report.done + report.failed + report.skipped
        rate = n / max(now - self.started, 1e-6)
        return (
            f"shard {report.shard}: {report.done} done, {report.failed} failed,"
            f" {report.skipped} skipped in {report.batches} batches ({rate:.1f} items/s)"
        )


def stop_grace_seconds() -> float:
    """shard_ledger.STOP_GRACE_ENV: a preempted pod frees its work within seconds, not at
    lease expiry; a commit already under way is never interrupted."""
    raw = os.environ.get(shard_ledger.STOP_GRACE_ENV)
    try:
        return max(0.0, float(raw)) if raw else shard_ledger.DEFAULT_STOP_GRACE_SECONDS
    except ValueError:
        return shard_ledger.DEFAULT_STOP_GRACE_SECONDS


class StopFlag:
    """Set by SIGTERM/SIGINT: no new batch starts, and the batch being analyzed has
    `grace` seconds to finish."""

    def __init__(self, grace: float | None = None) -> None:
        self.event = asyncio.Event()
        self.grace = stop_grace_seconds() if grace is None else grace

    async def within_grace(self, work: Awaitable[T]) -> T | None:
        """`work`'s result; None when the flag was set and `work` did not finish
        within the grace after that (it is then cancelled)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=self.grace)
        finally:
            stopped.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def pause(self, seconds: float) -> None:
        """Return after `seconds`, or at once when the flag is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.event.set)

    @property
    def set(self) -> bool:
        return self.event.is_set()


async def run_shard(
    pool: asyncpg.Pool,
    run_uid: str,
    shard: int,
    *,
    stop: StopFlag | None = None,
    analyzer: Analyzer | None = None,
    claimer: shard_ledger.Claimer | None = None,
) -> ShardReport:
    stop = stop or StopFlag()
    claimer = claimer or shard_ledger.Claimer.new()
    run, report = await _start(pool, run_uid, shard)
    if report.finished:
        return report

    # The spec planned in Postgres is the truth: options, batch size, and the
    # analyzer version results are written under.
    spec = run.spec
    batch_size = int(spec.get("batchSize") or 50)
    max_attempts = int((spec.get("retry") or {}).get("maxItemAttempts") or 3)
    try:
        if analyzer is None:
            analyzer = registry.create(spec["analyzer"], **analyzer_options(spec))
        await analyzer.attach(RunContext(pool, run.id, shard, spec, run.model_version))
    except ValueError as exc:
        raise FatalError(str(exc)) from None
    name = analyzer.name
    metrics.init_items(name)
    progress = ProgressLog()
    log.info("shard %d of run %s: started (attempt %d)", shard, run.name, report.attempt)
    if isinstance(analyzer, LLMAnalyzer) and analyzer.resolved.mode == "batch":
        from analyzer_runtime.analyzers.llm import batch_shard

        try:  # the provider's Batch API: submit, poll, collect (batch_shard.py)
            await batch_shard.run(pool, run, shard, report, stop, claimer, analyzer)
        finally:
            await analyzer.aclose()
        report.stopped = stop.set and not report.finished
        return report
    try:
        async with shard_ledger.holding_leases(pool, run.id, shard, claimer):
            while not stop.set:
                started = time.perf_counter()
                async with pool.acquire() as conn:
                    claimed = await shard_ledger.next_batch(
                        conn, run.id, shard, batch_size, claimer
                    )
                    if not claimed:
                        if await finish_or_wait(conn, run.id, shard, stop):
                            report.finished = True
                            break
                        continue
                    tracks = await fetch_tracks(conn, [c.item_id for c in claimed])
                outcomes = await stop.within_grace(
                    _analyze(analyzer, claimed, tracks, max_attempts)
                )
                if outcomes is None:  # stopped: holding_leases gives the items back
                    log.info("shard %d: stopped mid-batch; its items go back unanalyzed", shard)
                    break
                for o in outcomes:
                    if o.result is not None and o.result.analyzer_type == run.analyzer_type:
                        o.result.model_version = run.model_version or o.result.model_version
                updates = [
                    shard_ledger.ItemUpdate(o.track_id, o.status, o.reason) for o in outcomes
                ]
                results_of = {o.track_id: o.result for o in outcomes if o.result is not None}

                async def write(
                    c: asyncpg.Connection,
                    ids: frozenset[int],
                    results_of: dict[int, AnalysisResult] = results_of,
                ) -> None:
                    await results.upsert_results(
                        c, [r for tid, r in results_of.items() if tid in ids]
                    )

                extras = analyzer.take_extras()  # tokens and fallback use, same transaction
                async with pool.acquire() as conn:
                    moved = await shard_ledger.commit_batch(
                        conn, run.id, shard, updates, claimer, write=write, extras=extras
                    )
                report.batches += 1
                report.done += moved["done"]
                report.failed += moved["failed"]
                report.skipped += moved["skipped"]
                for state, n in moved.items():
                    metrics.ITEMS.labels(name, state).inc(n)
                for r in results_of.values():
                    metrics.ANALYZER_SECONDS.labels(name).observe(r.processing_time_ms / 1000)
                metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
                if line := progress.line(report):
                    log.info("%s", line)
    finally:
        await analyzer.aclose()
    report.stopped = stop.set and not report.finished
    return report


async def _start(
    pool: asyncpg.Pool, run_uid: str, shard: int
) -> tuple[shard_ledger.Run, ShardReport]:
    """The planned run and a report for this attempt; finished at once when the run
    was cancelled."""
    async with pool.acquire() as conn:
        run = await shard_ledger.find_run(conn, run_uid)
        if run is None:
            raise FatalError(f"run {run_uid!r} is not planned in this database")
        if not 0 <= shard < run.shards:
            raise FatalError(
                f"shard {shard} is out of range: run {run.name} has {run.shards} shard(s)"
                f" (0-{run.shards - 1})"
            )
        report = ShardReport(run_uid, shard, attempt=0)
        if run.state == "cancelled":
            log.info("run %s was cancelled; nothing to do", run.name)
            report.finished = True
            return run, report
        report.attempt = await shard_ledger.claim_shard(conn, run.id, shard)
    return run, report


async def _analyze(
    analyzer: Analyzer,
    claimed: Sequence[shard_ledger.ClaimedItem],
    tracks: dict[int, TrackInput],
    max_attempts: int,
) -> list[ItemOutcome]:
    outcomes: list[ItemOutcome] = []
    todo: list[TrackInput] = []
    for c in claimed:
        if c.crashes >= max_attempts:
            outcomes.append(ItemOutcome.failed(c.item_id, gave_up(max_attempts, "analyzing")))
        elif c.item_id not in tracks:
            outcomes.append(ItemOutcome.failed(c.item_id, "track no longer exists"))
        else:
            todo.append(tracks[c.item_id])
    if todo:
        try:
            outcomes.extend(await analyzer.analyze_batch(todo))
        except Exception as exc:  # an analyzer bug fails the batch's items, not the shard
            reason = f"{type(exc).__name__}: {exc}"[:500]
            outcomes.extend(ItemOutcome.failed(t.id, reason) for t in todo)
    return outcomes
