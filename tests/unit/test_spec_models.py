"""AnalysisRun spec models: valid manifests load, invalid ones say exactly what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from analyzer_runtime.contract import (
    AnalysisRunSpec,
    AnalyzerName,
    RunSpecError,
    format_validation_error,
    immutable_changes,
    load_manifest,
    load_manifest_file,
)

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests/fixtures/invalid_runs").glob("*.yaml"))


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run-1"},
        "spec": {"analyzer": "algorithmic", **spec},
    }


def error_of(data: dict[str, Any] | str) -> str:
    with pytest.raises(ValidationError) as info:
        load_manifest(data)
    return format_validation_error(info.value)


def test_example_loads_with_defaults() -> None:
    m = load_manifest_file(ROOT / "examples/analysisrun.yaml")
    spec = m.spec
    assert spec.analyzer is AnalyzerName.algorithmic
    assert (spec.shards, spec.parallelism, spec.batch_size) == (2, 2, 50)
    assert spec.selection.only_missing is True
    assert spec.retry.backoff_limit_per_index == 3
    assert spec.suspend is False and spec.dry_run is False
    assert m.metadata.name == "algorithmic-demo"


def test_emotion_example_loads() -> None:
    spec = load_manifest_file(ROOT / "examples/analysisrun-emotion.yaml").spec
    assert spec.analyzer == "emotion"
    assert spec.selection.min_words == 20


def test_parallelism_defaults_to_shards() -> None:
    spec = load_manifest(manifest(shards=4)).spec
    assert spec.parallelism == 4 == spec.effective_parallelism


def test_dump_is_camel_case_and_round_trips() -> None:
    spec = load_manifest(
        manifest(selection={"idRange": {"from": 1, "to": 9}, "minWords": 3}, batchSize=7)
    ).spec
    dumped = spec.dump()
    assert dumped["batchSize"] == 7
    assert dumped["selection"]["idRange"] == {"from": 1, "to": 9}
    assert AnalysisRunSpec.model_validate(dumped) == spec


def test_full_llm_spec() -> None:
    spec = load_manifest(
        {
            **manifest(),
            "spec": {
                "analyzer": "llm",
                "llm": {
                    "provider": "custom",
                    "baseURL": "http://localhost:8000/v1",
                    "model": "qwen/qwen3-4b-fp8",
                    "apiKeySecretRef": {"name": "novita", "key": "api-key"},
                    "tracksPerRequest": 5,
                    "temperature": 0.7,
                },
                "fallbackAnalyzer": "algorithmic",
                "rateLimit": {"requestsPerMinute": 45},
                "resources": {"requests": {"cpu": 1, "memory": "256Mi"}},
                "database": {"secretRef": {"name": "pg"}},
                "imagePullPolicy": "IfNotPresent",
            },
        }
    ).spec
    assert spec.llm is not None and spec.llm.base_url == "http://localhost:8000/v1"
    assert spec.llm.timeout_seconds == 30
    assert spec.resources is not None and spec.resources.requests == {"cpu": "1", "memory": "256Mi"}
    assert spec.database is not None and spec.database.secret_ref.key == "url"


def test_kubernetes_object_with_server_fields_loads() -> None:
    # What the operator reads back from the API server.
    obj = manifest()
    obj["metadata"] |= {"uid": "abc", "generation": 2, "resourceVersion": "7", "managedFields": []}
    obj["status"] = {"phase": "Running"}
    m = load_manifest(obj)
    assert (m.metadata.uid, m.metadata.generation) == ("abc", 2)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"shards": "four"}, "spec.shards: must be an integer, got 'four'"),
        ({"shards": "4"}, "spec.shards: must be an integer, got '4'"),
        ({"suspend": "yes"}, "spec.suspend: must be true or false, got 'yes'"),
        ({"analyzer": "foo"}, "spec.analyzer: unknown analyzer 'foo'; choose one of: "
         "algorithmic, emotion, llm"),
        ({"shards": 0}, "spec.shards: must be >= 1, got 0"),
        ({"shards": 1001}, "spec.shards: must be <= 1000, got 1001"),
        ({"shards": 4, "parallelism": 8}, "spec.parallelism: must be <= spec.shards (4), got 8"),
        ({"parallelism": 2}, "spec.parallelism: must be <= spec.shards (1), got 2"),
        ({"shard": 2}, "spec.shard: unknown field 'shard'; did you mean 'shards'?"),
        ({"batch_size": 2}, "spec.batch_size: unknown field 'batch_size'; did you mean 'batchSize'?"),
        ({"selection": {"onlyMising": False}},
         "spec.selection.onlyMising: unknown field 'onlyMising'; did you mean 'onlyMissing'?"),
        ({"analyzer": "llm"}, "spec.llm: required when spec.analyzer is 'llm'"),
        ({"llm": {"model": "x"}}, "spec.llm: only allowed when spec.analyzer is 'llm'"),
        ({"selection": {"idRange": {"from": 10, "to": 5}}},
         "spec.selection.idRange.to: must be >= idRange.from (10), got 5"),
        ({"selection": {"limit": 0}}, "spec.selection.limit: must be >= 1, got 0"),
        ({"selection": {"artists": "Nas"}}, "spec.selection.artists: must be a list, got 'Nas'"),
        ({"fallbackAnalyzer": "llm"},
         "spec.fallbackAnalyzer: 'llm' cannot be a fallback (it needs the network); "
         "choose one of: algorithmic, emotion"),
        ({"imagePullPolicy": "Sometimes"},
         "spec.imagePullPolicy: must be one of: Always, IfNotPresent, Never; got 'Sometimes'"),
        ({"resources": {"limits": {"memory": "lots"}}},
         "spec.resources.limits.memory: must be a Kubernetes quantity"),
        ({"retry": {"initialBackoffSeconds": 10, "maxBackoffSeconds": 5}},
         "spec.retry.maxBackoffSeconds: must be >= retry.initialBackoffSeconds (10.0), got 5.0"),
        ({"image": 5}, "spec.image: must be a string, got 5 (put it in quotes)"),
        ({"selection": []}, "spec.selection: must be a mapping, got a list"),
    ],
)  # fmt: skip
def test_invalid_spec_messages(spec: dict[str, Any], expected: str) -> None:
    assert expected in error_of(manifest(**spec))


def test_missing_analyzer() -> None:
    data = manifest()
    del data["spec"]["analyzer"]
    assert error_of(data) == "spec.analyzer: required"


def test_llm_custom_provider_needs_base_url() -> None:
    msg = error_of(manifest(analyzer="llm", llm={"provider": "custom"}))
    assert msg == "spec.llm.baseURL: required when llm.provider is 'custom'"


def test_several_errors_one_line_each() -> None:
    msg = error_of(manifest(shards=0, batchSize=-1, analyzer="nope"))
    assert msg.splitlines() == [
        "spec.analyzer: unknown analyzer 'nope'; choose one of: algorithmic, emotion, llm, embedding, quality",
        "spec.shards: must be >= 1, got 0",
        "spec.batchSize: must be >= 1, got -1",
    ]


def test_metadata_and_api_version() -> None:
    data = manifest()
    data["metadata"]["name"] = "My_Run"
    data["apiVersion"] = "v1"
    msg = error_of(data)
    assert "apiVersion: must be 'rapanalyzer.io/v1alpha1', got 'v1'" in msg
    assert "metadata.name: must be a lowercase name" in msg
    data = manifest()
    del data["metadata"]
    assert error_of(data) == "metadata: required"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("", "the document is empty"),
        ("a: [1, 2\n", "not valid YAML at line"),
        ("kind: ScrapeJob\n", "kind: expected 'AnalysisRun', got 'ScrapeJob'"),
        ("kind: AnalysisRun\n---\nkind: AnalysisRun\n", "expected one YAML document, got 2"),
    ],
)
def test_document_level_errors(text: str, expected: str) -> None:
    with pytest.raises(RunSpecError, match=expected):
        load_manifest(text)


def test_missing_file() -> None:
    with pytest.raises(RunSpecError, match="cannot read"):
        load_manifest_file(ROOT / "does-not-exist.yaml")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_fixtures_say_what_they_promise(path: Path) -> None:
    # The CLI tests rely on these `# expect:` lines; keep them true here.
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    expected = first.removeprefix("# expect: ")
    with pytest.raises((ValidationError, RunSpecError)) as info:
        load_manifest_file(path)
    exc = info.value
    text = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    assert expected in text


def test_immutable_changes() -> None:
    old = load_manifest(manifest(shards=4)).spec
    new = load_manifest(manifest(shards=4, parallelism=2, suspend=True)).spec
    assert immutable_changes(old, new) == []
    newer = load_manifest(manifest(shards=8, batchSize=10)).spec
    assert immutable_changes(old, newer) == ["batchSize", "shards"]


# ---- spec.podTemplate ------------------------------------------------------------------

POD_TEMPLATE: dict[str, Any] = {
    "labels": {"team": "data", "example.com/cost-center": "c-42", "empty": ""},
    "annotations": {"example.com/owner": "Data team <data@example.com>"},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ],
    "priorityClassName": "batch-low",
    "resources": {"requests": {"cpu": 1}},
}


def test_pod_template_loads_and_round_trips() -> None:
    spec = load_manifest(manifest(podTemplate=POD_TEMPLATE)).spec
    tpl = spec.pod_template
    assert tpl is not None and tpl.priority_class_name == "batch-low"
    assert tpl.tolerations is not None and tpl.tolerations[0].operator == "Equal"  # defaulted
    assert tpl.resources is not None and tpl.resources.requests == {"cpu": "1"}
    dumped = spec.dump()["podTemplate"]
    assert dumped["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert dumped["tolerations"][2] == {
        "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300
    }  # fmt: skip
    assert AnalysisRunSpec.model_validate(spec.dump()) == spec


def test_pod_template_is_shared_by_scrapejobs_and_their_analyze_template() -> None:
    from analyzer_runtime.contract import load_scrape_manifest

    scrape = {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "ScrapeJob",
        "metadata": {"name": "s"},
        "spec": {
            "artists": ["A"],
            "genius": {"tokenSecretRef": {"name": "g", "key": "t"}},
            "podTemplate": POD_TEMPLATE,
            "analyze": {"analyzer": "emotion", "podTemplate": {"labels": {"team": "x"}}},
        },
    }
    spec = load_scrape_manifest(scrape).spec
    assert spec.pod_template == load_manifest(manifest(podTemplate=POD_TEMPLATE)).spec.pod_template
    assert spec.analyze is not None and spec.analyze.pod_template is not None
    scrape["spec"]["resources"] = {"limits": {"memory": "1Gi"}}
    with pytest.raises(ValidationError) as info:
        load_scrape_manifest(scrape)
    assert format_validation_error(info.value).startswith(
        "spec.podTemplate: set spec.resources or spec.podTemplate.resources, not both"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({"labels": {"rapanalyzer.io/run": "x"}},
         "spec.podTemplate.labels: 'rapanalyzer.io/run' is reserved for the operator; choose "
         "another key"),
        ({"labels": {"app.kubernetes.io/managed-by": "me"}},
         "spec.podTemplate.labels: 'app.kubernetes.io/managed-by' is reserved for the operator"),
        ({"labels": {"job-name": "x"}}, "spec.podTemplate.labels: 'job-name' is reserved for the "
         "Job controller"),
        ({"labels": {"batch.kubernetes.io/job-name": "x"}},
         "spec.podTemplate.labels: 'batch.kubernetes.io/job-name' is reserved for the Job "
         "controller"),
        ({"annotations": {"rapanalyzer.io/x": "y"}},
         "spec.podTemplate.annotations: 'rapanalyzer.io/x' is reserved for the operator"),
        ({"labels": {"bad key": "x"}}, "spec.podTemplate.labels: key 'bad key': the name must be"),
        ({"labels": {"Example.com/x": "x"}},
         "spec.podTemplate.labels: key 'Example.com/x': the prefix before '/' must be a DNS "
         "subdomain"),
        ({"labels": {"team": "not ok"}}, "spec.podTemplate.labels: value of 'team': must be empty or at "
         "most 63 characters"),
        ({"labels": {"team": "x" * 64}}, "spec.podTemplate.labels.team: must be at most 63 "
         "characters"),
        ({"nodeSelector": {"/x": "y"}},
         "spec.podTemplate.nodeSelector: key '/x': the prefix before '/' must not be empty"),
        ({"annotations": {"a": "x" * (256 * 1024)}},
         "spec.podTemplate.annotations: must be at most 262144 bytes together"),
        ({"priorityClassName": "Low"}, "spec.podTemplate.priorityClassName: must be a lowercase "
         "name"),
        ({"tolerations": [{"value": "x"}]},
         "spec.podTemplate.tolerations[0].operator: a toleration without a key must have "
         "operator Exists"),
        ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
         "spec.podTemplate.tolerations[0].value: must be empty when operator is Exists"),
        ({"tolerations": [{"key": "k", "tolerationSeconds": 5}]},
         "spec.podTemplate.tolerations[0].tolerationSeconds: only allowed with effect NoExecute"),
        ({"tolerations": [{"key": "k", "operator": "In"}]},
         "spec.podTemplate.tolerations[0].operator: must be one of: Exists, Equal; got 'In'"),
        ({"tolerations": [{"key": "k", "effect": "NoRun"}]},
         "spec.podTemplate.tolerations[0].effect: must be one of: NoSchedule, PreferNoSchedule, "
         "NoExecute; got 'NoRun'"),
        ({"tolerations": [{"key": "k", "effect": "NoExecute", "tolerationSeconds": 2**31}]},
         "spec.podTemplate.tolerations[0].tolerationSeconds: must be <= 2147483647"),
        ({"nodeSelector": {"a": "b\x00"}},
         r"spec.podTemplate.nodeSelector: must not contain NUL (\0) characters"),
        ({"annotations": {"a": "b\x00"}},
         r"spec.podTemplate.annotations: must not contain NUL (\0) characters"),
        ({"labelz": {}}, "spec.podTemplate.labelz: unknown field 'labelz'; did you mean 'labels'?"),
    ],
)  # fmt: skip
def test_pod_template_refusals(template: dict[str, Any], expected: str) -> None:
    msg = error_of(manifest(podTemplate=template))
    assert any(line.startswith(expected) for line in msg.splitlines()), msg


def test_resources_in_one_place_only() -> None:
    both = manifest(resources={"limits": {"memory": "1Gi"}},
                    podTemplate={"resources": {"requests": {"cpu": 1}}})  # fmt: skip
    assert error_of(both) == (
        "spec.podTemplate: set spec.resources or spec.podTemplate.resources, not both "
        "(spec.resources is a shorthand for spec.podTemplate.resources)"
    )
    shorthand = manifest(resources={"limits": {"memory": "1Gi"}}, podTemplate={"labels": {}})
    assert load_manifest(shorthand).spec.resources is not None


def test_pod_template_cannot_change_after_planning() -> None:
    old = load_manifest(manifest(podTemplate=POD_TEMPLATE)).spec
    changed = load_manifest(manifest(podTemplate={**POD_TEMPLATE, "priorityClassName": "hi"})).spec
    assert immutable_changes(old, changed) == ["podTemplate"]
    added = load_manifest(manifest()).spec
    assert immutable_changes(added, old) == ["podTemplate"]
