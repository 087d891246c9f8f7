"""Names, enums and value types of the AnalysisRun spec.

`AnalyzerName` is THE list of analyzers: the CRD enum, the fallback enum and the
error messages are all derived from it, so adding an analyzer is one line there
(plus its versions in `ANALYZER_VERSIONS`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic.config import JsonDict

API_GROUP = "rapanalyzer.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
KIND = "AnalysisRun"

# The largest value of a Postgres `integer` (int4) column or parameter: track ids,
# word counts, limits. Every integer of a spec is bounded (by this or by less), so
# `validate` refuses what planning would fail on with "value out of int32 range".
INT32_MAX = 2**31 - 1

# analysis_results.model_version is a varchar(100) (and analyzer_type a varchar(50)).
MODEL_VERSION_MAX_LENGTH = 100
ANALYZER_TYPE_MAX_LENGTH = 50

# Postgres text and jsonb cannot hold NUL, and the whole spec is stored as jsonb: every
# string of a spec refuses "\x00" (SpecModel), and every string schema of the CRD
# without a pattern (or enum) of its own gets this one (RE2, as the API server reads it).
NUL_FREE_PATTERN = r"^[^\x00]*$"


class AnalyzerName(StrEnum):
    """Analyzer a run applies. THE list of analyzer names: later analyzers are added here
    and flow into the CRD enum, the fallback enum and the error messages."""

    algorithmic = "algorithmic"
    emotion = "emotion"
    llm = "llm"
    embedding = "embedding"
    quality = "quality"


# The versions each analyzer implements (results are stored under analyzer + version):
# spec.analyzerVersion must be one of them. None means the version is a free label:
# the llm analyzer's names the provider, model and prompt (`novita:qwen/...@p1`), so
# any label up to MODEL_VERSION_MAX_LENGTH characters is accepted. Every AnalyzerName
# has an entry (a unit test checks).
ANALYZER_VERSIONS: dict[AnalyzerName, tuple[str, ...] | None] = {
    AnalyzerName.algorithmic: ("1.0.0",),
    AnalyzerName.emotion: ("1.0.0",),
    AnalyzerName.llm: None,
    # 1.0.0: all-MiniLM-L6-v2 over windows of the lyrics, mean of the windows' vectors.
    AnalyzerName.embedding: ("1.0.0",),
    # 1.0.0: a distilled model (analyzer_runtime.quality) over the stored algorithmic and
    # emotion features; the trained model's own version is in analysis_data.
    AnalyzerName.quality: ("1.0.0",),
}


def fixed_versions(analyzer: AnalyzerName) -> tuple[str, ...]:
    """The versions of an analyzer that has a fixed set (all but llm), newest last."""
    versions = ANALYZER_VERSIONS[analyzer]
    if versions is None:
        raise ValueError(f"{analyzer} has no fixed versions: any label names one")
    return versions


# Analyzers that call out over the network. They cannot be a fallback, because the
# fallback exists precisely for when the network analyzer is failing.
REMOTE_ANALYZERS: frozenset[AnalyzerName] = frozenset({AnalyzerName.llm})

# A fallback stands in for a failing llm with features of its own kind; a vector is
# no such stand-in, so `embedding` is never a fallback; `quality` needs a trained model
# and stored features the failing track may not have.
NOT_A_FALLBACK: frozenset[AnalyzerName] = REMOTE_ANALYZERS | {
    AnalyzerName.embedding,
    AnalyzerName.quality,
}

# Derived, not listed: adding a local analyzer to AnalyzerName makes it a valid fallback.
# mypy reads the functional Enum API only with literal members, hence the ignore.
FallbackAnalyzerName = StrEnum(  # type: ignore[misc]
    "FallbackAnalyzerName",
    {a.name: a.value for a in AnalyzerName if a not in NOT_A_FALLBACK},
)
FallbackAnalyzerName.__doc__ = "A local (non-network) analyzer used when the primary one fails."


class LLMProvider(StrEnum):
    """Preset for an OpenAI-compatible API; `custom` and `vllm` need `baseURL`."""

    novita = "novita"
    ollama = "ollama"
    openai = "openai"
    vllm = "vllm"
    custom = "custom"


# Self-hosted servers: no preset endpoint, so baseURL and model come from the spec.
SELF_HOSTED_PROVIDERS = frozenset({LLMProvider.custom, LLMProvider.vllm})


class LLMMode(StrEnum):
    """How requests reach the provider: one chat request at a time (`sync`), or the
    provider's Batch API (`batch`: half price, results within its completion window)."""

    sync = "sync"
    batch = "batch"


class CascadeAnalyzerName(StrEnum):
    """A cheap first analyzer of a cascade: it labels the tracks it is sure of."""

    quality = "quality"
    algorithmic = "algorithmic"


class ResponseFormat(StrEnum):
    """How the llm analyzer asks for JSON: a JSON schema (structured outputs) where
    the provider supports it, else plain JSON mode (the answer is validated either way)."""

    jsonSchema = "jsonSchema"
    jsonObject = "jsonObject"


class ImagePullPolicy(StrEnum):
    """Kubernetes image pull policy for the Job's pods."""

    Always = "Always"
    IfNotPresent = "IfNotPresent"
    Never = "Never"


# Kubernetes' own quantity grammar (resource.Quantity), as controller-gen emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _quantity_to_str(value: Any) -> Any:
    # YAML turns `cpu: 1` into an int; Kubernetes accepts it, so must we.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    Field(pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class TolerationOperator(StrEnum):
    """How a toleration matches a taint: Equal (key and value) or Exists (key only)."""

    Exists = "Exists"
    Equal = "Equal"


class TaintEffect(StrEnum):
    """The taint effect a toleration tolerates (unset: all of them)."""

    NoSchedule = "NoSchedule"
    PreferNoSchedule = "PreferNoSchedule"
    NoExecute = "NoExecute"


# Kubernetes' label and annotation syntax (apimachinery's IsQualifiedName and
# IsValidLabelValue). Checked by the models, not by CRD patterns: a map key cannot carry
# a pattern in a structural schema, and the API server refuses the Job anyway - the
# operator must say so first, with the field's name.
LABEL_VALUE_MAX_LENGTH = 63
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
# Annotations of one object together (keys and values), as the API server counts them.
ANNOTATIONS_MAX_BYTES = 256 * 1024

# Pod labels the operator or the Job controller sets: a pod template may not set them.
# (The operator's other labels, app.kubernetes.io/name and /component, win over the
# template's.)
RESERVED_LABEL_PREFIXES = ("rapanalyzer.io/", "batch.kubernetes.io/")
RESERVED_LABELS = frozenset({"app.kubernetes.io/managed-by", "job-name", "controller-uid"})
RESERVED_ANNOTATION_PREFIXES = ("rapanalyzer.io/", "batch.kubernetes.io/")


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes label/annotation key ("prefix/name" or "name");
    None when it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before '/' must not be empty"
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return (
            "the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' "
            "and '.', at most 253 characters)"
        )
    if not name:
        return "the name must not be empty"
    if len(name) > 63 or not _NAME_PART.fullmatch(name):
        return (
            "the name must be at most 63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a Kubernetes label value; None when it is one."""
    if value == "":
        return None
    if len(value) > LABEL_VALUE_MAX_LENGTH or not _NAME_PART.fullmatch(value):
        return (
            "must be empty or at most 63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit (a label value)"
        )
    return None


def dns_subdomain_problem(value: str) -> str | None:
    """Why `value` is not a DNS subdomain name (e.g. a PriorityClass's); None when it is."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        return (
            "must be a lowercase name of letters, digits, '-' and '.', starting and ending "
            "with a letter or digit, at most 253 characters"
        )
    return None


def cel_string(text: str) -> str:
    """`text` as a CEL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_rule(rule: str, message: str, **extra: str) -> JsonDict:
    """One `x-kubernetes-validations` entry; kept next to the Python check it mirrors."""
    return {"rule": rule, "message": message, **extra}
