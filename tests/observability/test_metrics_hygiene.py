"""Metric hygiene (issue 14): `promtool check metrics` (Prometheus's naming and
exposition lint) on real scrapes over HTTP of

(a) the operator's metrics endpoint after it has done work: a process with the
    operator's metrics module (and everything the operator imports) that records
    a run the way a status refresh does - the status computed by the real
    compute_status from a real run's shard rows in Postgres, the Job's failed pod
    count, a reconcile pass - then serves rap_operator.metrics.serve();
(b) a shard process's /metrics after a real shard run (worker.run_shard, what
    `rap-analyzer analyze` runs) against a real Postgres; the process keeps
    serving once the shard is done so that it can be scraped;
(c) the search API (`rap-analyzer serve`) after a few requests.

promtool must report nothing. Also checked on the same scrapes: no run uid in any
label (the per-run series are labelled by namespace and name), and the counters
whose label values are known up front exist at 0 before anything was counted.
The real operator, scraped by a real Prometheus on a kubelet node, is
tests/node/test_prometheus_on_node.py.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from rap_devtools.waiting import wait_for, wait_for_line

from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger.planner import Selection
from tests.integration.clirun import cli_env, spawn
from tests.integration.conftest import db_url, insert_tracks, pg_server  # noqa: F401 (fixtures)

from .conftest import REPO

RUN_UID = "0b5e7a7e-1111-4222-8333-444455556666"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str, *, timeout: float = 60) -> str:
    return wait_for(lambda: urllib.request.urlopen(url, timeout=5).read().decode(),
                    timeout=timeout, what=f"a scrape of {url}")  # fmt: skip


def check_metrics(promtool: Path, exposition: str) -> None:
    proc = subprocess.run(
        [str(promtool), "check", "metrics"],
        input=exposition.encode(),
        capture_output=True,
        timeout=60,
    )
    problems = (proc.stdout + proc.stderr).decode().strip()
    assert proc.returncode == 0 and not problems, problems


def assert_no_uid(exposition: str) -> None:
    assert RUN_UID not in exposition
    assert not re.search(r'\b\w*uid="', exposition), "a uid label"


async def plan_run(url: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        await insert_tracks(
            pool,
            [
                ("A", "one", "money on my mind all the time"),
                ("A", "two", "   "),
                ("B", "three", "bars on bars, the city lights"),
            ],
        )
        async with pool.acquire() as conn:
            await planner.plan_analysis(
                conn, uid=RUN_UID, name="hygiene", namespace="rap",
                spec={"analyzer": "algorithmic", "batchSize": 2}, selection=Selection(),
                shards=1, analyzer_type="algorithmic", model_version="1.0.0",
            )  # fmt: skip
    finally:
        await pool.close()


# A shard process (what `rap-analyzer analyze --run-id UID --shard 0` does: serve
# metrics, run the shard) that keeps serving after the shard is done.
SHARD = textwrap.dedent(
    """
    import asyncio, sys, threading
    from analyzer_runtime import metrics, worker
    from analyzer_runtime.ledger.connect import create_pool

    url, uid, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert metrics.serve(port)

    async def main():
        pool = await create_pool(url, max_size=2)
        try:
            report = await worker.run_shard(pool, uid, 0)
        finally:
            await pool.close()
        assert report.finished, report

    asyncio.run(main())
    print("shard done", flush=True)
    threading.Event().wait()  # serve /metrics until the test kills this process
    """
)

# The operator's metrics after a status refresh of the same run: the status the
# operator computes (compute_status over the run's shard rows), a Job with one
# failed pod, a reconcile pass; then the operator's own serve().
OPERATOR = textwrap.dedent(
    """
    import asyncio, sys, threading
    from datetime import UTC, datetime
    import asyncpg
    from analyzer_runtime.ledger import shards as shard_ledger
    from analyzer_runtime.contract.status import RunObservation, compute_status
    from rap_operator import handlers, metrics  # everything the operator process loads

    url, uid, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

    async def main():
        conn = await asyncpg.connect(url)
        try:
            run = await shard_ledger.find_run(conn, uid)
            shards = await shard_ledger.read_shards(conn, run.id)
        finally:
            await conn.close()
        status = compute_status(RunObservation(
            generation=1, shards=shards, job=None, previous={}, now=datetime.now(UTC),
            planned_total=run.total,
        )).to_json()
        body = {
            "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "hygiene", "namespace": "rap", "uid": uid, "generation": 1},
            "spec": {"analyzer": "algorithmic"},
        }
        metrics.set_phase(uid, "Running")
        metrics.observe_run(body, {**status, "phase": "Running"}, {"status": {"failed": 1}})
        metrics.observe_run(body, status, {"status": {"failed": 1}})
        metrics.set_phase(uid, status["phase"])
        # A second run, deleted: its series must go.
        other = {**body, "metadata": {**body["metadata"], "name": "gone", "uid": "x"}}
        metrics.observe_run(other, status, None)
        metrics.set_phase("x", None)
        metrics.RECONCILE_SECONDS.labels("reconcile").observe(0.02)
        metrics.STATUS_REFRESH_SECONDS.observe(0.01)
        print(status["phase"], flush=True)

    asyncio.run(main())
    assert metrics.serve(port)
    print("operator ready", flush=True)
    threading.Event().wait()  # serve /metrics until the test kills this process
    """
)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        p.kill()
        p.wait(timeout=10)


def python(code: str, *args: str, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=cli_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


@pytest.fixture
def exposition(promtool: Path, db_url: str, procs: list) -> dict[str, str]:  # noqa: F811
    """The three scrapes, after a real run: {operator, shard, search}."""
    asyncio.run(plan_run(db_url))
    out: dict[str, str] = {}
    port = free_port()
    shard = python(SHARD, db_url, RUN_UID, str(port), db=db_url)
    procs.append(shard)
    wait_for_line(shard, "shard done", timeout=300)
    out["shard"] = scrape(f"http://127.0.0.1:{port}/metrics")

    port = free_port()
    op = python(OPERATOR, db_url, RUN_UID, str(port), db=db_url)
    procs.append(op)
    wait_for_line(op, "operator ready", timeout=300)
    out["operator"] = scrape(f"http://127.0.0.1:{port}/metrics")

    port, metrics_port = free_port(), free_port()
    # /metrics is on a port of its own (issue 23), never the public one.
    api = spawn("serve", "--port", str(port), db_url=db_url,
                RAP_SEARCH_METRICS_PORT=str(metrics_port))  # fmt: skip
    procs.append(api)
    base = f"http://127.0.0.1:{port}"
    scrape(f"{base}/readyz")
    for path in ("/healthz", "/tracks/1", "/tracks/999999"):
        try:
            urllib.request.urlopen(base + path, timeout=10).read()
        except urllib.error.HTTPError:
            pass  # a 404 is counted too
    out["search"] = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    return out


def test_real_scrapes_pass_promtool_check_metrics(
    promtool: Path, exposition: dict[str, str]
) -> None:
    # One test (the three processes and the run take a few seconds).
    for name, text in exposition.items():
        assert "# TYPE" in text, name
        check_metrics(promtool, text)
        assert_no_uid(text)
    shard_scrape_has_the_run_and_zeroed_counters(exposition)
    operator_scrape_has_per_run_series(exposition)
    search_scrape_counts_requests(exposition)


def shard_scrape_has_the_run_and_zeroed_counters(exposition: dict[str, str]) -> None:
    text = exposition["shard"]
    assert 'rap_analyzer_items_total{analyzer="algorithmic",state="done"} 2.0' in text
    assert 'rap_analyzer_items_total{analyzer="algorithmic",state="skipped"} 1.0' in text
    # Known label values exist before anything was counted: rate() has data.
    assert 'rap_analyzer_items_total{analyzer="algorithmic",state="failed"} 0.0' in text
    # No run or shard identity: the pod's labels give it at scrape time.
    assert "hygiene" not in text and "shard=" not in text


def operator_scrape_has_per_run_series(exposition: dict[str, str]) -> None:
    text = exposition["operator"]
    run = 'analyzer="algorithmic",kind="analysisrun",name="hygiene",namespace="rap"'
    assert f'rap_operator_run_phase{{{run},phase="Succeeded"}} 1.0' in text
    assert f'rap_operator_run_phase{{{run},phase="Running"}} 0.0' in text
    assert f'rap_operator_run_items{{{run},state="done"}} 2.0' in text
    assert f'rap_operator_run_items{{{run},state="skipped"}} 1.0' in text
    assert f"rap_operator_run_items_planned{{{run}}} 3.0" in text
    assert f'rap_operator_run_shards{{{run},state="done"}} 1.0' in text
    assert f"rap_operator_run_shard_pod_failures{{{run}}} 1.0" in text
    assert f"rap_operator_run_last_progress_timestamp_seconds{{{run}}}" in text
    assert 'rap_operator_runs{phase="Succeeded"} 1.0' in text
    assert 'name="gone"' not in text  # deleted: its series went with it


def search_scrape_counts_requests(exposition: dict[str, str]) -> None:
    text = exposition["search"]
    assert "rap_search_requests_total{" in text
    assert "rap_search_request_seconds_bucket{" in text
