"""Run an AnalysisRun on this machine: shard processes instead of a Job's pods.

It mirrors the Indexed Job: at most `parallelism` shard processes at once, each
index retried up to `retry.backoffLimitPerIndex` times, and the same status the
custom resource would show, computed by the same code (status.py)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analyzer_runtime import estimates, planner, protocol
from analyzer_runtime.analyzers.llm.presets import pricing_for_spec
from analyzer_runtime.db.connect import pool_for
from analyzer_runtime.status import JobObservation, compute_status, render_status_text

POLL_SECONDS = 0.5


@dataclass
class LocalJob:
    """The bookkeeping an Indexed Job does, for local processes."""

    shards: int
    parallelism: int
    backoff_limit_per_index: int
    failures: dict[int, int] = field(default_factory=dict)
    completed: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    running: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)

    def observation(self) -> JobObservation:
        finished = len(self.completed) + len(self.failed) == self.shards
        return JobObservation(
            exists=True,
            suspended=False,
            active=len(self.running),
            completed_indexes=set(self.completed),
            failed_indexes=set(self.failed),
            complete=finished and not self.failed,
            failed=finished and bool(self.failed),
            failure_reason="FailedIndexes" if self.failed else None,
            failure_message=(
                f"shard(s) {sorted(self.failed)} exhausted their retries" if self.failed else None
            ),
        )


async def _spawn(url: str, uid: str, shard: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", uid,
        "--shard", str(shard),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _drive(job: LocalJob, url: str, uid: str, errors: dict[int, str]) -> None:
    """Start shards up to `parallelism`, retry failed indexes, until all are settled."""
    queue = list(range(job.shards))
    waiting: dict[asyncio.Task[int], int] = {}
    while queue or waiting:
        while queue and len(job.running) < job.parallelism:
            shard = queue.pop(0)
            proc = await _spawn(url, uid, shard)
            job.running[shard] = proc
            waiting[asyncio.create_task(proc.wait())] = shard
        finished, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            shard = waiting.pop(task)
            proc = job.running.pop(shard)
            stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
            if task.result() == 0:
                job.completed.add(shard)
                continue
            errors[shard] = (stderr.strip().splitlines() or ["(no output)"])[-1]
            job.failures[shard] = job.failures.get(shard, 0) + 1
            if job.failures[shard] > job.backoff_limit_per_index:
                job.failed.add(shard)
            else:
                queue.append(shard)


async def run_local(
    manifest: Any,
    url: str,
    *,
    uid: str | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    console = console or Console()
    uid = uid or manifest.metadata.uid or str(uuid.uuid4())
    spec = manifest.spec
    async with pool_for(url, max_size=2) as pool:
        async with pool.acquire() as conn:
            plan = await planner.plan_manifest(conn, manifest, uid)
        verb = "planned" if plan.created else "resuming"
        console.print(
            f"{verb} run {plan.run.name} (uid {uid}): {plan.run.total} tracks"
            f" in {plan.run.shards} shard(s), analyzer {plan.run.analyzer_type}"
            f" {plan.run.model_version}",
            highlight=False,
        )
        job = LocalJob(
            shards=spec.shards,
            parallelism=spec.parallelism or spec.shards,
            backoff_limit_per_index=spec.retry.backoff_limit_per_index,
        )
        if spec.dry_run or spec.suspend:
            job_obs = JobObservation(
                exists=False, suspended=bool(spec.suspend), active=0,
                completed_indexes=set(), failed_indexes=set(), complete=False, failed=False,
                failure_reason=None, failure_message=None,
            )  # fmt: skip
            st = await _status(pool, plan.run, job_obs)
            console.print(render_status_text(st, name=plan.run.name), highlight=False)
            return st
        errors: dict[int, str] = {}
        driver = asyncio.create_task(_drive(job, url, uid, errors))
        await _watch(pool, plan.run, driver, progress, console)
        await driver
        st = await _status(pool, plan.run, job.observation())
        async with pool.acquire() as conn:
            if job.failed:
                await protocol.mark_shards_failed(conn, plan.run.id, sorted(job.failed))
            await protocol.set_run_state(
                conn, plan.run.id, "failed" if st["phase"] == "Failed" else "succeeded"
            )
        st = await _status(pool, plan.run, job.observation())
        for shard, msg in sorted(errors.items()):
            console.print(f"shard {shard}: {msg}", highlight=False, style="yellow")
        console.print(render_status_text(st, name=plan.run.name), highlight=False)
        return st


async def _status(
    pool: asyncpg.Pool, run: protocol.Run, job: JobObservation | None
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        shards = await protocol.read_shards(conn, run.id)
        estimate = await estimates.read(conn, run.id)
    status = compute_status(
        generation=1, shards=shards, job=job, previous=None, now=datetime.now(UTC),
        planned_total=run.total, pricing=pricing_for_spec(run.spec),
        dry_run=bool(run.spec.get("dryRun")),
    )  # fmt: skip
    if estimate is not None:  # LLM runs: requests, tokens, cost, duration before any request
        status["estimate"] = estimate
    return status


async def _watch(
    pool: asyncpg.Pool,
    run: protocol.Run,
    driver: asyncio.Task[None],
    show: bool,
    console: Console,
) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>5.1f}%  {task.fields[rate]}  ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show, transient=False) as bar:
        task = bar.add_task(run.name, total=run.total or 1, rate="", eta="-")
        while True:
            st = await _status(pool, run, None)
            finished = st["processed"] + st["failed"] + st["skipped"]
            bar.update(
                task,
                completed=finished if run.total else 1,
                rate=f"{st.get('throughput') or 0:.0f} tracks/s",
                eta=st.get("eta") or "-",
            )
            if driver.done():
                break
            await asyncio.wait({driver}, timeout=POLL_SECONDS)


async def status_of(pool: asyncpg.Pool, run_ref: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        run = await protocol.find_run(conn, run_ref) or await protocol.find_run_by_name(
            conn, run_ref
        )
    if run is None:
        return None
    st = await _status(pool, run, None)
    st["runId"] = run.uid
    if run.state in ("succeeded", "failed", "cancelled"):
        st["runState"] = run.state
    return st
