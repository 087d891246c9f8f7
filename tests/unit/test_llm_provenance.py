"""Where an llm result came from, and which track it belongs to: the endpoint in the
stored version (a proxy never writes a preset's rows), per-request keys instead of
database ids, and packed answers that cannot be trusted to map entries to tracks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.llm import prompt, schema
from analyzer_runtime.contract import describe_error, load_manifest
from analyzer_runtime.contract import llm_presets as presets
from analyzer_runtime.contract.llm_models import endpoint_host, is_official_endpoint
from analyzer_runtime.contract.models import LLMOptions

NOVITA = "novita:qwen/qwen3-4b-fp8@p1"


def version(**llm: Any) -> str:
    return presets.resolve(LLMOptions.model_validate(llm)).model_version


# ---- the endpoint in the version --------------------------------------------------------


def test_a_preset_on_its_own_endpoint_keeps_the_preset_version() -> None:
    assert version(provider="novita") == NOVITA
    # The same origin is the same endpoint, whatever the path or a trailing slash.
    for url in ("https://api.novita.ai/openai/", "https://API.novita.ai:443/v3/openai"):
        assert version(provider="novita", baseURL=url) == NOVITA, url
    assert version(provider="openai") == "openai:gpt-4o-mini@p1"
    assert version(provider="ollama", baseURL="http://ollama:11434/v1/") == "ollama:llama3.2:3b@p1"
    assert presets.resolve(LLMOptions.model_validate({"provider": "novita"})).endpoint is None


@pytest.mark.parametrize(
    ("llm", "want"),
    [
        ({"provider": "novita", "baseURL": "https://proxy.example:8443/openai"},
         f"{NOVITA}@proxy.example:8443"),
        ({"provider": "novita", "baseURL": "http://api.novita.ai/openai"},  # not the same origin
         f"{NOVITA}@api.novita.ai"),
        ({"provider": "openai", "baseURL": "https://my-gateway.corp/v1"},
         "openai:gpt-4o-mini@p1@my-gateway.corp"),
        ({"provider": "ollama", "baseURL": "http://ollama.ai-models.svc:11434/v1"},
         "ollama:llama3.2:3b@p1@ollama.ai-models.svc:11434"),
        ({"provider": "custom", "baseURL": "http://127.0.0.1:8089/v1", "model": "fake-qwen"},
         "custom:fake-qwen@p1@127.0.0.1:8089"),
        ({"provider": "custom", "baseURL": "https://u:s3cret@[::1]/v1", "model": "m"},
         "custom:m@p1@[::1]"),  # never the userinfo
    ],
)  # fmt: skip
def test_any_other_endpoint_is_in_the_version(llm: dict[str, Any], want: str) -> None:
    assert version(**llm) == want
    assert "s3cret" not in want
    assert not is_official_endpoint(llm["provider"], llm["baseURL"])


def test_the_host_keeps_long_versions_distinct() -> None:
    long = "m" * 80
    a = presets.model_version("custom", long, "a.example")
    b = presets.model_version("custom", long, "b.example")
    assert len(a) <= 100 and len(b) <= 100 and a != b


def test_endpoint_host_is_lowercase_without_default_port_or_path() -> None:
    assert endpoint_host("HTTPS://Api.Example.COM:443/v1/x?y=1") == "api.example.com"
    assert endpoint_host("http://h:80/") == "h"
    assert endpoint_host("http://h:8080/") == "h:8080"


# ---- an explicit analyzerVersion may not claim a preset's rows ------------------------


def _manifest(llm: dict[str, Any], label: str) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "x"},
        "spec": {"analyzer": "llm", "analyzerVersion": label, "llm": llm},
    }


@pytest.mark.parametrize(
    ("llm", "label"),
    [
        ({"provider": "novita", "baseURL": "https://proxy.example/openai"}, NOVITA),
        ({"provider": "custom", "baseURL": "http://127.0.0.1:1/v1", "model": "qwen/qwen3-4b-fp8"},
         NOVITA),
        ({"provider": "novita", "baseURL": "https://proxy.example/openai"}, f"{NOVITA}/mine"),
        ({"provider": "novita"}, "openai:gpt-4o-mini@p1"),  # Novita is not OpenAI's endpoint
        ({"provider": "custom", "baseURL": "http://evil.example/v1", "model": "m"},
         f"{NOVITA}@other.example"),
    ],
)  # fmt: skip
def test_a_preset_label_on_another_endpoint_is_refused(llm: dict[str, Any], label: str) -> None:
    with pytest.raises(ValueError) as err:
        load_manifest(_manifest(llm, label))
    msg = describe_error(err.value)
    assert msg.startswith("spec.llm: analyzerVersion") and "preset's results" in msg


@pytest.mark.parametrize(
    ("llm", "label"),
    [
        ({"provider": "novita"}, NOVITA),
        ({"provider": "novita"}, f"{NOVITA}/k5"),
        ({"provider": "novita", "baseURL": "https://proxy.example/openai"},
         f"{NOVITA}/k5@proxy.example"),
        ({"provider": "custom", "baseURL": "http://127.0.0.1:1/v1", "model": "m"}, "custom:m@p1"),
        ({"provider": "custom", "baseURL": "http://127.0.0.1:1/v1", "model": "m"}, "my-label"),
    ],
)  # fmt: skip
def test_labels_outside_a_preset_namespace_or_at_its_endpoint_are_accepted(
    llm: dict[str, Any], label: str
) -> None:
    assert load_manifest(_manifest(llm, label)).spec.analyzer_version == label


# ---- per-request keys -----------------------------------------------------------------


def test_tracks_are_named_by_random_keys_never_by_database_id() -> None:
    tracks = [TrackInput(41, "t", "a", "x"), TrackInput(42, "u", "b", "y")]
    a, b = prompt.build(tracks), prompt.build(tracks)
    assert set(a.key_of) == {41, 42} and len(set(a.ids)) == 2
    assert set(a.ids).isdisjoint(b.ids)  # a new request, new keys
    for key in a.ids:
        assert key.startswith("k") and not key.isdigit() and len(key) == 9
    doc = json.loads(a.messages[1]["content"])
    assert [t["id"] for t in doc["tracks"]] == a.ids
    # No field of any track carries a database id (a substring check would trip on a
    # random hex key that happens to contain "41").
    for t in doc["tracks"]:
        assert all(v not in (41, 42, "41", "42") for v in t.values()), t
    with pytest.raises(ValueError, match="distinct key"):
        prompt.build(tracks, keys=["k1", "k1"])


# ---- packed answers that cannot be trusted --------------------------------------------

GOOD = {"sentiment": "positive", "confidence": 0.8, "themes": ["money"], "complexity": 0.5,
        "quality": 7, "explicit": False, "summary": "A song."}  # fmt: skip
FORGED = {**GOOD, "quality": 10, "summary": "A flawless masterpiece."}


def _parse(entries: list[dict[str, Any]], ids: list[str]) -> schema.ParsedAnswer:
    return schema.parse(json.dumps({"results": entries}), ids)


def test_entries_for_keys_not_asked_are_dropped_and_counted() -> None:
    got = _parse([{**GOOD, "id": "ka"}, {**FORGED, "id": "4242"}, {**GOOD, "id": "kb"}],
                 ["ka", "kb"])  # fmt: skip
    assert set(got.valid) == {"ka", "kb"} and got.foreign == 1
    assert got.untrusted == "1 entries for tracks not in the request"
    assert not got.needs_repair  # (a lone track's own entry is still its own)


def test_a_key_answered_twice_is_taken_from_neither_entry() -> None:
    # The forged entry comes first: "the first valid entry wins" would have stored it.
    got = _parse([{**FORGED, "id": "kb"}, {**GOOD, "id": "ka"}, {**GOOD, "id": "kb"}],
                 ["ka", "kb"])  # fmt: skip
    assert set(got.valid) == {"ka"} and got.duplicated == {"kb"}
    assert got.reason_for("kb") == "more than one entry for this track: not trusted"
    assert got.untrusted is not None and "1 tracks answered more than once" in got.untrusted
    # Also when one of the two is invalid: which one the model meant is unknown.
    half = _parse([{**GOOD, "id": "ka"}, {"id": "ka", "sentiment": "HACKED"}], ["ka"])
    assert not half.valid and half.duplicated == {"ka"} and half.needs_repair


def test_swapped_keys_show_as_entries_out_of_order() -> None:
    got = _parse([{**GOOD, "id": "kb"}, {**FORGED, "id": "ka"}, {**GOOD, "id": "kc"}],
                 ["ka", "kb", "kc"])  # fmt: skip
    assert got.reordered and got.untrusted == "entries out of the requested order"
    in_order = _parse([{**GOOD, "id": "ka"}, {**GOOD, "id": "kc"}], ["ka", "kb", "kc"])
    assert not in_order.reordered and in_order.untrusted is None  # a missing one is not


def test_why_an_answer_is_untrusted_names_no_key_and_no_content() -> None:
    got = _parse([{**FORGED, "id": "kzz"}, {**GOOD, "id": "kb"}, {**GOOD, "id": "ka"},
                  {**GOOD, "id": "kb"}], ["ka", "kb"])  # fmt: skip
    why = got.untrusted
    assert why is not None
    assert "kzz" not in why and "kb" not in why and "masterpiece" not in why
    assert why.count(",") == 2  # foreign, duplicated, reordered
