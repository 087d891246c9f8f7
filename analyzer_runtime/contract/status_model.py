"""`AnalysisRun.status` as a pydantic model: what `compute_status` returns
(analyzer_runtime.contract.status) and what the CRD's status schema is generated
from (crd.py), so the status written and its schema are one definition.
`StatusModel.to_json()` is the JSON patched onto the resource.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

_DATE_TIME: JsonDict = {"format": "date-time"}
# Fields compute_status may set to null (e.g. ETA before anything ran).
_NULLABLE: JsonDict = {"nullable": True}

# status.shards stays small whatever the number of shards (a status is rewritten on
# every refresh; 1,000 shards must fit in a few KB): every shard in detail up to
# SHARD_DETAIL_ALL shards, otherwise the SHARD_DETAIL_TOP most notable ones; index
# lists and messages cut to these lengths.
SHARD_DETAIL_ALL = 16
SHARD_DETAIL_TOP = 10
SHARD_INDEXES_MAX_CHARS = 200
SHARD_MESSAGE_MAX_CHARS = 140
SHARD_DETAIL_RULE = (
    f"Every shard, in index order, when there are at most {SHARD_DETAIL_ALL}; otherwise "
    f"at most {SHARD_DETAIL_TOP}: the failed ones first (with the error), then the "
    "retrying ones, then the running ones least far along."
)


class Phase(StrEnum):
    """Lifecycle phase of a run."""

    Pending = "Pending"
    Running = "Running"
    Suspended = "Suspended"
    Succeeded = "Succeeded"
    Failed = "Failed"


class ConditionStatus(StrEnum):
    """Kubernetes condition status."""

    true = "True"
    false = "False"
    unknown = "Unknown"


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The status as written to the resource: camelCase keys, and the fields that
        were set - a field set to None is written as null (in a JSON merge patch a
        null removes the stale value, e.g. `eta` after completion), a field never set
        is left out (the API server prunes nulls inside list items)."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class Condition(StatusModel):
    """A Kubernetes API convention condition (like metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Succeeded, Running, Valid.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, description="CamelCase reason for the status.")
    message: str | None = Field(default=None, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None,
        json_schema_extra=_DATE_TIME,
        description="When the status last changed.",
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed for."
    )


class ShardState(StrEnum):
    """State of one shard (one index of the Indexed Job)."""

    pending = "pending"
    running = "running"
    retrying = "retrying"
    done = "done"
    failed = "failed"


class ShardGroup(StatusModel):
    """The shards in one state: how many, and which."""

    count: int = Field(description="Number of shards in this state.")
    indexes: str = Field(
        description='Their indexes as ranges, like the Job\'s completedIndexes: "0-995,999" '
        f"(empty when there are none; a list longer than {SHARD_INDEXES_MAX_CHARS} characters "
        'is cut and ends in ",..." - count is always exact).'
    )


class ShardDetail(StatusModel):
    """One shard in detail (one index of the Indexed Job)."""

    index: int = Field(description="Shard number (the Job completion index).")
    state: ShardState = Field(
        description="pending, running, retrying (the Job will retry it), done or failed."
    )
    total: int = Field(description="Tracks assigned to the shard.")
    processed: int = Field(description="Tracks analyzed successfully.")
    failed: int = Field(description="Tracks that failed after all attempts.")
    skipped: int = Field(description="Tracks skipped (e.g. empty lyrics).")
    progress: str = Field(description="Finished/total tracks of the shard.")
    attempt: int = Field(description="Pod attempt the shard is on (1 = first).")
    message: str | None = Field(
        default=None, description="Why the shard failed or is being retried (shortened)."
    )


class ShardSummary(StatusModel):
    """The shards of the run, compact whatever their number: a count and index ranges
    per state, and a few shards in detail. Every key is always present (the status is
    written with merge patches, which would keep a key that a refresh leaves out)."""

    total: int = Field(description="Number of shards (Job completions).")
    done: ShardGroup = Field(description="Shards that finished their work.")
    running: ShardGroup = Field(description="Shards working now.")
    retrying: ShardGroup = Field(
        description="Shards whose pod failed and that the Job will retry "
        "(spec.retry.backoffLimitPerIndex)."
    )
    failed: ShardGroup = Field(description="Shards that failed for good.")
    pending: ShardGroup = Field(description="Shards not started yet.")
    detail: list[ShardDetail] = Field(description=SHARD_DETAIL_RULE)


class TokenUsage(StatusModel):
    """LLM tokens used by the run."""

    prompt: int = Field(description="Prompt (input) tokens.")
    completion: int = Field(description="Completion (output) tokens.")
    total: int = Field(description="prompt + completion.")
    cached: int | None = Field(
        default=None,
        description="Of the prompt tokens, those served from the provider's prompt cache "
        "(billed at its cached price).",
    )


class CascadeEstimate(StatusModel):
    """spec.llm.cascade at planning: the estimate's requests, tokens and cost are for
    every track; this says how many the first analyzer is expected to keep."""

    analyzer: str = Field(description="The first analyzer: quality or algorithmic.")
    min_confidence: float = Field(description="spec.llm.cascade.minConfidence.")
    kept_share: float | None = Field(
        default=None,
        description="Expected share of tracks kept from the LLM: the quality model's "
        "out-of-fold share at minConfidence; absent when unknown (algorithmic).",
    )
    cost: float | None = Field(
        default=None, description="The estimated cost times (1 - keptShare), when both are known."
    )


class CascadeStatus(StatusModel):
    """Where the tracks of a cascade run went (spec.llm.cascade)."""

    analyzer: str = Field(description="The first analyzer: quality or algorithmic.")
    kept: int = Field(
        description="Tracks the first analyzer labelled (stored under its own "
        "analyzer_type, with cascade_for), never sent to the LLM."
    )
    sent_to_llm: int = Field(
        alias="sentToLLM",
        description="Finished tracks that were sent to the LLM (answered, fallen back or "
        "failed); skipped tracks are in neither count.",
    )
    cost_saved: float | None = Field(
        default=None,
        json_schema_extra=_NULLABLE,
        description="kept x the run's average LLM cost per track the LLM answered, USD; "
        "null until the LLM has answered one, or without a price.",
    )


class LLMBatchStates(StatusModel):
    """The run's batches by state (every state always present, so a count that drops
    to 0 is written as 0)."""

    submitting: int = Field(default=0, description="Recorded, not created at the provider yet.")
    validating: int = Field(default=0, description="The provider is validating the input file.")
    in_progress: int = Field(default=0, description="Being answered.")
    finalizing: int = Field(default=0, description="Answered; the provider writes the files.")
    completed: int = Field(default=0, description="Completed (collected or about to be).")
    failed: int = Field(default=0, description="Failed validation: its tracks are resubmitted.")
    expired: int = Field(
        default=0, description="The completion window ran out: partial results were used."
    )
    cancelling: int = Field(default=0, description="Being cancelled (by someone else).")
    cancelled: int = Field(default=0, description="Cancelled: partial results were used.")


class LLMBatchRequests(StatusModel):
    """Requests of the run's batches, as the provider counts them."""

    total: int = Field(description="Requests in all batches.")
    completed: int = Field(description="Answered.")
    failed: int = Field(description="Failed (their tracks are resubmitted or fall back).")


class LLMBatchDetail(StatusModel):
    """A batch not collected yet."""

    shard: int = Field(description="The shard that submitted it.")
    batch_id: str | None = Field(
        default=None, description="The provider's batch id (absent until created)."
    )
    state: str = Field(description="The provider's status, or submitting.")
    requests: str = Field(description="completed/total requests (and failed ones).")
    expires_at: str | None = Field(
        default=None,
        json_schema_extra=_DATE_TIME,
        description="When its completion window ends.",
    )


class LLMBatches(StatusModel):
    """spec.llm.mode batch: the run's provider batches, from the ledger."""

    batches: int = Field(description="Batches submitted (every submission counts).")
    in_flight: int = Field(description="Batches not collected yet.")
    collected: int = Field(description="Batches whose results were written.")
    states: LLMBatchStates = Field(description="Batches by state.")
    requests: LLMBatchRequests = Field(description="Requests of all batches.")
    open: list[LLMBatchDetail] = Field(
        description="The first batches not collected yet (at most 5), oldest first."
    )


class RunEstimate(StatusModel):
    """What the run will cost, computed at planning time before any request is sent."""

    requests: int = Field(description="Chat requests the run needs (without retries).")
    tracks_per_request: int = Field(description="Tracks packed into one request.")
    tokens: TokenUsage = Field(description="Estimated prompt and completion tokens.")
    cost: float | None = Field(
        default=None, description="Estimated cost in USD; absent when no price is known."
    )
    requests_per_minute: int | None = Field(
        default=None, description="The global budget the duration assumes (unset: unlimited)."
    )
    duration: str = Field(
        description="Estimated duration, like 1h2m0s (batch mode: the completion window, "
        "the most the provider takes)."
    )
    completion_window: str | None = Field(
        default=None,
        description="llm.mode batch: the Batch API's completion window (the cost is the "
        "provider's batch price).",
    )
    duration_seconds: float = Field(description="Estimated duration in seconds.")
    cascade: CascadeEstimate | None = Field(
        default=None, description="What spec.llm.cascade is expected to keep from the LLM."
    )


class RunStatus(StatusModel):
    """What every kind of run shows (AnalysisRun, ScrapeJob): phase, conditions,
    item counts and the Job. Each kind's status model adds its own fields."""

    phase: Phase = Field(description="Pending, Running, Suspended, Succeeded or Failed.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        description="Valid, Running, Suspended, Failed, CompletedWithErrors and the "
        "summary Succeeded (use `kubectl wait --for=condition=Succeeded`).",
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status was computed for."
    )
    total: int = Field(default=0, description="Tracks selected for the run.")
    processed: int = Field(default=0, description="Tracks analyzed successfully.")
    failed: int = Field(default=0, description="Tracks that failed after all attempts.")
    skipped: int = Field(default=0, description="Tracks skipped (e.g. empty lyrics).")
    progress: str = Field(
        default="0/0 (0.0%)",
        description="Finished tracks (processed+failed+skipped) / total, with percent.",
    )
    shards: ShardSummary | None = Field(
        default=None,
        description="Shards by state (count and index ranges), a few of them in detail.",
    )
    start_time: str | None = Field(
        default=None,
        json_schema_extra=_DATE_TIME | _NULLABLE,
        description="When the first shard started.",
    )
    completion_time: str | None = Field(
        default=None,
        json_schema_extra=_DATE_TIME | _NULLABLE,
        description="When the run reached Succeeded or Failed.",
    )
    throughput: float | None = Field(
        default=None,
        json_schema_extra=_NULLABLE,
        description="Finished tracks per second since start.",
    )
    eta: str | None = Field(
        default=None,
        json_schema_extra=_NULLABLE,
        description="Estimated time left, like 3m12s; null when unknown.",
    )
    job_name: str | None = Field(default=None, description="Name of the Indexed Job.")


class AnalysisRunStatus(RunStatus):
    """Observed state of the run, refreshed by the operator from the shard counters."""

    tokens: TokenUsage | None = Field(default=None, description="LLM tokens used.")
    estimated_cost: float | None = Field(
        default=None, description="Estimated LLM cost in USD from the token counts."
    )
    fallback_used: int | None = Field(
        default=None, description="Tracks analyzed by the fallback analyzer."
    )
    cascade: CascadeStatus | None = Field(
        default=None, description="spec.llm.cascade: tracks kept from the LLM and sent to it."
    )
    estimate: RunEstimate | None = Field(
        default=None, description="Planning-time estimate of requests, tokens, cost, duration."
    )
    llm_batches: LLMBatches | None = Field(
        default=None,
        description="spec.llm.mode batch: the provider batches' states and request counts.",
    )
