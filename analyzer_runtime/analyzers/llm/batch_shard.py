"""One shard's work in the batch lane (`spec.llm.mode: batch`; worker.py hands over).

    resume: every batch of this shard the ledger has not collected - create it if it
            was recorded but not created (adopting one a crash left behind), poll it,
            collect it once it is terminal;
    submit: claim pending items (maxRequests requests' worth), let spec.llm.cascade's
            first analyzer keep the tracks it is sure of, record the batch and
            hand the items' leases to it (batch_ledger.record_batch), upload the
            input file, create the batch;
    wait:   pollSeconds, then again - until nothing is pending and no batch is open.

A batch in flight is never cancelled: SIGTERM stops the loop and the batch goes on
at the provider; the next pod of the shard resumes it from the ledger.

Collecting (batch_ledger.collect, one transaction): valid answers are written as
`llm` results (analysis_data says `lane: batch` and names the batch); items in error
lines, missing (the batch expired, was cancelled or failed validation) or without a
usable answer are given back and submitted again - alone after an unusable or
untrusted packed answer - up to `batch.maxSubmissions` batches per item; then the
fallback analyzer labels them (stored under its own type, `fallback_for` saying why)
or they fail with the reason. Tokens are those of the lines used, priced at the
lane's price (the provider's batch discount).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import openai

from analyzer_runtime import metrics, results
from analyzer_runtime.analyzers.base import AnalysisResult, ItemOutcome, TrackInput
from analyzer_runtime.analyzers.llm import batch_lane
from analyzer_runtime.analyzers.llm.batch_api import (
    BATCH_KEY,
    RUN_KEY,
    BatchAPI,
    counts,
    errors_of,
)
from analyzer_runtime.analyzers.llm.prompt import Prompt
from analyzer_runtime.ledger import batches as batch_ledger
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.shard_steps import fetch_tracks, finish_or_wait, gave_up

if TYPE_CHECKING:
    from openai.types import Batch

    from analyzer_runtime.analyzers.llm.analyzer import LLMAnalyzer
    from analyzer_runtime.worker import ShardReport, StopFlag

# Compresses pollSeconds for tests and benchmarks against the fake provider (its
# batches finish in seconds). Never set in production.
POLL_ENV = "RAP_LLM_BATCH_POLL_SECONDS"
# Errors talking to the provider are retried at the next poll: these are worth a log
# line and the row's last_error, not the shard.
_PROVIDER_ERRORS = (openai.APIError, OSError, TimeoutError)
# HTTP statuses that refuse a batch (or its file) for good: asking again is pointless.
REFUSED = frozenset({400, 404, 413, 422})

log = logging.getLogger(__name__)


def poll_seconds(configured: int) -> float:
    raw = os.environ.get(POLL_ENV)
    try:
        return max(0.01, float(raw)) if raw else float(configured)
    except ValueError:
        return float(configured)


async def run(
    pool: asyncpg.Pool,
    run_: shard_ledger.Run,
    shard: int,
    report: ShardReport,
    stop: StopFlag,
    claimer: shard_ledger.Claimer,
    analyzer: LLMAnalyzer,
    *,
    api: BatchAPI | None = None,
) -> None:
    """Until the shard is finished (report.finished) or `stop` is set."""
    api = api or BatchAPI(
        analyzer.resolved,
        api_key=analyzer.resolved.api_key(),
        timeout=float(analyzer.options.timeout_seconds),
    )
    lane = _Lane(pool, run_, shard, report, stop, claimer, analyzer, api)
    try:
        async with shard_ledger.holding_leases(pool, run_.id, shard, claimer):
            await lane.loop()
    finally:
        await api.aclose()


class _Lane:
    def __init__(
        self,
        pool: asyncpg.Pool,
        run_: shard_ledger.Run,
        shard: int,
        report: ShardReport,
        stop: StopFlag,
        claimer: shard_ledger.Claimer,
        analyzer: LLMAnalyzer,
        api: BatchAPI,
    ) -> None:
        self.pool, self.run, self.shard, self.report = pool, run_, shard, report
        self.stop, self.claimer, self.analyzer, self.api = stop, claimer, analyzer, api
        opts = analyzer.options.batch_settings
        self.max_requests = opts.max_requests
        self.max_submissions = opts.max_submissions
        self.poll = poll_seconds(opts.poll_seconds)
        self.window = analyzer.resolved.batch_window or "24h"
        self.k = analyzer.options.tracks_per_request
        self.max_attempts = int((run_.spec.get("retry") or {}).get("maxItemAttempts") or 3)
        self.label = analyzer.version
        # Rows this process recorded: no batch can exist for them yet, so no lookup.
        self.fresh: set[int] = set()

    async def loop(self) -> None:
        while not self.stop.set:
            async with self.pool.acquire() as conn:
                open_rows = await batch_ledger.open_batches(conn, self.run.id, self.shard)
            for row in open_rows:
                if self.stop.set:
                    return
                await self._advance(row)
            if self.stop.set:
                return
            submitted = await self._submit_pending()
            async with self.pool.acquire() as conn:
                still_open = await batch_ledger.open_batches(conn, self.run.id, self.shard)
                if not still_open and not submitted:
                    if await finish_or_wait(conn, self.run.id, self.shard, self.stop):
                        self.report.finished = True
                        return
                    continue
            if still_open and not submitted:
                await self.stop.pause(self.poll)

    # ---- a batch's life: create, poll, collect ------------------------------------

    async def _advance(self, row: batch_ledger.BatchRow) -> None:
        try:
            if row.provider_batch_id is None:
                batch = await self._create(row)
                if batch is None:
                    return
            else:
                batch = await self.api.retrieve(row.provider_batch_id)
                await self._record(row.id, batch)
            if batch.status in batch_ledger.TERMINAL_STATES:
                await self._collect(row, batch)
        except openai.APIStatusError as exc:
            if exc.status_code not in REFUSED:
                await self._failed_call(row, exc)
                return
            # Refused for good (a file too big, a window or model the provider does not
            # take, a batch it no longer knows): the items go back to be sent again,
            # bounded by maxSubmissions, instead of asking the same forever.
            text = self._clean(exc)
            log.warning(
                "batch %d of shard %d refused by the provider: %s", row.id, self.shard, text
            )
            async with self.pool.acquire() as conn:
                await batch_ledger.record_state(conn, row.id, state="failed", last_error=text)
            await self._collect(row, None, why=f"the provider refused its batch: {text}")
        except _PROVIDER_ERRORS as exc:
            await self._failed_call(row, exc)

    def _clean(self, exc: BaseException) -> str:
        return self.analyzer.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]

    async def _failed_call(self, row: batch_ledger.BatchRow, exc: BaseException) -> None:
        text = self._clean(exc)
        log.warning(
            "batch %d of shard %d: %s (tried again in %gs)", row.id, self.shard, text, self.poll
        )
        async with self.pool.acquire() as conn:
            await batch_ledger.record_error(conn, row.id, text)

    async def _create(self, row: batch_ledger.BatchRow) -> Batch | None:
        """Upload the input file (unless recorded) and create the batch - or adopt the
        batch a crash left unrecorded. None: nothing to send (every track is gone)."""
        metadata = {RUN_KEY: self.run.uid, BATCH_KEY: str(row.id)}
        if row.input_file_id is not None and row.id not in self.fresh:
            found = await self.api.find(metadata, row.created_at)
            if found is not None:
                log.info("batch %d: adopted %s, created before a restart", row.id, found.id)
                await self._record(row.id, found)
                return found
        file_id = row.input_file_id
        if file_id is None:
            packs = await self._packs(row)
            if not packs:
                await self._collect(row, None)
                return None
            lines = [
                batch_lane.request_line(cid, batch_lane.chat_body(self.analyzer.resolved, p))
                for cid, (p, _) in packs.items()
            ]
            name = f"rap-run{self.run.id}-shard{self.shard}-batch{row.id}.jsonl"
            file_id = await self.api.upload(name, batch_lane.input_file(lines))
            async with self.pool.acquire() as conn:
                await batch_ledger.set_input_file(conn, row.id, file_id)
        batch = await self.api.create(file_id, self.window, metadata)
        log.info(
            "batch %d of shard %d: created %s (%d items)", row.id, self.shard, batch.id, row.items
        )
        await self._record(row.id, batch)
        return batch

    async def _record(self, row_id: int, b: Batch) -> None:
        c = counts(b)
        async with self.pool.acquire() as conn:
            await batch_ledger.record_state(
                conn, row_id, provider_batch_id=b.id, state=b.status,
                total=c.get("total"), completed=c.get("completed"), failed=c.get("failed"),
                output_file_id=b.output_file_id, error_file_id=b.error_file_id,
                expires_at=_time(b.expires_at), last_error=errors_of(b),
            )  # fmt: skip

    async def _packs(
        self, row: batch_ledger.BatchRow
    ) -> dict[str, tuple[Prompt, list[TrackInput]]]:
        """The batch's requests rebuilt from the ledger: the same tracks, keys and order
        (prompt.build is deterministic given the keys)."""
        async with self.pool.acquire() as conn:
            entries = await batch_ledger.batch_entries(conn, row.id)
            tracks = await fetch_tracks(conn, [e.item_id for e in entries])
        by_cid: dict[str, list[batch_ledger.ItemEntry]] = {}
        for e in entries:
            by_cid.setdefault(e.custom_id, []).append(e)
        out: dict[str, tuple[Prompt, list[TrackInput]]] = {}
        for cid, group in by_cid.items():
            group = sorted((e for e in group if e.item_id in tracks), key=lambda e: e.position)
            if group:
                ts = [tracks[e.item_id] for e in group]
                out[cid] = (self.analyzer.prompt_for(ts, [e.key for e in group]), ts)
        return out

    async def _collect(
        self, row: batch_ledger.BatchRow, batch: Batch | None, *, why: str | None = None
    ) -> None:
        state = batch.status if batch is not None else "failed"
        lines: dict[str, batch_lane.Line] = {}
        if batch is not None:
            for file_id in (batch.error_file_id, batch.output_file_id):  # output wins
                if file_id:
                    found, bad = batch_lane.read_lines(await self.api.text(file_id))
                    lines.update(found)
                    if bad:
                        log.warning("batch %d: %d unreadable lines in %s", row.id, bad, file_id)
        async with self.pool.acquire() as conn:
            entries = await batch_ledger.batch_entries(conn, row.id)
        packs = await self._packs(row)
        why_missing = why or f"batch {state} without an answer for this track"
        if batch is not None and (errors := errors_of(batch)):  # e.g. failed validation
            why_missing = f"{why_missing}: {errors}"
        elapsed_ms = _turnaround_ms(batch)
        results_of: dict[int, AnalysisResult] = {}
        updates: list[shard_ledger.ItemUpdate] = []
        release: list[int] = [e.item_id for e in entries]  # unless answered below
        outcomes = {e.item_id: batch_lane.MISSING for e in entries}
        reasons = dict.fromkeys(outcomes, why_missing)
        usage_of: list[tuple[frozenset[int], batch_lane.Usage]] = []
        for cid, (p, tracks) in packs.items():
            ids = [t.id for t in tracks]
            v = batch_lane.judge(p, ids, lines.get(cid), why_missing=why_missing)
            outcomes.update(v.outcome)
            reasons.update(v.reason)
            usage_of.append((frozenset(ids), v.usage))
            if v.untrusted or v.foreign:
                log.warning(
                    "batch %d, %s: %s",
                    row.id,
                    cid,
                    v.untrusted or f"{v.foreign} foreign entries dropped",
                )
            assert v.completion is not None or not v.valid
            for t in tracks:
                if (a := v.valid.get(t.id)) is None:
                    continue
                assert v.completion is not None
                r = self.analyzer.result_for(t, a, p, [v.completion], elapsed_ms)
                r.model_version = self.run.model_version or r.model_version
                r.analysis_data["lane"] = "batch"
                r.analysis_data["batch"] = {"id": batch.id if batch else None, "ledger": row.id}
                results_of[t.id] = r
                updates.append(shard_ledger.ItemUpdate(t.id, "done"))
        answered = {u.item_id for u in updates}
        release = [i for i in release if i not in answered]

        async def write(
            c: asyncpg.Connection,
            moved: frozenset[int],
            released: frozenset[int],
            extras: shard_ledger.BatchExtras,
        ) -> None:
            await results.upsert_results(c, [r for i, r in results_of.items() if i in moved])
            used = moved | released
            for ids, u in usage_of:  # a line counts once, if any of its items was ours
                if ids & used:
                    extras.tokens_prompt += u.prompt
                    extras.tokens_completion += u.completion
                    extras.tokens_cached += u.cached

        async with self.pool.acquire() as conn:
            got = await batch_ledger.collect(
                conn, self.run.id, self.shard, row.id, updates, release, outcomes, write,
                {i: r for i, r in reasons.items() if outcomes.get(i) != batch_lane.DONE},
            )  # fmt: skip
        if got.already:
            return
        self._count(got, results_of, usage_of)
        log.info(
            "batch %d of shard %d (%s): %d done, %d given back to submit again",
            row.id, self.shard, state, got.moved["done"], len(got.released),
        )  # fmt: skip

    def _count(
        self,
        got: batch_ledger.Collected,
        results_of: dict[int, AnalysisResult],
        usage_of: list[tuple[frozenset[int], batch_lane.Usage]],
    ) -> None:
        self.report.batches += 1
        for state, n in got.moved.items():
            setattr(self.report, state, getattr(self.report, state) + n)
            metrics.ITEMS.labels(self.analyzer.name, state).inc(n)
        pricing = self.analyzer.resolved.pricing
        for _, u in usage_of:
            metrics.LLM_TOKENS.labels(self.label, "prompt").inc(u.prompt)
            metrics.LLM_TOKENS.labels(self.label, "completion").inc(u.completion)
            metrics.LLM_TOKENS.labels(self.label, "cached").inc(u.cached)
            if pricing is not None:
                metrics.LLM_COST.labels(self.label).inc(
                    pricing.cost(u.prompt, u.completion, u.cached)
                )
        for r in results_of.values():
            metrics.ANALYZER_SECONDS.labels(self.analyzer.name).observe(r.processing_time_ms / 1000)

    # ---- submitting ----------------------------------------------------------------

    async def _submit_pending(self) -> bool:
        """Claim and submit until nothing is claimable; True if anything was claimed."""
        any_claimed = False
        while not self.stop.set:
            async with self.pool.acquire() as conn:
                claimed = await shard_ledger.next_batch(
                    conn, self.run.id, self.shard, self.max_requests * self.k, self.claimer
                )
                if not claimed:
                    return any_claimed
                any_claimed = True
                ids = [c.item_id for c in claimed]
                tracks = await fetch_tracks(conn, ids)
                subs = await batch_ledger.submissions(conn, self.run.id, ids)
            todo, settled = await self._settle(claimed, tracks, subs)
            kept = await self._cascade(todo, subs)
            if kept:
                settled.extend(kept)
                kept_ids = {o.track_id for o in kept}
                todo = [t for t in todo if t.id not in kept_ids]
            if settled:
                await self._commit_settled(settled, cascade_kept=len(kept))
            if todo:
                await self._submit(todo, {t.id for t in todo if (s := subs.get(t.id)) and s.alone})
        return any_claimed

    async def _settle(
        self,
        claimed: Sequence[shard_ledger.ClaimedItem],
        tracks: dict[int, TrackInput],
        subs: dict[int, batch_ledger.Submissions],
    ) -> tuple[list[TrackInput], list[ItemOutcome]]:
        """Items decided without a batch: crashed too often, gone, empty, or sent in
        maxSubmissions batches already (the fallback analyzer's, or failed)."""
        settled: list[ItemOutcome] = []
        todo: list[TrackInput] = []
        spent: list[TrackInput] = []
        for c in claimed:
            t = tracks.get(c.item_id)
            if c.crashes >= self.max_attempts:
                settled.append(
                    ItemOutcome.failed(c.item_id, gave_up(self.max_attempts, "batching"))
                )
            elif t is None:
                settled.append(ItemOutcome.failed(c.item_id, "track no longer exists"))
            elif t.lyrics is None or not t.lyrics.strip():
                settled.append(ItemOutcome.skipped(c.item_id, "empty lyrics"))
            elif (s := subs.get(c.item_id)) is not None and s.count >= self.max_submissions:
                spent.append(t)
            else:
                todo.append(t)
        if spent:
            last = {t.id: subs[t.id].last for t in spent}
            for t in spent:
                reason = (
                    f"no usable answer in {self.max_submissions} batches"
                    f" (llm.batch.maxSubmissions); the last: {last[t.id] or 'unknown'}"
                )
                settled.extend((await self.analyzer.fall_back([t], reason)).values())
        return todo, settled

    async def _cascade(
        self, todo: list[TrackInput], subs: dict[int, batch_ledger.Submissions]
    ) -> list[ItemOutcome]:
        """spec.llm.cascade: the outcomes of the tracks its first analyzer is sure of
        (asked once per track: a track sent before was already its to give away)."""
        cascade = self.analyzer.cascade
        first_time = [t for t in todo if t.id not in subs]
        if cascade is None or not first_time:
            return []
        return (await cascade.split(first_time)).kept

    async def _commit_settled(self, outcomes: list[ItemOutcome], *, cascade_kept: int = 0) -> None:
        for o in outcomes:
            if o.result is not None and o.result.analyzer_type == self.run.analyzer_type:
                o.result.model_version = self.run.model_version or o.result.model_version
        results_of = {o.track_id: o.result for o in outcomes if o.result is not None}

        async def write(c: asyncpg.Connection, ids: frozenset[int]) -> None:
            await results.upsert_results(c, [r for i, r in results_of.items() if i in ids])

        updates = [shard_ledger.ItemUpdate(o.track_id, o.status, o.reason) for o in outcomes]
        extras = self.analyzer.take_extras()  # the fallback's count
        extras.cascade_kept += cascade_kept
        async with self.pool.acquire() as conn:
            moved = await shard_ledger.commit_batch(
                conn, self.run.id, self.shard, updates, self.claimer,
                write=write, extras=extras,
            )  # fmt: skip
        self._count(batch_ledger.Collected(moved, frozenset()), {}, [])

    async def _submit(self, tracks: list[TrackInput], alone: set[int]) -> None:
        """One batch per input file's worth of packs (batch_lane.MAX_FILE_BYTES)."""
        packs: list[tuple[list[batch_ledger.ItemEntry], int]] = []
        for pack in batch_lane.group(tracks, self.k, alone):
            p = self.analyzer.prompt_for(pack)
            cid = batch_lane.custom_id(self.run.id, [t.id for t in pack])
            line = batch_lane.request_line(cid, batch_lane.chat_body(self.analyzer.resolved, p))
            entries = [
                batch_ledger.ItemEntry(t.id, cid, p.key_of[t.id], i) for i, t in enumerate(pack)
            ]
            packs.append((entries, len(line.encode()) + 1))
        for part in batch_lane.split_by_size([size for _, size in packs]):
            chosen = [packs[i][0] for i in part]
            async with self.pool.acquire() as conn:
                batch_id = await batch_ledger.record_batch(
                    conn, self.run.id, self.shard, self.claimer,
                    [e for entries in chosen for e in entries],
                    requests=len(chosen), window=self.window,
                )  # fmt: skip
                self.fresh.add(batch_id)
                rows = await batch_ledger.open_batches(conn, self.run.id, self.shard)
            row = next(r for r in rows if r.id == batch_id)
            await self._advance(row)  # upload and create now; a failure is retried next poll


def _time(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts else None


def _turnaround_ms(batch: Batch | None) -> int:
    """From the batch's creation to its end (what a result of the lane took)."""
    if batch is None:
        return 0
    end = batch.completed_at or batch.expired_at or batch.cancelled_at or batch.failed_at
    return max(0, int(((end or time.time()) - batch.created_at) * 1000))
