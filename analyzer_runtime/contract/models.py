"""Pydantic models of the `AnalysisRun` custom resource, exactly as the CRD carries it.

These models are the single source of truth: the local runner validates YAML with
them, the operator validates resources with them, and `analyzer_runtime.contract.crd`
generates the CRD's OpenAPI schema from them. So every constraint lives here once:
field-level limits become `minimum`/`maximum`/`enum` in the CRD, and each cross-field
rule is written twice side by side - as a Python validator (for the local runner and
the operator) and as a CEL rule in `x-kubernetes-validations` (for `kubectl apply`).

Whatever Postgres or a later stage would refuse is refused here first (validate ==
run): every number has a maximum (integers at most INT32_MAX, the int4 columns),
strings stored in varchar columns have their maxLength, no string may hold NUL
(SpecModel; the CRD gets a NUL-free pattern), and analyzerVersion must be one the
analyzer implements (ANALYZER_VERSIONS).

Integers, booleans and strings are strict, because the API server's schema refuses
`shards: "4"` and the local runner must refuse exactly what a cluster would.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from analyzer_runtime.contract.base import PostgresTextModel, SecretKeyRef, SpecModel
from analyzer_runtime.contract.labels import QUEUE_LABEL
from analyzer_runtime.contract.llm_models import (
    CircuitBreakerOptions,
    LLMOptions,
    TokenPrices,
    preset_namespace_problem,
)
from analyzer_runtime.contract.pod_template import PodTemplate, ResourceRequirements, Toleration
from analyzer_runtime.contract.types import (
    ANALYZER_TYPE_MAX_LENGTH,
    ANALYZER_VERSIONS,
    API_GROUP,
    API_VERSION,
    DNS_SUBDOMAIN_PATTERN,
    GROUP_VERSION,
    INT32_MAX,
    KIND,
    MODEL_VERSION_MAX_LENGTH,
    QUANTITY_PATTERN,
    REMOTE_ANALYZERS,
    AnalyzerName,
    FallbackAnalyzerName,
    ImagePullPolicy,
    LLMProvider,
    ResponseFormat,
    TaintEffect,
    TolerationOperator,
    cel_rule,
    cel_string,
)

__all__ = [
    "ANALYZER_VERSIONS",
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "INT32_MAX",
    "KIND",
    "MAX_REQUESTS_PER_MINUTE",
    "PARALLELISM_RULE",
    "POD_RESOURCES_RULE",
    "QUANTITY_PATTERN",
    "QUEUE_LABEL",
    "QUEUE_RULE",
    "REMOTE_ANALYZERS",
    "ActiveDeadlineSeconds",
    "AnalysisRunManifest",
    "AnalysisRunSpec",
    "AnalyzerName",
    "CircuitBreakerOptions",
    "DatabaseOverride",
    "DatabaseRef",
    "DatabaseSecretRef",
    "FallbackAnalyzerName",
    "IdRange",
    "ImageOverride",
    "ImagePullPolicy",
    "LLMOptions",
    "LLMProvider",
    "Parallelism",
    "PodImagePullPolicy",
    "PodResources",
    "PodTemplate",
    "PodTemplateOverride",
    "QueueName",
    "RateLimit",
    "ResourceRequirements",
    "ResponseFormat",
    "RetryPolicy",
    "RunMetadata",
    "SecretKeyRef",
    "Selection",
    "Shards",
    "SpecModel",
    "TaintEffect",
    "TokenPrices",
    "Toleration",
    "TolerationOperator",
    "TtlSecondsAfterFinished",
    "analyzer_version_rules",
    "changed_fields",
    "immutable_changes",
    "one_resources",
    "parallelism_within_shards",
]


class IdRange(SpecModel):
    """Inclusive range of track ids."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule("self.from <= self.to", "idRange.from must be <= idRange.to")
            ]
        }
    )

    # Track ids are Postgres `serial` (int4).
    from_: int = Field(alias="from", ge=0, le=INT32_MAX, description="First track id (inclusive).")
    to: int = Field(ge=0, le=INT32_MAX, description="Last track id (inclusive).")

    @field_validator("to")
    @classmethod
    def _ordered(cls, v: int, info: ValidationInfo) -> int:
        start = info.data.get("from_")
        if start is not None and v < start:
            raise PydanticCustomError(
                "range", "must be >= idRange.from ({start}), got {got}", {"start": start, "got": v}
            )
        return v


# selection.skipAnalyzedBy: a few analyzer types (the original platform had seven).
MAX_SKIP_ANALYZED_BY = 32


class Selection(SpecModel):
    """Which tracks the run analyzes. All filters combine with AND."""

    only_missing: bool = Field(
        default=True,
        description="Only tracks without a result for this analyzer and version "
        "(a new run then retries exactly the tracks that failed before).",
    )
    artists: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, description="Only tracks by these artists (exact names)."
    )
    id_range: IdRange | None = Field(default=None, description="Only track ids in this range.")
    limit: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="At most this many tracks."
    )
    min_words: int | None = Field(
        default=None,
        ge=0,
        le=INT32_MAX,
        description="Only tracks with at least this many words of lyrics.",
    )
    scrape_run: str | None = Field(
        default=None,
        min_length=1,
        description="Only tracks a ScrapeJob inserted or updated (its metadata.uid); set by "
        "the operator on the AnalysisRun it chains from a ScrapeJob's spec.analyze.",
    )
    skip_analyzed_by: (
        list[Annotated[str, Field(min_length=1, max_length=ANALYZER_TYPE_MAX_LENGTH)]] | None
    ) = Field(
        default=None,
        max_length=MAX_SKIP_ANALYZED_BY,
        description="Also skip tracks that already have a result of any of these analyzer "
        "types, in any version (analysis_results.analyzer_type, exactly as stored). E.g. "
        "[qwen-3-4b-fp8] in an llm run: tracks the original platform's Qwen labelled (an "
        "adopted database keeps its legacy analyzer names) are not analyzed and paid for "
        "again.",
    )


# A budget of N requests per minute is N rows in rate_limit_slots (ratelimit.py).
MAX_REQUESTS_PER_MINUTE = 100_000


class RateLimit(SpecModel):
    """Global request budget shared by all shards of the run."""

    requests_per_minute: int = Field(
        ge=1,
        le=MAX_REQUESTS_PER_MINUTE,
        description="Requests per minute across all shards together (at most 100000).",
    )


class RetryPolicy(SpecModel):
    """Retries of pods (per Job index) and of single items."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "!has(self.initialBackoffSeconds) || !has(self.maxBackoffSeconds)"
                    " || self.initialBackoffSeconds <= self.maxBackoffSeconds",
                    "initialBackoffSeconds must be <= maxBackoffSeconds",
                )
            ]
        }
    )

    backoff_limit_per_index: int = Field(
        default=3, ge=0, le=10, description="Pod retries per shard before the shard fails."
    )
    max_item_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts per track before it is marked failed."
    )
    initial_backoff_seconds: float = Field(
        default=2.0, ge=0, le=300, description="First retry delay; doubles on each attempt."
    )
    max_backoff_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="Upper bound of the retry delay."
    )

    @field_validator("max_backoff_seconds")
    @classmethod
    def _bounded(cls, v: float, info: ValidationInfo) -> float:
        start = info.data.get("initial_backoff_seconds")
        if start is not None and v < start:
            raise PydanticCustomError(
                "range",
                "must be >= retry.initialBackoffSeconds ({start}), got {got}",
                {"start": start, "got": v},
            )
        return v


class DatabaseSecretRef(SpecModel):
    """A Secret key holding the database URL."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(default="url", min_length=1, description="Key inside the Secret.")


class DatabaseRef(SpecModel):
    """Where the run's Postgres URL comes from."""

    secret_ref: DatabaseSecretRef = Field(description="Secret key holding a postgres:// URL.")


Shards = Annotated[
    int, Field(ge=1, le=1000, description="Number of shards (Job completions), 1-1000.")
]
Parallelism = Annotated[
    int | None,
    Field(
        ge=1,
        le=1000,
        validate_default=True,
        description="Shards running at once; defaults to shards and must be <= shards. The"
        " operator runs fewer while the database's connection budget is short"
        " (condition ParallelismCapped).",
    ),
]
DatabaseOverride = Annotated[
    DatabaseRef | None,
    Field(description="Database Secret; defaults to the operator's database."),
]
ImageOverride = Annotated[
    str | None, Field(min_length=1, description="Runtime image override for the shard pods.")
]
PodImagePullPolicy = Annotated[
    ImagePullPolicy | None, Field(strict=False, description="Image pull policy of the shard pods.")
]
PodResources = Annotated[
    ResourceRequirements | None,
    Field(description="Resource requests and limits of each shard pod."),
]
# Job.spec.ttlSecondsAfterFinished is an int32 in Kubernetes; the deadline is kept
# to the same range (68 years).
TtlSecondsAfterFinished = Annotated[
    int | None,
    Field(ge=0, le=INT32_MAX, description="Delete the finished Job after this many seconds."),
]
ActiveDeadlineSeconds = Annotated[
    int | None,
    Field(ge=1, le=INT32_MAX, description="Fail the Job when it runs longer than this."),
]
# Kueue's LocalQueue in the run's namespace: the value of the Job's
# kueue.x-k8s.io/queue-name label, so a label value (63 characters) and an object name.
QueueName = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Kueue LocalQueue (in the run's namespace) that admits the shard pods: the "
        "Job gets the kueue.x-k8s.io/queue-name label, Kueue decides when it runs and with how "
        "many pods (partial admission), and may preempt it; the operator then never sets the "
        "Job's suspend or parallelism itself (spec.suspend deactivates the Workload instead).",
    ),
]
QUEUE_RULE = cel_rule(
    "!has(self.queueName) || !has(self.podTemplate) || !has(self.podTemplate.labels)"
    f" || !('{QUEUE_LABEL}' in self.podTemplate.labels)"
    f" || self.podTemplate.labels['{QUEUE_LABEL}'] == self.queueName",
    f"spec.queueName and spec.podTemplate.labels['{QUEUE_LABEL}'] name different queues: "
    "set one of them (they mean the same)",
    fieldPath=".queueName",
)
PodTemplateOverride = Annotated[
    PodTemplate | None,
    Field(
        description="Labels, annotations, scheduling (nodeSelector, tolerations, "
        "priorityClassName) and resources of the shard pods."
    ),
]

POD_RESOURCES_RULE = cel_rule(
    "!has(self.resources) || !has(self.podTemplate) || !has(self.podTemplate.resources)",
    "set spec.resources or spec.podTemplate.resources, not both (spec.resources is a "
    "shorthand for spec.podTemplate.resources)",
    fieldPath=".podTemplate.resources",
)

PARALLELISM_RULE = cel_rule(
    "!has(self.parallelism) || self.parallelism <= self.shards",
    # A static message: the API server rejects messageExpressions that
    # format integers as too costly for the schema's CEL budget.
    "must be <= spec.shards (it is the number of shards run at once)",
    fieldPath=".parallelism",
)


def parallelism_within_shards(v: int | None, info: ValidationInfo) -> int | None:
    """The `parallelism` validator of a spec with `shards` before it: defaults to
    shards, and must not exceed them."""
    shards: int | None = info.data.get("shards")
    if shards is None:  # shards itself is invalid; that error is enough
        return v
    if v is None:
        return shards
    if v > shards:
        raise PydanticCustomError(
            "parallelism",
            "must be <= spec.shards ({shards}), got {got}",
            {"shards": shards, "got": v},
        )
    return v


def one_resources(v: PodTemplate | None, info: ValidationInfo) -> PodTemplate | None:
    """The `podTemplate` validator of a spec with `resources` before it: the two ways
    to give the pods resources exclude each other."""
    if v is not None and v.resources is not None and info.data.get("resources") is not None:
        raise PydanticCustomError(
            "resources",
            "set spec.resources or spec.podTemplate.resources, not both (spec.resources is "
            "a shorthand for spec.podTemplate.resources)",
        )
    return v


def one_queue(v: PodTemplate | None, info: ValidationInfo) -> PodTemplate | None:
    """The `podTemplate` validator of a spec with `queueName` before it: the queue may
    also come as the pod template's kueue.x-k8s.io/queue-name label (as on any Job
    Kueue manages), but not as two different queues."""
    label = ((v.labels if v is not None else None) or {}).get(QUEUE_LABEL)
    named = info.data.get("queue_name")
    if label is not None and named is not None and label != named:
        raise PydanticCustomError(
            "queue",
            "spec.queueName is {named} but spec.podTemplate.labels names queue {label}: "
            "set one of them (they mean the same)",
            {"named": repr(named), "label": repr(label)},
        )
    return v


def _versions_message(analyzer: AnalyzerName, versions: tuple[str, ...]) -> str:
    return f"{analyzer} implements {', '.join(versions)}"


def analyzer_version_rules() -> list[JsonDict]:
    """The CEL rules of ANALYZER_VERSIONS: one per analyzer with a fixed set of versions
    (a static message each; the API server rejects costly messageExpressions)."""
    rules: list[JsonDict] = []
    for analyzer, versions in ANALYZER_VERSIONS.items():
        if versions is None:
            continue
        allowed = ", ".join(cel_string(v) for v in versions)
        rules.append(
            cel_rule(
                f"!has(self.analyzerVersion) || self.analyzer != {cel_string(analyzer)}"
                f" || self.analyzerVersion in [{allowed}]",
                _versions_message(analyzer, versions),
                fieldPath=".analyzerVersion",
            )
        )
    return rules


def changed_fields(old: SpecModel, new: SpecModel, mutable: frozenset[str]) -> list[str]:
    """camelCase names of top-level spec fields changed, other than the `mutable` ones."""
    a, b = old.dump(), new.dump()
    return sorted(k for k in a.keys() | b.keys() if k not in mutable and a.get(k) != b.get(k))


class AnalysisRunSpec(SpecModel):
    """What to analyze, with which analyzer, and how to split the work."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                PARALLELISM_RULE,
                POD_RESOURCES_RULE,
                QUEUE_RULE,
                cel_rule(
                    "self.analyzer != 'llm' || has(self.llm)",
                    "llm options are required when analyzer is llm",
                    fieldPath=".llm",
                ),
                cel_rule(
                    "!has(self.llm) || self.analyzer == 'llm'",
                    "llm options are only allowed when analyzer is llm",
                    fieldPath=".llm",
                ),
                cel_rule(
                    "!has(self.modelVersion) || self.analyzer == 'quality'",
                    "modelVersion is only allowed when analyzer is quality",
                    fieldPath=".modelVersion",
                ),
                *analyzer_version_rules(),
            ]
        }
    )

    # Field order matters: validators read earlier fields through `info.data`.
    analyzer: AnalyzerName = Field(
        strict=False, description="Analyzer to run: " + ", ".join(AnalyzerName) + "."
    )
    analyzer_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=MODEL_VERSION_MAX_LENGTH,  # analysis_results.model_version varchar(100)
        description="Analyzer version results are stored under; defaults to the analyzer's "
        "own. Must be a version the analyzer implements, except for "
        + ", ".join(a for a, v in ANALYZER_VERSIONS.items() if v is None)
        + f" (a free label of at most {MODEL_VERSION_MAX_LENGTH} characters).",
    )
    llm: LLMOptions | None = Field(
        default=None,
        validate_default=True,
        description="Options of the llm analyzer; required when analyzer is llm.",
    )
    model_version: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="quality analyzer only: the version of the trained model to score with "
        "(`rap-analyzer model list`); default: the latest when the run is planned.",
    )
    selection: Selection = Field(
        default_factory=Selection,
        json_schema_extra={"default": {}},
        description="Which tracks to analyze (default: every track without a result).",
    )
    shards: Shards = 1
    parallelism: Parallelism = None
    batch_size: int = Field(
        default=50, ge=1, le=10000, description="Tracks per transaction in a shard."
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Global request budget (mostly for llm); unlimited if unset."
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        json_schema_extra={"default": {}},
        description="Retry and backoff settings.",
    )
    fallback_analyzer: FallbackAnalyzerName | None = Field(
        default=None,
        strict=False,
        description="Local analyzer used for a track when the primary analyzer fails on it.",
    )
    failure_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The run ends Failed (reason TooManyTrackFailures) when more than this "
        "fraction of its tracks failed.",
    )
    suspend: bool = Field(
        default=False, description="Pause the run (the Job is suspended); false resumes it."
    )
    queue_name: QueueName = None
    dry_run: bool = Field(
        default=False, description="Plan and report the selection without analyzing."
    )
    allow_overlap: bool = Field(
        default=False,
        description="Plan even when an active run of the same analyzer and version still has "
        "some of the selected tracks pending (they are then analyzed twice). Without it such "
        "a run waits, with Valid=False reason OverlapsRun, until the other run is finished.",
    )
    database: DatabaseOverride = None
    image: ImageOverride = None
    image_pull_policy: PodImagePullPolicy = None
    resources: PodResources = None
    pod_template: PodTemplateOverride = None
    ttl_seconds_after_finished: TtlSecondsAfterFinished = None
    active_deadline_seconds: ActiveDeadlineSeconds = None

    @field_validator("analyzer_version")
    @classmethod
    def _implemented_version(cls, v: str | None, info: ValidationInfo) -> str | None:
        analyzer = info.data.get("analyzer")
        if v is None or analyzer is None:
            return v
        versions = ANALYZER_VERSIONS[analyzer]
        if versions is not None and v not in versions:
            raise PydanticCustomError(
                "analyzer_version",
                "{implements}; got '{got}'",
                {"implements": _versions_message(analyzer, versions), "got": v},
            )
        return v

    @field_validator("llm")
    @classmethod
    def _llm_matches_analyzer(cls, v: LLMOptions | None, info: ValidationInfo) -> Any:
        analyzer = info.data.get("analyzer")
        if analyzer is AnalyzerName.llm and v is None:
            raise PydanticCustomError(
                "required_when",
                "required when spec.analyzer is 'llm'; set at least llm.provider",
            )
        if analyzer is not None and analyzer is not AnalyzerName.llm and v is not None:
            raise PydanticCustomError(
                "not_allowed",
                "only allowed when spec.analyzer is 'llm' (analyzer is '{analyzer}')",
                {"analyzer": str(analyzer)},
            )
        label = info.data.get("analyzer_version")
        if v is not None and label is not None:
            # Results of a run on a proxy or a look-alike must never land on (or count as)
            # a preset's own rows: the label is refused, not silently rewritten.
            problem = preset_namespace_problem(v.provider, v.base_url, label)
            if problem is not None:
                raise PydanticCustomError("preset_version", "{problem}", {"problem": problem})
        return v

    @field_validator("model_version")
    @classmethod
    def _model_version_for_quality(cls, v: int | None, info: ValidationInfo) -> int | None:
        analyzer = info.data.get("analyzer")
        if v is not None and analyzer is not None and analyzer is not AnalyzerName.quality:
            raise PydanticCustomError(
                "not_allowed",
                "only allowed when spec.analyzer is 'quality' (analyzer is '{analyzer}')",
                {"analyzer": str(analyzer)},
            )
        return v

    @field_validator("parallelism")
    @classmethod
    def _parallelism_within_shards(cls, v: int | None, info: ValidationInfo) -> int | None:
        return parallelism_within_shards(v, info)

    @field_validator("pod_template")
    @classmethod
    def _one_resources(cls, v: PodTemplate | None, info: ValidationInfo) -> PodTemplate | None:
        return one_queue(one_resources(v, info), info)

    @property
    def effective_parallelism(self) -> int:
        """Parallelism with its default applied (always set after validation)."""
        return self.parallelism or self.shards


# Fields the operator may apply to a run that is already planned; any other change
# needs a new run, because the work items were chosen from the old spec (or, like
# podTemplate, because a Job's pod template cannot change). Each reaches the Job:
# manifests.job_patch_for_spec, or job_patch_after_finish for the TTL.
MUTABLE_AFTER_PLANNING: frozenset[str] = frozenset(
    {"suspend", "parallelism", "ttlSecondsAfterFinished", "activeDeadlineSeconds"}
)


def immutable_changes(old: AnalysisRunSpec, new: AnalysisRunSpec) -> list[str]:
    """camelCase names of top-level spec fields changed that a planned run cannot take."""
    return changed_fields(old, new, MUTABLE_AFTER_PLANNING)


class RunMetadata(PostgresTextModel):
    """The part of Kubernetes object metadata a run uses; the API server adds more
    (resourceVersion, managedFields, ...), which is ignored rather than refused.
    Its strings refuse NUL like the spec's (namespace and uid go to Postgres)."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class AnalysisRunManifest(SpecModel):
    """A whole `AnalysisRun` object: what `kubectl apply -f` sends, or what the API returns."""

    api_version: Literal["rapanalyzer.io/v1alpha1"] = Field(description="Must be " + GROUP_VERSION)
    kind: Literal["AnalysisRun"] = Field(description="Must be " + KIND)
    metadata: RunMetadata
    spec: AnalysisRunSpec
    # The operator validates objects read back from the API, which carry a status.
    status: dict[str, Any] | None = Field(default=None, strict=False)

    text_unchecked_fields = frozenset({"status"})
