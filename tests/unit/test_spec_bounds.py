"""validate == run: every limit Postgres or a later stage enforces is a limit of the spec
models (so `rap-analyzer validate` refuses it) and of the generated CRDs (so `kubectl
apply` does): int4 ranges, NUL characters, varchar widths, implemented analyzer
versions, and manifests that are not UTF-8."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from analyzer_runtime.contract import (
    AnalysisRunSpec,
    RunSpecError,
    describe_error,
    load_manifest,
    load_manifest_file,
    load_scrape_manifest,
)
from analyzer_runtime.contract.crd import forbid_nul, generated_files
from analyzer_runtime.contract.models import analyzer_version_rules
from analyzer_runtime.contract.types import (
    ANALYZER_TYPE_MAX_LENGTH,
    ANALYZER_VERSIONS,
    DNS_SUBDOMAIN_PATTERN,
    INT32_MAX,
    MODEL_VERSION_MAX_LENGTH,
    NUL_FREE_PATTERN,
    QUANTITY_PATTERN,
    AnalyzerName,
)

OVER = INT32_MAX + 1
GENIUS = {"tokenSecretRef": {"name": "genius", "key": "token"}}


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run-1"},
        "spec": {"analyzer": "algorithmic", **spec},
    }


def scrape(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "ScrapeJob",
        "metadata": {"name": "s"},
        "spec": {"genius": GENIUS, "artists": ["A"], **spec},
    }


def error_of(data: dict[str, Any] | str | bytes) -> str:
    with pytest.raises(ValidationError) as info:
        load_manifest(data)
    return describe_error(info.value)


def scrape_error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        load_scrape_manifest(data)
    return describe_error(info.value)


# --- the CRDs: every number bounded, every string NUL-free ---------------------------


def spec_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for name, text in generated_files().items():
        root = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out[name] = root["properties"]["spec"]
    return out


def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("crd", ["analysisrun.yaml", "scrapejob.yaml"])
def test_every_number_in_the_crd_spec_has_a_maximum(crd: str) -> None:
    unbounded = [
        path
        for path, node in walk(spec_schemas()[crd], "spec")
        if node.get("type") in ("integer", "number") and "maximum" not in node
    ]
    assert unbounded == []
    # ... and nothing is wider than a Postgres integer.
    too_wide = [
        path
        for path, node in walk(spec_schemas()[crd], "spec")
        if node.get("type") == "integer" and node["maximum"] > INT32_MAX
    ]
    assert too_wide == []


@pytest.mark.parametrize("crd", ["analysisrun.yaml", "scrapejob.yaml"])
def test_every_string_in_the_crd_spec_refuses_nul(crd: str) -> None:
    strings = [
        (path, node)
        for path, node in walk(spec_schemas()[crd], "spec")
        if node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
    ]
    assert len(strings) > 10
    for path, node in strings:
        if "enum" in node:
            assert all("\x00" not in v for v in node["enum"]), path
            continue
        assert "pattern" in node, f"{path} has no pattern"
        # Only patterns known to exclude NUL (QUANTITY_PATTERN's and DNS names' classes do).
        allowed = (NUL_FREE_PATTERN, QUANTITY_PATTERN, DNS_SUBDOMAIN_PATTERN)
        assert node["pattern"] in allowed, path
        assert re.search(node["pattern"], "1\x00") is None, path


def test_nul_free_pattern_is_what_the_models_check() -> None:
    assert NUL_FREE_PATTERN == "^[^\\x00]*$"  # RE2 (the API server) reads it the same way
    for text in ("", "Nas", "multi\nline", "ünïcødé ✓"):
        assert re.search(NUL_FREE_PATTERN, text), text
    for text in ("\x00", "Na\x00s", "x\x00"):
        assert re.search(NUL_FREE_PATTERN, text) is None, text
    for pattern in (QUANTITY_PATTERN, DNS_SUBDOMAIN_PATTERN):
        assert re.search(pattern, "1") and re.search(pattern, "1\x00") is None


def test_forbid_nul_keeps_own_patterns_enums_and_int_or_string() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "enum": ["x"]},
            "c": {"type": "string", "pattern": "^x$"},
            "d": {"type": "array", "items": {"type": "string"}},
            "e": {"type": "object", "additionalProperties": {"type": "string"}},
            "f": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}]},
            "g": {"type": "integer"},
        },
    }
    props = forbid_nul(schema)["properties"]
    assert props["a"]["pattern"] == NUL_FREE_PATTERN
    assert "pattern" not in props["b"] and props["c"]["pattern"] == "^x$"
    assert props["d"]["items"]["pattern"] == NUL_FREE_PATTERN
    assert props["e"]["additionalProperties"]["pattern"] == NUL_FREE_PATTERN
    assert "pattern" not in props["f"] and "pattern" not in props["g"]


def test_status_schemas_are_left_alone() -> None:
    # Only the operator writes status; a pattern there could only make its patches fail.
    for text in generated_files().values():
        root = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        status = root["properties"]["status"]
        assert all(n.get("pattern") != NUL_FREE_PATTERN for _, n in walk(status, "status"))


# --- integers: Postgres int4 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"selection": {"idRange": {"from": OVER, "to": OVER}}},
         f"spec.selection.idRange.from: must be <= 2147483647, got {OVER}"),
        ({"selection": {"idRange": {"from": 1, "to": OVER}}},
         f"spec.selection.idRange.to: must be <= 2147483647, got {OVER}"),
        ({"selection": {"limit": OVER}}, f"spec.selection.limit: must be <= 2147483647, got {OVER}"),
        ({"selection": {"minWords": 10**12}},
         "spec.selection.minWords: must be <= 2147483647, got 1000000000000"),
        ({"ttlSecondsAfterFinished": OVER},
         f"spec.ttlSecondsAfterFinished: must be <= 2147483647, got {OVER}"),
        ({"activeDeadlineSeconds": OVER},
         f"spec.activeDeadlineSeconds: must be <= 2147483647, got {OVER}"),
        ({"rateLimit": {"requestsPerMinute": 100_001}},
         "spec.rateLimit.requestsPerMinute: must be <= 100000, got 100001"),
        ({"shards": 1000, "parallelism": 1001}, "spec.parallelism: must be <= 1000, got 1001"),
        ({"analyzer": "llm", "llm": {"maxInputTokens": OVER}},
         f"spec.llm.maxInputTokens: must be <= 2000000, got {OVER}"),
        ({"analyzer": "llm",
          "llm": {"pricing": {"promptPerMillion": 1e9, "completionPerMillion": 1}}},
         "spec.llm.pricing.promptPerMillion: must be <= 10000.0, got 1000000000.0"),
    ],
)  # fmt: skip
def test_integers_beyond_their_column_are_refused(spec: dict[str, Any], expected: str) -> None:
    assert expected in error_of(manifest(**spec)).splitlines()


def test_int32_max_itself_is_accepted() -> None:
    sel = {"idRange": {"from": 0, "to": INT32_MAX}, "limit": INT32_MAX, "minWords": INT32_MAX}
    spec = load_manifest(manifest(selection=sel, ttlSecondsAfterFinished=INT32_MAX)).spec
    assert spec.selection.id_range is not None and spec.selection.id_range.to == INT32_MAX
    assert spec.selection.limit == spec.selection.min_words == INT32_MAX


def test_scrapejob_bounds_apply_to_its_fields_and_its_analyze_template() -> None:
    msg = scrape_error_of(scrape(rateLimit={"genius": {"requestsPerMinute": 10**6}}))
    assert msg == "spec.rateLimit.genius.requestsPerMinute: must be <= 100000, got 1000000"
    msg = scrape_error_of(scrape(analyze={"analyzer": "emotion", "selection": {"limit": OVER}}))
    assert msg == f"spec.analyze.selection.limit: must be <= 2147483647, got {OVER}"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_floats_must_be_finite(value: str) -> None:
    text = yaml.safe_dump(manifest(retry={}))
    text = text.replace("retry: {}", f"retry: {{initialBackoffSeconds: {value}}}")
    msg = error_of(text)
    assert msg.startswith("spec.retry.initialBackoffSeconds: must be a finite number, got ")


# --- NUL characters: Postgres text and jsonb ----------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"selection": {"artists": ["Eminem", "Na\x00s"]}},
         r"spec.selection.artists: must not contain NUL (\0) characters, got 'Na\x00s' at [1]"),
        ({"analyzer": "llm", "llm": {}, "analyzerVersion": "v\x00"},
         r"spec.analyzerVersion: must not contain NUL (\0) characters, got 'v\x00'"),
        ({"selection": {"scrapeRun": "\x00"}},
         r"spec.selection.scrapeRun: must not contain NUL (\0) characters, got '\x00'"),
        ({"image": "img\x00:1"}, r"spec.image: must not contain NUL (\0) characters"),
        ({"database": {"secretRef": {"name": "pg", "key": "u\x00rl"}}},
         r"spec.database.secretRef.key: must not contain NUL (\0) characters"),
        ({"analyzer": "llm", "llm": {"model": "qwen\x00"}},
         r"spec.llm.model: must not contain NUL (\0) characters"),
        ({"analyzer": "llm", "llm": {"provider": "custom", "baseURL": "http://x\x00"}},
         r"spec.llm.baseURL: must not contain NUL (\0) characters"),
        ({"analyzer": "llm", "llm": {"apiKeySecretRef": {"name": "k\x00", "key": "k"}}},
         r"spec.llm.apiKeySecretRef.name: must not contain NUL (\0) characters"),
        ({"resources": {"requests": {"c\x00pu": "1"}}},
         r"spec.resources.requests: must not contain NUL (\0) characters, got 'c\x00pu' as a key"),
        ({"resources": {"limits": {"memory": "1Gi\x00"}}},
         "spec.resources.limits.memory: must be a Kubernetes quantity"),
    ],
)  # fmt: skip
def test_nul_in_any_string_is_refused(spec: dict[str, Any], expected: str) -> None:
    assert any(line.startswith(expected) for line in error_of(manifest(**spec)).splitlines())


def test_nul_in_metadata_is_refused() -> None:
    data = manifest()
    data["metadata"] |= {"namespace": "ns\x00", "labels": {"team": "a\x00"}}
    assert error_of(data).splitlines() == [
        r"metadata.namespace: must not contain NUL (\0) characters, got 'ns\x00'",
        r"metadata.labels: must not contain NUL (\0) characters, got 'a\x00' at .team",
    ]


def test_nul_in_a_scrapejob_is_refused() -> None:
    msg = scrape_error_of(scrape(artists=["A", "B\x00"]))
    assert msg == r"spec.artists: must not contain NUL (\0) characters, got 'B\x00' at [1]"
    msg = scrape_error_of(scrape(genius={**GENIUS, "apiBaseURL": "http://g\x00"}))
    assert msg.startswith(r"spec.genius.apiBaseURL: must not contain NUL (\0) characters")
    msg = scrape_error_of(scrape(artists=None, artistsFrom={"configMapKeyRef": {"name": "\x00"}}))
    assert msg.startswith(
        r"spec.artistsFrom.configMapKeyRef.name: must not contain NUL (\0) characters"
    )
    msg = scrape_error_of(scrape(analyze={"analyzer": "emotion", "image": "i\x00"}))
    assert msg.startswith(r"spec.analyze.image: must not contain NUL (\0) characters")


def test_yaml_nul_escape_is_a_field_error_not_a_crash() -> None:
    text = yaml.safe_dump(manifest()) + '  selection: {artists: ["Na\\0s"]}\n'
    assert "\\0" in text and "\x00" not in text
    assert error_of(text) == (
        r"spec.selection.artists: must not contain NUL (\0) characters, got 'Na\x00s' at [0]"
    )
    # A raw NUL character is not YAML at all: a document error, also not a crash.
    with pytest.raises(RunSpecError, match="not valid YAML"):
        load_manifest(text.replace("\\0", "\x00"))


def test_lone_surrogates_are_refused_too() -> None:
    # YAML's "\ud800" is a string no UTF-8 encoder (and so no database driver) takes.
    text = yaml.safe_dump(manifest()) + '  selection: {artists: ["Na\\ud800s"]}\n'
    msg = error_of(text)
    assert msg.startswith("spec.selection.artists[0]: must not contain unpaired UTF-16 surrogates")
    msg = error_of(manifest(resources={"requests": {"c\ud800": "1"}}))
    assert msg.startswith("spec.resources.requests: must not contain unpaired UTF-16 surrogates")


def test_status_with_nul_is_not_the_specs_business() -> None:
    data = manifest()
    data["status"] = {"message": "\x00"}
    assert load_manifest(data).status == {"message": "\x00"}


# --- analyzerVersion: varchar(100), and only versions the analyzer implements ---------


def test_every_analyzer_has_versions_and_fits_the_columns() -> None:
    assert set(ANALYZER_VERSIONS) == set(AnalyzerName)
    for analyzer, versions in ANALYZER_VERSIONS.items():
        assert len(analyzer.value) <= ANALYZER_TYPE_MAX_LENGTH
        assert versions is None or (
            versions and all(0 < len(v) <= MODEL_VERSION_MAX_LENGTH for v in versions)
        )
    assert ANALYZER_VERSIONS[AnalyzerName.llm] is None


@pytest.mark.parametrize(
    ("analyzer", "version"), [("algorithmic", "2.0.0"), ("emotion", "1.0"), ("emotion", "x")]
)
def test_unimplemented_versions_are_refused(analyzer: str, version: str) -> None:
    msg = error_of(manifest(analyzer=analyzer, analyzerVersion=version))
    assert msg == f"spec.analyzerVersion: {analyzer} implements 1.0.0; got '{version}'"


def test_implemented_versions_and_llm_labels_are_accepted() -> None:
    for analyzer in ("algorithmic", "emotion"):
        spec = load_manifest(manifest(analyzer=analyzer, analyzerVersion="1.0.0")).spec
        assert spec.analyzer_version == "1.0.0"
    label = "novita:qwen/qwen3-4b-fp8@p1/k5"
    spec = load_manifest(manifest(analyzer="llm", llm={}, analyzerVersion=label)).spec
    assert spec.analyzer_version == label
    longest = "v" * MODEL_VERSION_MAX_LENGTH
    assert load_manifest(manifest(analyzer="llm", llm={}, analyzerVersion=longest))


def test_analyzer_version_longer_than_the_column_is_refused() -> None:
    msg = error_of(manifest(analyzer="llm", llm={}, analyzerVersion="v" * 101))
    assert msg == "spec.analyzerVersion: must be at most 100 characters"


def test_scrapejob_analyze_template_checks_the_version() -> None:
    msg = scrape_error_of(scrape(analyze={"analyzer": "algorithmic", "analyzerVersion": "9"}))
    assert msg == "spec.analyze.analyzerVersion: algorithmic implements 1.0.0; got '9'"


def test_the_crd_carries_the_version_table_as_cel() -> None:
    rules = analyzer_version_rules()
    fixed = {a: v for a, v in ANALYZER_VERSIONS.items() if v is not None}
    assert len(rules) == len(fixed)
    for rule, (analyzer, versions) in zip(rules, fixed.items(), strict=True):
        assert f"self.analyzer != '{analyzer}'" in rule["rule"]
        assert all(f"'{v}'" in rule["rule"] for v in versions)
        assert rule["message"] == f"{analyzer} implements {', '.join(versions)}"
        assert rule["fieldPath"] == ".analyzerVersion"
        assert "messageExpression" not in rule
    for schema in spec_schemas().values():
        template = schema if "analyzer" in schema["properties"] else None
        template = template or schema["properties"]["analyze"]
        assert all(r in template["x-kubernetes-validations"] for r in rules)
        assert template["properties"]["analyzerVersion"]["maxLength"] == 100
    schema = AnalysisRunSpec.model_json_schema(by_alias=True)
    assert schema["properties"]["analyzerVersion"]["anyOf"][0]["maxLength"] == 100


# --- encodings: manifests are UTF-8 -------------------------------------------------

TEXT = yaml.safe_dump(manifest(selection={"artists": ["Beyoncé"]}), allow_unicode=True)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode("utf-16"),
         "the manifest is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
         "the manifest is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"),
        (TEXT.encode("utf-32"),
         "the manifest is UTF-32 (it starts with a UTF-32 byte-order mark); save it as UTF-8"),
        (TEXT.encode("utf-16-le"), "the manifest looks like UTF-16 without a byte-order mark"),
        (TEXT.encode("utf-32-be"), "the manifest looks like UTF-32 without a byte-order mark"),
        (TEXT.encode("latin-1"),
         f"the manifest is not valid UTF-8 (byte 0xe9 at offset {TEXT.index('é')}); "
         "save it as UTF-8"),
    ],
)  # fmt: skip
def test_non_utf8_bytes_say_what_they_are(data: bytes, expected: str) -> None:
    with pytest.raises(RunSpecError) as info:
        load_manifest(data)
    assert str(info.value).startswith(expected)
    assert str(info.value).endswith("save it as UTF-8")
    with pytest.raises(RunSpecError):
        load_scrape_manifest(data)


def test_utf8_bytes_with_or_without_a_bom_load() -> None:
    for data in (TEXT.encode(), codecs.BOM_UTF8 + TEXT.encode()):
        assert load_manifest(data).spec.selection.artists == ["Beyoncé"]


def test_manifest_file_in_latin1_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(TEXT.encode("latin-1"))
    with pytest.raises(RunSpecError, match=r"run\.yaml is not valid UTF-8 \(byte 0xe9 at offset"):
        load_manifest_file(path)
    path.write_bytes(codecs.BOM_UTF8 + TEXT.encode())
    assert load_manifest_file(path).spec.selection.artists == ["Beyoncé"]
