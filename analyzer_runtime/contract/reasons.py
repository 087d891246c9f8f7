"""The reasons a run's conditions carry, each with what it means: the troubleshooting
page of the documentation lists them from `REASONS`, and tests/unit/test_reasons.py
fails when the code sets a condition reason (by a literal) that is not listed here.

Reasons other systems choose pass through as they are and are listed under
`PASSED_THROUGH`: a failed Job's reason (Kubernetes) and Kueue's reasons of a
workload it keeps waiting or evicted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    name: str
    conditions: tuple[str, ...]  # the condition types that carry it
    meaning: str


# ---- the run's progress (Running, Succeeded, Failed, Suspended) ------------------
PENDING = "Pending"
SHARDS_RUNNING = "ShardsRunning"
IN_PROGRESS = "InProgress"
ALL_SHARDS_DONE = "AllShardsDone"
NOTHING_TO_DO = "NothingToDo"
DRY_RUN = "DryRun"
SHARD_FAILED = "ShardFailed"
JOB_FAILED = "JobFailed"
TOO_MANY_TRACK_FAILURES = "TooManyTrackFailures"
SUSPEND_REQUESTED = "SuspendRequested"
NOT_SUSPENDED = "NotSuspended"
NOT_FAILED = "NotFailed"
NOT_COMPLETED = "NotCompleted"
ITEMS_FAILED = "ItemsFailed"
NO_FAILED_ITEMS = "NoFailedItems"
# ---- Valid ------------------------------------------------------------------------
SPEC_VALID = "SpecValid"
INVALID_SPEC = "InvalidSpec"
SPEC_CHANGE_REFUSED = "SpecChangeRefused"
POLICY_DENIED = "PolicyDenied"
INPUT_MISSING = "InputMissing"
DATABASE_UNAVAILABLE = "DatabaseUnavailable"
DATABASE_NOT_MIGRATED = "DatabaseNotMigrated"
DATABASE_ERROR = "DatabaseError"
INVALID_DATABASE_URL = "InvalidDatabaseURL"
API_ERROR = "ApiError"
API_FORBIDDEN = "ApiForbidden"
API_UNAVAILABLE = "ApiUnavailable"
API_REJECTED = "ApiRejected"
TIMEOUT = "Timeout"
TEMPORARY = "Temporary"
PERMANENT = "Permanent"
UNEXPECTED = "Unexpected"
# ---- ParallelismCapped, QueueAdmitted/Queued/Preempted, SpotifyUnavailable ------------------
CONNECTION_BUDGET = "ConnectionBudget"
WITHIN_BUDGET = "WithinBudget"
ADMITTED = "Admitted"
PREEMPTED = "Preempted"
READMITTED = "Readmitted"
SPOTIFY_REFUSED = "SpotifyRefused"
SPOTIFY_AVAILABLE = "SpotifyAvailable"

_VALID = ("Valid",)

REASONS: tuple[Reason, ...] = (
    Reason(PENDING, ("Running", "Succeeded"), "Planned, or waiting for planning, and no shard has started yet."),
    Reason(SHARDS_RUNNING, ("Running",), "Shards are running; the message counts the shards and items done."),
    Reason(IN_PROGRESS, ("Succeeded",), "The run is Running: it has not succeeded or failed yet."),
    Reason(ALL_SHARDS_DONE, ("Succeeded",), "Every shard finished its items."),
    Reason(NOTHING_TO_DO, ("Succeeded",), "Planning selected nothing (with onlyMissing: everything is analyzed already)."),
    Reason(DRY_RUN, ("Succeeded",), "spec.dryRun: the run was planned and estimated (status.estimate) and no shard runs."),
    Reason(SHARD_FAILED, ("Failed", "Succeeded"), "A shard exhausted its pod retries (backoffLimitPerIndex); the message names the shards and why."),
    Reason(JOB_FAILED, ("Failed", "Succeeded"), "The Job failed without a failed shard to blame; the message quotes the Job's condition."),
    Reason(TOO_MANY_TRACK_FAILURES, ("Failed", "Succeeded"), "More than spec.failureThreshold of the items failed."),
    Reason(SUSPEND_REQUESTED, ("Suspended",), "spec.suspend is true; set it to false to resume."),
    Reason(NOT_SUSPENDED, ("Suspended",), "spec.suspend is false."),
    Reason(NOT_FAILED, ("Failed",), "No shard has failed for good."),
    Reason(NOT_COMPLETED, ("CompletedWithErrors",), "The run has not completed."),
    Reason(ITEMS_FAILED, ("CompletedWithErrors",), "The run succeeded and some items failed (status.failed; each one's error is in the ledger, run_items.last_error)."),
    Reason(NO_FAILED_ITEMS, ("CompletedWithErrors",), "The run succeeded and no item failed."),
    Reason("Succeeded", ("Running",), "Running is False because the run succeeded (Running=False carries the phase)."),
    Reason("Failed", ("Running",), "Running is False because the run failed."),
    Reason("Suspended", ("Running", "Succeeded"), "The run is suspended (spec.suspend, or a queue holds its Job)."),
    Reason(SPEC_VALID, _VALID, "The spec is valid."),
    Reason(INVALID_SPEC, (*_VALID, "Failed"), "The spec does not validate; the message names the field. Fix it or create a new resource."),
    Reason(SPEC_CHANGE_REFUSED, _VALID, "A field that is fixed at planning was changed; the run goes on with the planned spec."),
    Reason(POLICY_DENIED, (*_VALID, "Failed"), "The admin's policy refuses an image, host or Secret the spec names."),
    Reason(INPUT_MISSING, _VALID, "Something the run needs does not exist yet (a Secret, a ConfigMap, a trained model); the run waits and plans by itself once it does."),
    Reason(DATABASE_UNAVAILABLE, _VALID, "The database cannot be reached; the operator retries."),
    Reason(DATABASE_NOT_MIGRATED, _VALID, "The database's schema is older than this release; migrate it (or adopt the database)."),
    Reason(DATABASE_ERROR, _VALID, "The database refused a statement; the message quotes it."),
    Reason(INVALID_DATABASE_URL, (*_VALID, "Failed"), "The database URL (the Secret's value) is not a postgres:// URL."),
    Reason(API_ERROR, _VALID, "The Kubernetes API answered with an error; the operator retries."),
    Reason(API_FORBIDDEN, _VALID, "The operator's service account may not do what the run needs (RBAC)."),
    Reason(API_UNAVAILABLE, _VALID, "The Kubernetes API cannot be reached; the operator retries."),
    Reason(API_REJECTED, (*_VALID, "Failed"), "The API server refused an object the spec made the operator send (400/422)."),
    Reason(TIMEOUT, _VALID, "A call timed out; the operator retries."),
    Reason(TEMPORARY, _VALID, "A temporary error; the operator retries."),
    Reason(PERMANENT, (*_VALID, "Failed"), "An error a retry cannot fix; the message says what."),
    Reason(UNEXPECTED, _VALID, "A bug: the operator's log has the traceback."),
    Reason(CONNECTION_BUDGET, ("ParallelismCapped",), "The database's connection budget caps the run's parallelism."),
    Reason(WITHIN_BUDGET, ("ParallelismCapped",), "The run's parallelism fits the connection budget again."),
    Reason(ADMITTED, ("QueueAdmitted", "Queued"), "The queue (Kueue) admitted the run's Job."),
    Reason(PREEMPTED, ("QueueAdmitted", "Queued", "Preempted", "Suspended"), "The queue preempted the run's Job; it resumes when readmitted."),
    Reason(READMITTED, ("Preempted",), "The queue admitted the Job again after a preemption."),
    Reason(SPOTIFY_REFUSED, ("SpotifyUnavailable",), "Spotify refused the ScrapeJob's app; songs are scraped without Spotify data."),
    Reason(SPOTIFY_AVAILABLE, ("SpotifyUnavailable",), "Spotify has not refused the app."),
)  # fmt: skip

# Reasons chosen by Kubernetes (a failed Job) or Kueue (a waiting or evicted workload),
# shown as they come.
PASSED_THROUGH: tuple[Reason, ...] = (
    Reason("BackoffLimitExceeded", ("Failed", "Succeeded"), "Kubernetes: the Job's pods failed more often than its backoffLimit."),
    Reason("FailedIndexes", ("Failed", "Succeeded"), "Kubernetes: some indexes (shards) of the Job failed."),
    Reason("DeadlineExceeded", ("Failed", "Succeeded"), "Kubernetes: the Job ran past activeDeadlineSeconds."),
    Reason("Inadmissible", ("QueueAdmitted", "Queued"), "Kueue: the workload cannot be admitted (no such queue, or it exceeds every quota)."),
    Reason("InactiveWorkload", ("QueueAdmitted", "Queued"), "Kueue: the workload was deactivated."),
    Reason("PodsReadyTimeout", ("QueueAdmitted", "Queued"), "Kueue: the pods were not ready in time and the workload was evicted."),
)  # fmt: skip

BY_NAME: dict[str, Reason] = {r.name: r for r in (*REASONS, *PASSED_THROUGH)}
