"""The committed CRD is exactly what the spec models generate, and it is structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from analyzer_runtime.contract import AnalyzerName
from analyzer_runtime.contract.crd import generated_files, main, structural_problems

ROOT = Path(__file__).resolve().parents[2]


def crd() -> dict[str, Any]:
    return yaml.safe_load(generated_files()["analysisrun.yaml"])


def root_schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crds_match_the_models() -> None:
    for name, text in generated_files().items():
        path = ROOT / "crds" / name
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} differs from what the spec models generate: run `make crds` and commit it"
        )


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()


def test_schema_is_structural() -> None:
    assert structural_problems(root_schema()) == []


def test_structural_check_catches_problems() -> None:
    bad = {"type": "object", "properties": {"a": {"$ref": "#/x"}, "b": {"anyOf": []}}}
    problems = structural_problems(bad)
    assert ".a: has $ref" in problems and ".a: no type" in problems
    assert ".b: anyOf outside the int-or-string idiom" in problems


def test_names_and_version() -> None:
    c = crd()
    assert c["metadata"]["name"] == "analysisruns.rapanalyzer.io"
    spec = c["spec"]
    assert spec["group"] == "rapanalyzer.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["ar"]
    assert spec["names"]["categories"] == ["rapanalyzer"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    cols = {c["name"]: c for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    for name in ("Analyzer", "Phase", "Progress", "Failed", "Shards", "Age"):
        assert name in cols
    assert cols["Failed"] == {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"}
    assert cols["Shards"]["jsonPath"] == ".spec.shards"
    assert cols["Age"]["type"] == "date"


def test_spec_schema_keeps_types_limits_defaults_descriptions() -> None:
    spec = root_schema()["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["analyzer"]
    assert props["analyzer"]["enum"] == list(AnalyzerName)
    assert props["analyzer"]["type"] == "string"
    assert props["fallbackAnalyzer"]["enum"] == ["algorithmic", "emotion"]
    assert props["shards"] | {"description": ""} == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 1, "description": ""
    }  # fmt: skip
    assert props["batchSize"]["default"] == 50
    assert props["selection"]["properties"]["onlyMissing"]["default"] is True
    assert props["selection"]["properties"]["idRange"]["required"] == ["from", "to"]
    assert props["llm"]["properties"]["baseURL"]["type"] == "string"
    assert props["llm"]["properties"]["tracksPerRequest"]["maximum"] == 50
    assert props["database"]["properties"]["secretRef"]["properties"]["key"]["default"] == "url"
    quantity = props["resources"]["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["anyOf"] == [{"type": "integer"}, {"type": "string"}]

    def walk(node: dict[str, Any], path: str) -> None:
        assert "title" not in node, path
        if path.count(".") == 1 or "properties" not in node:
            assert node.get("description"), f"{path} has no description"
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")

    for name, sub in props.items():
        walk(sub, f"spec.{name}")


def test_cross_field_rules_are_cel() -> None:
    rules = root_schema()["properties"]["spec"]["x-kubernetes-validations"]
    parallelism = next(r for r in rules if "parallelism" in r["rule"])
    assert parallelism["rule"] == "!has(self.parallelism) || self.parallelism <= self.shards"
    assert parallelism["message"].startswith("must be <= spec.shards")
    assert parallelism["fieldPath"] == ".parallelism"
    # The API server refuses messageExpressions over the CEL cost budget (seen with
    # string(int) formatting): keep messages static.
    assert all("messageExpression" not in r for r in rules)


def test_status_schema_is_real_and_keeps_kopf_fields() -> None:
    status = root_schema()["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert "required" not in status
    props = status["properties"]
    assert props["phase"]["enum"] == ["Pending", "Running", "Suspended", "Succeeded", "Failed"]
    conditions = props["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["items"]["required"] == ["status", "type"]
    assert props["eta"]["nullable"] is True


def test_cli_writes_and_checks(tmp_path: Path) -> None:
    assert main(["--check", str(tmp_path)]) == 1
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    assert (tmp_path / "analysisrun.yaml").read_text() == generated_files()["analysisrun.yaml"]


def test_pod_template_schema_and_its_rules() -> None:
    spec = root_schema()["properties"]["spec"]
    tpl = spec["properties"]["podTemplate"]["properties"]
    assert set(tpl) == {
        "labels", "annotations", "nodeSelector", "tolerations", "priorityClassName", "resources"
    }  # fmt: skip
    assert tpl["labels"]["additionalProperties"]["maxLength"] == 63
    assert tpl["resources"] == spec["properties"]["resources"] | {
        "description": tpl["resources"]["description"]
    }
    toleration = tpl["tolerations"]["items"]
    assert toleration["properties"]["operator"]["enum"] == ["Exists", "Equal"]
    assert toleration["properties"]["effect"]["enum"] == ["NoSchedule", "PreferNoSchedule",
                                                          "NoExecute"]  # fmt: skip
    assert len(toleration["x-kubernetes-validations"]) == 3
    rule = next(r for r in spec["x-kubernetes-validations"] if "podTemplate" in r["rule"])
    assert rule["rule"] == (
        "!has(self.resources) || !has(self.podTemplate) || !has(self.podTemplate.resources)"
    )
    assert rule["fieldPath"] == ".podTemplate.resources"


def test_status_shards_schema_is_compact() -> None:
    shards = root_schema()["properties"]["status"]["properties"]["shards"]
    assert shards["type"] == "object"
    props = shards["properties"]
    assert set(props) == {"total", "done", "running", "retrying", "failed", "pending", "detail"}
    assert props["failed"]["properties"]["indexes"]["type"] == "string"
    assert "lastHeartbeat" not in props["detail"]["items"]["properties"]


def test_reserved_pod_label_and_annotation_keys_are_refused_by_cel_too() -> None:
    from analyzer_runtime.contract.types import (
        RESERVED_ANNOTATION_PREFIXES,
        RESERVED_LABEL_PREFIXES,
        RESERVED_LABELS,
    )

    tpl = root_schema()["properties"]["spec"]["properties"]["podTemplate"]
    rules = {r["fieldPath"]: r for r in tpl["x-kubernetes-validations"]}
    labels, annotations = rules[".labels"], rules[".annotations"]
    assert labels["rule"].startswith("!has(self.labels) || self.labels.all(k, ")
    for prefix in RESERVED_LABEL_PREFIXES:
        assert f"!k.startsWith('{prefix}')" in labels["rule"] and prefix in labels["message"]
    for name in RESERVED_LABELS:
        assert f"k != '{name}'" in labels["rule"] and name in labels["message"]
    for prefix in RESERVED_ANNOTATION_PREFIXES:
        assert f"!k.startsWith('{prefix}')" in annotations["rule"]
