"""The shard pods' own settings in a run's spec: resources and `podTemplate` (labels,
annotations, nodeSelector, tolerations, priorityClassName), with the rules the API
server and the Job controller would apply to them - checked here, and as CEL in the
CRD, so that a refused pod never reaches the cluster.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from analyzer_runtime.contract.base import SpecModel
from analyzer_runtime.contract.types import (
    ANNOTATIONS_MAX_BYTES,
    INT32_MAX,
    LABEL_VALUE_MAX_LENGTH,
    RESERVED_ANNOTATION_PREFIXES,
    RESERVED_LABEL_PREFIXES,
    RESERVED_LABELS,
    Quantity,
    TaintEffect,
    TolerationOperator,
    cel_rule,
    cel_string,
    dns_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)


class ResourceRequirements(SpecModel):
    """CPU/memory requests and limits of each shard's pod (Kubernetes quantities)."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 256Mi}."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {memory: 512Mi}."
    )


class Toleration(SpecModel):
    """Lets the shard pods run on nodes with a matching taint (a Kubernetes toleration)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
                    "key is required unless operator is Exists (which then matches every taint)",
                ),
                cel_rule(
                    "!has(self.value) || self.value == '' || !has(self.operator)"
                    " || self.operator != 'Exists'",
                    "value must be empty when operator is Exists",
                    fieldPath=".value",
                ),
                cel_rule(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == "
                    "'NoExecute')",
                    "tolerationSeconds needs effect NoExecute",
                    fieldPath=".tolerationSeconds",
                ),
            ]
        }
    )

    # Field order matters: validators read earlier fields through `info.data`.
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=317,  # a 253-character prefix, '/', a 63-character name
        description="Taint key to tolerate; unset (with operator Exists) matches every key.",
    )
    operator: TolerationOperator = Field(
        default=TolerationOperator.Equal,
        strict=False,
        validate_default=True,
        description="Equal (the taint's value must be `value`) or Exists (any value).",
    )
    value: str | None = Field(
        default=None,
        max_length=LABEL_VALUE_MAX_LENGTH,
        description="Taint value to tolerate (operator Equal only).",
    )
    effect: TaintEffect | None = Field(
        default=None,
        strict=False,
        description="Taint effect to tolerate: NoSchedule, PreferNoSchedule or NoExecute; "
        "unset tolerates all three.",
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="With effect NoExecute: how long a pod stays on a node after the taint "
        "appears (unset: for ever).",
    )

    @field_validator("key")
    @classmethod
    def _key_syntax(cls, v: str | None) -> str | None:
        if v is not None and (problem := qualified_name_problem(v)) is not None:
            raise PydanticCustomError(
                "toleration_key", "{problem}; got {got}", {"problem": problem, "got": repr(v)}
            )
        return v

    @field_validator("operator")
    @classmethod
    def _key_or_exists(cls, v: TolerationOperator, info: ValidationInfo) -> TolerationOperator:
        if "key" in info.data and info.data["key"] is None and v is not TolerationOperator.Exists:
            raise PydanticCustomError(
                "toleration_key",
                "a toleration without a key must have operator Exists (it then matches every "
                "taint); set key, or operator: Exists",
            )
        return v

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or v == "":
            return v
        if info.data.get("operator") is TolerationOperator.Exists:
            raise PydanticCustomError(
                "toleration_value", "must be empty when operator is Exists (it matches any value)"
            )
        if (problem := label_value_problem(v)) is not None:
            raise PydanticCustomError(
                "toleration_value", "{problem}; got {got}", {"problem": problem, "got": repr(v)}
            )
        return v

    @field_validator("toleration_seconds")
    @classmethod
    def _no_execute_only(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and "effect" in info.data:
            if info.data["effect"] is not TaintEffect.NoExecute:
                raise PydanticCustomError(
                    "toleration_seconds",
                    "only allowed with effect NoExecute (it is how long a pod stays on a "
                    "node after such a taint appears)",
                )
        return v


def _key_problems(
    values: dict[str, str] | None,
    *,
    reserved_prefixes: tuple[str, ...] = (),
    reserved: frozenset[str] = frozenset(),
    label_values: bool = False,
) -> None:
    """Kubernetes' syntax of label or annotation keys (and label values), and the keys
    the operator or the Job controller sets on the pods."""
    for key, value in (values or {}).items():
        if key in reserved or key.startswith(reserved_prefixes):
            by_job = key.startswith("batch.kubernetes.io/") or key in ("job-name", "controller-uid")
            names = ", ".join(repr(n) for n in sorted(reserved))
            raise PydanticCustomError(
                "reserved_key",
                "{key} is reserved for {owner}; choose another key (reserved: keys starting "
                "with {prefixes}{names})",
                {
                    "key": repr(key),
                    "owner": "the Job controller" if by_job else "the operator",
                    "prefixes": " or ".join(repr(p) for p in reserved_prefixes),
                    "names": f", and {names}" if names else "",
                },
            )
        if (problem := qualified_name_problem(key)) is not None:
            raise PydanticCustomError(
                "key_syntax", "key {key}: {problem}", {"key": repr(key), "problem": problem}
            )
        if label_values and (problem := label_value_problem(value)) is not None:
            raise PydanticCustomError(
                "value_syntax",
                "value of {key}: {problem}; got {got}",
                {"key": repr(key), "problem": problem, "got": repr(value)},
            )


LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX_LENGTH)]


def _reserved_keys_rule(field: str, prefixes: tuple[str, ...], names: frozenset[str]) -> JsonDict:
    """The CEL side of _key_problems' reserved keys for the map `field`."""
    tests = [f"!k.startsWith({cel_string(p)})" for p in prefixes]
    tests += [f"k != {cel_string(n)}" for n in sorted(names)]
    reserved = "keys starting with " + " or ".join(repr(p) for p in prefixes)
    if names:
        reserved += " and the keys " + ", ".join(repr(n) for n in sorted(names))
    return cel_rule(
        f"!has(self.{field}) || self.{field}.all(k, {' && '.join(tests)})",
        f"{reserved} are reserved for the operator and the Job controller",
        fieldPath=f".{field}",
    )


class PodTemplate(SpecModel):
    """What the shard pods get besides what the operator sets: labels and annotations,
    where they may run, their priority and resources. Fixed at planning, like the Job's
    pod template (a change after planning is refused)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _reserved_keys_rule("labels", RESERVED_LABEL_PREFIXES, RESERVED_LABELS),
                _reserved_keys_rule("annotations", RESERVED_ANNOTATION_PREFIXES, frozenset()),
            ]
        }
    )

    labels: dict[str, LabelValue] | None = Field(
        default=None,
        description="Extra labels of the shard pods (e.g. for cost allocation). The "
        "operator's own labels win; keys starting with rapanalyzer.io/ or "
        "batch.kubernetes.io/, app.kubernetes.io/managed-by, job-name and controller-uid "
        "are refused.",
    )
    annotations: dict[str, str] | None = Field(
        default=None,
        description="Extra annotations of the shard pods (keys starting with "
        "rapanalyzer.io/ or batch.kubernetes.io/ are refused).",
    )
    node_selector: dict[str, LabelValue] | None = Field(
        default=None, description="Node labels the shard pods must run on (nodeSelector)."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=100, description="Taints the shard pods tolerate."
    )
    priority_class_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="PriorityClass of the shard pods.",
    )
    resources: ResourceRequirements | None = Field(
        default=None,
        description="Resource requests and limits of each shard pod (spec.resources is a "
        "shorthand for this; set one of them).",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        _key_problems(
            v,
            reserved_prefixes=RESERVED_LABEL_PREFIXES,
            reserved=RESERVED_LABELS,
            label_values=True,
        )
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        _key_problems(v, reserved_prefixes=RESERVED_ANNOTATION_PREFIXES)
        size = sum(len(k.encode()) + len(x.encode()) for k, x in (v or {}).items())
        if size > ANNOTATIONS_MAX_BYTES:
            raise PydanticCustomError(
                "annotations_size",
                "must be at most {limit} bytes together (keys and values), got {got}",
                {"limit": ANNOTATIONS_MAX_BYTES, "got": size},
            )
        return v

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        _key_problems(v, label_values=True)
        return v

    @field_validator("priority_class_name")
    @classmethod
    def _priority_class(cls, v: str | None) -> str | None:
        if v is not None and (problem := dns_subdomain_problem(v)) is not None:
            raise PydanticCustomError(
                "priority_class", "{problem}; got {got}", {"problem": problem, "got": repr(v)}
            )
        return v


# Fields every run kind's spec (AnalysisRunSpec, ScrapeJobSpec) declares alike. They are
# Annotated types, not a base class, so that each spec keeps its own field order: the
# order validators see earlier fields in and errors are reported in.
