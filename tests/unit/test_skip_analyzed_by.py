"""selection.skipAnalyzedBy (issue 21): the spec field, its CRD schema, and the
planner's selection SQL (names are bound parameters, never part of the SQL text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from analyzer_runtime.contract import format_validation_error, load_manifest
from analyzer_runtime.contract.crd import generated_files
from analyzer_runtime.ledger import planner

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ["qwen-3-4b-fp8", "ollama:llama3.2:3b"]


def manifest(**selection: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rapanalyzer.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "llm-new"},
        "spec": {"analyzer": "algorithmic", "selection": selection},
    }


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        load_manifest(data)
    return format_validation_error(info.value)


def test_loads_and_dumps_camel_case() -> None:
    m = load_manifest(manifest(skipAnalyzedBy=LEGACY))
    assert m.spec.selection.skip_analyzed_by == LEGACY
    assert m.spec.dump()["selection"]["skipAnalyzedBy"] == LEGACY
    assert load_manifest(manifest()).spec.selection.skip_analyzed_by is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("qwen-3-4b-fp8", "spec.selection.skipAnalyzedBy: must be a list, got 'qwen-3-4b-fp8'"),
        ([""], "spec.selection.skipAnalyzedBy[0]: must not be empty"),
        (["x" * 51], "spec.selection.skipAnalyzedBy[0]: must be at most 50 characters"),
        ([f"a{i}" for i in range(33)], "spec.selection.skipAnalyzedBy: must have at most 32"),
        (["qwen\x00"], "must not contain NUL"),
        ([3], "spec.selection.skipAnalyzedBy[0]: must be a string, got 3"),
    ],
)
def test_refused_with_a_message(value: Any, expected: str) -> None:
    assert expected in error_of(manifest(skipAnalyzedBy=value))


def test_crd_schema_bounds_and_description() -> None:
    for name in ("analysisrun.yaml", "scrapejob.yaml"):  # the ScrapeJob's analyze template too
        text = generated_files()[name]
        assert (ROOT / "crds" / name).read_text(encoding="utf-8") == text
        assert (ROOT / "charts/rap-analyzer/crds" / name).read_text(encoding="utf-8") == text
    crd = yaml.safe_load(generated_files()["analysisrun.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    field = spec["properties"]["selection"]["properties"]["skipAnalyzedBy"]
    assert field["type"] == "array" and field["maxItems"] == 32
    assert field["items"]["type"] == "string"
    assert (field["items"]["minLength"], field["items"]["maxLength"]) == (1, 50)
    assert "qwen-3-4b-fp8" in field["description"] and "any version" in field["description"]


def test_selection_of_spec_and_sql_with_bound_names() -> None:
    spec = load_manifest(manifest(skipAnalyzedBy=LEGACY, limit=5)).spec.dump()
    sel = planner.selection_of(spec)
    assert sel.skip_analyzed_by == LEGACY
    sql, args = planner.selection_query(sel)
    assert "NOT EXISTS" in sql and "analyzer_type = ANY($3::text[])" in sql
    assert args == [LEGACY, 5]
    assert not any(name in sql for name in LEGACY)  # never interpolated
    # Without the field the SQL has no such anti-join.
    plain, _ = planner.selection_query(planner.selection_of({"selection": {}}))
    assert "ANY(" not in plain
