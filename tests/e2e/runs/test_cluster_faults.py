"""The operator on a cluster as strict and as messy as real ones (issue 10): every
namespace here enforces Pod Security `restricted`, the API server enforces
ownerReference permissions, Secrets arrive late, Jobs get deleted, pod creation is
refused, and the operator goes away."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rap_devtools.kubeapi import ApiError
from rap_devtools.waiting import wait_for

from tests.e2e.runs.conftest import RESTRICTED
from tests.e2e.runs.operator_env import CORPUS, Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e


def _condition(st: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c["type"] == ctype), None)


def test_a_run_applied_before_its_secret_waits_then_succeeds(env: Env, namespace: str) -> None:
    ns = env.kube.get(f"/api/v1/namespaces/{namespace}")
    assert ns["metadata"]["labels"].items() >= RESTRICTED.items()
    assert env.apply(namespace, run_manifest("early")).returncode == 0

    def waiting(st: dict[str, Any]) -> bool:
        valid = _condition(st, "Valid")
        return st.get("phase") == "Pending" and bool(valid) and valid["reason"] == "InputMissing"

    st = env.wait_status(namespace, "early", waiting, timeout=60)
    valid = _condition(st, "Valid")
    assert valid and f"Secret {namespace}/rap-analyzer-db does not exist" in valid["message"]
    assert "InputMissing" in [e["reason"] for e in env.events(namespace, "early")]
    url = env.new_database()
    env.db_secret(namespace, url)  # GitOps applies it a moment later
    st = env.wait_status(namespace, "early", phase("Succeeded"), timeout=180)
    # the condition is there once the wait above returned
    assert st["processed"] == CORPUS and _condition(st, "Valid")["status"] == "True"  # type: ignore[index]
    exact(env, url, CORPUS)
    # The shard pods ran under `restricted`.
    uid = env.get(namespace, "early")["metadata"]["uid"]
    (job,) = env.jobs(namespace, uid)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_deleted_job_is_recreated_and_the_run_finishes_exactly_once(
    env: Env, namespace: str
) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    assert env.apply(namespace, run_manifest("lost", batchSize=10, parallelism=1)).returncode == 0
    env.wait_status(
        namespace, "lost", lambda st: st.get("phase") == "Running" and st["processed"] > 0
    )
    uid = env.get(namespace, "lost")["metadata"]["uid"]
    (job,) = env.jobs(namespace, uid)
    env.kubectl(
        "delete", "job", job["metadata"]["name"], "-n", namespace, "--cascade=foreground",
        "--wait=false",
    )  # fmt: skip
    st = env.wait_status(namespace, "lost", phase("Succeeded"), timeout=240)
    assert st["processed"] == CORPUS and st["failed"] == 0
    exact(env, url, CORPUS)
    assert "JobRecreated" in [e["reason"] for e in env.events(namespace, "lost")]


def test_a_run_selecting_nothing_gets_no_job(env: Env, namespace: str) -> None:
    env.db_secret(namespace, env.new_database())
    empty = run_manifest("empty", selection={"idRange": {"from": 10**9, "to": 10**9 + 5}})
    assert env.apply(namespace, empty).returncode == 0
    st = env.wait_status(namespace, "empty", phase("Succeeded"), timeout=60)
    # the condition is there once the wait above returned
    assert _condition(st, "Succeeded")["reason"] == "NothingToDo"  # type: ignore[index]
    assert env.jobs(namespace, env.get(namespace, "empty")["metadata"]["uid"]) == []


def test_refused_pod_creation_shows_on_the_run(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    # The namespace's LimitRange allows less CPU than the run's pods ask for: the pods
    # are refused at admission, a FailedCreate on the Job only.
    limits = {"metadata": {"name": "tiny"},
              "spec": {"limits": [{"type": "Container", "max": {"cpu": "1m"}}]}}  # fmt: skip
    env.kube.post(f"/api/v1/namespaces/{namespace}/limitranges", limits)
    run = run_manifest("refused", resources={"limits": {"cpu": "50m"}, "requests": {"cpu": "50m"}})
    assert env.apply(namespace, run).returncode == 0

    def told(st: dict[str, Any]) -> bool:
        pods = _condition(st, "PodsReady")
        return bool(pods) and pods["reason"] == "FailedCreate"

    st = env.wait_status(namespace, "refused", told, timeout=90)
    # the condition is there once the wait above returned
    assert "maximum cpu usage per Container is 1m" in _condition(st, "PodsReady")["message"]  # type: ignore[index]
    assert st["phase"] == "Pending"
    assert "FailedCreate" in [e["reason"] for e in env.events(namespace, "refused")]
    env.kube.delete(f"/api/v1/namespaces/{namespace}/limitranges/tiny")
    st = env.wait_status(namespace, "refused", phase("Succeeded"), timeout=240)
    assert _condition(st, "PodsReady") is None
    exact(env, url, CORPUS)


def test_runs_never_block_deletion_once_the_operator_is_gone(env: Env, namespace: str) -> None:
    env.db_secret(namespace, env.new_database())
    assert env.apply(namespace, run_manifest("done", selection={"limit": 20})).returncode == 0
    assert env.apply(namespace, run_manifest("paused", suspend=True)).returncode == 0
    env.wait_status(namespace, "done", phase("Succeeded"), timeout=120)
    env.wait_status(namespace, "paused", phase("Suspended"), timeout=60)
    for name in ("done", "paused"):
        assert not env.get(namespace, name)["metadata"].get("finalizers")
    env.operator.stop()  # as after `helm uninstall`
    try:
        start = time.monotonic()
        env.kube.delete(f"/api/v1/namespaces/{namespace}")

        def gone() -> bool:
            try:
                env.kube.get(f"/api/v1/namespaces/{namespace}")
                return False
            except ApiError as e:
                return e.status == 404

        wait_for(gone, timeout=30, what=f"namespace {namespace} deleted")
        assert time.monotonic() - start < 30
    finally:
        env.operator.start()


def test_the_status_of_a_thousand_shards_fits_in_8_kb(env: Env, namespace: str) -> None:
    env.db_secret(namespace, env.new_database())
    big = run_manifest("wide", shards=1000, parallelism=1000, dryRun=True)
    assert env.apply(namespace, big).returncode == 0
    st = env.wait_status(namespace, "wide", phase("Succeeded"), timeout=120)
    # the condition is there once the wait above returned
    assert _condition(st, "Succeeded")["reason"] == "DryRun"  # type: ignore[index]
    assert st["shards"]["total"] == 1000
    assert len(json.dumps(st)) <= 8192, len(json.dumps(st))
