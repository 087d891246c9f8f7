"""The operator's own validation, beyond what the CRD schema already refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from analyzer_runtime.contract import AnalysisRunManifest, format_validation_error, load_manifest
from analyzer_runtime.contract.types import AnalyzerName
from rap_operator import kube, policy
from rap_operator.config import OperatorConfig, database_secret

M = TypeVar("M")


class InvalidRun(Exception):
    """What a person must fix in the spec; shown as the Valid=False condition and a
    Warning Event. Permanent until the spec changes (a new generation)."""


class PolicyDenied(InvalidRun):
    """The spec asks for what the admin's policy (policy.py) does not allow: an
    image, an endpoint host, a Secret. Permanent like InvalidRun, until the spec
    changes - or the policy, which an operator restart re-reads and applies to every
    run refused so far (reconcile.finished)."""

    def __init__(self, violations: list[policy.Violation]) -> None:
        super().__init__(policy.describe(violations))
        self.violations = violations


class MissingInput(Exception):
    """Something the run needs from the cluster is not there yet (a Secret, a key, a
    ConfigMap). Time fixes it (GitOps applies the Secret a moment later): the run
    stays Pending saying what is missing, and proceeds once it appears."""


def check_spec(body: dict[str, Any]) -> AnalysisRunManifest:
    """Same models as the CLI: anything the schema let through but the models refuse."""
    manifest = load_checked(body, load_manifest)
    check_analyzer(manifest.spec.analyzer.value, "spec.analyzer")
    return manifest


def load_checked(body: dict[str, Any], load: Callable[[dict[str, Any]], M]) -> M:
    """The resource's manifest through `load` (the kind's models), their errors as
    InvalidRun; only the metadata the models know is passed on."""
    doc = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    doc["metadata"] = {
        k: v
        for k, v in (body.get("metadata") or {}).items()
        if k in ("name", "namespace", "uid", "generation", "labels", "annotations")
    }
    try:
        return load(doc)
    except ValidationError as exc:
        raise InvalidRun(format_validation_error(exc).strip()) from None
    except ValueError as exc:
        raise InvalidRun(str(exc)) from None


def check_analyzer(name: str, field: str) -> None:
    """The analyzer named at `field` exists in this operator version."""
    # The contract's list; the runtime's registry implements the same names
    # (tests/unit/test_analyzer_names.py).
    available = sorted(a.value for a in AnalyzerName)
    if name not in available:
        raise InvalidRun(
            f"{field}: {name!r} is not available in this operator version;"
            f" available: {', '.join(available)}"
        )


async def check_secrets(
    body: dict[str, Any], config: OperatorConfig, refs: Sequence[tuple[str, str]] = ()
) -> str:
    """The database Secret and every other Secret the pods will need (`refs`: name,
    key - the kind's own, e.g. the LLM API key or the Genius token) exist; returns the
    database URL (for planning)."""
    ns = body["metadata"]["namespace"]
    spec = body.get("spec") or {}
    name, key = database_secret(spec, config)
    try:
        url = await kube.secret_value(ns, name, key)
    except kube.SecretProblem as exc:
        hint = (
            ""
            if (spec.get("database") or {}).get("secretRef")
            else (
                f" (no spec.database.secretRef, so the operator's default Secret '{name}' is used)"
            )
        )
        raise MissingInput(f"{exc}{hint}") from None
    try:
        for ref_name, ref_key in refs:
            await kube.secret_value(ns, ref_name, ref_key)
    except kube.SecretProblem as exc:
        raise MissingInput(str(exc)) from None
    return url


async def check_policy(body: dict[str, Any], config: OperatorConfig) -> None:
    """PolicyDenied naming every rule the spec breaks; the Secrets' labels are read
    here (metadata only), the decision is policy.check's."""
    ns = body["metadata"]["namespace"]
    spec = body.get("spec") or {}
    labels: dict[str, dict[str, str] | None] = {}
    try:
        for name in sorted(policy.judged_secrets(config.policy, spec, config.database_secret)):
            if (found := await kube.secret_labels(ns, name)) is not None:
                labels[name] = found
    except kube.SecretProblem as exc:
        raise MissingInput(str(exc)) from None
    violations = policy.check(
        config.policy, spec, own_image=config.image,
        default_secret=config.database_secret, secret_labels=labels,
    )  # fmt: skip
    if violations:
        raise PolicyDenied(violations)
