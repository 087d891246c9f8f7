"""What a Job pod runs: `rap-analyzer analyze` and `scrape`, one shard each."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import EXIT_INVALID, T, _fail, _with_db
from analyzer_runtime.ledger.connect import DatabaseUnavailable

# The options every shard command (what a Job pod runs) takes.
ShardOption = Annotated[
    int | None,
    typer.Option(help="shard index (default: $JOB_COMPLETION_INDEX)", show_default=False),
]
MetricsPortOption = Annotated[
    int, typer.Option(envvar="METRICS_PORT", help="Prometheus port, 0 = off")
]


def analyze(
    run_id: Annotated[str, typer.Option("--run-id", help="the run's uid")],
    shard: ShardOption = None,
    metrics_port: MetricsPortOption = 9102,
) -> None:
    """Work through one shard of a planned run (what each Job pod runs)."""
    from analyzer_runtime import worker
    from analyzer_runtime.ledger.connect import create_pool

    def summary(report: worker.ShardReport) -> str:
        return (
            f"shard {report.shard} attempt {report.attempt}: {report.done} done,"
            f" {report.failed} failed, {report.skipped} skipped in {report.batches} batches"
        )

    _run_shard(
        shard,
        metrics_port,
        create_pool,
        lambda pool, shard, stop: worker.run_shard(pool, run_id, shard, stop=stop),
        summary,
    )


def scrape(
    run_id: Annotated[str, typer.Option("--run-id", help="the ScrapeJob's uid")],
    shard: ShardOption = None,
    metrics_port: MetricsPortOption = 9102,
) -> None:
    """Scrape one shard of a planned ScrapeJob (what each of its Job pods runs)."""
    from analyzer_runtime import worker
    from analyzer_runtime.ledger.connect import create_pool
    from analyzer_runtime.scrape.worker import run_scrape_shard

    def summary(report: worker.ShardReport) -> str:
        return (
            f"shard {report.shard} attempt {report.attempt}: {report.done} artists done,"
            f" {report.failed} failed"
        )

    _run_shard(
        shard,
        metrics_port,
        create_pool,
        lambda pool, shard, stop: run_scrape_shard(pool, run_id, shard, stop=stop),
        summary,
        quiet=("httpx",),  # one line per request is noise
    )


def _run_shard(
    shard: int | None,
    metrics_port: int,
    create: Callable[..., Awaitable[Any]],
    work: Callable[[Any, int, Any], Awaitable[Any]],
    summary: Callable[[Any], str],
    *,
    quiet: tuple[str, ...] = (),
) -> None:
    """What a Job pod's shard command does: resolve the shard index, serve metrics,
    connect (with retries), run `work(pool, shard, stop)` until done or SIGTERM, and
    print `summary(report)`; exit 143 if stopped before finishing."""
    from analyzer_runtime import metrics, worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    if shard is None:
        idx = os.environ.get("JOB_COMPLETION_INDEX")
        if idx is None or not idx.isdigit():
            raise _fail("no --shard given and JOB_COMPLETION_INDEX is not set", EXIT_INVALID)
        shard = int(idx)
    metrics.serve(metrics_port)

    async def go(url: str) -> worker.ShardReport:
        pool = await _connect_with_retries(create, url, f"rap-analyzer-shard-{shard}")
        try:
            stop = worker.StopFlag()
            stop.install()
            report: worker.ShardReport = await work(pool, shard, stop)
            return report
        finally:
            await pool.close()

    try:
        report = _with_db(go)
    except worker.FatalError as exc:
        raise _fail(str(exc), worker.EXIT_FATAL) from None
    print(
        summary(report) + ("; stopped before finishing" if report.stopped else ""),
        file=sys.stderr,
    )
    if report.stopped:
        raise typer.Exit(worker.EXIT_TERMINATED)


async def _connect_with_retries(create: Callable[..., Awaitable[T]], url: str, name: str) -> T:
    """A pod may start before its database: retry for about a minute, then give up."""
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

    from analyzer_runtime.ledger.budget import SHARD_POD_CONNECTIONS

    async for attempt in AsyncRetrying(
        stop=stop_after_delay(float(os.environ.get("DB_CONNECT_TIMEOUT", "60"))),
        wait=wait_exponential(multiplier=0.5, max=8),
        retry=retry_if_exception_type(DatabaseUnavailable),
        reraise=True,
    ):
        with attempt:
            # Opened at full size, never grown: a refused connection shows here, where
            # it is retried, and the pod holds exactly what the operator's budget counts.
            # application_name: pg_stat_activity (and PgBouncer's SHOW CLIENTS) name the shard.
            return await create(
                url,
                min_size=SHARD_POD_CONNECTIONS,
                max_size=SHARD_POD_CONNECTIONS,
                server_settings={"application_name": name},
            )
    raise AssertionError("unreachable")
