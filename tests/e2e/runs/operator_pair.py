"""Two operator processes electing a leader on the Lease, for the e2e tests that
need a leader to kill (test_leader_election.py, test_chaos.py). The session's single
operator is stopped while they run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from rap_devtools.kubeapi import ApiError
from rap_devtools.operator_setup import (
    LEASE_NAME,
    OPERATOR_NS,
    OperatorProcess,
    election_env,
    lease_holder,
)
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import JSON, Env

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


def delete_if_present(env: Env, path: str) -> None:
    try:
        env.kube.delete(path)
    except ApiError as e:
        if e.status != 404:
            raise


def delete_lease(env: Env) -> None:
    delete_if_present(env, LEASE_PATH)


@contextlib.contextmanager
def operator_pair(env: Env, tmp_path: Path) -> Iterator[Pair]:
    """Two operators with election on (logs under `tmp_path`); afterwards the session's
    operator runs again."""
    env.operator.stop()
    delete_lease(env)
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
        delete_lease(env)
        env.operator.start()
