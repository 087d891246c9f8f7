"""Exactly-once under concurrency, resume and crashes, through the CLI as users run it
(issue 9): the planned spec rules every resume, four resumers share the work through
leases, a track that kills its process is the only one failed, the runner's shards
die with it, a lost database is exit 3 in one line, an overlapping run is refused."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import psutil
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.contract import load_manifest
from analyzer_runtime.db import embedded
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.migrate import migrate
from analyzer_runtime.seed import seed
from tests.integration.clirun import cli, spawn


def _yaml(tmp: Path, name: str, spec: str, file: str | None = None) -> Path:
    path = tmp / (file or f"{name}.yaml")
    path.write_text(
        "apiVersion: rapanalyzer.io/v1alpha1\nkind: AnalysisRun\n"
        f"metadata: {{name: {name}}}\nspec: {spec}\n"
    )
    return path


async def _plan(conn: asyncpg.Connection, path: Path, uid: str) -> shard_ledger.Run:
    plan = await planner.plan_manifest(conn, load_manifest(path.read_text()), uid)
    return plan.run


async def _item_states(conn: asyncpg.Connection, run_id: int) -> dict[tuple[str, int, int], int]:
    rows = await conn.fetch(
        """SELECT state, attempts, crashes, count(*) AS n FROM run_items WHERE run_id = $1
            GROUP BY 1, 2, 3""",
        run_id,
    )
    return {(r["state"], r["attempts"], r["crashes"]): r["n"] for r in rows}


async def test_resume_uses_the_planned_spec_and_refuses_a_differing_yaml(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 600)
    three = _yaml(tmp_path, "r3", "{analyzer: emotion, shards: 3, batchSize: 50}")
    async with pool.acquire() as conn:
        run = await _plan(conn, three, "u-three")
    one = _yaml(tmp_path, "r3", "{analyzer: emotion, shards: 1, batchSize: 50}", "one.yaml")
    res = await asyncio.to_thread(cli, "run", str(one), "--uid", "u-three", db_url=db_url)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "spec.shards (planned 3, YAML 1)" in res.stderr and "Traceback" not in res.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM runs WHERE id = $1", run.id) == "planned"
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 0
    res = await asyncio.to_thread(cli, "run", "--uid", "no-such-uid", db_url=db_url)
    assert res.returncode == 2 and "no run with uid 'no-such-uid'" in res.stderr
    # Only parallelism may differ: the planned three shards run, one at a time.
    serial = _yaml(tmp_path, "r3", "{analyzer: emotion, shards: 3, parallelism: 1, batchSize: 50}")
    res = await asyncio.to_thread(
        cli, "run", str(serial), "--uid", "u-three", "--no-progress", db_url=db_url
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "600/600 (100.0%)" in res.stdout
    async with pool.acquire() as conn:
        shards = await shard_ledger.read_shards(conn, run.id)
        assert [s.state for s in shards] == ["done"] * 3
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 600
    # Resuming a finished run does nothing and says so.
    res = await asyncio.to_thread(cli, "run", "--uid", "u-three", "--no-progress", db_url=db_url)
    assert res.returncode == 0 and "already succeeded" in res.stdout


async def test_four_resumers_at_once_analyze_every_track_once(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 1000)
    path = _yaml(tmp_path, "four", "{analyzer: algorithmic, shards: 2, batchSize: 20}")
    async with pool.acquire() as conn:
        run = await _plan(conn, path, "u-four")
    procs = [spawn("run", "--uid", "u-four", "--no-progress", db_url=db_url) for _ in range(4)]
    outs = [await asyncio.to_thread(p.communicate, timeout=300) for p in procs]
    for p, (out, errs) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + errs
    async with pool.acquire() as conn:
        # Every item done, claimed exactly once, never charged a crash.
        assert await _item_states(conn, run.id) == {("done", 1, 0): 1000}
        shards = await shard_ledger.read_shards(conn, run.id)
        assert sum(s.processed for s in shards) == 1000 and sum(s.failed for s in shards) == 0
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 1000
        assert await conn.fetchval("SELECT state FROM runs WHERE id = $1", run.id) == "succeeded"


async def test_a_track_that_kills_its_process_is_the_only_one_failed(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 200)
    path = _yaml(tmp_path, "poison", "{analyzer: algorithmic, shards: 1, batchSize: 50}")
    async with pool.acquire() as conn:
        run = await _plan(conn, path, "u-poison")
        poison = await conn.fetchval("SELECT id FROM tracks ORDER BY id OFFSET 24 LIMIT 1")
    # The poison: the shard hangs on this track (its result's row is locked by us) until
    # it is killed, as a pod is killed by the OOM killer or a liveness probe.
    blocker = await asyncpg.connect(db_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute(
        """INSERT INTO analysis_results (track_id, analyzer_type, model_version)
           VALUES ($1, 'algorithmic', '1.0.0')""",
        poison,
    )
    kills, holders = 0, [None]
    try:
        for _ in range(10):
            proc = spawn(
                "analyze", "--run-id", "u-poison", "--shard", "0",
                db_url=db_url, RAP_LEASE_SECONDS="1",
            )  # fmt: skip

            async def leased_or_exited(proc: subprocess.Popen[str] = proc) -> bool:
                # Leased by this process (not the lease its killed predecessor left) to
                # be analyzed: once charged 3 crashes it is failed without analysis.
                async with pool.acquire() as conn:
                    holder = await conn.fetchval(
                        """SELECT claimed_by FROM run_items WHERE run_id = $1 AND item_id = $2
                              AND state = 'pending' AND lease_expires > now() AND crashes < 3""",
                        run.id,
                        poison,
                    )
                if holder is not None and holder != holders[-1]:
                    holders.append(holder)
                    return True
                return proc.poll() is not None

            await wait_for_async(
                leased_or_exited,
                within=60,
                interval=0.05,
                what="a new lease on the poison track, or the shard gone",
            )
            if proc.poll() is not None:
                break
            proc.kill()
            proc.wait()
            kills += 1
        out, errs = proc.communicate()
        assert proc.returncode == 0, out + errs
    finally:
        await tx.rollback()
        await blocker.close()
    assert kills == 3  # maxItemAttempts
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT item_id, state, crashes, last_error FROM run_items WHERE run_id = $1", run.id
        )
        failed = [r for r in rows if r["state"] != "done"]
        assert [r["item_id"] for r in failed] == [poison]
        assert failed[0]["crashes"] == 3 and "gave up after 3 attempts" in failed[0]["last_error"]
        # Its 49 batch-mates were charged one crash each, then analyzed alone and kept.
        assert sum(1 for r in rows if r["crashes"] == 1 and r["state"] == "done") == 49
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 199
        (s,) = await shard_ledger.read_shards(conn, run.id)
        assert (s.processed, s.failed) == (199, 1)


def _shard_pids(parent: int) -> list[int]:
    return [
        c.pid
        for c in psutil.Process(parent).children(recursive=True)
        if "analyze" in " ".join(c.cmdline())
    ]


async def test_the_runners_shards_die_with_it_and_the_run_resumes(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    n = 12000
    await seed(pool, n)
    path = _yaml(tmp_path, "orphans", "{analyzer: emotion, shards: 2, batchSize: 50}")

    async def started() -> bool:
        async with pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT sum(processed) > 0 FROM run_shards"))

    # Ctrl-C: the shards stop after their batch, the run is interrupted, exit 130.
    runner = spawn("run", str(path), "--no-progress", db_url=db_url)
    await wait_for_async(started, within=60, interval=0.05, what="the first processed batch")
    shard_pids = _shard_pids(runner.pid)
    assert len(shard_pids) == 2
    runner.send_signal(signal.SIGINT)
    out, errs = await asyncio.to_thread(runner.communicate, timeout=60)
    assert runner.returncode == 130, out + errs
    assert "Phase:      Interrupted" in out and "ETA" not in out
    async with pool.acquire() as conn:
        uid = await conn.fetchval("SELECT uid FROM runs")
        assert await conn.fetchval("SELECT state FROM runs") == "interrupted"
    assert f"rap-analyzer run --uid {uid}" in errs
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in shard_pids
    )

    # SIGKILL to the runner alone: its shards get SIGTERM and are gone within 5 s.
    runner = spawn("run", "--uid", uid, "--no-progress", db_url=db_url)

    async def resumed() -> bool:
        async with pool.acquire() as conn:
            return (
                await conn.fetchval("SELECT state FROM runs") == "running"
                and len(_shard_pids(runner.pid)) == 2
            )

    await wait_for_async(
        resumed, within=60, interval=0.05, what="the resumed run with its 2 shards"
    )
    shard_pids = _shard_pids(runner.pid)
    runner.kill()
    runner.wait()

    async def shards_gone() -> bool:
        return not any(psutil.pid_exists(p) for p in shard_pids)

    await wait_for_async(shards_gone, within=5, interval=0.05, what="the orphaned shards gone")
    res = await asyncio.to_thread(cli, "status", "orphans", db_url=db_url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Interrupted" in res.stdout and "ETA" not in res.stdout
    assert f"rap-analyzer run --uid {uid}" in res.stdout

    res = await asyncio.to_thread(cli, "run", "--uid", uid, "--no-progress", db_url=db_url)
    assert res.returncode == 0, res.stdout + res.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == n
        assert await conn.fetchval("SELECT count(*) FROM run_items WHERE state <> 'done'") == 0
        assert await conn.fetchval("SELECT state FROM runs") == "succeeded"


async def test_an_overlapping_run_is_refused_unless_allowed(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 300)
    first = _yaml(tmp_path, "first", "{analyzer: emotion, selection: {limit: 100}}")
    async with pool.acquire() as conn:
        await _plan(conn, first, "u-first")
    second = _yaml(tmp_path, "second", "{analyzer: emotion}")
    res = await asyncio.to_thread(cli, "run", str(second), "--no-progress", db_url=db_url)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "overlaps run first (uid u-first, planned)" in res.stderr
    # Another analyzer, or tracks the first run does not have, do not overlap.
    other = _yaml(tmp_path, "other", "{analyzer: algorithmic, selection: {limit: 50}}")
    res = await asyncio.to_thread(cli, "run", str(other), "--no-progress", db_url=db_url)
    assert res.returncode == 0, res.stdout + res.stderr
    res = await asyncio.to_thread(
        cli, "run", str(second), "--allow-overlap", "--no-progress", db_url=db_url
    )
    assert res.returncode == 0 and "300/300" in res.stdout, res.stdout + res.stderr


async def test_the_same_yaml_run_twice_at_once_is_planned_once(
    pool: asyncpg.Pool, db_url: str, tmp_path: Path
) -> None:
    await seed(pool, 2000)
    path = _yaml(tmp_path, "twice", "{analyzer: emotion, shards: 2}")
    procs = [spawn("run", str(path), "--no-progress", db_url=db_url) for _ in range(2)]
    outs = [await asyncio.to_thread(p.communicate, timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    # Either the second is refused as overlapping, or it planned after the first was
    # through and found nothing missing; never are the tracks planned twice.
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        assert any("overlaps run twice" in errs for _, errs in outs), outs
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT sum(total) FROM runs") == 2000
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 2000


async def test_a_run_planned_with_a_version_this_code_lacks_writes_nothing(
    pool: asyncpg.Pool, db_url: str
) -> None:
    await seed(pool, 20)
    async with pool.acquire() as conn:
        ids = [r[0] for r in await conn.fetch("SELECT id FROM tracks")]
        await shard_ledger.record_plan(
            conn, uid="u-v2", name="v2", namespace=None, kind="AnalysisRun",
            spec={"analyzer": "algorithmic", "analyzerVersion": "2.0.0", "shards": 1},
            shards=1, analyzer_type="algorithmic", model_version="2.0.0", item_ids=ids,
        )  # fmt: skip
    res = await asyncio.to_thread(cli, "analyze", "--run-id", "u-v2", "--shard", "0", db_url=db_url)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "algorithmic implements version(s) 1.0.0; the run asks for '2.0.0'" in res.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM analysis_results") == 0


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, db_url: str) -> None:
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text(
        "apiVersion: rapanalyzer.io/v1alpha1\nkind: AnalysisRun\nmetadata: {name: x}\n"
        "spec: {analyzer: emotion}\n",
        encoding="utf-16",
    )
    for cmd in ("validate", "run"):
        res = cli(cmd, str(utf16), db_url=db_url)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "UTF-16" in res.stderr and "Traceback" not in res.stderr
    ok = _yaml(tmp_path, "ok", "{analyzer: emotion}")
    res = cli("run", str(ok), db_url="postgres://rap:hunter2@localhost:notaport/rap")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "not a valid postgres:// URL" in res.stderr
    assert "hunter2" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    res = cli("run", str(ok), db_url="postgres://rap:hunter2@127.0.0.1:1/rap")
    assert res.returncode == 3 and "127.0.0.1:1" in res.stderr, res.stderr
    assert "hunter2" not in res.stdout + res.stderr and len(res.stderr.strip().splitlines()) == 1


async def test_a_database_lost_mid_run_is_exit_3_in_one_line(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="rap-pg-lost-"))
    server = embedded.start(home / "pgdata")
    try:
        # A password in the URL (the socket trusts us): it must never be printed.
        url = server.get_uri().replace("postgres:@", "postgres:s3cr3t-pw@")
        conn = await asyncpg.connect(url)
        await migrate(conn)
        await conn.close()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        await seed(pool, 12000)
        path = _yaml(tmp_path, "lost", "{analyzer: emotion, shards: 2}")
        runner = spawn("run", str(path), "--no-progress", db_url=url)

        async def started() -> bool:
            async with pool.acquire() as c:
                return bool(await c.fetchval("SELECT sum(processed) > 0 FROM run_shards"))

        await wait_for_async(started, within=60, interval=0.05, what="the first processed batch")
        await pool.close()
        shard_pids = _shard_pids(runner.pid)
        embedded.stop(home / "pgdata", mode="immediate")
        out, errs = await asyncio.to_thread(runner.communicate, timeout=120)
        assert runner.returncode == 3, out + errs
        lines = [line for line in errs.splitlines() if line.strip()]
        assert len(lines) == 1 and "database" in lines[0], errs
        assert "s3cr3t" not in out + errs and "Traceback" not in errs
        assert not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in shard_pids
        )
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)
