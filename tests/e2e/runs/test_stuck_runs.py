"""No stuck runs (issue 22): a run deleted while the operator is stopped is never
seen as DELETED, and used to stay active in the ledger for ever, so that every later
run over the same tracks waited in OverlapsRun. The operator sweeps such runs."""

from __future__ import annotations

import pytest
from rap_devtools.kubeapi import ApiError
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import CORPUS, Env, exact, phase, run_manifest

pytestmark = pytest.mark.e2e


def _delete_while_the_operator_is_stopped(env: Env, namespace: str, name: str) -> str:
    """Deletes the run with no operator to see it; returns its uid. The caller starts
    the operator again."""
    uid = str(env.get(namespace, name)["metadata"]["uid"])
    env.operator.stop()
    res = env.kubectl("delete", "analysisrun", name, "-n", namespace)
    assert res.returncode == 0, res.stderr

    def gone() -> bool:
        try:
            env.get(namespace, name)
            return False
        except ApiError as e:
            return e.status == 404

    wait_for(gone, timeout=30, what=f"analysisrun {name} deleted")
    return uid


def _ledger_state(env: Env, url: str, uid: str) -> str:
    return str(env.sql(url, "SELECT state FROM runs WHERE uid = $1", uid))


def test_a_run_deleted_while_the_operator_is_stopped_blocks_no_later_run(
    env: Env, namespace: str
) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    first = run_manifest("first", batchSize=10, parallelism=1)
    assert env.apply(namespace, first).returncode == 0
    env.wait_status(
        namespace, "first", lambda st: st.get("phase") == "Running" and st["processed"] > 0
    )
    # Paused part-way, so that it still has pending work on the tracks when deleted.
    env.patch_spec(namespace, "first", {"suspend": True})
    st = env.wait_status(namespace, "first", phase("Suspended"), timeout=60)
    assert 0 < st["processed"] < CORPUS
    try:
        uid = _delete_while_the_operator_is_stopped(env, namespace, "first")
        # Its Job and pods go with it (owner references); the ledger still says active.
        wait_for(lambda: not env.pods(namespace, uid), timeout=60, what="first's pods gone")
        assert _ledger_state(env, url, uid) == "planned"
    finally:
        env.operator.start()
    # A new run over the same tracks: planned (the deleted run is cancelled in the same
    # pass), it analyzes what the first left, exactly once.
    assert env.apply(namespace, run_manifest("second", batchSize=50)).returncode == 0
    st = env.wait_status(namespace, "second", phase("Succeeded"), timeout=240)
    assert _ledger_state(env, url, uid) == "cancelled"
    done_by_first = int(
        env.sql(
            url,
            "SELECT coalesce(sum(s.processed), 0) FROM run_shards s JOIN runs r"
            " ON r.id = s.run_id WHERE r.uid = $1",
            uid,
        )
    )
    assert 0 < done_by_first < CORPUS
    assert st["total"] == st["processed"] == CORPUS - done_by_first
    exact(env, url, CORPUS)
    assert "OverlapsRun" not in [e["reason"] for e in env.events(namespace, "second")]


def test_the_operator_sweeps_a_deleted_run_of_a_database_it_comes_to_know(
    env: Env, namespace: str
) -> None:
    url = env.new_database()
    env.db_secret(namespace, url)
    assert env.apply(namespace, run_manifest("parked", suspend=True)).returncode == 0
    env.wait_status(namespace, "parked", phase("Suspended"), timeout=60)
    try:
        uid = _delete_while_the_operator_is_stopped(env, namespace, "parked")
        assert _ledger_state(env, url, uid) == "planned"
    finally:
        env.operator.start()
    # No overlap here: another analyzer's dry run only makes the operator use the
    # database, and the sweep of a database it has just come to know cancels the run.
    probe = run_manifest("probe", analyzer="emotion", dryRun=True)
    assert env.apply(namespace, probe).returncode == 0
    env.wait_status(namespace, "probe", phase("Succeeded"), timeout=60)
    wait_for(
        lambda: _ledger_state(env, url, uid) == "cancelled",
        timeout=30,
        what="the deleted run cancelled in the ledger",
        describe=env.operator.tail,
    )
    assert env.sql(url, "SELECT count(*) FROM runs WHERE state = 'planned'") == 0
