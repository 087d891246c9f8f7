"""The real node (kubelet + containerd) and the chart installed on it as users
install it. `make test-node` builds the images and runs these; `make test`
leaves them out (they need root, a Docker engine and a few minutes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools import chart_demo
from rap_devtools.cluster import REPO_ROOT
from rap_devtools.kind import KindCluster
from rap_devtools.realnode.cluster import RealNodeCluster

IMAGES = (*chart_demo.app_images("dev"), ":".join(chart_demo.POSTGRES_IMAGE))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.node)


def require_images() -> None:
    for image in IMAGES:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            pytest.fail(f"{image} is missing: run `make image postgres-image` (make test-node does)",
                        pytrace=False)  # fmt: skip


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[RealNodeCluster]:
    require_images()
    cluster = RealNodeCluster(bin_dir=REPO_ROOT / "bin")
    cluster.start()
    try:
        cluster.load_docker_images(IMAGES)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[KindCluster]:
    """One kind cluster for the session (`make kind-node-image`), with the
    project's images loaded. Its own name, so a `make kind-demo --keep`
    cluster is left alone."""
    require_images()
    # RAP_KIND_TEST_CLUSTER: another name, for a second session beside this one
    # (create() replaces a cluster of the same name).
    name = os.environ.get("RAP_KIND_TEST_CLUSTER", "rap-kind-test")
    cluster = KindCluster(name=name, bin_dir=REPO_ROOT / "bin")
    cluster.create()
    try:
        cluster.load_docker_images(IMAGES)
        yield cluster
    finally:
        cluster.delete()
