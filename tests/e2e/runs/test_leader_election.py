"""Two operator processes electing a leader on a Lease (issue 22), on the real API
server with the chart's RBAC: only the leader reconciles; a SIGKILLed leader is
replaced within 20 s, a SIGTERMed one hands over at once; a leader that loses its
Lease exits non-zero. The session's single operator is stopped meanwhile."""

from __future__ import annotations

import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools.operator_setup import OperatorProcess, put_db_secret
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import CORPUS, Env, exact, run_manifest
from tests.e2e.runs.operator_pair import LEASE_PATH, NAMES, Pair, operator_pair

pytestmark = pytest.mark.e2e


def _get(op: OperatorProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _metric(op: OperatorProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as r:
        body = r.read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    assert m, f"{name} not exported"
    return float(m.group(1))


@pytest.fixture
def pair(env: Env, tmp_path: Path) -> Iterator[Pair]:
    with operator_pair(env, tmp_path) as p:
        yield p


def _one_job_one_succeeded_event(env: Env, ns: str, name: str) -> None:
    uid = env.get(ns, name)["metadata"]["uid"]
    assert len(env.jobs(ns, uid)) == 1
    reasons = [e["reason"] for e in env.events(ns, name)]
    assert reasons.count("Succeeded") == 1, reasons
    # kopf counts repeats of one Event in `count`: exactly one post, too.
    (succeeded,) = [e for e in env.events(ns, name) if e["reason"] == "Succeeded"]
    assert succeeded.get("count", 1) == 1


def test_two_operators_one_job_and_one_succeeded_event_per_run(
    env: Env, namespace: str, pair: Pair
) -> None:
    leader, follower = pair.leader()
    # The follower is live and ready, but idle; the metrics say who leads.
    assert _get(follower, "/healthz") == 200 and _get(follower, "/readyz") == 200
    assert _get(leader, "/readyz") == 200
    assert _metric(leader, "rap_operator_leader") == 1
    assert _metric(follower, "rap_operator_leader") == 0
    assert _metric(follower, "rap_operator_leader_transitions_total") >= 1

    urls = {"first": env.new_database(), "second": env.new_database()}
    for name, url in urls.items():
        put_db_secret(env.kube, namespace, url, name=f"db-{name}")
        manifest = run_manifest(name, database={"secretRef": {"name": f"db-{name}"}})
        assert env.apply(namespace, manifest).returncode == 0
    for name, url in urls.items():
        st = pair.wait_phase(namespace, name, "Succeeded")
        assert st["processed"] == CORPUS
        exact(env, url, CORPUS)
        _one_job_one_succeeded_event(env, namespace, name)
    # The follower ran no handler: it knows of no run.
    assert _metric(follower, 'rap_operator_runs{phase="Succeeded"}') == 0
    assert _metric(leader, 'rap_operator_runs{phase="Succeeded"}') >= 2
    assert pair.holder().startswith(NAMES[0] + "_") or pair.holder().startswith(NAMES[1] + "_")


def test_a_sigkilled_leader_is_replaced_within_20_s_and_the_run_completes(
    env: Env, namespace: str, pair: Pair
) -> None:
    leader, follower = pair.leader()
    url = env.new_database()
    env.db_secret(namespace, url)
    manifest = run_manifest("failover", batchSize=5, shards=4, parallelism=1)
    assert env.apply(namespace, manifest).returncode == 0
    st = pair.wait_phase(namespace, "failover", "Running", timeout=120)
    wait_for(
        lambda: env.status(namespace, "failover").get("processed", 0) > 0,
        timeout=120, what="progress", describe=pair.tails,
    )  # fmt: skip
    st = env.status(namespace, "failover")
    assert st["phase"] == "Running" and st["processed"] < CORPUS  # mid-run
    leader.signal(signal.SIGKILL)
    took = pair.wait_held_by(follower, timeout=40)
    assert took < 20, f"the follower took over {took:.1f} s after the kill"
    st = pair.wait_phase(namespace, "failover", "Succeeded")
    assert st["processed"] == CORPUS
    exact(env, url, CORPUS)
    _one_job_one_succeeded_event(env, namespace, "failover")


def test_a_sigtermed_leader_hands_over_at_once(env: Env, pair: Pair) -> None:
    leader, follower = pair.leader()
    leader.signal(signal.SIGTERM)
    took = pair.wait_held_by(follower, timeout=20)
    assert took < 3, f"the follower took over {took:.1f} s after SIGTERM"
    # It stopped kopf, released the Lease and exited cleanly.
    assert leader.wait_exit(timeout=30) == 0
    assert "released Lease" in leader.tail()
    assert _metric(follower, "rap_operator_leader") == 1


def test_a_leader_that_loses_its_lease_exits_non_zero(env: Env, pair: Pair) -> None:
    leader, follower = pair.leader()
    # Another writes the Lease as its own (a partitioned leader finds it taken): the
    # leader's next renewal sees it, and it stops at once.
    lease = env.kube.get(LEASE_PATH)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    lease["spec"].update(holderIdentity="intruder", renewTime=now, leaseDurationSeconds=3600)
    env.kube.put(LEASE_PATH, lease)
    assert leader.wait_exit(timeout=15) == 1
    assert "lost the Lease to intruder" in leader.tail()
    # The follower leaves a live holder's Lease alone.
    assert pair.holder() == "intruder"
    assert _get(follower, "/healthz") == 200
