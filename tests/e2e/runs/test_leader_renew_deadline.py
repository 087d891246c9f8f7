"""A leader that cannot renew its Lease within the renew deadline (10 s) stops at
once and exits non-zero (controller-runtime's behaviour; its pod restarts as a
follower): here its renewals are refused, the leader-election RoleBinding taken away
on the real API server. The session's single operator is stopped meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    election_env,
    install_operator_rbac,
    lease_holder,
)
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import Env
from tests.e2e.runs.operator_pair import LEASE_PATH, delete_if_present

pytestmark = pytest.mark.e2e

BINDINGS = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{OPERATOR_NS}/rolebindings"


@pytest.fixture
def leader(env: Env, tmp_path: Path) -> Iterator[OperatorProcess]:
    env.operator.stop()
    delete_if_present(env, LEASE_PATH)
    op = OperatorProcess(
        env.operator.kubeconfig, tmp_path / "op.log", env.operator.interval,
        env=election_env("op-alone"),
    )  # fmt: skip
    try:
        op.start()
        yield op
    finally:
        op.stop()
        install_operator_rbac(env.cluster.kubeconfig, env.kube)  # the binding back
        delete_if_present(env, LEASE_PATH)
        env.operator.start()


def test_a_leader_that_cannot_renew_exits_non_zero(env: Env, leader: OperatorProcess) -> None:
    wait_for(
        lambda: lease_holder(env.kube).startswith("op-alone_"), timeout=30,
        what="op-alone leading", describe=leader.tail,
    )  # fmt: skip
    (binding,) = [
        b["metadata"]["name"]
        for b in env.kube.get(BINDINGS)["items"]
        if b["metadata"]["name"].endswith("-leader-election")
    ]
    refused_at = time.monotonic()
    env.kube.delete(f"{BINDINGS}/{binding}")
    # Renewals (every 2 s) are refused from now on; the last one succeeded at most 2 s
    # ago, so it must give up 8-10 s from here, well before a follower could take the
    # Lease (15 s after the last renewal it saw).
    assert leader.wait_exit(timeout=20) == 1
    took = time.monotonic() - refused_at
    assert 7 < took < 13, f"gave up {took:.1f} s after its renewals were refused"
    log = leader.tail(80)
    assert "could not renew the Lease within 10 s" in log
    assert "released Lease" not in log  # it stopped at once, writing nothing more
