"""The admin's policy (issue 23) on the real API server: a run naming a foreign
endpoint and another team's Secret is refused by the operator (Valid=False,
PolicyDenied, a Warning Event naming the rules, no Job, not one request to that
endpoint), and - with the chart's ValidatingAdmissionPolicy applied by the real
kubectl - by the API server itself; an allowed host with a labelled Secret is
accepted by both."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.helm import render_chart
from rap_devtools.operator_setup import DEV_POLICY, USABLE_BY_RUNS
from rap_devtools.waiting import wait_for

from tests.e2e.runs.operator_env import Env, run_manifest

pytestmark = pytest.mark.e2e

KEY = f"sk-team-b-{secrets.token_hex(16)}"
VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


class Listener:
    """An HTTP server on a loopback address the policy does not list (127.0.0.2),
    recording every request it receives."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                listener.requests.append(f"{self.command} {self.path}")
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as server:
        yield server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=KEY) as server:
        yield server


def _secret(env: Env, ns: str, name: str, labels: dict[str, str] | None = None) -> None:
    meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
    env.kube.post(f"/api/v1/namespaces/{ns}/secrets",
                  {"metadata": meta, "type": "Opaque", "stringData": {"apiKey": KEY}})  # fmt: skip


def _llm_run(name: str, url: str, secret: str) -> dict[str, Any]:
    return run_manifest(
        name, analyzer="llm", shards=2, parallelism=2, selection={"limit": 20}, dryRun=True,
        llm={"provider": "custom", "baseURL": url, "model": "m",
             "apiKeySecretRef": {"name": secret, "key": "apiKey"}},
    )  # fmt: skip


def _events(env: Env, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in env.events(ns, name) if e.get("reason") == reason]


def test_a_foreign_endpoint_and_another_teams_secret_are_denied_and_nothing_is_sent(
    env: Env, namespace: str, listener: Listener
) -> None:
    env.db_secret(namespace, env.new_database())
    _secret(env, namespace, "team-b-key")  # no usable-by-runs label, not listed
    res = env.apply(namespace, _llm_run("exfiltrate", listener.url, "team-b-key"))
    assert res.returncode == 0, res.stderr  # no admission policy installed here

    st = env.wait_status(
        namespace, "exfiltrate",
        lambda s: any(c.get("reason") == "PolicyDenied" for c in s.get("conditions") or []),
        timeout=60,
    )  # fmt: skip
    valid = next(c for c in st["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == "PolicyDenied"
    assert "allowedHosts.llm: spec.llm.baseURL" in valid["message"]
    assert "secrets: spec.llm.apiKeySecretRef" in valid["message"]
    assert "127.0.0.2" in valid["message"] and "team-b-key" in valid["message"]
    assert st["phase"] == "Failed" and "runId" not in st and "jobName" not in st
    events = wait_for(lambda: _events(env, namespace, "exfiltrate", "PolicyDenied"), timeout=30,
                      what="the PolicyDenied Event")  # fmt: skip
    assert events[0]["type"] == "Warning"
    assert "allowedHosts.llm" in events[0]["message"] and "secrets" in events[0]["message"]
    uid = env.get(namespace, "exfiltrate")["metadata"]["uid"]
    assert env.jobs(namespace, uid) == [] and env.pods(namespace, uid) == []
    reasons = {e["reason"] for e in env.events(namespace, "exfiltrate")}
    assert "Planned" not in reasons and "JobCreated" not in reasons
    # Nothing anywhere reached the foreign endpoint, and the key is nowhere to read.
    assert listener.requests == []
    assert KEY not in json.dumps(env.get(namespace, "exfiltrate"))
    assert KEY not in json.dumps(env.events(namespace, "exfiltrate"))
    assert KEY not in env.operator.log.read_text(errors="replace")


def test_an_allowed_host_with_a_labelled_secret_is_planned(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    env.db_secret(namespace, env.new_database())
    _secret(env, namespace, "team-a-key", USABLE_BY_RUNS)  # labelled, not listed
    assert env.apply(namespace, _llm_run("allowed", fake.url, "team-a-key")).returncode == 0
    st = env.wait_status(namespace, "allowed", lambda s: s.get("phase") == "Succeeded", timeout=60)
    assert st["runId"] and st["total"] == 20  # planned (a dry run: estimated, no Job)
    assert all(c.get("reason") != "PolicyDenied" for c in st["conditions"])


def _admission_policy(namespace: str) -> list[dict[str, Any]]:
    """The chart's policy and binding, scoped to this test's namespace, with the
    e2e operator's allowed LLM hosts (the fake provider's 127.0.0.1)."""
    values = {
        "postgres": {"enabled": False},
        "database": {"url": "postgresql://unused@localhost/x"},
        "watchNamespaces": [namespace],
        "policy": {"allowedHosts": {
            "llm": DEV_POLICY["RAP_POLICY_ALLOWED_HOSTS_LLM"].split(",")}},
    }  # fmt: skip
    docs = render_chart(values, release=f"policy-{namespace}", api_versions=[VAP_API])
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    found = [d for d in docs if d["kind"] in kinds]
    assert [d["kind"] for d in found] == list(kinds)
    return found


def test_the_admission_policy_refuses_the_apply_itself(
    env: Env, namespace: str, listener: Listener, fake: FakeLLM
) -> None:
    env.db_secret(namespace, env.new_database())
    _secret(env, namespace, "team-b-key")
    _secret(env, namespace, "team-a-key", USABLE_BY_RUNS)
    docs = _admission_policy(namespace)
    text = yaml.safe_dump_all(docs)
    applied = env.kubectl("apply", "-f", "-", input=text)
    assert applied.returncode == 0, applied.stderr
    try:
        foreign = yaml.safe_dump(_llm_run("exfiltrate", listener.url, "team-b-key"))

        def refused() -> str | None:
            # A new binding takes a moment to be enforced: a dry run until it is.
            res = env.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                              input=foreign)  # fmt: skip
            return res.stderr if res.returncode != 0 else None

        stderr = wait_for(refused, timeout=60, interval=0.5, what="the admission policy to refuse")
        assert "ValidatingAdmissionPolicy" in stderr and "denied request" in stderr, stderr
        assert "allowedHosts.llm: spec.llm.baseURL" in stderr, stderr
        # The image rule and a ScrapeJob's Genius host, refused the same way.
        image = _llm_run("image", fake.url, "team-a-key")
        image["spec"]["image"] = "evil.example/miner:1"
        scrape = {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "ScrapeJob",
                  "metadata": {"name": "scrape"},
                  "spec": {"artists": ["A"], "genius": {
                      "tokenSecretRef": {"name": "team-a-key", "key": "apiKey"},
                      "apiBaseURL": listener.url}}}  # fmt: skip
        for doc, rule in ((image, "allowedImages: spec.image"),
                          (scrape, "allowedHosts.genius: spec.genius.apiBaseURL")):  # fmt: skip
            res = env.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                              input=yaml.safe_dump(doc))  # fmt: skip
            assert res.returncode != 0 and rule in res.stderr, res.stderr
        # The real apply is refused too: the run never exists.
        res = env.kubectl("apply", "-n", namespace, "-f", "-", input=foreign)
        assert res.returncode != 0 and "allowedHosts.llm" in res.stderr
        assert env.kubectl("get", "analysisrun", "exfiltrate", "-n", namespace).returncode != 0
        # An allowed host and Secret pass the same policy.
        ok = env.apply(namespace, _llm_run("allowed", fake.url, "team-a-key"))
        assert ok.returncode == 0, ok.stderr
        assert listener.requests == []
    finally:
        env.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)


def test_an_operator_restarted_with_a_looser_policy_plans_what_it_denied(
    env: Env, namespace: str, fake: FakeLLM
) -> None:
    """Level-triggered: the denial is the old policy's, not a final verdict."""
    env.db_secret(namespace, env.new_database())
    _secret(env, namespace, "shared-key")  # unlabelled, not listed: denied
    assert env.apply(namespace, _llm_run("later", fake.url, "shared-key")).returncode == 0
    env.wait_status(
        namespace, "later",
        lambda s: any(c.get("reason") == "PolicyDenied" for c in s.get("conditions") or []),
        timeout=60,
    )  # fmt: skip
    looser = f"{DEV_POLICY['RAP_POLICY_ALLOWED_SECRETS']},shared-key"
    env.operator.stop()
    env.operator.extra_env["RAP_POLICY_ALLOWED_SECRETS"] = looser
    try:
        env.operator.start()
        st = env.wait_status(namespace, "later", lambda s: s.get("phase") == "Succeeded",
                             timeout=60)  # fmt: skip
        assert st["runId"] and st["total"] == 20
        valid = next(c for c in st["conditions"] if c["type"] == "Valid")
        assert valid["status"] == "True", valid
    finally:
        env.operator.stop()
        del env.operator.extra_env["RAP_POLICY_ALLOWED_SECRETS"]
        env.operator.start()
