"""An `llm` AnalysisRun end to end: the operator on the real control plane, 4 shard
pods (local processes) talking over loopback HTTP to the fake OpenAI-compatible
provider, the API key from a Secret - and nowhere a person could read it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from rap_devtools.fake_llm import FakeLLM

from analyzer_runtime.contract.llm_models import endpoint_host
from analyzer_runtime.ledger.llm_estimate import requests_for
from tests.e2e.runs.operator_env import Env, run_manifest

pytestmark = pytest.mark.e2e

KEY = f"sk-e2e-{secrets.token_hex(16)}"
PRICING = {"promptPerMillion": 0.5, "completionPerMillion": 1.5}
TRACKS = 240


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    # It refuses any other key with 401, so a run that succeeds proves the key arrived.
    with FakeLLM(api_key=KEY, latency_p50=0.02, latency_p95=0.05) as server:
        yield server


def _llm_run(env: Env, ns: str, name: str, fake: FakeLLM, **spec: object) -> str:
    """Database and key Secrets, then apply; returns the resource's uid."""
    env.db_secret(ns, env.new_database())
    env.kube.post(
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "llm-key"}, "type": "Opaque", "stringData": {"apiKey": KEY}},
    )
    m = run_manifest(
        name, analyzer="llm", shards=4, parallelism=4, batchSize=16,
        selection={"limit": TRACKS}, rateLimit={"requestsPerMinute": 6000},
        retry={"initialBackoffSeconds": 0.05},
        llm={"provider": "custom", "baseURL": fake.url, "model": "fake-qwen",
             "tracksPerRequest": 4, "apiKeySecretRef": {"name": "llm-key", "key": "apiKey"},
             "pricing": PRICING},
        **spec,
    )  # fmt: skip
    res = env.apply(ns, m)
    assert res.returncode == 0, res.stderr
    return str(env.get(ns, name)["metadata"]["uid"])


def test_llm_run_with_4_shards_succeeds_with_tokens_and_cost_and_no_key_in_sight(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    fake.reset()
    uid = _llm_run(env, namespace, "lyrics-llm", fake)
    st = env.wait_status(namespace, "lyrics-llm", lambda s: s.get("phase") in ("Succeeded", "Failed"),
                         timeout=240)  # fmt: skip
    assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
    assert (st["processed"], st["failed"], st["total"]) == (TRACKS, 0, TRACKS)
    assert st["shards"]["done"] == {"count": 4, "indexes": "0-3"}

    # Accounting: what the provider billed is on the status, with its cost.
    log = fake.log()
    assert {e["status"] for e in log} == {200}  # every request carried the right key
    prompt = sum(e["usage"]["prompt"] for e in log)
    completion = sum(e["usage"]["completion"] for e in log)
    assert st["tokens"] == {
        "prompt": prompt,
        "completion": completion,
        "total": prompt + completion,
    }
    cost = (
        prompt * PRICING["promptPerMillion"] + completion * PRICING["completionPerMillion"]
    ) / 1e6
    assert st["estimatedCost"] == pytest.approx(cost, abs=1e-6)
    # The planning-time estimate was right about the number of requests.
    assert st["estimate"]["requests"] == 4 * requests_for(TRACKS // 4, 16, 4) == len(log)
    assert st["estimate"]["requestsPerMinute"] == 6000 and st["estimate"]["cost"] > 0
    # One result per track, stored as the model that made it, at the endpoint it used.
    host = endpoint_host(fake.url)
    stored = env.sql(
        _db(env, namespace), "SELECT count(DISTINCT track_id) FROM analysis_results"
        f" WHERE analyzer_type = 'llm' AND model_version = 'custom:fake-qwen@p1@{host}'"
        f" AND analysis_data->>'endpoint' = '{host}'"
    )  # fmt: skip
    assert stored == env.sql(_db(env, namespace), "SELECT count(*) FROM analysis_results") == TRACKS

    # The key reaches the pods only by reference ...
    job = env.jobs(namespace, uid)[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    key_env = next(e for e in container["env"] if e["name"] == "LLM_API_KEY")
    assert key_env == {"name": "LLM_API_KEY",
                       "valueFrom": {"secretKeyRef": {"name": "llm-key", "key": "apiKey"}}}  # fmt: skip
    assert KEY not in json.dumps(job)
    # ... and is absent from the status, the Events, every pod's log and the operator's.
    assert KEY not in json.dumps(env.get(namespace, "lyrics-llm"))
    assert KEY not in json.dumps(env.events(namespace, "lyrics-llm"))
    pods = env.pods(namespace, uid)
    assert len(pods) >= 4
    for pod in pods:
        text = env.cluster.kubelet.read_log(namespace, pod["metadata"]["name"])
        assert "shard" in text  # the log is really there
        assert KEY not in text and KEY[-12:] not in text
    assert KEY not in env.operator.log.read_text(errors="replace")


def _db(env: Env, ns: str) -> str:
    import base64

    secret = env.kube.get(f"/api/v1/namespaces/{ns}/secrets/rap-analyzer-db")
    return base64.b64decode(secret["data"]["url"]).decode()


def test_a_dry_run_plans_and_estimates_without_a_job_or_a_request(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    fake.reset()
    uid = _llm_run(env, namespace, "estimate-only", fake, dryRun=True)
    st = env.wait_status(namespace, "estimate-only", lambda s: s.get("phase") == "Succeeded",
                         timeout=60)  # fmt: skip
    succeeded = next(c for c in st["conditions"] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "DryRun" and st["total"] == TRACKS and st["processed"] == 0
    est = st["estimate"]
    assert est["requests"] == 4 * requests_for(TRACKS // 4, 16, 4)
    assert est["tokens"]["total"] > 0 and est["cost"] > 0 and est["duration"]
    assert env.jobs(namespace, uid) == [] and "jobName" not in st
    assert fake.log() == []
    reasons = [e["reason"] for e in env.events(namespace, "estimate-only")]
    assert "Planned" in reasons and "JobCreated" not in reasons


def test_a_thinking_qwen3_behind_a_reasoning_parser_is_analyzed(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    """The `novita` preset against a provider that thinks unless told not to, with a
    reasoning parser that spends max_tokens on thinking (issue 11)."""
    fake.reset()
    fake.configure(mode="think_parser")
    try:
        env.db_secret(namespace, env.new_database())
        env.kube.post(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": "llm-key"}, "type": "Opaque", "stringData": {"apiKey": KEY}},
        )
        m = run_manifest(
            "thinking", analyzer="llm", shards=2, parallelism=2, batchSize=10,
            selection={"limit": 40}, rateLimit={"requestsPerMinute": 6000},
            retry={"initialBackoffSeconds": 0.05},
            llm={"provider": "novita", "baseURL": fake.url,
                 "apiKeySecretRef": {"name": "llm-key", "key": "apiKey"}},
        )  # fmt: skip
        assert env.apply(namespace, m).returncode == 0
        st = env.wait_status(
            namespace, "thinking", lambda s: s.get("phase") in ("Succeeded", "Failed"), timeout=240
        )
        assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
        llm = env.sql(
            _db(env, namespace), "SELECT count(*) FROM analysis_results WHERE analyzer_type = 'llm'"
        )
        assert llm >= 0.95 * 40, llm
        # Thinking was turned off the way Qwen3 documents it.
        bodies = [e.get("body") or {} for e in fake.log()]
        assert bodies and all(
            (b.get("chat_template_kwargs") or {}).get("enable_thinking") is False for b in bodies
        ), bodies[:2]
    finally:
        fake.configure(mode="normal")
