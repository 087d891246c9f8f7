"""The admin's policy (policy.py), pure: images, endpoint hosts, Secrets, and its
configuration from the environment (config.py)."""

from __future__ import annotations

from typing import Any

import pytest
from rap_operator.config import OperatorConfig
from rap_operator.policy import DEFAULT_HOSTS, Policy, check, host_allowed, image_allowed

OWN = "ghcr.io/rap-analyzer/rap-analyzer:1.2.3"
DB = "rap-analyzer-db"
LABELLED = {"rapanalyzer.io/usable-by-runs": "true"}


def _check(spec: dict[str, Any], policy: Policy | None = None, **labels: Any) -> list[str]:
    found = check(
        policy or Policy(), spec, own_image=OWN, default_secret=DB,
        secret_labels={k.replace("_", "-"): v for k, v in labels.items()},
    )  # fmt: skip
    return [f"{v.rule} {v.field}" for v in found]


def test_defaults_are_the_presets_official_hosts() -> None:
    assert DEFAULT_HOSTS == {
        "llm": ("api.novita.ai", "api.openai.com", "ollama"),
        "genius": ("api.genius.com",),
        "spotify": ("api.spotify.com", "accounts.spotify.com"),
    }


@pytest.mark.parametrize(
    ("image", "allowed", "ok"),
    [
        (OWN, (), True),
        ("ghcr.io/rap-analyzer/rap-analyzer:evil", (), False),
        ("registry.example.com/team/rap:1", ("registry.example.com/team/",), True),
        ("registry.example.com/team-b/rap:1", ("registry.example.com/team",), False),
        ("registry.example.com/other/rap:1", ("registry.example.com/team/",), False),
        ("repo/rap:2", ("repo/rap:",), True),
        ("repo/rap-evil:2", ("repo/rap:",), False),
        ("repo/rap@sha256:ab", ("repo/rap@sha256:ab",), True),
        ("anything:1", ("*",), True),
    ],
)
def test_image_matching(image: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert image_allowed(image, allowed, OWN) is ok


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://api.novita.ai/openai", ("api.novita.ai",), True),
        ("https://API.Novita.AI/openai", ("api.novita.ai",), True),
        ("https://api.novita.ai.evil.example/x", ("api.novita.ai",), False),
        ("https://api.novita.ai@evil.example/x", ("api.novita.ai",), False),
        ("https://evil.example/?h=api.novita.ai", ("api.novita.ai",), False),
        ("http://ollama:11434/v1", ("ollama",), True),
        ("https://llm.corp.example/v1", ("*.corp.example",), True),
        ("https://corp.example/v1", ("*.corp.example",), False),
        ("https://evilcorp.example/v1", ("*.corp.example",), False),
        ("file:///etc/passwd", ("*",), False),
        ("https://evil.example\\@api.novita.ai/v1", ("api.novita.ai",), False),
        ("https://user:pw@api.novita.ai/v1", ("api.novita.ai",), False),
        ("https://api.novita.ai:443@evil.example/", ("*",), False),
        ("https://api.novita.ai/v1 ", ("api.novita.ai",), False),
        ("not a url", ("*",), False),
        ("https://anything.example", ("*",), True),
    ],
)
def test_host_matching(url: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(url, allowed) is ok


def test_a_foreign_llm_url_and_an_unlabelled_secret_are_both_named() -> None:
    spec = {
        "analyzer": "llm",
        "image": "evil.example/miner:1",
        "llm": {"provider": "novita", "baseURL": "https://collector.example/v1",
                "apiKeySecretRef": {"name": "team-b-key", "key": "k"}},
    }  # fmt: skip
    assert _check(spec, team_b_key={}) == [
        "allowedImages spec.image",
        "allowedHosts.llm spec.llm.baseURL",
        "secrets spec.llm.apiKeySecretRef",
    ]


def test_presets_without_a_url_are_judged_by_their_own_host() -> None:
    spec = {"analyzer": "llm", "llm": {"provider": "openai"}}
    assert _check(spec) == []
    narrowed = Policy(hosts={"llm": ("ollama",)})
    assert _check(spec, narrowed) == [
        "allowedHosts.llm spec.llm.provider (openai: https://api.openai.com/v1)"
    ]
    assert _check({"analyzer": "llm"}, narrowed)[0].startswith(
        "allowedHosts.llm spec.llm.provider (novita"
    )
    # Not an llm run: no preset is reached.
    assert _check({"analyzer": "algorithmic"}, narrowed) == []


def test_labelled_listed_default_and_missing_secrets_pass() -> None:
    spec = {
        "analyzer": "llm",
        "database": {"secretRef": {"name": DB}},
        "llm": {"apiKeySecretRef": {"name": "labelled", "key": "k"}},
    }
    assert _check(spec, labelled=LABELLED) == []
    assert _check(spec, labelled={"rapanalyzer.io/usable-by-runs": "yes"}) == [
        "secrets spec.llm.apiKeySecretRef"
    ]
    assert _check(spec, Policy(secrets=("labelled",)), labelled={}) == []
    # Not there yet: the run waits for it (MissingInput), judged once it exists.
    assert _check(spec) == []
    # No label rule: only listed names.
    assert _check(spec, Policy(secret_label=""), labelled=LABELLED) == [
        "secrets spec.llm.apiKeySecretRef"
    ]


def test_the_database_secret_ref_is_judged_too() -> None:
    spec = {"analyzer": "algorithmic", "database": {"secretRef": {"name": "other-db"}}}
    assert _check(spec, other_db={}) == ["secrets spec.database.secretRef"]
    assert _check(spec, other_db=LABELLED) == []


def test_a_scrapejob_and_its_analyze_template() -> None:
    spec = {
        "genius": {"tokenSecretRef": {"name": "g", "key": "t"},
                   "apiBaseURL": "http://127.0.0.1:9/"},
        "spotify": {"clientIdSecretRef": {"name": "s", "key": "id"},
                    "clientSecretSecretRef": {"name": "s", "key": "secret"},
                    "tokenURL": "https://collector.example/token"},
        "analyze": {"analyzer": "llm", "image": "evil.example/x:1",
                    "llm": {"baseURL": "https://collector.example/v1",
                            "apiKeySecretRef": {"name": "k", "key": "k"}},
                    "database": {"secretRef": {"name": "d"}}},
    }  # fmt: skip
    assert _check(spec, g={}, s=LABELLED, k={}, d={}) == [
        "allowedImages spec.analyze.image",
        "allowedHosts.genius spec.genius.apiBaseURL",
        "allowedHosts.spotify spec.spotify.tokenURL",
        "allowedHosts.llm spec.analyze.llm.baseURL",
        "secrets spec.genius.tokenSecretRef",
        "secrets spec.analyze.database.secretRef",
        "secrets spec.analyze.llm.apiKeySecretRef",
    ]
    # The defaults (api.genius.com, api.spotify.com, accounts.spotify.com) pass.
    plain = {"genius": {"tokenSecretRef": {"name": "g", "key": "t"}},
             "spotify": {"clientIdSecretRef": {"name": "s", "key": "id"},
                         "clientSecretSecretRef": {"name": "s", "key": "secret"}}}  # fmt: skip
    assert _check(plain, g=LABELLED, s=LABELLED) == []


def test_config_from_env() -> None:
    assert OperatorConfig.from_env({}).policy == Policy()
    p = OperatorConfig.from_env({
        "RAP_POLICY_ALLOWED_IMAGES": "registry.example.com/team/, repo/x:1",
        "RAP_POLICY_ALLOWED_HOSTS_LLM": "llm.corp.example",
        "RAP_POLICY_ALLOWED_HOSTS_GENIUS": "",
        "RAP_POLICY_SECRET_LABEL": "",
        "RAP_POLICY_ALLOWED_SECRETS": "llm-key,genius",
    }).policy  # fmt: skip
    assert p.images == ("registry.example.com/team/", "repo/x:1")
    # A list that is set replaces the default; set and empty allows no host at all.
    assert p.hosts == {"llm": ("llm.corp.example",), "genius": (),
                       "spotify": DEFAULT_HOSTS["spotify"]}  # fmt: skip
    assert p.secret_label == "" and p.secrets == ("llm-key", "genius")


def test_a_denied_run_is_judged_again_by_a_restarted_operator() -> None:
    """Level-triggered: an operator restarted with a looser policy plans it."""
    from rap_operator.reconcile import finished

    def body(reason: str) -> dict[str, Any]:
        valid = {"type": "Valid", "status": "False", "reason": reason}
        return {"metadata": {"generation": 1},
                "status": {"phase": "Failed", "observedGeneration": 1, "conditions": [valid]}}  # fmt: skip

    assert finished(body("InvalidSpec"))
    assert not finished(body("PolicyDenied"))
