"""Chaos, bounded in time (issue 22): an `llm` run of 6,000 tracks against the fake
provider, led by one of two operators, while shard pods are SIGKILLed, the leading
operator is SIGKILLed (and comes back as a follower, as its Deployment would bring
it back), and the run's Postgres is frozen (SIGSTOP on every server process) for
20 s - a few times each, in a fixed order with seeded choices, each step only once
the run has moved since the last. The run must end Succeeded with every track
analyzed exactly once, and the provider must have been asked at most 1.02 x the
requests of a clean run (the planning estimate, exact for a clean run: see
test_llm_run.py): work lost to a kill is one batch per killed pod, never a shard."""

from __future__ import annotations

import os
import random
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.waiting import holds_until, wait_for

from tests.e2e.runs.operator_env import JSON, Env, phase, run_manifest
from tests.e2e.runs.operator_pair import Pair, operator_pair
from tests.e2e.runs.own_postgres import own_postgres, signal_all

pytestmark = pytest.mark.e2e

TRACKS = 6000
FREEZE_SECONDS = 20.0
STEPS = ("pod", "leader", "freeze", "pod", "leader", "freeze", "pod", "leader")
KEY = f"sk-chaos-{secrets.token_hex(16)}"
NAME = "chaos"


@pytest.fixture
def pair(env: Env, tmp_path: Path) -> Iterator[Pair]:
    with operator_pair(env, tmp_path) as p:
        yield p


def _progress(st: JSON) -> int:
    return int(st.get("processed", 0)) + int(st.get("failed", 0)) + int(st.get("skipped", 0))


def _kill_a_shard_pod(env: Env, ns: str, uid: str, rng: random.Random) -> str:
    """SIGKILL the process group of a running shard pod: the container dies as in an
    OOM kill or a node's hard reset, without its SIGTERM handler."""

    def running() -> list[tuple[str, int]]:
        found = []
        for pod in env.pods(ns, uid):
            name = pod["metadata"]["name"]
            pid = env.cluster.kubelet.pid_of(ns, name)
            if (pod.get("status") or {}).get("phase") == "Running" and pid:
                found.append((name, pid))
        return sorted(found)

    pods = wait_for(running, timeout=60, what="a running shard pod")
    name, pid = rng.choice(pods)
    os.killpg(pid, signal.SIGKILL)
    return name


def _kill_the_leader(pair: Pair) -> float:
    """SIGKILL the leader; seconds until the other leads. The killed one is started
    again (it comes back as the follower)."""
    leader, follower = pair.leader()
    leader.signal(signal.SIGKILL)
    took = pair.wait_held_by(follower, timeout=40)
    leader.wait_exit(timeout=10)
    leader.start()
    return took


def _freeze(env: Env, ns: str, pgdata: Path) -> None:
    """Every Postgres process stopped for FREEZE_SECONDS: the run must say so while it
    lasts (Valid=False DatabaseUnavailable) and must not finish meanwhile."""
    frozen_at = time.monotonic()
    try:
        assert signal_all(pgdata, signal.SIGSTOP) >= 2

        def told(st: JSON) -> bool:
            valid = next((c for c in st.get("conditions") or [] if c["type"] == "Valid"), {})
            return valid.get("reason") == "DatabaseUnavailable"

        env.wait_status(ns, NAME, told, timeout=FREEZE_SECONDS - 1,
                        what="DatabaseUnavailable while frozen")  # fmt: skip
        holds_until(lambda: env.status(ns, NAME).get("phase") == "Running",
                    frozen_at + FREEZE_SECONDS, interval=0.5,  # the scenario's length
                    what="phase Running while frozen",
                    describe=lambda: str(env.status(ns, NAME)))  # fmt: skip
    finally:
        signal_all(pgdata, signal.SIGCONT)


def test_a_run_survives_killed_pods_a_killed_leader_and_a_frozen_postgres_exactly_once(
    env: Env, namespace: str, pair: Pair
) -> None:
    rng = random.Random(22)
    with (
        own_postgres(TRACKS) as (server, pgdata),
        FakeLLM(api_key=KEY, latency_p50=0.4, latency_p95=0.8) as fake,
    ):
        url = str(server.get_uri())
        env.db_secret(namespace, url)
        env.kube.post(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": "llm-key"}, "type": "Opaque", "stringData": {"apiKey": KEY}},
        )
        manifest = run_manifest(
            NAME, analyzer="llm", shards=4, parallelism=4, batchSize=8,
            rateLimit={"requestsPerMinute": 6000},
            retry={"initialBackoffSeconds": 0.05, "backoffLimitPerIndex": 6},
            llm={"provider": "custom", "baseURL": fake.url, "model": "fake-qwen",
                 "tracksPerRequest": 4, "apiKeySecretRef": {"name": "llm-key", "key": "apiKey"}},
        )  # fmt: skip
        assert env.apply(namespace, manifest).returncode == 0
        uid = env.get(namespace, NAME)["metadata"]["uid"]
        st = env.wait_status(namespace, NAME, lambda s: _progress(s) > 0, timeout=180)
        assert st["total"] == TRACKS
        clean_requests = int(st["estimate"]["requests"])

        done: list[str] = []
        for step in STEPS:
            before = _progress(env.status(namespace, NAME))
            if step == "pod":
                done.append(f"killed pod {_kill_a_shard_pod(env, namespace, uid, rng)}")
            elif step == "leader":
                took = _kill_the_leader(pair)
                assert took < 20, f"the follower took over {took:.1f} s after the kill"
                done.append(f"killed the leader ({took:.1f} s to a new one)")
            else:
                _freeze(env, namespace, pgdata)
                done.append("froze Postgres 20 s")
            # The next blow lands mid-run: the run moved on since this one.
            env.wait_status(
                namespace, NAME, lambda s, b=before: _progress(s) > b, timeout=120,
                what=f"progress after: {done[-1]}",
            )  # fmt: skip
            assert env.status(namespace, NAME)["phase"] == "Running", done

        st = env.wait_status(namespace, NAME, phase("Succeeded"), timeout=600,
                             what=f"Succeeded after {done}")  # fmt: skip
        assert (st["processed"], st.get("failed", 0), st["total"]) == (TRACKS, 0, TRACKS)
        # Exactly once: one result per track, none lost, none twice, counters agree.
        assert env.sql(url, "SELECT count(*) FROM analysis_results") == TRACKS
        assert env.sql(url, "SELECT count(DISTINCT track_id) FROM analysis_results") == TRACKS
        assert env.sql(url, "SELECT sum(processed) FROM run_shards") == TRACKS
        # What the chaos cost at the provider: at most 2% more requests than a clean run.
        requests = len(fake.log())
        assert requests <= 1.02 * clean_requests, (requests, clean_requests, done)
        reasons = [e["reason"] for e in env.events(namespace, NAME)]
        assert reasons.count("Succeeded") == 1, reasons
        assert "ReconcileError" not in reasons  # outages and kills are no bugs
        (job,) = env.jobs(namespace, uid)
        assert job["status"].get("failed", 0) >= STEPS.count("pod")  # the kills were real
