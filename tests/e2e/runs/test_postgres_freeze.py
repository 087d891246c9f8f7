"""A frozen Postgres mid-run (issue 22): every server process of the run's database
SIGSTOPped for 20 s - TCP still accepts, nothing answers, as with a VM paused or a
network partition. The operator must not hang on it: its bounded database calls
turn the freeze into DatabaseUnavailable, shown on the run while it lasts; after
SIGCONT the condition clears and the run ends Succeeded with every track analyzed
exactly once (the shard pods just wait: their batches commit or are claimed again).

The database is a Postgres of its own (not the session's pg_e2e), so freezing it
cannot touch the other tests."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rap_devtools.waiting import holds_until

from tests.e2e.runs.operator_env import JSON, Env, phase, run_manifest
from tests.e2e.runs.own_postgres import own_postgres, signal_all

pytestmark = pytest.mark.e2e

TRACKS = 2000
FREEZE_SECONDS = 20.0


@pytest.fixture
def own_pg() -> Iterator[tuple[Any, Path]]:
    with own_postgres(TRACKS) as server:
        yield server


def _valid(st: JSON) -> JSON:
    return next((c for c in st.get("conditions") or [] if c.get("type") == "Valid"), {})


def _database_unavailable(st: JSON) -> bool:
    cond = _valid(st)
    return cond.get("status") == "False" and cond.get("reason") == "DatabaseUnavailable"


def test_a_frozen_postgres_shows_on_the_run_and_the_run_ends_exactly_once(
    env: Env, namespace: str, own_pg: tuple[Any, Path]
) -> None:
    server, pgdata = own_pg
    url = str(server.get_uri())
    env.db_secret(namespace, url)
    # One track per batch and one pod: slow enough that the freeze lands mid-run.
    manifest = run_manifest("frozen", batchSize=1, parallelism=1, shards=2)
    assert env.apply(namespace, manifest).returncode == 0
    st = env.wait_status(
        namespace, "frozen", lambda s: s.get("phase") == "Running" and s.get("processed", 0) > 0
    )
    total = int(st["total"])
    assert total == TRACKS

    frozen_at = time.monotonic()
    try:
        assert signal_all(pgdata, signal.SIGSTOP) >= 2  # postmaster and its children
        # While it lasts, the run says why it does not move (within the freeze).
        st = env.wait_status(
            namespace, "frozen", _database_unavailable, timeout=FREEZE_SECONDS - 1,
            what="Valid=False DatabaseUnavailable while Postgres is frozen",
        )  # fmt: skip
        assert st["phase"] == "Running"
        assert st["processed"] < total
        assert "://" not in _valid(st)["message"]  # no URL (nor its password) in the status
        # The freeze is the scenario's length, not a wait for a condition: the run must
        # keep saying so for all of it.
        holds_until(lambda: _database_unavailable(env.status(namespace, "frozen")),
                    frozen_at + FREEZE_SECONDS, interval=0.5,
                    what="Valid=False DatabaseUnavailable while frozen",
                    describe=lambda: str(env.status(namespace, "frozen")))  # fmt: skip
    finally:
        signal_all(pgdata, signal.SIGCONT)

    # Resumed: the condition clears while the run continues, and it ends Succeeded.
    env.wait_status(
        namespace, "frozen", lambda s: _valid(s).get("status") == "True", timeout=60,
        what="Valid=True again after SIGCONT",
    )  # fmt: skip
    st = env.wait_status(namespace, "frozen", phase("Succeeded"), timeout=300)
    assert st["processed"] + st.get("failed", 0) + st.get("skipped", 0) == total
    assert st["processed"] == total
    # Exactly once: one result per planned track, none lost, none twice.
    per_track = env.sql(
        url,
        "SELECT count(*) FILTER (WHERE n > 1) FROM"
        " (SELECT track_id, count(*) AS n FROM analysis_results GROUP BY track_id) t",
    )
    assert per_track == 0
    assert env.sql(url, "SELECT count(DISTINCT track_id) FROM analysis_results") == total
    assert env.sql(url, "SELECT sum(processed) FROM run_shards") == total
    reasons = [e["reason"] for e in env.events(namespace, "frozen")]
    assert "DatabaseUnavailable" in reasons  # the Warning Event of the wait
    assert "ReconcileError" not in reasons  # an outage is no bug
