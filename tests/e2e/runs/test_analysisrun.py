"""The operator end to end on the real control plane (apiserver + controller-manager
+ process kubelet), with the Helm chart's RBAC and a real Postgres."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from typing import Any

import pytest
from rap_devtools.procs import pid_alive
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import CORPUS, Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e


def test_run_goes_pending_running_succeeded(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    res = env.apply(namespace, run_manifest("full", batchSize=20))
    assert res.returncode == 0, res.stderr
    progress_seen: set[str] = set()

    def watch(st: dict[str, Any]) -> bool:
        got = env.kubectl("get", "analysisruns", "-n", namespace, "--no-headers")
        if st.get("phase") == "Running":
            progress_seen.add(got.stdout.split()[3])
        return st.get("phase") == "Succeeded"

    st = env.wait_status(namespace, "full", watch, timeout=180)
    assert st["progress"] == f"{CORPUS}/{CORPUS} (100.0%)"
    assert (st["processed"], st["failed"], st["total"]) == (CORPUS, 0, CORPUS)
    assert st["shards"]["done"] == {"count": 4, "indexes": "0-3"}
    assert st["observedGeneration"] == 1 and st["startTime"] and st["completionTime"]
    exact(env, url, CORPUS)
    # Live progress: while Running, `kubectl get` showed a partial count.
    assert any(p != f"{CORPUS}/{CORPUS}" for p in progress_seen), progress_seen

    header = env.kubectl("get", "analysisruns", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "ANALYZER", "PHASE", "PROGRESS", "FAILED", "SHARDS", "AGE"]
    row = env.kubectl("get", "ar", "full", "-n", namespace, "--no-headers").stdout.split()
    assert row[:6] == ["full", "algorithmic", "Succeeded", f"{CORPUS}/{CORPUS}", "(100.0%)", "0"]
    wait = env.kubectl(
        "wait", "--for=condition=Succeeded", "ar/full", "-n", namespace, "--timeout=10s"
    )
    assert wait.returncode == 0, wait.stderr

    reasons = [e["reason"] for e in env.events(namespace, "full")]
    assert reasons[:2] == ["Planned", "JobCreated"], reasons
    phases = [r for r in reasons if r in ("Pending", "Running", "Succeeded")]
    assert phases == ["Pending", "Running", "Succeeded"], reasons
    assert env.sql(url, "SELECT state FROM runs") == "succeeded"

    # The operator's Prometheus metrics saw it.
    metrics_url = f"http://127.0.0.1:{env.operator.metrics_port}/metrics"
    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    succeeded = re.search(r'^rap_operator_runs\{phase="Succeeded"\} (\S+)$', body, re.M)
    assert succeeded and float(succeeded.group(1)) >= 1, body[-2000:]
    refreshes = re.search(r"^rap_operator_status_refresh_seconds_count (\S+)$", body, re.M)
    assert refreshes and float(refreshes.group(1)) >= 3
    assert 'rap_operator_reconcile_seconds_count{handler="reconcile"}' in body

    # A second run with onlyMissing (the default) plans nothing and succeeds at once.
    assert env.apply(namespace, run_manifest("again")).returncode == 0
    again = env.wait_status(namespace, "again", phase("Succeeded"), timeout=60)
    assert again["total"] == 0 and again["progress"] == "0/0 (100.0%)"
    assert env.sql(url, "SELECT count(*) FROM analysis_results") == CORPUS


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        (
            {"shards": "four"},
            'spec.shards: Invalid value: "string": spec.shards in body must be of type integer',
        ),
        ({"analyzer": "nope"}, 'spec.analyzer: Unsupported value: "nope"'),
        ({"analyzer": None}, "spec.analyzer: Required value"),
        (
            {"shards": 0},
            "spec.shards: Invalid value: 0: spec.shards in body should be greater than or equal to 1",
        ),
        (
            {"shards": 2, "parallelism": 3},
            "must be <= spec.shards (it is the number of shards run at once)",
        ),
    ],
    ids=["wrong-type", "enum", "missing-required", "shards-zero", "parallelism-over-shards"],
)
def test_api_server_refuses_bad_specs(
    env: Env, namespace: str, spec: dict[str, Any], expect: str
) -> None:
    m = run_manifest("bad")
    m["spec"].update(spec)
    m["spec"] = {k: v for k, v in m["spec"].items() if v is not None}
    res = env.apply(namespace, m)
    assert res.returncode != 0
    assert expect in res.stderr, res.stderr


def test_a_missing_secret_keeps_the_run_pending_saying_so(env: Env, namespace: str) -> None:
    m = run_manifest("nosecret", database={"secretRef": {"name": "does-not-exist"}})
    assert env.apply(namespace, m).returncode == 0

    def waiting(st: dict[str, Any]) -> bool:
        valid = next((c for c in st.get("conditions") or [] if c["type"] == "Valid"), None)
        return st.get("phase") == "Pending" and bool(valid) and valid["reason"] == "InputMissing"

    st = env.wait_status(namespace, "nosecret", waiting, timeout=60)
    valid = next(c for c in st["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False"
    assert valid["message"] == f"Secret {namespace}/does-not-exist does not exist"
    assert "Traceback" not in str(st)
    warnings = [e for e in env.events(namespace, "nosecret") if e["type"] == "Warning"]
    assert any(e["reason"] == "InputMissing" and "does-not-exist" in e["message"] for e in warnings)
    assert env.jobs(namespace, env.get(namespace, "nosecret")["metadata"]["uid"]) == []


def _started(st: dict[str, Any]) -> bool:
    return st.get("phase") == "Running" and st.get("processed", 0) >= 40


def test_suspend_then_resume_completes_exactly(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    assert env.apply(namespace, run_manifest("pausing", batchSize=5)).returncode == 0
    env.wait_status(namespace, "pausing", _started)
    env.patch_spec(namespace, "pausing", {"suspend": True})
    st = env.wait_status(namespace, "pausing", phase("Suspended"), timeout=60)
    uid = env.get(namespace, "pausing")["metadata"]["uid"]
    wait_for(lambda: env.pods(namespace, uid) == [], timeout=60, what="pods gone while suspended")
    frozen = env.status(namespace, "pausing")["processed"]
    assert frozen < CORPUS, "the run finished before it could be suspended"
    assert st["phase"] == "Suspended"
    env.patch_spec(namespace, "pausing", {"suspend": False})
    st = env.wait_status(namespace, "pausing", phase("Succeeded"), timeout=180)
    assert st["processed"] == CORPUS and st["failed"] == 0
    exact(env, url, CORPUS)
    reasons = [e["reason"] for e in env.events(namespace, "pausing")]
    assert "Suspended" in reasons and reasons[-1] == "Succeeded"


def test_delete_mid_run_stops_everything_and_cancels(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    assert env.apply(namespace, run_manifest("doomed", batchSize=5)).returncode == 0
    env.wait_status(namespace, "doomed", _started)
    uid = env.get(namespace, "doomed")["metadata"]["uid"]
    pids = [p for p in (env.cluster.kubelet.pid_of(namespace, pod["metadata"]["name"])
                        for pod in env.pods(namespace, uid)) if p]  # fmt: skip
    assert pids, "no shard process was running"
    res = env.kubectl("delete", "ar", "doomed", "-n", namespace, "--timeout=60s")
    assert res.returncode == 0, res.stderr
    wait_for(lambda: env.jobs(namespace, uid) == [] and env.pods(namespace, uid) == [],
             timeout=60, what="Job and pods gone")  # fmt: skip
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=30, what="shard processes gone")
    assert env.sql(url, "SELECT state FROM runs") == "cancelled"
    kept = env.sql(url, "SELECT count(*) FROM analysis_results")
    assert 0 < kept < CORPUS  # results already written stay
    assert kept == env.sql(url, "SELECT sum(processed) FROM run_shards")


def test_sigkilled_shard_is_retried_and_counts_stayexact(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    m = run_manifest("killed", batchSize=5, retry={"backoffLimitPerIndex": 2})
    assert env.apply(namespace, m).returncode == 0
    env.wait_status(namespace, "killed", _started)
    uid = env.get(namespace, "killed")["metadata"]["uid"]

    def running_pid() -> tuple[str, int] | None:
        for pod in env.pods(namespace, uid):
            pid = env.cluster.kubelet.pid_of(namespace, pod["metadata"]["name"])
            if pid and pod["status"].get("phase") == "Running":
                return pod["metadata"]["annotations"][
                    "batch.kubernetes.io/job-completion-index"
                ], pid
        return None

    index, pid = wait_for(running_pid, timeout=60, what="a running shard process")
    os.kill(pid, signal.SIGKILL)
    st = env.wait_status(namespace, "killed", phase("Succeeded"), timeout=240)
    assert st["processed"] == CORPUS and st["failed"] == 0
    exact(env, url, CORPUS)
    shard = next(s for s in st["shards"]["detail"] if s["index"] == int(index))
    assert shard["attempt"] >= 2


def test_operator_restart_mid_run_resumes_without_a_second_job(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    assert env.apply(namespace, run_manifest("restarted", batchSize=5)).returncode == 0
    env.wait_status(namespace, "restarted", _started)
    env.operator.stop()
    try:
        before = env.status(namespace, "restarted")["processed"]
        # The Job keeps working without the operator; the status just stops moving.
        wait_for(lambda: env.sql(url, "SELECT sum(processed) FROM run_shards") > before,
                 timeout=60, what="progress while the operator is down")  # fmt: skip
    finally:
        env.operator.start()
    st = env.wait_status(namespace, "restarted", phase("Succeeded"), timeout=240)
    assert st["processed"] == CORPUS
    uid = env.get(namespace, "restarted")["metadata"]["uid"]
    assert len(env.jobs(namespace, uid)) == 1
    assert env.sql(url, "SELECT count(*) FROM runs") == 1
    exact(env, url, CORPUS)


def test_an_overlapping_run_waits_until_the_other_is_gone(env: Env, namespace: str) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    # The first run is planned but suspended: its tracks stay pending.
    assert env.apply(namespace, run_manifest("holder", suspend=True)).returncode == 0
    env.wait_status(namespace, "holder", phase("Suspended"), timeout=60)
    assert env.apply(namespace, run_manifest("second")).returncode == 0

    def overlapping(st: dict[str, Any]) -> bool:
        valid = next((c for c in st.get("conditions", []) if c["type"] == "Valid"), None)
        return bool(valid) and valid["status"] == "False" and valid["reason"] == "OverlapsRun"

    st = env.wait_status(namespace, "second", overlapping, timeout=60)
    assert st["phase"] == "Pending" and not env.jobs(
        namespace, env.get(namespace, "second")["metadata"]["uid"]
    )
    valid = next(c for c in st["conditions"] if c["type"] == "Valid")
    assert f"overlaps run {namespace}/holder" in valid["message"]
    assert "OverlapsRun" in [e["reason"] for e in env.events(namespace, "second")]
    # The first run goes away (cancelled): the second plans by itself and does the work.
    assert env.kubectl("delete", "ar", "holder", "-n", namespace).returncode == 0
    st = env.wait_status(namespace, "second", phase("Succeeded"), timeout=120)
    assert st["processed"] == CORPUS
    exact(env, url, CORPUS)
