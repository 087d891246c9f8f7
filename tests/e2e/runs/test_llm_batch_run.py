"""A batch-mode `llm` AnalysisRun end to end: the operator on the real control plane,
2 shard pods (local processes) submitting to the fake provider's Batch API - a shard
pod SIGKILLed and the operator restarted while the batches are in flight: the
replacement pod resumes the same batch, the operator shows them, nothing is submitted
twice."""

from __future__ import annotations

import json
import os
import secrets
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.waiting import wait_for

from analyzer_runtime.contract.llm_presets import per_1k
from tests.e2e.runs.operator_env import Env, run_manifest

pytestmark = pytest.mark.e2e

KEY = f"sk-e2e-{secrets.token_hex(16)}"
PRICING = {"promptPerMillion": 0.5, "completionPerMillion": 1.5}
TRACKS = 120


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    # The batches stay in progress until the test completes them (admin API).
    with FakeLLM(api_key=KEY, batch_seconds=600.0) as server:
        yield server


def test_a_killed_pod_and_a_restarted_operator_mid_batch_submit_nothing_twice(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    fake.reset()
    env.db_secret(namespace, env.new_database())
    env.kube.post(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "llm-key"}, "type": "Opaque", "stringData": {"apiKey": KEY}},
    )
    m = run_manifest(
        "lyrics-batch", analyzer="llm", shards=2, parallelism=2,
        selection={"limit": TRACKS}, retry={"initialBackoffSeconds": 0.05},
        llm={"provider": "openai", "baseURL": fake.url, "model": "fake-qwen",
             "apiKeySecretRef": {"name": "llm-key", "key": "apiKey"}, "pricing": PRICING,
             "mode": "batch", "batch": {"pollSeconds": 1}},
    )  # fmt: skip
    assert (res := env.apply(namespace, m)).returncode == 0, res.stderr
    uid = str(env.get(namespace, "lyrics-batch")["metadata"]["uid"])

    def both_in_flight(st: dict[str, Any]) -> bool:
        lb = st.get("llmBatches") or {}
        return lb.get("inFlight") == 2 and len([o for o in lb["open"] if o.get("batchId")]) == 2

    st = env.wait_status(namespace, "lyrics-batch", both_in_flight, timeout=180)
    assert st["phase"] == "Running"
    ids = sorted(o["batchId"] for o in st["llmBatches"]["open"])

    # A shard pod is SIGKILLed mid-batch (no SIGTERM handler runs): the Job starts a
    # replacement, which resumes polling the same batch from the ledger.
    pods = [
        p for p in env.pods(namespace, uid) if (p.get("status") or {}).get("phase") == "Running"
    ]
    killed = pods[0]["metadata"]["name"]
    pid = env.cluster.kubelet.pid_of(namespace, killed)
    assert pid
    os.killpg(pid, signal.SIGKILL)

    def replaced() -> bool:
        running = [
            p["metadata"]["name"]
            for p in env.pods(namespace, uid)
            if (p.get("status") or {}).get("phase") == "Running"
        ]
        return len(running) == 2 and killed not in running

    wait_for(replaced, timeout=120, what="a replacement for the killed shard pod")

    env.operator.stop()
    try:  # while the operator is down, the provider finishes one batch; its shard collects it
        fake.batch_admin(ids[0], complete=True)
    finally:
        env.operator.start()

    def one_collected(s: dict[str, Any]) -> bool:
        lb = s.get("llmBatches") or {}
        return (lb.get("collected"), lb.get("inFlight")) == (1, 1)

    # The new operator reads the batches back from the ledger; it never submits.
    st = env.wait_status(namespace, "lyrics-batch", one_collected, timeout=120)
    assert [o["batchId"] for o in st["llmBatches"]["open"]] == [ids[1]]
    assert st["phase"] == "Running" and len(fake.creations(rap_run=uid)) == 2

    fake.batch_admin(ids[1], complete=True)
    st = env.wait_status(namespace, "lyrics-batch",
                         lambda s: s.get("phase") in ("Succeeded", "Failed"), timeout=180)  # fmt: skip
    assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
    assert st["processed"] + st["skipped"] == TRACKS and st["failed"] == 0
    lb = st["llmBatches"]
    assert (lb["batches"], lb["inFlight"], lb["collected"], lb["states"]["completed"]) == (
        2,
        0,
        2,
        2,
    )
    creations = fake.creations(rap_run=uid)
    assert sorted(op["batch"] for op in creations) == ids  # each batch created once
    assert env.jobs(namespace, uid)[0]["status"].get("failed", 0) >= 1  # the kill was real
    # Billed at the Batch API's price: half the list price.
    tokens = st["tokens"]
    price = per_1k(PRICING["promptPerMillion"], PRICING["completionPerMillion"]).scaled(0.5)
    assert st["estimatedCost"] == pytest.approx(
        price.cost(tokens["prompt"], tokens["completion"], tokens.get("cached", 0)), abs=1e-6
    )
    assert st["estimate"]["completionWindow"] == "24h"
    assert KEY not in json.dumps(st)
