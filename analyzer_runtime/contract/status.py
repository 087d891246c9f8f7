"""The status of an AnalysisRun, computed from shard counters and the Job (pure logic).

The operator's refresh (rap_operator.decide) and the local runner both call
`compute_status` with a `RunObservation`: the per-shard counter rows the ledger
holds (O(shards), never a count over items), in a cluster an observation of the
Indexed Job, the status as it was, the clock and what the spec says. It returns the
pydantic status model the CRD's status schema is generated from
(`analyzer_runtime.contract.status_model`); `to_json()` of it is what is patched
onto `.status`. No I/O here: every phase and condition is table-tested.

Phases: Pending (nothing started) -> Running -> Succeeded | Failed, with Suspended
while `spec.suspend` holds. Succeeded means every shard finished its work, even if
some tracks failed (then `CompletedWithErrors=True`: a new run with
`selection.onlyMissing` retries exactly those tracks). Failed means a shard could
not finish: its Job index exhausted its pod retries (`failedIndexes`), the Job
failed as a whole (deadline, ...), or - without a Job - the shard process failed.
A run whose shards all finished but in which more than `failure_threshold` (spec
.failureThreshold, default 0.5) of the tracks failed ends Failed too, reason
TooManyTrackFailures: a run where most tracks failed has not succeeded.
A run with failed shards is declared Failed only once the other shards have
finished, so the counts on a Failed run are final; until then it stays Running and
the Running condition names the failed shards. Succeeded and Failed are final for
the operator, which stops refreshing a terminal run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from analyzer_runtime.contract.status_model import (
    SHARD_DETAIL_ALL,
    SHARD_DETAIL_TOP,
    SHARD_INDEXES_MAX_CHARS,
    SHARD_MESSAGE_MAX_CHARS,
    AnalysisRunStatus,
    CascadeStatus,
    Condition,
    ConditionStatus,
    Phase,
    ShardDetail,
    ShardGroup,
    ShardState,
    ShardSummary,
    TokenUsage,
)
from analyzer_runtime.contract.wording import (
    ANALYSIS_WORDING,
    Wording,
    format_duration,
    format_progress,
    format_time,
    parse_time,
    render_status_text,
)

__all__ = [
    "TERMINAL_PHASES",
    "Held",
    "JobObservation",
    "RunObservation",
    "ShardCounters",
    "StatusOptions",
    "TokenPricing",
    "cascade_status",
    "clip_indexes",
    "clip_text",
    "compute_status",
    "failure_note",
    "format_duration",
    "format_indexes",
    "format_progress",
    "format_time",
    "is_terminal",
    "parse_indexes",
    "parse_time",
    "phase_changed",
    "render_status_text",
    "shard_summary",
]

TERMINAL_PHASES: frozenset[str] = frozenset({Phase.Succeeded, Phase.Failed})


def is_terminal(phase: str | None) -> bool:
    """True for Succeeded and Failed."""
    return phase in TERMINAL_PHASES


def phase_changed(old: Mapping[str, Any] | str | None, new: Mapping[str, Any] | str | None) -> bool:
    """Whether the phase differs between two statuses (or phase strings); the operator
    emits an Event exactly when this is True. A first status (old None) is a change."""
    return _phase_of(old) != _phase_of(new)


def _phase_of(status: Mapping[str, Any] | str | None) -> str | None:
    if status is None or isinstance(status, str):
        return status
    return status.get("phase")


# ---- parsing and formatting helpers ----------------------------------------------


def parse_indexes(text: str | None) -> set[int]:
    """Parse the Job's `completedIndexes`/`failedIndexes` form: "0-2,5" -> {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        out.update(range(int(lo), int(hi) + 1) if sep else (int(lo),))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """The inverse of parse_indexes: {0, 1, 2, 5} -> "0-2,5"."""
    runs: list[list[int]] = []
    for i in sorted(set(indexes)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def clip_indexes(text: str, limit: int = SHARD_INDEXES_MAX_CHARS) -> str:
    """`text` (format_indexes' form) cut at a comma to at most `limit` characters, then
    ",..." appended: "0,2,4,...". Unchanged when it fits."""
    if len(text) <= limit:
        return text
    cut = text.rfind(",", 0, limit - 3)
    return (text[:cut] if cut > 0 else text.split(",", 1)[0]) + ",..."


def clip_text(text: str, limit: int = SHARD_MESSAGE_MAX_CHARS) -> str:
    """`text` on one line, at most `limit` characters ("..." marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# ---- inputs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardCounters:
    """One row of the shard ledger: what a shard has committed so far."""

    shard: int
    total: int
    processed: int
    failed: int
    skipped: int
    state: str  # 'pending' | 'running' | 'done' | 'failed'
    attempt: int
    heartbeat_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    tokens_prompt: int = 0
    tokens_completion: int = 0
    fallback_used: int = 0
    last_error: str | None = None  # why the shard process failed, when it knows
    tokens_cached: int = 0  # of tokens_prompt, from the provider's prompt cache
    cascade_kept: int = 0  # tracks the cascade's first analyzer labelled

    @property
    def finished(self) -> int:
        return self.processed + self.failed + self.skipped


@dataclass(frozen=True, slots=True)
class JobObservation:
    """What the run's status needs from its batch/v1 Indexed Job."""

    exists: bool
    suspended: bool = False
    active: int = 0
    completed_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    complete: bool = False
    failed: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None

    @classmethod
    def missing(cls) -> JobObservation:
        return cls(exists=False)

    @classmethod
    def from_job_status(cls, job: Mapping[str, Any] | None) -> JobObservation:
        """From a Job as the API returns it (a dict with spec and status); None = no Job.
        `FailureTarget` counts as failed: the Job controller sets it as soon as the Job
        is doomed, before the pods are gone and `Failed` appears."""
        if job is None:
            return cls.missing()
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        conds = {
            c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"
        }
        failure = conds.get("Failed") or conds.get("FailureTarget")
        return cls(
            exists=True,
            suspended=bool(spec.get("suspend")) or "Suspended" in conds,
            active=int(status.get("active") or 0),
            completed_indexes=parse_indexes(status.get("completedIndexes")),
            failed_indexes=parse_indexes(status.get("failedIndexes")),
            complete="Complete" in conds,
            failed=failure is not None,
            failure_reason=failure.get("reason") if failure else None,
            failure_message=failure.get("message") if failure else None,
        )


@dataclass(frozen=True, slots=True)
class TokenPricing:
    """LLM price in USD per 1,000 tokens, for `estimatedCost`: the lane's price (a
    batch run's is the provider's batch price)."""

    prompt_per_1k: float
    completion_per_1k: float
    # Prompt tokens served from the provider's cache; None: no discount known.
    cached_prompt_per_1k: float | None = None

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        """USD for `prompt` tokens (of which `cached` came from the cache) and
        `completion` tokens."""
        cached_price = (
            self.prompt_per_1k if self.cached_prompt_per_1k is None else self.cached_prompt_per_1k
        )
        return (
            (prompt - cached) / 1000 * self.prompt_per_1k
            + cached / 1000 * cached_price
            + completion / 1000 * self.completion_per_1k
        )

    def scaled(self, factor: float) -> TokenPricing:
        """Every price times `factor` (a Batch API's discount)."""
        cached = None if self.cached_prompt_per_1k is None else self.cached_prompt_per_1k * factor
        return TokenPricing(self.prompt_per_1k * factor, self.completion_per_1k * factor, cached)


# ---- the observation ---------------------------------------------------------------

# What to say while the Job is suspended by someone else than spec.suspend (a queue,
# Kueue, waiting for quota or preempting): (phase, reason, message).
Held = tuple[str, str, str]


class StatusOptions(TypedDict, total=False):
    """What a kind takes from a planned run's spec into its observation (the
    operator's RunKind.status_args): RunObservation's fields of the same names."""

    pricing: TokenPricing | None
    dry_run: bool
    failure_threshold: float | None
    cascade: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunObservation:
    """Everything a run's status is computed from, as one refresh observed it.

    `shards` empty and `planned_total` None means "not planned yet" (Pending);
    `planned_total=0` means planning selected nothing (Succeeded at once).
    `job` is None for the local runner (shard states alone decide). `valid=False`
    sets `Valid=False`; before any work exists it also ends the run Failed (unless
    `invalid_until_fixed` is False: a cause time removes, such as an overlapping run,
    keeps it Pending), after planning it only reports (e.g. a refused spec change)
    and the run goes on.
    `previous` (the last status) keeps each condition's lastTransitionTime and the
    start/completion times stable across refreshes.
    """

    generation: int  # metadata.generation the status is computed for
    shards: Sequence[ShardCounters]  # the ledger's per-shard counters
    job: JobObservation | None
    previous: Mapping[str, Any] | None
    now: datetime
    valid: bool = True
    invalid_message: str | None = None
    invalid_reason: str = "InvalidSpec"
    invalid_until_fixed: bool = True
    planned_total: int | None = None
    suspend: bool = False  # spec.suspend
    job_name: str | None = None  # status.jobName (None: the run has no Job)
    # The lane's price, for status.estimatedCost (None: no cost shown).
    pricing: TokenPricing | None = None
    # spec.dryRun: a planned run ends Succeeded with reason DryRun - it was planned and
    # estimated, and no shard will ever run.
    dry_run: bool = False
    wording: Wording = ANALYSIS_WORDING
    # spec.failureThreshold: a finished run with more than this fraction of failed
    # items ends Failed, reason TooManyTrackFailures. None: DEFAULT_FAILURE_THRESHOLD
    # for an AnalysisRun's wording, no threshold for other kinds.
    failure_threshold: float | None = None
    held: Held | None = None
    # spec.llm.cascade.analyzer: status.cascade says how many tracks its first
    # analyzer kept, how many went to the LLM, and the cost saved (cascade_status).
    cascade: str | None = None


# ---- the computation ---------------------------------------------------------------

# spec.failureThreshold's default: more than this fraction of failed tracks fails a run.
DEFAULT_FAILURE_THRESHOLD = 0.5


@dataclass(slots=True)
class _Verdict:
    phase: Phase
    reason: str
    message: str


def compute_status(obs: RunObservation) -> AnalysisRunStatus:
    """The run's status. Every field it owns is set, None included: `to_json()`
    writes a None as null, which in a JSON merge patch removes a stale value (e.g.
    `eta` after completion). Optional parts (tokens, cost, cascade, the Job's name)
    are set only when there is something to show. A ScrapeJob's status is this plus
    the fields its kind adds (tokens and cost never appear: scrape shards use none).
    """
    shards = sorted(obs.shards, key=lambda s: s.shard)
    job = obs.job
    prev = obs.previous or {}
    total = sum(s.total for s in shards) if shards else (obs.planned_total or 0)
    processed = sum(s.processed for s in shards)
    failed = sum(s.failed for s in shards)
    skipped = sum(s.skipped for s in shards)
    finished = processed + failed + skipped
    job_seen = job is not None and job.exists

    # A shard the Job is still retrying is not failed yet, whatever its ledger row says.
    failed_shards: dict[int, str] = {}
    if job_seen:
        assert job is not None
        for i in sorted(job.failed_indexes):
            failed_shards[i] = "exhausted its pod retries (spec.retry.backoffLimitPerIndex)"
    else:
        for s in shards:
            if s.state == "failed":
                failed_shards[s.shard] = f"failed: {s.last_error}" if s.last_error else "failed"
    done = {s.shard for s in shards if s.state == "done"}
    if job_seen:
        assert job is not None
        done |= job.completed_indexes
    verdict = _decide(
        obs, shards, job if job_seen else None, failed_shards, done, total, finished,
        planned=bool(shards) or obs.planned_total is not None,
    )  # fmt: skip
    threshold = obs.failure_threshold
    if threshold is None and obs.wording is ANALYSIS_WORDING:
        threshold = DEFAULT_FAILURE_THRESHOLD
    verdict = _too_many_failures(verdict, failed, total, threshold, obs.wording)
    terminal = is_terminal(verdict.phase)

    start = parse_time(prev.get("startTime")) or min(
        (s.started_at for s in shards if s.started_at), default=None
    )
    completion: datetime | None = None
    if terminal:
        completion = (
            parse_time(prev.get("completionTime")) if is_terminal(_phase_of(prev)) else None
        )
        ends = [s.finished_at for s in shards]
        if completion is None:
            known = [e for e in ends if e is not None]
            completion = max(known) if known and len(known) == len(ends) else obs.now
        start = start or completion
    throughput: float | None = None
    eta: str | None = None
    if start is not None:
        elapsed = ((completion or obs.now) - _aware(start)).total_seconds()
        throughput = round(finished / elapsed, 2) if elapsed > 0 else 0.0
        if verdict.phase == Phase.Running and throughput > 0 and total > finished:
            eta = format_duration((total - finished) / throughput)

    status = AnalysisRunStatus(
        phase=verdict.phase,
        observed_generation=obs.generation,
        progress=format_progress(finished, total, complete=verdict.phase == Phase.Succeeded),
        total=total,
        processed=processed,
        failed=failed,
        skipped=skipped,
        start_time=format_time(start),
        completion_time=format_time(completion),
        throughput=throughput,
        eta=eta,
        shards=shard_summary(shards, failed_shards, done, job_seen),
        conditions=_conditions(verdict, obs, failed, total, prev),
    )
    prompt = sum(s.tokens_prompt for s in shards)
    completion_tokens = sum(s.tokens_completion for s in shards)
    if prompt or completion_tokens:
        status.tokens = TokenUsage(
            prompt=prompt, completion=completion_tokens, total=prompt + completion_tokens
        )
        cached = sum(s.tokens_cached for s in shards)
        if cached:
            status.tokens.cached = cached
        if obs.pricing is not None:
            status.estimated_cost = round(obs.pricing.cost(prompt, completion_tokens, cached), 6)
    fallback = sum(s.fallback_used for s in shards)
    if fallback:
        status.fallback_used = fallback
    if obs.cascade is not None:
        status.cascade = cascade_status(obs.cascade, shards, status.estimated_cost)
    if obs.job_name:
        status.job_name = obs.job_name
    return status


def cascade_status(
    analyzer: str, shards: Sequence[ShardCounters], llm_cost: float | None
) -> CascadeStatus:
    """status.cascade: kept (the first analyzer's), sentToLLM (every other finished,
    not skipped track) and costSaved = kept x the run's actual average cost per track
    the LLM answered (`llm_cost`: the run's cost so far; fallback results excluded)."""
    kept = sum(s.cascade_kept for s in shards)
    processed = sum(s.processed for s in shards)
    failed = sum(s.failed for s in shards)
    answered = processed - kept - sum(s.fallback_used for s in shards)
    saved = None
    if llm_cost is not None and answered > 0:
        saved = round(kept * llm_cost / answered, 6)
    return CascadeStatus(
        analyzer=analyzer,
        kept=kept,
        sent_to_llm=max(0, processed + failed - kept),
        cost_saved=saved,
    )


def _too_many_failures(
    verdict: _Verdict, failed: int, total: int, threshold: float | None, wording: Wording
) -> _Verdict:
    """A Succeeded verdict turned Failed when more than `threshold` of the items failed."""
    if verdict.phase != Phase.Succeeded or threshold is None or total <= 0:
        return verdict
    if failed / total <= threshold:
        return verdict
    return _Verdict(
        Phase.Failed,
        "TooManyTrackFailures",
        f"{failed} of {total} {wording.items} failed ({failed / total:.0%}, more than the"
        f" failureThreshold {threshold:g}); the results of the others are kept",
    )


def _decide(
    obs: RunObservation,
    shards: Sequence[ShardCounters],
    job: JobObservation | None,
    failed_shards: Mapping[int, str],
    done: set[int],
    total: int,
    finished: int,
    *,
    planned: bool,
) -> _Verdict:
    """The phase, with the reason and message of its condition. `job`: the Job as
    seen (None when there is none, or no Job is used)."""
    wording, suspend, held = obs.wording, obs.suspend, obs.held
    kept = wording.kept
    if not obs.valid and not planned and job is None:
        message = obs.invalid_message or "the spec is invalid"
        phase = Phase.Failed if obs.invalid_until_fixed else Phase.Pending
        return _Verdict(phase, obs.invalid_reason, message)
    if obs.dry_run and planned and job is None:
        return _Verdict(
            Phase.Succeeded,
            "DryRun",
            f"dry run: {total} tracks planned and estimated (status.estimate); nothing was"
            " analyzed. Create a new AnalysisRun without dryRun to analyze them",
        )
    shard_note = failure_note(failed_shards)
    if job is not None and job.failed:
        if failed_shards:  # the usual case: failedIndexes made the Job fail
            return _Verdict(Phase.Failed, "ShardFailed", shard_note + kept)
        reason = job.failure_reason or "JobFailed"
        detail = job.failure_message or "no message"
        return _Verdict(Phase.Failed, reason, f"the Job failed ({reason}): {detail}{kept}")
    all_through = bool(shards) and all(s.shard in done or s.shard in failed_shards for s in shards)
    if failed_shards and all_through:
        return _Verdict(Phase.Failed, "ShardFailed", shard_note + kept)
    if planned and total == 0:
        return _Verdict(Phase.Succeeded, "NothingToDo", wording.nothing)
    if (shards and all(s.shard in done for s in shards)) or (job is not None and job.complete):
        return _Verdict(
            Phase.Succeeded,
            "AllShardsDone",
            f"all {len(shards)} shards finished {total} {wording.items}",
        )
    if held is not None and not suspend and job is not None and job.suspended:
        return _Verdict(Phase(held[0]), held[1], held[2])
    if suspend or (job is not None and job.suspended):
        return _Verdict(
            Phase.Suspended, "SuspendRequested", "spec.suspend is true; set it to false to resume"
        )
    started = any(
        s.started_at or s.heartbeat_at or s.finished or s.state != "pending" for s in shards
    ) or (job is not None and (job.active > 0 or job.completed_indexes or job.failed_indexes))
    if not started:
        what = "waiting for planning" if not planned else "waiting for shards to start"
        return _Verdict(Phase.Pending, "Pending", what)
    msg = f"{len(done)}/{len(shards)} shards done, {finished}/{total} {wording.items} finished"
    if failed_shards:
        msg += f"; {shard_note} - the run will end Failed once the other shards finish"
    return _Verdict(Phase.Running, "ShardsRunning", msg)


# Distinct failure reasons a condition message names (the rest are counted).
_NOTE_REASONS = 2


def failure_note(failed_shards: Mapping[int, str]) -> str:
    """The failed shards for a condition message, short whatever their number: shards
    grouped by reason, "shard 3 exhausted its pod retries (...)" or "shards 0-9,12
    exhausted their pod retries (...)"; at most _NOTE_REASONS reasons, then a count."""
    by_reason: dict[str, list[int]] = {}
    for index, why in failed_shards.items():
        by_reason.setdefault(why, []).append(index)
    parts = []
    for why, indexes in list(by_reason.items())[:_NOTE_REASONS]:
        reason = clip_text(why, 100)
        if len(indexes) == 1:
            parts.append(f"shard {indexes[0]} {reason}")
        else:
            reason = reason.replace(" its ", " their ", 1)
            parts.append(
                f"{len(indexes)} shards ({clip_indexes(format_indexes(indexes), 60)}) {reason}"
            )
    rest = sum(len(v) for v in list(by_reason.values())[_NOTE_REASONS:])
    if rest:
        parts.append(f"{rest} more shards failed for other reasons (status.shards)")
    return "; ".join(parts)


def _shard_state(
    s: ShardCounters, failed_shards: Mapping[int, str], done: set[int], job_seen: bool
) -> ShardState:
    if s.shard in failed_shards:
        return ShardState.failed
    if s.shard in done:
        return ShardState.done
    if job_seen and s.state == "failed":
        return ShardState.retrying  # the Job has pod retries left for this index
    try:
        return ShardState(s.state)
    except ValueError:  # pragma: no cover - the ledger has no other states
        return ShardState.running


def _shard_message(
    s: ShardCounters, state: ShardState, failed_shards: Mapping[int, str], job_seen: bool
) -> str | None:
    if state is ShardState.failed:
        text = f"shard {s.shard} {failed_shards[s.shard]}"
        if job_seen and s.last_error:  # the Job says why it gave up; the ledger, what broke
            text += f"; last error: {s.last_error}"
        return clip_text(text)
    if state is ShardState.retrying and s.last_error:
        return clip_text(f"last error: {s.last_error}")
    return None


# Which shards are shown in detail in a big run, most notable first.
_DETAIL_PRIORITY = {ShardState.failed: 0, ShardState.retrying: 1, ShardState.running: 2}


def shard_summary(
    shards: Sequence[ShardCounters],
    failed_shards: Mapping[int, str],
    done: set[int],
    job_seen: bool,
) -> ShardSummary:
    """`status.shards`: per state a count and the index ranges,
    and a few shards in detail - every shard (in index order) in a run of at most
    SHARD_DETAIL_ALL, otherwise the SHARD_DETAIL_TOP most notable (failed, retrying,
    then the running ones least far along, in that order). A few KB at 1,000 shards, and nothing in it changes unless
    work moved (no heartbeat times). Every key is always there: the status is written
    with merge patches, which would keep a key a refresh leaves out."""
    states = {s.shard: _shard_state(s, failed_shards, done, job_seen) for s in shards}

    def group(state: ShardState) -> ShardGroup:
        indexes = [i for i, st in states.items() if st is state]
        return ShardGroup(count=len(indexes), indexes=clip_indexes(format_indexes(indexes)))

    def notability(s: ShardCounters) -> tuple[int, float, int]:
        state = states[s.shard]
        # Running shards least far along first; the others in index order.
        along = (s.finished / s.total if s.total else 1.0) if state is ShardState.running else 0
        return _DETAIL_PRIORITY.get(state, len(_DETAIL_PRIORITY)), along, s.shard

    if len(shards) <= SHARD_DETAIL_ALL:
        chosen = sorted(shards, key=lambda s: s.shard)  # a table of the whole run
    else:
        notable = [s for s in shards if states[s.shard] in _DETAIL_PRIORITY]
        chosen = sorted(notable, key=notability)[:SHARD_DETAIL_TOP]
    return ShardSummary(
        total=len(shards),
        done=group(ShardState.done),
        running=group(ShardState.running),
        retrying=group(ShardState.retrying),
        failed=group(ShardState.failed),
        pending=group(ShardState.pending),
        detail=[_shard_detail(s, states[s.shard], failed_shards, job_seen) for s in chosen],
    )


def _shard_detail(
    s: ShardCounters, state: ShardState, failed_shards: Mapping[int, str], job_seen: bool
) -> ShardDetail:
    out = ShardDetail(
        index=s.shard,
        state=state,
        total=s.total,
        processed=s.processed,
        failed=s.failed,
        skipped=s.skipped,
        progress=f"{s.finished}/{s.total}",
        attempt=s.attempt,
    )
    # Left unset, so omitted rather than null, when there is none: the API server
    # prunes nulls inside list items, and a patch that the server changes makes kopf
    # report inconsistencies.
    if (message := _shard_message(s, state, failed_shards, job_seen)) is not None:
        out.message = message
    return out


def _conditions(
    v: _Verdict, obs: RunObservation, failed_items: int, total: int, prev: Mapping[str, Any]
) -> list[Condition]:
    wording = obs.wording
    phase = v.phase
    # (type, status, reason, message); the order is the order `kubectl describe` shows.
    rows: list[tuple[str, str, str, str]] = []
    if obs.valid:
        rows.append(("Valid", "True", "SpecValid", "the spec is valid"))
    else:
        message = obs.invalid_message or "the spec is invalid"
        rows.append(("Valid", "False", obs.invalid_reason, message))
    for shown in (Phase.Running, Phase.Suspended, Phase.Failed):
        if phase == shown:
            rows.append((str(shown), "True", v.reason, v.message))
        elif shown == Phase.Running:
            rows.append(("Running", "False", str(phase), v.message))
        elif shown == Phase.Suspended:
            rows.append(("Suspended", "False", "NotSuspended", "spec.suspend is false"))
        else:
            rows.append(("Failed", "False", "NotFailed", "no shard has failed for good"))
    if phase != Phase.Succeeded:
        rows.append(("CompletedWithErrors", "False", "NotCompleted", "the run has not completed"))
    elif failed_items:
        msg = wording.some_failed.format(failed=failed_items, total=total)
        rows.append(("CompletedWithErrors", "True", "ItemsFailed", msg))
    else:
        rows.append(("CompletedWithErrors", "False", "NoFailedItems", wording.none_failed))
    # The summary condition: True only on success, so `kubectl wait
    # --for=condition=Succeeded` returns exactly then (and `=False` catches failure).
    if phase == Phase.Succeeded:
        rows.append(("Succeeded", "True", v.reason, v.message))
    elif phase == Phase.Failed:
        rows.append(("Succeeded", "False", v.reason, v.message))
    else:
        reason = "InProgress" if phase == Phase.Running else str(phase)
        rows.append(("Succeeded", "Unknown", reason, v.message))
    before = {c.get("type"): c for c in prev.get("conditions") or []}
    out = []
    for ctype, cstatus, reason, message in rows:
        old = before.get(ctype)
        since = old.get("lastTransitionTime") if old and old.get("status") == cstatus else None
        out.append(
            Condition(
                type=ctype,
                status=ConditionStatus(cstatus),
                reason=reason,
                message=message,
                last_transition_time=since or format_time(obs.now),
                observed_generation=obs.generation,
            )
        )
    return out


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
