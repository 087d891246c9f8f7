"""Fixtures for the operator's end-to-end tests (see operator_env.py)."""

from collections.abc import Iterator

import pytest
from rap_devtools.kubeapi import KubeApi

from tests.e2e.runs.operator_env import env, pg_e2e  # noqa: F401

# What many managed clusters enforce by default: runs must work under it.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture
def namespace(namespace: str, kube: KubeApi) -> Iterator[str]:
    """The e2e namespace, enforcing Pod Security `restricted`."""
    kube.patch(
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": RESTRICTED}},
    )
    yield namespace
