"""The chart's admin policy (issue 23), rendered by the real `helm template`: the
`policy` values reach the operator as the same Policy, the database Secret carries
the usable-by-runs label, and the ValidatingAdmissionPolicy is there when the API
serves it (or when asked), scoped to the watched namespaces, with the same lists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rap_devtools.helm import find, only, operator_env, render_chart
from rap_operator.config import OperatorConfig
from rap_operator.policy import DEFAULT_HOSTS, Policy

from analyzer_runtime.contract.labels import USABLE_LABEL

pytestmark = pytest.mark.helm  # renders the chart with bin/helm (make helm)

VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
DB = {"postgres": {"enabled": False}, "database": {"url": "postgresql://rap@db/rap"}}
IMAGE = "ghcr.io/rap-analyzer/rap-analyzer"


def _vap(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return only(docs, "ValidatingAdmissionPolicy"), only(docs, "ValidatingAdmissionPolicyBinding")


def _variable(policy: dict[str, Any], name: str) -> list[str]:
    expr = next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == name)
    return list(json.loads(expr))  # a JSON list of strings is a CEL list literal


def test_the_defaults_reach_the_operator_as_its_own_defaults() -> None:
    env = operator_env(render_chart(DB))
    assert OperatorConfig.from_env(env).policy == Policy()
    assert {k: v for k, v in env.items() if k.startswith("RAP_POLICY_")} == {
        "RAP_POLICY_ALLOWED_IMAGES": "",
        "RAP_POLICY_ALLOWED_HOSTS_LLM": ",".join(DEFAULT_HOSTS["llm"]),
        "RAP_POLICY_ALLOWED_HOSTS_GENIUS": "api.genius.com",
        "RAP_POLICY_ALLOWED_HOSTS_SPOTIFY": "api.spotify.com,accounts.spotify.com",
        "RAP_POLICY_SECRET_LABEL": USABLE_LABEL,
        "RAP_POLICY_ALLOWED_SECRETS": "",
    }


def test_values_become_the_operators_policy() -> None:
    values = {**DB, "policy": {
        "allowedImages": ["registry.example.com/team/"],
        "allowedHosts": {"llm": ["llm.corp.example"], "genius": [], "spotify": ["*"]},
        "secrets": {"label": "", "allowed": ["llm-key", "genius"]},
    }}  # fmt: skip
    policy = OperatorConfig.from_env(operator_env(render_chart(values))).policy
    assert policy == Policy(
        images=("registry.example.com/team/",),
        hosts={"llm": ("llm.corp.example",), "genius": (), "spotify": ("*",)},
        secret_label="",
        secrets=("llm-key", "genius"),
    )


def test_the_database_secret_is_usable_by_runs() -> None:
    secret = only(render_chart(DB), "Secret", "rap-analyzer-db")
    assert secret["metadata"]["labels"][USABLE_LABEL] == "true"
    unlabelled = render_chart({**DB, "policy": {"secrets": {"label": ""}}})
    assert USABLE_LABEL not in only(unlabelled, "Secret", "rap-analyzer-db")["metadata"]["labels"]


def test_the_admission_policy_follows_the_api() -> None:
    assert find(render_chart(DB), "ValidatingAdmissionPolicy") == []
    assert len(_vap(render_chart(DB, api_versions=[VAP_API]))) == 2
    off = {**DB, "policy": {"admission": {"enabled": False}}}
    assert find(render_chart(off, api_versions=[VAP_API]), "ValidatingAdmissionPolicy") == []
    forced = {**DB, "policy": {"admission": {"enabled": True}}}
    assert len(_vap(render_chart(forced))) == 2


def test_the_admission_policy_has_the_operators_lists_and_scope() -> None:
    values = {**DB, "image": {"tag": "9.9"}, "watchNamespaces": ["team-a", "team-b"],
              "policy": {"allowedImages": ["registry.example.com/team/"],
                         "allowedHosts": {"llm": ["llm.corp.example"]}}}  # fmt: skip
    vap, binding = _vap(render_chart(values, api_versions=[VAP_API]))
    assert _variable(vap, "images") == [f"{IMAGE}:9.9", "registry.example.com/team/"]
    assert _variable(vap, "llmHosts") == ["llm.corp.example"]
    assert _variable(vap, "geniusHosts") == ["api.genius.com"]
    assert _variable(vap, "spotifyHosts") == ["api.spotify.com", "accounts.spotify.com"]
    rules = vap["spec"]["matchConstraints"]["resourceRules"]
    assert rules[0]["resources"] == ["analysisruns", "scrapejobs"]
    assert rules[0]["operations"] == ["CREATE", "UPDATE"]
    messages = [v["message"] for v in vap["spec"]["validations"]]
    assert [m.split(":")[0] for m in messages] == [
        "allowedImages", "allowedImages", "allowedHosts.llm", "allowedHosts.llm",
        "allowedHosts.genius", "allowedHosts.spotify", "allowedHosts.spotify",
    ]  # fmt: skip
    assert all("url(" in v["expression"] for v in vap["spec"]["validations"][2:])
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector == [{"key": "kubernetes.io/metadata.name", "operator": "In",
                         "values": ["team-a", "team-b"]}]  # fmt: skip
    # Cluster-wide without a list: every namespace.
    _, everywhere = _vap(
        render_chart({**DB, "rbac": {"clusterWide": True}}, api_versions=[VAP_API])
    )
    assert "matchResources" not in everywhere["spec"]


@pytest.mark.parametrize("pgbouncer", [False, True])
def test_secret_names_are_enforced_only_when_asked(pgbouncer: bool) -> None:
    values: dict[str, Any] = {**DB, "policy": {"secrets": {"allowed": ["llm-key"]},
                                               "admission": {"enforceSecretNames": True}}}  # fmt: skip
    if pgbouncer:
        values["pgbouncer"] = {"enabled": True}
        values["database"] = {"url": "postgresql://rap:pw@db:5432/rap"}
    vap, _ = _vap(render_chart(values, api_versions=[VAP_API]))
    names = ["rap-analyzer-db", *(["rap-analyzer-db-pgbouncer"] if pgbouncer else []), "llm-key"]
    assert _variable(vap, "secrets")[: len(names)] == names
    fields = [v["message"].split(":")[1].strip() for v in vap["spec"]["validations"]
              if v["message"].startswith("secrets:")]  # fmt: skip
    assert fields == [
        "spec.database.secretRef", "spec.llm.apiKeySecretRef", "spec.genius.tokenSecretRef",
        "spec.spotify.clientIdSecretRef", "spec.spotify.clientSecretSecretRef",
        "spec.analyze.database.secretRef", "spec.analyze.llm.apiKeySecretRef",
    ]  # fmt: skip
    default, _ = _vap(render_chart(DB, api_versions=[VAP_API]))
    assert not any(v["message"].startswith("secrets:") for v in default["spec"]["validations"])
