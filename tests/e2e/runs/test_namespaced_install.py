"""The chart's default, namespaced install on the real API server: the operator runs
as the chart's ServiceAccount with exactly the RBAC `helm template` renders (a Role
per watched namespace, no cluster-wide grant on namespaced objects) and the
RAP_NAMESPACES the chart sets. A run in a watched namespace is served; the same run
in any other namespace is left alone, and the operator cannot read its Secrets.

The session's cluster-wide operator is stopped meanwhile: it would serve both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rap_devtools.helm import operator_env
from rap_devtools.kubeapi import ApiError
from rap_devtools.operator_setup import (
    OperatorProcess,
    create_namespace,
    election_env,
    install_operator_rbac,
    render_operator_chart,
)

from tests.e2e.runs.conftest import RESTRICTED
from tests.e2e.runs.operator_env import CORPUS, Env, phase, run_manifest

pytestmark = pytest.mark.e2e

# The release namespace is watched (the chart's default: watchNamespaces empty),
# or a team's namespace listed in watchNamespaces (its Role is not in the release
# namespace; the RoleBinding names the operator's ServiceAccount there).
SCOPES = ["release-namespace", "listed"]


@dataclass
class Install:
    release_ns: str
    watched: str
    unwatched: str
    service_account: str
    operator: OperatorProcess

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.release_ns}:{self.service_account}"


def _delete(env: Env, path: str) -> None:
    try:
        env.kube.delete(path)
    except ApiError as e:
        if e.status != 404:
            raise


@pytest.fixture(params=SCOPES)
def install(env: Env, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Install]:
    suffix = uuid.uuid4().hex[:6]
    release_ns = f"rap-ops-{suffix}"
    if request.param == "release-namespace":
        values: dict[str, Any] = {}
        watched = release_ns
        namespaces = [release_ns]
    else:
        watched = f"team-{suffix}"
        values = {"watchNamespaces": [watched]}
        namespaces = [release_ns, watched]
    unwatched = f"other-{suffix}"
    for ns in [*namespaces, unwatched]:
        create_namespace(env.kube, ns, RESTRICTED)
    docs = render_operator_chart(release_ns, values)
    chart_env = operator_env(docs)
    assert chart_env["RAP_NAMESPACES"] == watched
    sa = install_operator_rbac(env.cluster.kubeconfig, env.kube, release_ns, values)
    kubeconfig = env.cluster.make_kubeconfig_for_serviceaccount(release_ns, sa)
    op = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", env.operator.interval,
        env={"RAP_NAMESPACES": chart_env["RAP_NAMESPACES"],
             **election_env(f"rap-analyzer-{suffix}", release_ns)},
    )  # fmt: skip
    env.operator.stop()
    try:
        op.start()
        yield Install(release_ns, watched, unwatched, sa, op)
    finally:
        op.stop()
        for ns in {*namespaces, unwatched}:
            _delete(env, f"/api/v1/namespaces/{ns}")
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        for kind in ("clusterroles", "clusterrolebindings"):
            _delete(env, f"{rbac}/{kind}/{release_ns}-rap-analyzer-cluster")
        env.operator.start()


def _writers(obj: dict[str, Any]) -> set[str]:
    return {f["manager"] for f in obj["metadata"].get("managedFields") or []}


def _can_i(env: Env, user: str, *what: str) -> str:
    return env.kubectl("auth", "can-i", *what, f"--as={user}").stdout.strip()


def test_a_namespaced_install_serves_its_namespaces_and_ignores_others(
    env: Env, install: Install
) -> None:
    url = env.new_database()
    manifest = run_manifest("scoped")
    for ns in (install.watched, install.unwatched):
        env.db_secret(ns, url)
    # The unwatched run first: it had the whole time the watched one took to be ignored.
    assert env.apply(install.unwatched, manifest).returncode == 0
    res = env.apply(install.watched, manifest)
    assert res.returncode == 0, res.stderr

    st = env.wait_status(install.watched, "scoped", phase("Succeeded"), timeout=180)
    assert (st["processed"], st["total"]) == (CORPUS, CORPUS)
    served = env.get(install.watched, "scoped")
    assert env.jobs(install.watched, served["metadata"]["uid"])

    ignored = env.get(install.unwatched, "scoped")
    assert "status" not in ignored, ignored["status"]
    assert not ignored["metadata"].get("finalizers")
    # Nobody but `kubectl apply` ever wrote it (managedFields name every writer).
    assert _writers(ignored) == {"kubectl-client-side-apply"}, ignored["metadata"]
    assert _writers(served) - _writers(ignored), "the operator never wrote the served run"
    assert env.jobs(install.unwatched, ignored["metadata"]["uid"]) == []
    assert env.events(install.unwatched, "scoped") == []
    # Served once, in the watched namespace: the shared database saw one run.
    assert env.sql(url, "SELECT count(*) FROM runs") == 1

    # What its RBAC grants: the watched namespace's Secrets and Jobs, nothing else's.
    assert _can_i(env, install.user, "get", "secrets", "-n", install.watched) == "yes"
    for ns in (install.unwatched, "kube-system", "default"):
        assert _can_i(env, install.user, "get", "secrets", "-n", ns) == "no", ns
        assert _can_i(env, install.user, "create", "jobs", "-n", ns) == "no", ns
    assert _can_i(env, install.user, "list", "analysisruns.rapanalyzer.io", "-A") == "no"
    # The operator itself was refused nothing: it never reached outside its scope.
    assert "Forbidden" not in install.operator.log.read_text(errors="replace")
