"""Generate the CRDs from the pydantic models (the controller-gen of this repo).

    python -m analyzer_runtime.contract.crd [OUTDIR]          # write OUTDIR/{analysisrun,scrapejob}.yaml
    python -m analyzer_runtime.contract.crd --check [OUTDIR]  # exit 1 if the files are stale

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3
schema: every node typed, no $ref, no `anyOf` except the int-or-string idiom, no
`additionalProperties: false`. `openapi_schema` performs that translation so the
models stay the only place where fields, limits and descriptions are written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from analyzer_runtime.contract.models import API_GROUP, API_VERSION, KIND, AnalysisRunSpec
from analyzer_runtime.contract.scrape_models import SCRAPE_KIND, ScrapeJobSpec
from analyzer_runtime.contract.scrape_status_model import ScrapeJobStatus
from analyzer_runtime.contract.status_model import AnalysisRunStatus
from analyzer_runtime.contract.types import NUL_FREE_PATTERN

# JSON Schema keywords that survive into the CRD; anything else pydantic emits
# (title, $defs, ...) is dropped so that a pydantic upgrade cannot leak new keywords.
_KEPT = {
    "type",
    "description",
    "enum",
    "default",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "nullable",
}

HEADER = (
    "# Generated from analyzer_runtime/contract/models.py by `make crds`"
    " (python -m analyzer_runtime.contract.crd crds).\n# Do not edit by hand.\n"
)


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `model` (input side, camelCase names)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    return _convert(raw, defs)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref` (also pydantic's `allOf: [{$ref}]` form); the referring node's own
    keywords (its field description, default) win over the referenced class's."""
    node = dict(node)
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        node.pop("allOf")
        node["$ref"] = all_of[0]["$ref"]
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    return {**_resolve(target, defs), **node}


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if node.get("x-kubernetes-int-or-string"):
        # The one anyOf Kubernetes accepts in a structural schema, kept verbatim.
        return {k: v for k, v in node.items() if k != "title"}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express anyOf {branches} structurally; use one type")
        # Optional[X]: omitting the field is how a manifest says "unset", so null is
        # only allowed where a model asks for it (`nullable` in json_schema_extra).
        node = {**_resolve(branches[0], defs), **node}
        node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEPT:
            out[key] = value
        elif key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {name: _convert(sub, defs) for name, sub in sorted(value.items())}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties" and isinstance(value, dict):
            out["additionalProperties"] = _convert(value, defs)
    if out.get("default", 0) is None:
        del out["default"]
    # JSON Schema 2020-12 puts the bound in exclusiveMinimum; OpenAPI v3.0 wants a flag.
    for excl, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(excl), int | float) and not isinstance(out[excl], bool):
            out[bound] = out[excl]
            out[excl] = True
    if "required" in out:
        out["required"] = sorted(out["required"])
    if "type" not in out and "properties" in out:
        out["type"] = "object"
    return out


def forbid_nul(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with NUL_FREE_PATTERN on every string without a pattern or enum of its
    own: the API-server side of SpecModel's NUL check (Postgres text and jsonb cannot
    hold NUL). Patterns a model sets already exclude NUL (a unit test checks); map keys
    cannot carry a pattern in a structural schema and are checked by the models only.
    Changes and returns `schema`."""
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        schema["pattern"] = NUL_FREE_PATTERN
    for sub in schema.get("properties", {}).values():
        forbid_nul(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            forbid_nul(schema[key])
    return schema


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Why `schema` is not structural (empty when it is). Used by the tests."""
    problems: list[str] = []
    here = path or "<root>"
    for bad in ("$ref", "$defs", "allOf", "oneOf", "title"):
        if bad in schema:
            problems.append(f"{here}: has {bad}")
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{here}: anyOf outside the int-or-string idiom")
    typed = (
        "type" in schema
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    )
    if not typed:
        problems.append(f"{here}: no type")
    if schema.get("additionalProperties") is False:
        problems.append(f"{here}: additionalProperties: false")
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        problems.append(f"{here}: both properties and additionalProperties")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}{{}}")
    return problems


def _status_schema(model: type[BaseModel] = AnalysisRunStatus) -> dict[str, Any]:
    schema = openapi_schema(model)
    # kopf keeps its own bookkeeping under status (status.kopf, handler results);
    # pruning it would make the operator re-run handlers, so unknown keys are kept.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    # A status patch from kopf may arrive before the first phase is computed.
    schema.pop("required", None)
    # Only the operator writes status; API-server defaults there would invent values
    # (a "0/0" progress on a run that was never looked at).
    _strip_defaults(schema)
    return schema


def _strip_defaults(schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    for sub in schema.get("properties", {}).values():
        _strip_defaults(sub)
    if isinstance(schema.get("items"), dict):
        _strip_defaults(schema["items"])


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Analyzer", "type": "string", "jsonPath": ".spec.analyzer"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"},
    {"name": "Shards", "type": "integer", "jsonPath": ".spec.shards"},
    {"name": "ETA", "type": "string", "jsonPath": ".status.eta", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


SCRAPE_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Artists", "type": "string", "jsonPath": ".status.artists"},
    {"name": "Tracks", "type": "integer", "jsonPath": ".status.newTracks"},
    {"name": "Duplicates", "type": "integer", "jsonPath": ".status.duplicatesSkipped",
     "priority": 1},
    {"name": "Analysis", "type": "string", "jsonPath": ".status.analysisRun", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]  # fmt: skip


def analysisrun_crd() -> dict[str, Any]:
    """The `CustomResourceDefinition` object for AnalysisRun."""
    return _crd(
        KIND,
        "AnalysisRun analyzes a selection of tracks with one analyzer, split "
        "into shards that run as one Indexed Job.",
        AnalysisRunSpec, AnalysisRunStatus, PRINTER_COLUMNS, short_name="ar",
    )  # fmt: skip


def scrapejob_crd() -> dict[str, Any]:
    """The `CustomResourceDefinition` object for ScrapeJob."""
    return _crd(
        SCRAPE_KIND,
        "ScrapeJob scrapes the songs of a list of artists from Genius (optionally "
        "enriched from Spotify) into the corpus, split into shards that run as one "
        "Indexed Job, and can chain an AnalysisRun over the new tracks.",
        ScrapeJobSpec, ScrapeJobStatus, SCRAPE_PRINTER_COLUMNS, short_name="sj",
    )  # fmt: skip


def _crd(
    kind: str,
    description: str,
    spec_model: type[BaseModel],
    status_model: type[BaseModel],
    columns: list[dict[str, Any]],
    *,
    short_name: str,
) -> dict[str, Any]:
    plural = kind.lower() + "s"
    root = {
        "type": "object",
        "description": description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion of this object: " + f"{API_GROUP}/{API_VERSION}.",
            },
            "kind": {"type": "string", "description": "Kind of this object: " + kind + "."},
            "metadata": {"type": "object"},
            "spec": forbid_nul(openapi_schema(spec_model)),
            "status": _status_schema(status_model),
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind,
                "listKind": kind + "List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["rapanalyzer"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def render(obj: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, no line folding that depends on PyYAML defaults."""
    return HEADER + yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=4096)


# File name -> builder.
CRDS: dict[str, Callable[[], dict[str, Any]]] = {
    "analysisrun.yaml": analysisrun_crd,
    "scrapejob.yaml": scrapejob_crd,
}


def generated_files() -> dict[str, str]:
    """File name -> exact text `make crds` writes."""
    return {name: render(build()) for name, build in CRDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", default="crds", help="directory (default: crds)")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir)
    stale = []
    for name, text in generated_files().items():
        path = outdir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            outdir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print("stale: " + ", ".join(map(str, stale)) + " (run `make crds`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
