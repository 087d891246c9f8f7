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
from rap_devtools.kubeapi import ApiError
from rap_devtools.operator_setup import (
    LEASE_NAME,
    OPERATOR_NS,
    OperatorProcess,
    election_env,
    lease_holder,
    put_db_secret,
)
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import CORPUS, JSON, Env, exact, run_manifest

pytestmark = pytest.mark.e2e

LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{OPERATOR_NS}/leases/{LEASE_NAME}"
NAMES = ("op-a", "op-b")


class Pair:
    def __init__(self, env: Env, ops: dict[str, OperatorProcess]) -> None:
        self.env, self.ops = env, ops

    def tails(self) -> str:
        return "\n".join(f"--- {n} ---\n{op.tail(25)}" for n, op in self.ops.items())

    def holder(self) -> str:
        return lease_holder(self.env.kube)

    def leader(self, timeout: float = 30) -> tuple[OperatorProcess, OperatorProcess]:
        """(leader, follower), once one of the two holds the Lease."""

        def held() -> str | None:
            h = self.holder()
            return next((n for n in self.ops if h.startswith(n + "_")), None)

        name = wait_for(held, timeout=timeout, interval=0.1, what="a leader", describe=self.tails)
        (other,) = [op for n, op in self.ops.items() if n != name]
        return self.ops[name], other

    def wait_held_by(self, op: OperatorProcess, timeout: float) -> float:
        """Seconds until `op` holds the Lease."""
        (name,) = [n for n, o in self.ops.items() if o is op]
        start = time.monotonic()
        wait_for(
            lambda: self.holder().startswith(name + "_"), timeout=timeout, interval=0.05,
            what=f"{name} leading", describe=self.tails,
        )  # fmt: skip
        return time.monotonic() - start

    def wait_phase(self, ns: str, name: str, phase: str, timeout: float = 240) -> JSON:
        def check() -> JSON | None:
            st = self.env.status(ns, name)
            return st if st.get("phase") == phase else None

        return wait_for(
            check, timeout=timeout, interval=0.2, what=f"{name} {phase}",
            describe=lambda: f"{self.env.status(ns, name)}\n{self.tails()}",
        )  # fmt: skip


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


def _delete_lease(env: Env) -> None:
    try:
        env.kube.delete(LEASE_PATH)
    except ApiError as e:
        if e.status != 404:
            raise


@pytest.fixture
def pair(env: Env, tmp_path: Path) -> Iterator[Pair]:
    env.operator.stop()
    _delete_lease(env)
    cfg, interval = env.operator.kubeconfig, env.operator.interval
    ops = {
        n: OperatorProcess(cfg, tmp_path / f"{n}.log", interval, env=election_env(n)) for n in NAMES
    }
    try:
        for op in ops.values():
            op.start()  # returns once /healthz answers: a follower's too
        yield Pair(env, ops)
    finally:
        for op in ops.values():
            op.stop()
        _delete_lease(env)
        env.operator.start()


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
