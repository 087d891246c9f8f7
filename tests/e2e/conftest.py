"""Fixtures for the end-to-end tests: one real local cluster per session.

Nothing is built here: the binaries come from `make controlplane` (bin/).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools.cluster import REPO_ROOT, LocalCluster
from rap_devtools.kubeapi import ApiError, KubeApi
from rap_devtools.operator_setup import create_namespace
from rap_devtools.procs import start_time, survivors

BIN_DIR = Path(os.environ.get("RAP_BIN_DIR", REPO_ROOT / "bin"))
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


def require_controlplane_binaries() -> Path:
    missing = [b for b in BINARIES if not (BIN_DIR / b).is_file()]
    if missing:
        pytest.fail(
            f"e2e tests need {', '.join(missing)} in {BIN_DIR}: run `make controlplane` "
            "(builds them from the Go modules pinned in tools/; cached after the first build)",
            pytrace=False,
        )
    return BIN_DIR


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """etcd + kube-apiserver + kube-controller-manager + process kubelet."""
    c = LocalCluster(bin_dir=require_controlplane_binaries())
    c.start()
    try:
        yield c
    finally:
        pids = c.pids()
        identities = {pid: start_time(pid) for pid in pids.values()}
        c.stop()
        leftover = survivors(identities)
        assert not leftover, f"processes left behind by the cluster: {leftover} of {pids}"


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> Iterator[KubeApi]:
    """The dev tools' JSON client as the cluster admin."""
    api = cluster.kube_api()
    yield api
    api.close()


@pytest.fixture
def namespace(kube: KubeApi) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount, deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(kube, name)
    yield name
    try:
        kube.delete(f"/api/v1/namespaces/{name}")
    except ApiError as e:
        if e.status != 404:
            raise
