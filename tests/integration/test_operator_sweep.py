"""Issue 22, no stuck runs, against a real Postgres (the Kubernetes API faked): the
sweep cancels exactly the operator's runs whose resource is gone, planning that
overlaps such a run cancels it and plans in the same pass, and a planned run whose
database goes away says so in a condition that clears when it is back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import asyncpg
import kopf
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from rap_operator import database, kube, pods, reconcile, sweep
from rap_operator.config import OperatorConfig
from rap_operator.reconcile import RunMemory

from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.ledger.planner import Selection

from .conftest import insert_tracks

CONFIG = OperatorConfig()
SPEC = {"analyzer": "algorithmic", "shards": 2}


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Any]:
    """The resources the fake API server has, by (namespace, name): a uid, or an
    ApiException to raise for that GET."""
    objects: dict[tuple[str, str], Any] = {}

    async def read_run(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert plural in ("analysisruns", "scrapejobs")
        got = objects.get((namespace, name))
        if isinstance(got, ApiException):
            raise got
        return None if got is None else {"metadata": {"name": name, "uid": got}}

    monkeypatch.setattr(kube, "read_run", read_run)
    monkeypatch.setattr(sweep, "on_cancelled", [])
    return objects


async def _plan(
    conn: asyncpg.Connection, uid: str, namespace: str | None, sel: Selection, version: str = "1"
) -> shard_ledger.Run:
    plan = await planner.plan_analysis(
        conn, uid=uid, name=f"run-{uid}", namespace=namespace, spec=SPEC, selection=sel,
        shards=2, analyzer_type="algorithmic", model_version=version,
    )  # fmt: skip
    return plan.run


async def _states(conn: asyncpg.Connection) -> dict[str, str]:
    return {r["uid"]: r["state"] for r in await conn.fetch("SELECT uid, state FROM runs")}


async def test_the_sweep_cancels_only_operator_runs_whose_resource_is_gone(
    pool: asyncpg.Pool, db_url: str, cluster: dict[tuple[str, str], Any]
) -> None:
    ids = await insert_tracks(pool, [("A", f"s{i}", "one two three") for i in range(12)])
    forgotten: list[str] = []
    sweep.on_cancelled.append(forgotten.append)
    async with pool.acquire() as conn:
        for i, uid in enumerate(["live", "deleted", "recreated", "forbidden", "local"]):
            ns = None if uid == "local" else "ns"
            await _plan(conn, uid, ns, Selection(id_from=ids[2 * i], id_to=ids[2 * i + 1]))
        # A local runner's run with a namespace in its YAML, running and interrupted.
        driven = await _plan(conn, "driven", "ns", Selection(id_from=ids[10], id_to=ids[10]))
        await shard_ledger.set_run_state(conn, driven.id, "running", driver="laptop:42")
        stopped = await _plan(conn, "stopped", "ns", Selection(id_from=ids[11], id_to=ids[11]))
        await shard_ledger.set_run_state(conn, stopped.id, "interrupted")
        # A finished operator run whose resource is gone keeps its state.
        done = await _plan(conn, "done", "ns", Selection(id_to=ids[0]), version="2")
        await shard_ledger.set_run_state(conn, done.id, "succeeded")
    cluster[("ns", "run-live")] = "live"
    cluster[("ns", "run-recreated")] = "another-uid"  # deleted, applied again
    cluster[("ns", "run-forbidden")] = ApiException(status=403, reason="Forbidden")
    assert sorted(await sweep.sweep_database(db_url, CONFIG)) == ["deleted", "recreated"]
    assert sorted(forgotten) == ["deleted", "recreated"]
    async with pool.acquire() as conn:
        assert await _states(conn) == {
            "live": "planned", "deleted": "cancelled", "recreated": "cancelled",
            "forbidden": "planned", "local": "planned", "driven": "running",
            "stopped": "interrupted", "done": "succeeded",
        }  # fmt: skip
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE cancelled_at IS NOT NULL") == 2
    # Another pass finds nothing more; a namespace this operator does not watch is
    # never looked at.
    assert await sweep.sweep_database(db_url, CONFIG) == []
    cluster[("ns", "run-live")] = None
    assert await sweep.sweep_database(db_url, OperatorConfig(namespaces=["other"])) == []
    assert await sweep.sweep_database(db_url, CONFIG) == ["live"]
    await database.close_all()


async def test_an_overlap_with_a_gone_run_is_swept_and_planned_in_the_same_pass(
    pool: asyncpg.Pool, db_url: str, cluster: dict[tuple[str, str], Any]
) -> None:
    ids = await insert_tracks(pool, [("A", f"s{i}", "one two three") for i in range(6)])
    async with pool.acquire() as conn:
        await _plan(conn, "old-1", "ns", Selection(id_to=ids[2]))
        await _plan(conn, "old-2", "ns", Selection(id_from=ids[3]))
    kind = SimpleNamespace(
        plan=lambda conn, manifest, uid, inputs: planner.plan_analysis(
            conn,
            uid=uid,
            name=uid,
            namespace="ns",
            spec=SPEC,
            selection=Selection(),
            shards=2,
            analyzer_type="algorithmic",
            model_version="1",
        )
    )
    # The first overlapped run still exists: the overlap stands, nothing is cancelled.
    cluster[("ns", "run-old-1")] = "old-1"
    with pytest.raises(planner.OverlapError) as err:
        await reconcile._plan(kind, db_url, None, "new", None, CONFIG)
    assert err.value.other.uid == "old-1"
    async with pool.acquire() as conn:
        assert await _states(conn) == {"old-1": "planned", "old-2": "planned"}
    # Both deleted while the operator was away: each overlap cancels one, then it plans.
    del cluster[("ns", "run-old-1")]
    plan = await reconcile._plan(kind, db_url, None, "new", None, CONFIG)
    assert plan.created and plan.run.total == 6
    async with pool.acquire() as conn:
        assert await _states(conn) == {"old-1": "cancelled", "old-2": "cancelled", "new": "planned"}


async def test_a_planned_run_whose_database_goes_away_says_so_until_it_is_back(
    pool: asyncpg.Pool, db_url: str, cluster: dict[tuple[str, str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    await insert_tracks(pool, [("A", f"s{i}", "one two three") for i in range(4)])
    uid = "6a7b0c3e-0000-4000-8000-0000000000db"
    async with pool.acquire() as conn:
        run = (await planner.plan_analysis(
            conn, uid=uid, name="r", namespace="ns", spec=SPEC, selection=Selection(), shards=2,
            analyzer_type="algorithmic", model_version="1.0.0",
        )).run  # fmt: skip
    patched: list[dict[str, Any]] = []
    warnings: list[str] = []

    async def patch_status(plural: str, ns: str, name: str, status: dict[str, Any]) -> None:
        patched.append(status)

    async def create_job(job: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        return {**job, "status": {"active": 2}}, True

    async def no_problems(job: Any) -> list[Any]:
        return []

    monkeypatch.setattr(kube, "patch_status", patch_status)
    monkeypatch.setattr(kube, "create_job", create_job)
    monkeypatch.setattr(pods, "problems", no_problems)
    monkeypatch.setattr(kopf, "warn", lambda body, reason, message: warnings.append(reason))
    monkeypatch.setattr(kopf, "info", lambda body, reason, message: None)
    body: dict[str, Any] = {
        "apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": uid, "generation": 1},
        "spec": dict(SPEC), "status": {},
    }  # fmt: skip
    mem = RunMemory(url=db_url)
    assert await reconcile._refresh(body, None, mem, CONFIG, run)
    body["status"] = patched[-1]
    assert body["status"]["phase"] in ("Pending", "Running")
    phase = body["status"]["phase"]
    valid = next(c for c in body["status"]["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "True"

    # The database server goes away (its pool with it; nothing answers on its port).
    await database.close_all()
    mem.url = "postgresql://rap@127.0.0.1:1/gone"
    patched.clear()
    assert await reconcile._refresh(body, None, mem, CONFIG, None)
    (status,) = patched
    assert set(status) == {"conditions"}  # only the condition changes: the phase stays
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "DatabaseUnavailable"
    assert "127.0.0.1:1" in valid["message"]
    assert warnings == ["DatabaseUnavailable"]
    body["status"] = {**body["status"], **status}
    assert body["status"]["phase"] == phase

    # The database Secret is gone too: the same, with the reason before planning.
    mem.url = None

    async def no_secret(namespace: str, name: str, key: str) -> str:
        raise kube.SecretProblem(f"Secret {namespace}/{name} does not exist")

    monkeypatch.setattr(kube, "secret_value", no_secret)
    patched.clear()
    assert await reconcile._refresh(body, None, mem, CONFIG, None)
    valid = next(c for c in patched[-1]["conditions"] if c["type"] == "Valid")
    assert valid["reason"] == "InputMissing" and "does not exist" in valid["message"]
    body["status"] = {**body["status"], **patched[-1]}

    # Back: the next refresh clears it.
    mem.url = db_url
    patched.clear()
    assert await reconcile._refresh(body, None, mem, CONFIG, None)
    valid = next(c for c in patched[-1]["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "True" and valid["reason"] == "SpecValid"
    await database.close_all()
