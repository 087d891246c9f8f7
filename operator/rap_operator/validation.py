"""The operator's own validation, beyond what the CRD schema already refused."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from analyzer_runtime.analyzers import registry
from analyzer_runtime.spec import AnalysisRunManifest, format_validation_error, load_manifest
from rap_operator import kube, manifests
from rap_operator.config import OperatorConfig


class InvalidRun(Exception):
    """What a person must fix; shown as the Valid=False condition and a Warning Event."""


def check_spec(body: dict[str, Any]) -> AnalysisRunManifest:
    """Same models as the CLI: anything the schema let through but the models refuse."""
    doc = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    doc["metadata"] = {
        k: v
        for k, v in (body.get("metadata") or {}).items()
        if k in ("name", "namespace", "uid", "generation", "labels", "annotations")
    }
    try:
        manifest = load_manifest(doc)
    except ValidationError as exc:
        raise InvalidRun(format_validation_error(exc).strip()) from None
    except ValueError as exc:
        raise InvalidRun(str(exc)) from None
    name = manifest.spec.analyzer.value
    if name not in registry.available():
        raise InvalidRun(
            f"spec.analyzer: {name!r} is not available in this operator version;"
            f" available: {', '.join(registry.available())}"
        )
    return manifest


async def check_secrets(body: dict[str, Any], config: OperatorConfig) -> str:
    """Every Secret the pods will need exists; returns the database URL (for planning)."""
    ns = body["metadata"]["namespace"]
    spec = body.get("spec") or {}
    name, key = manifests.database_secret(spec, config)
    try:
        url = await kube.secret_value(ns, name, key)
        ref = (spec.get("llm") or {}).get("apiKeySecretRef")
        if spec.get("analyzer") == "llm" and ref:
            await kube.secret_value(ns, ref["name"], ref["key"])
    except kube.SecretProblem as exc:
        hint = (
            ""
            if (spec.get("database") or {}).get("secretRef")
            else (
                f" (no spec.database.secretRef, so the operator's default Secret '{name}' is used)"
            )
        )
        raise InvalidRun(f"{exc}{hint}") from None
    return url
