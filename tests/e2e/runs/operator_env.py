"""The operator on the real control plane: its RBAC from the Helm chart, a real
Postgres, a seeded corpus, and the operator as a separate process.

Fixtures are registered for the tests in conftest.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from rap_devtools.cluster import LocalCluster
from rap_devtools.corpus_db import seeded_database
from rap_devtools.kubeapi import KubeApi
from rap_devtools.operator_setup import (
    OPERATOR_NS,
    OperatorProcess,
    install_crds,
    install_operator_rbac,
    put_db_secret,
)
from rap_devtools.waiting import wait_for

from analyzer_runtime.db import embedded

TEMPLATE_DB = "e2e_template"
CORPUS = 1200
JSON = dict[str, Any]
_db_counter = itertools.count()


class Env:
    """Everything a test needs: the cluster, a database per test, the operator."""

    def __init__(self, cluster: LocalCluster, kube: KubeApi, pg: Any, operator: OperatorProcess):
        self.cluster, self.kube, self.pg, self.operator = cluster, kube, pg, operator

    # -- Postgres ------------------------------------------------------------
    def new_database(self) -> str:
        name = f"e2e_{os.getpid()}_{next(_db_counter)}"

        async def create() -> None:
            conn = await asyncpg.connect(self.pg.get_uri())
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
            await conn.close()

        asyncio.run(create())
        return str(self.pg.get_uri(name))

    def sql(self, url: str, query: str, *args: Any) -> Any:
        async def go() -> Any:
            conn = await asyncpg.connect(url)
            try:
                return await conn.fetchval(query, *args)
            finally:
                await conn.close()

        return asyncio.run(go())

    # -- Kubernetes ----------------------------------------------------------
    def db_secret(self, ns: str, url: str, name: str = "rap-analyzer-db") -> None:
        put_db_secret(self.kube, ns, url, name)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, input=input)

    def apply(self, ns: str, manifest: JSON) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))

    def run_path(self, ns: str, name: str = "", plural: str = "analysisruns") -> str:
        base = f"/apis/rapanalyzer.io/v1alpha1/namespaces/{ns}/{plural}"
        return f"{base}/{name}" if name else base

    def get(self, ns: str, name: str, plural: str = "analysisruns") -> JSON:
        return self.kube.get(self.run_path(ns, name, plural))

    def status(self, ns: str, name: str, plural: str = "analysisruns") -> JSON:
        return dict(self.get(ns, name, plural).get("status") or {})

    def wait_status(
        self, ns: str, name: str, pred: Callable[[JSON], bool], timeout: float = 120,
        what: str = "", plural: str = "analysisruns",
    ) -> JSON:  # fmt: skip
        """The status of `plural`/`name` once `pred` holds for it (an AnalysisRun's
        unless `plural` says otherwise: scrapejobs)."""

        def check() -> JSON | None:
            st = self.status(ns, name, plural)
            return st if pred(st) else None

        return wait_for(
            check, timeout=timeout, interval=0.1, what=what or f"status of {plural}/{name}",
            describe=lambda: json.dumps(self.status(ns, name, plural), indent=1)[-3000:]
            + "\n--- operator log ---\n" + self.operator.tail(),
        )  # fmt: skip

    def patch_spec(self, ns: str, name: str, spec: JSON) -> None:
        self.kube.patch(self.run_path(ns, name), {"spec": spec}, "application/merge-patch+json")

    def events(self, ns: str, name: str) -> list[JSON]:
        items = self.kube.get(
            f"/api/v1/namespaces/{ns}/events",
            fieldSelector=f"involvedObject.name={name},involvedObject.kind=AnalysisRun",
        )["items"]
        # resourceVersion (an etcd revision) orders them; timestamps have 1 s resolution.
        return sorted(items, key=lambda e: int(e["metadata"]["resourceVersion"]))

    def jobs(self, ns: str, uid: str) -> list[JSON]:
        return self.kube.get(
            f"/apis/batch/v1/namespaces/{ns}/jobs", labelSelector=f"rapanalyzer.io/run-uid={uid}"
        )["items"]

    def pods(self, ns: str, uid: str) -> list[JSON]:
        return self.kube.get(
            f"/api/v1/namespaces/{ns}/pods", labelSelector=f"rapanalyzer.io/run-uid={uid}"
        )["items"]


def phase(p: str) -> Callable[[JSON], bool]:
    """A wait_status predicate: the run is in phase `p`."""
    return lambda st: st.get("phase") == p


def exact(e: Env, url: str, total: int) -> None:
    """One result per selected track, and counters that agree with the rows."""
    rows = e.sql(url, "SELECT count(*) FROM analysis_results")
    distinct = e.sql(url, "SELECT count(DISTINCT track_id) FROM analysis_results")
    counted = e.sql(url, "SELECT sum(processed) FROM run_shards")
    assert rows == distinct == counted == total


def run_manifest(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {"analyzer": "algorithmic", "shards": 4, "parallelism": 2, **spec},
    }


@pytest.fixture(scope="session")
def pg_e2e() -> Iterator[Any]:
    # Not under pytest's tmp dir: other pytest sessions on the machine prune those.
    home = Path(tempfile.mkdtemp(prefix="rap-pg-e2e-"))
    server = embedded.start(home / "pgdata")

    asyncio.run(seeded_database(server, CORPUS, TEMPLATE_DB))
    yield server
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def env(
    cluster: LocalCluster, kube: KubeApi, pg_e2e: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    install_crds(cluster.kubeconfig)
    sa = install_operator_rbac(cluster.kubeconfig, kube)
    kubeconfig = cluster.make_kubeconfig_for_serviceaccount(OPERATOR_NS, sa)
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    try:
        yield Env(cluster, kube, pg_e2e, op)
    finally:
        op.stop()
