"""Run an AnalysisRun on this machine: shard processes instead of a Job's pods.

It mirrors the Indexed Job: at most `parallelism` shard processes at once, each
index retried up to `retry.backoffLimitPerIndex` times, and the same status the
custom resource would show, computed by the same code (status.py).

The runner is the run's driver (`runs.driver` = host:pid). Its shard processes die
with it (PR_SET_PDEATHSIG); Ctrl-C or SIGTERM stops them after their batch in
flight and marks the run `interrupted`, to be resumed with `run --uid`. A run whose
driver died without a word (SIGKILL) is found interrupted by the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analyzer_runtime.contract import AnalysisRunSpec
from analyzer_runtime.contract.llm_presets import cascade_of_spec, pricing_for_spec
from analyzer_runtime.contract.status import (
    JobObservation,
    RunObservation,
    compute_status,
    render_status_text,
)
from analyzer_runtime.ledger import batch_status, estimates, planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.connect import pool_for

POLL_SECONDS = 0.5
# The shard's exit status when SIGTERM stopped it before it finished (worker.py).
SHARD_STOPPED = 143
_PR_SET_PDEATHSIG = 1


class RunMismatch(ValueError):
    """`run --uid` with a YAML that differs from the planned spec (exit 2)."""


class Interrupted(Exception):
    """The runner was stopped by a signal; the run can be resumed."""

    def __init__(self, signum: int, status: dict[str, Any], run: shard_ledger.Run) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.status = status
        self.run = run


def this_driver() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _driver_alive(driver: str) -> bool:
    """Whether a local runner (host:pid) still runs; one on another host is assumed to."""
    host, _, pid = driver.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def reap_dead_drivers(conn: asyncpg.Connection) -> None:
    """Runs whose local runner died without marking them (SIGKILL, a crash of the
    machine) are interrupted, not active: they neither block an overlapping run nor
    show an ETA."""
    rows = await conn.fetch(
        "SELECT id, driver FROM runs WHERE driver IS NOT NULL AND state IN ('planned', 'running')"
    )
    for r in rows:
        if not _driver_alive(r["driver"]):
            await shard_ledger.set_run_state(conn, r["id"], "interrupted")


def resume_command(uid: str) -> str:
    return f"rap-analyzer run --uid {uid}"


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

    def signal_all(self, signum: int) -> None:
        for proc in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

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


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the runner dies, however it dies, so a
    shard never runs unsupervised (it finishes its batch in flight and exits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The runner may have died between fork and prctl: then nobody would signal us.
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


async def _spawn(url: str, uid: str, shard: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": url, "METRICS_PORT": "0"}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "analyzer_runtime", "analyze", "--run-id", uid,
        "--shard", str(shard),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )  # fmt: skip


async def _drive(
    job: LocalJob, url: str, uid: str, errors: dict[int, str], stopping: asyncio.Event
) -> None:
    """Start shards up to `parallelism`, retry failed indexes, until all are settled
    (or, once `stopping` is set, until the running ones have stopped)."""
    queue = list(range(job.shards))
    waiting: dict[asyncio.Task[int], int] = {}
    try:
        while (queue and not stopping.is_set()) or waiting:
            while queue and len(job.running) < job.parallelism and not stopping.is_set():
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
                if stopping.is_set() and task.result() in (SHARD_STOPPED, -signal.SIGTERM):
                    queue.append(shard)  # stopped as asked, not failed: it resumes later
                    continue
                errors[shard] = (stderr.strip().splitlines() or ["(no output)"])[-1]
                job.failures[shard] = job.failures.get(shard, 0) + 1
                if job.failures[shard] > job.backoff_limit_per_index:
                    job.failed.add(shard)
                else:
                    queue.append(shard)
    finally:
        for task in waiting:  # cancelled (the runner hit an error): no dangling waits
            task.cancel()


async def run_local(
    manifest: Any | None,
    url: str,
    *,
    uid: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    allow_overlap: bool = False,
) -> dict[str, Any]:
    """Plan (or resume, with `uid`) a run and drive its shards to the end.

    Resuming reads the spec planned in Postgres; a `manifest` given with it must not
    differ in anything but `parallelism` (RunMismatch). Raises planner.OverlapError
    when an active run already has some of the same work, and Interrupted when a
    signal stopped the runner."""
    console = console or Console()
    async with pool_for(url, max_size=2) as pool:
        async with pool.acquire() as conn:
            await reap_dead_drivers(conn)
            plan = await _plan_or_resume(conn, manifest, uid, allow_overlap)
        run = plan.run
        spec = AnalysisRunSpec.model_validate(run.spec)
        verb = "planned" if plan.created else "resuming"
        console.print(
            f"{verb} run {run.name} (uid {run.uid}): {run.total} tracks"
            f" in {run.shards} shard(s), analyzer {run.analyzer_type} {run.model_version}",
            highlight=False,
        )
        parallelism = manifest.spec.effective_parallelism if manifest else spec.shards
        job = LocalJob(
            shards=run.shards,
            parallelism=min(parallelism, run.shards),
            backoff_limit_per_index=spec.retry.backoff_limit_per_index,
        )
        if spec.dry_run or spec.suspend or run.state in shard_ledger.TERMINAL_RUN_STATES:
            job_obs = JobObservation(
                exists=False, suspended=bool(spec.suspend), active=0,
                completed_indexes=set(), failed_indexes=set(), complete=False, failed=False,
                failure_reason=None, failure_message=None,
            )  # fmt: skip
            finished = run.state in shard_ledger.TERMINAL_RUN_STATES
            st = await _status(pool, run, None if finished else job_obs)
            if finished:
                console.print(f"run {run.name} already {run.state}; nothing to resume")
            if run.compacted_at is not None:  # `db gc`: only its failed items are left
                console.print(
                    f"its ledger was compacted by `rap-analyzer db gc` on"
                    f" {run.compacted_at:%Y-%m-%d %H:%M} UTC: it can never run again."
                    " Plan a new run (without --uid) to analyze these tracks again",
                    highlight=False,
                )
            console.print(render_status_text(st, name=run.name), highlight=False)
            return st
        async with pool.acquire() as conn:
            await shard_ledger.set_run_state(conn, run.id, "running", driver=this_driver())
        errors: dict[int, str] = {}
        stopping = asyncio.Event()
        signals: list[int] = []
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            signals.append(signum)
            if len(signals) == 1:
                stopping.set()
                console.print(
                    "stopping: the shards finish their batch in flight"
                    " (press Ctrl-C again to kill them)",
                    highlight=False,
                    style="yellow",
                )
                job.signal_all(signal.SIGTERM)
            else:
                job.signal_all(signal.SIGKILL)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        driver = asyncio.create_task(_drive(job, url, run.uid, errors, stopping))
        try:
            await _watch(pool, run, driver, progress, console)
            await driver
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if not driver.done():  # an error (e.g. the database went away): no orphans
                # The driver first, so that it neither starts a shard nor changes the
                # running set while we reap them.
                driver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await driver
                job.signal_all(signal.SIGKILL)
                for proc in list(job.running.values()):
                    await proc.wait()
        for shard, msg in sorted(errors.items()):
            console.print(f"shard {shard}: {msg}", highlight=False, style="yellow")
        if signals and len(job.completed) + len(job.failed) < job.shards:
            async with pool.acquire() as conn:
                await shard_ledger.set_run_state(conn, run.id, "interrupted")
            st = await _status(pool, run, None)
            raise Interrupted(signals[0], _as_interrupted(st), run)
        st = await _status(pool, run, job.observation())
        async with pool.acquire() as conn:
            if job.failed:
                await shard_ledger.mark_shards_failed(conn, run.id, sorted(job.failed))
            await shard_ledger.set_run_state(
                conn, run.id, "failed" if st["phase"] == "Failed" else "succeeded"
            )
        st = await _status(pool, run, job.observation())
        console.print(render_status_text(st, name=run.name), highlight=False)
        return st


async def _plan_or_resume(
    conn: asyncpg.Connection, manifest: Any | None, uid: str | None, allow_overlap: bool
) -> shard_ledger.PlanResult:
    existing = await shard_ledger.find_run(conn, uid) if uid else None
    if existing is None:
        if manifest is None:
            raise RunMismatch(
                f"no run with uid {uid!r} in this database; give the AnalysisRun YAML to plan it"
            )
        uid = uid or manifest.metadata.uid or str(uuid.uuid4())
        return await planner.plan_manifest(conn, manifest, uid, allow_overlap=allow_overlap)
    if existing.kind != "AnalysisRun":
        raise RunMismatch(
            f"run {existing.name} (uid {uid}) is a {existing.kind}, not an AnalysisRun"
        )
    if manifest is not None:
        differing = planner.differences_from_plan(existing, manifest)
        if differing:
            raise RunMismatch(
                f"the YAML differs from run {existing.name} as it was planned (uid {uid}) in "
                + ", ".join(differing)
                + "; only spec.parallelism may change on resume. Resume without the YAML"
                f" ({resume_command(existing.uid)}), or plan a new run without --uid"
            )
    return shard_ledger.PlanResult(existing, created=False)


def _as_interrupted(st: dict[str, Any]) -> dict[str, Any]:
    """A stopped run shows no rate or ETA: nothing is working on it."""
    return {**st, "phase": "Interrupted", "eta": None, "throughput": None}


async def _status(
    pool: asyncpg.Pool, run: shard_ledger.Run, job: JobObservation | None
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        shards = await shard_ledger.read_shards(conn, run.id)
        estimate = await estimates.read(conn, run.id)
        batches = await batch_status.read(conn, run.id)
    status = compute_status(RunObservation(
        generation=1, shards=shards, job=job, previous=None, now=datetime.now(UTC),
        planned_total=run.total, pricing=pricing_for_spec(run.spec),
        dry_run=bool(run.spec.get("dryRun")), failure_threshold=run.spec.get("failureThreshold"),
        cascade=cascade_of_spec(run.spec),
    )).to_json()  # fmt: skip
    if estimate is not None:  # LLM runs: requests, tokens, cost, duration before any request
        status["estimate"] = estimate
    if batches is not None:  # llm.mode batch: the provider batches
        status["llmBatches"] = batches
    return status


async def _watch(
    pool: asyncpg.Pool,
    run: shard_ledger.Run,
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
        run = await shard_ledger.find_run(conn, run_ref) or await shard_ledger.find_run_by_name(
            conn, run_ref
        )
    if run is None:
        return None
    if run.state in ("planned", "running") and run.driver and not _driver_alive(run.driver):
        async with pool.acquire() as conn:
            await shard_ledger.set_run_state(conn, run.id, "interrupted")
        run = replace(run, state="interrupted")
    st = await _status(pool, run, None)
    st["runId"] = run.uid
    if run.state in (*shard_ledger.TERMINAL_RUN_STATES, "interrupted"):
        st["runState"] = run.state
    if run.state == "interrupted":
        st = _as_interrupted(st)
        st["resume"] = resume_command(run.uid)
    return st
