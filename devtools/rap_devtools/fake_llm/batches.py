"""The fake provider's Batch API, modelled on OpenAI's documented batch lifecycle, so a
client of `client.files` / `client.batches` (the openai SDK) meets what the real
services do, in seconds instead of hours.

Followed (looked up in the public documents and SDK types, Dec 2026):
  - https://platform.openai.com/docs/guides/batch: a JSONL input file uploaded with
    purpose `batch`, a batch created from it with an `endpoint` and a
    `completion_window` of "24h" (the only value OpenAI accepts); statuses validating →
    in_progress → finalizing → completed, or failed (validation), expired, cancelling →
    cancelled; "the output line order may not match the input line order", so lines
    carry the request's `custom_id`; a batch that does not finish in its window expires:
    what finished is in the output file, each unfinished request is an error-file line
    `{"response": null, "error": {"code": "batch_expired", "message": "This request
    could not be executed before the completion window expired."}}`; half-price, a
    rate-limit pool apart from the synchronous one.
  - https://platform.openai.com/docs/api-reference/batch: the Batch object (id
    "batch_…", object "batch", endpoint, model, errors {object "list", data[]},
    input_file_id, completion_window, status, output_file_id, error_file_id,
    created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at,
    expired_at, cancelling_at, cancelled_at, request_counts {total, completed,
    failed}, metadata (at most 16 pairs, keys ≤ 64 and values ≤ 512 characters), usage
    {input_tokens, input_tokens_details.cached_tokens, output_tokens,
    output_tokens_details.reasoning_tokens, total_tokens}); list newest first with
    `limit` (1-100, default 20) and `after`, answering `first_id`, `last_id`,
    `has_more`; cancel: "the batch will be in status cancelling for up to 10 minutes,
    before changing to cancelled, where it will have partial results (if any) available
    in the output file". The input/output line formats: batch_input.py.
  - https://platform.openai.com/docs/api-reference/files: files.py.
  - https://novita.ai/docs/guides/llm-batch-api (and Novita's API reference): the same
    API under https://api.novita.ai/openai/v1, /v1/chat/completions, one model per
    file, a unique custom_id per line, results "within 48 hours" ("the completion
    window is set to a fixed duration of 48 hours"): `batch_windows: ["48h"]` plays
    Novita. Novita's own extra fields (`total`, `remark`, string `created_at`) are not
    played.
  - Where OpenAI's pages say nothing: requests a cancel left unrun are error-file lines
    with code `batch_cancelled`, as llm-d's batch gateway writes them (so an output
    and an error file together always hold `request_counts.total` lines); an output
    or error file is only made when it has a line (`output_file_id` is null when every
    request failed, as OpenAI's batches are seen to answer).

Each request's response body is made by the synchronous endpoint's own code
(`FakeProvider.invalid` and `.completion`): the same answers (answers.py), markers,
modes and usage, so a line's body is what /v1/chat/completions would answer. Every line
answered is in /admin/log like a chat request, with `batch` and `custom_id` added. The
synchronous rate limit (`rate_limit`, `always_429`) and `fail_next` do not touch the
Batch or Files API (its pool is separate); `down` refuses their HTTP calls too.

Time is compressed (FakeConfig, `batch_*`):
    batch_windows          completion windows accepted ("24h"; ["48h"] as Novita)
    batch_window_seconds   how long any window lasts here (None: what it says, 24 h)
    batch_validate_seconds time in `validating`
    batch_seconds          time in `in_progress`: lines finish evenly across it
    batch_finalize_seconds time in `finalizing`
    batch_cancel_seconds   time in `cancelling`
    batch_max_requests     lines a file may hold (50,000) -> too_many_tasks
    batch_max_bytes        bytes a batch file may hold (200 MB), checked at upload
    batch_fail_validation  an error code: every batch fails validation with it
    batch_fail_lines       fraction of lines answered 5xx (`batch_fail_status`), drawn
                           per batch and custom_id (a resubmission draws again)
    batch_expire_after     a batch expires once this many of its lines are done
    batch_expire_batches   how many batches created from now on that applies to
                           (None: all)
    batch_paused           batches created while it is set start paused (in
                           `validating` until POST /admin/batches/{id} {"pause": false})
Markers in a track's lyrics: `@@BATCH_FAIL@@` fails its line in every batch,
`@@BATCH_FAIL_ONCE@@` only in the first batch that carries it.

Admin: GET /admin/batches (every batch and the operations log: each Files/Batch API
call with its status, the batch's metadata on `batches.create`); POST
/admin/batches/{id} with {"expire": true} (expire now), {"complete": true} (run every
remaining line now), {"pause": true|false} (hold the batch where it is; its window
still runs).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from rap_devtools.fake_llm import answers
from rap_devtools.fake_llm.batch_input import (
    CANCELLED_MESSAGE,
    EXPIRED_MESSAGE,
    Request,
    failure_line,
    jsonl,
    processing_order,
    read,
    response_line,
)
from rap_devtools.fake_llm.files import FilesApi, Provider, api_error, new_id, page

ENDPOINTS = ("/v1/chat/completions",)  # what the fake answers
TICK = 0.02  # how often a running batch looks at the clock
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
FAIL_MARKER = "@@BATCH_FAIL@@"
FAIL_ONCE_MARKER = "@@BATCH_FAIL_ONCE@@"
TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
         "cancelling_at", "cancelled_at")  # fmt: skip


@dataclass
class BatchSettings:
    """The Batch API's knobs (module docstring); FakeConfig has them."""

    batch_windows: list[str] = field(default_factory=lambda: ["24h"])
    batch_window_seconds: float | None = None
    batch_validate_seconds: float = 0.1
    batch_seconds: float = 0.5
    batch_finalize_seconds: float = 0.1
    batch_cancel_seconds: float = 0.1
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024
    batch_fail_validation: str | None = None
    batch_fail_lines: float = 0.0
    batch_fail_status: int = 500
    batch_expire_after: int | None = None
    batch_expire_batches: int | None = None
    batch_paused: bool = False


def window_seconds(window: str) -> float:
    """ "24h" -> 86400."""
    return float(window[:-1]) * 3600 if window.endswith("h") else float(window)


@dataclass
class Batch:
    id: str
    ordinal: int  # how many batches came before: seeds its order and failures
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    created_mono: float  # the monotonic clock's, for the window
    window: float  # seconds the completion window lasts here
    expire_after: int | None
    input: bytes  # the file as it was at creation (a later delete does not matter)
    status: str = "validating"
    at: dict[str, int] = field(default_factory=dict)  # in_progress_at, ...
    model: str | None = None
    errors: list[dict[str, Any]] | None = None
    total: int = 0
    output: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
    )
    paused: bool = False
    expire_now: bool = False
    rush: bool = False
    cancel: bool = False

    @property
    def expires_mono(self) -> float:
        return self.created_mono + self.window

    def mark(self, status: str) -> None:
        self.status = status
        self.at[f"{status}_at"] = int(time.time())

    def obj(self) -> dict[str, Any]:
        u = self.usage
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + math.ceil(self.window),
            **{k: self.at.get(k) for k in TIMES},
            "request_counts": {
                "total": self.total,
                "completed": len(self.output),
                "failed": len(self.failed),
            },
            "metadata": self.metadata,
            "usage": {
                "input_tokens": u["input"],
                "input_tokens_details": {"cached_tokens": u["cached"]},
                "output_tokens": u["output"],
                "output_tokens_details": {"reasoning_tokens": u["reasoning"]},
                "total_tokens": u["input"] + u["output"],
            },
        }


class BatchApi:
    """The Files and Batch API routes of one fake provider, and its batches' runs."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.operations: list[dict[str, Any]] = []
        self.files = FilesApi(provider, self.operations)
        self.batches: dict[str, Batch] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.failed_once: set[str] = set()  # lyrics digests @@BATCH_FAIL_ONCE@@ failed

    def add_routes(self, router: web.UrlDispatcher) -> None:
        self.files.add_routes(router)
        router.add_post("/v1/batches", self.create)
        router.add_get("/v1/batches", self.list)
        router.add_get("/v1/batches/{id}", self.retrieve)
        router.add_post("/v1/batches/{id}/cancel", self.cancel)
        router.add_get("/admin/batches", self.admin_list)
        router.add_post("/admin/batches/{id}", self.admin_set)

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.batches.clear()
        self.operations.clear()
        self.failed_once.clear()
        self.files.reset()

    # ---- the Batch API ---------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self.files.refused(request)) is not None:
            self.files.note("batches.create", refused.status)
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.files.note("batches.create", 400)
            return api_error(400, "The body is not a JSON object.", None)
        answer = self._create(body)
        details: dict[str, Any] = {"metadata": body.get("metadata"),
                                   "input_file_id": body.get("input_file_id")}  # fmt: skip
        if isinstance(answer, Batch):
            self.files.note("batches.create", 200, batch=answer.id, **details)
            return web.json_response(answer.obj())
        self.files.note("batches.create", answer.status, **details)
        return answer

    def _create(self, body: dict[str, Any]) -> Batch | web.Response:
        c = self.provider.config
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str):
            return api_error(400, "Missing required parameter: 'input_file_id'.",
                             "missing_required_parameter", "input_file_id")  # fmt: skip
        f = self.files.files.get(file_id)
        if f is None:
            return api_error(404, f"No such File object: {file_id}", None, "input_file_id")
        if f.purpose != "batch":
            return api_error(400, f"The file {file_id} was not uploaded with purpose 'batch'.",
                             "invalid_value", "input_file_id")  # fmt: skip
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return api_error(400, f"Invalid value for 'endpoint': {endpoint!r}. Supported: "
                             f"{', '.join(ENDPOINTS)}.", "invalid_value", "endpoint")  # fmt: skip
        window = body.get("completion_window")
        if window not in c.batch_windows:
            supported = ", ".join(repr(w) for w in c.batch_windows)
            return api_error(400, f"Invalid value for 'completion_window': {window!r}. "
                             f"Supported values are: {supported}.", "invalid_value",
                             "completion_window")  # fmt: skip
        metadata = body.get("metadata")
        if (problem := _metadata_problem(metadata)) is not None:
            return api_error(400, problem, "invalid_value", "metadata")
        expire_after = None
        if c.batch_expire_after is not None and c.batch_expire_batches != 0:
            expire_after = int(c.batch_expire_after)
            if c.batch_expire_batches is not None:
                c.batch_expire_batches -= 1
        b = Batch(
            id=new_id("batch_"),
            ordinal=len(self.batches),
            input_file_id=file_id,
            endpoint=endpoint,
            completion_window=window,
            metadata=metadata,
            created_at=int(time.time()),
            created_mono=time.monotonic(),
            window=float(c.batch_window_seconds or window_seconds(window)),
            expire_after=expire_after,
            input=f.data,
            paused=bool(c.batch_paused),
        )
        self.batches[b.id] = b
        task = asyncio.create_task(self._run(b))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return b

    def _get(self, request: web.Request) -> Batch | web.Response:
        b = self.batches.get(request.match_info["id"])
        if b is None:
            return api_error(404, f"No such Batch object: {request.match_info['id']}", None, "id")
        return b

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self.files.refused(request)) is not None:
            return refused
        b = self._get(request)
        return b if isinstance(b, web.Response) else web.json_response(b.obj())

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self.files.refused(request)) is not None:
            self.files.note("batches.list", refused.status)
            return refused
        items = [b.obj() for b in reversed(self.batches.values())]
        answer = page(items, request.query, default_limit=20, max_limit=100)
        if isinstance(answer, web.Response):
            self.files.note("batches.list", answer.status)
            return answer
        self.files.note("batches.list", 200, after=request.query.get("after"))
        return web.json_response(answer)

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self.files.refused(request)) is not None:
            self.files.note("batches.cancel", refused.status)
            return refused
        b = self._get(request)
        if isinstance(b, web.Response):
            self.files.note("batches.cancel", b.status, batch=request.match_info["id"])
            return b
        if b.status not in ("validating", "in_progress", "cancelling"):
            self.files.note("batches.cancel", 409, batch=b.id)
            return api_error(
                409, f"Cannot cancel a batch with status '{b.status}'.", "invalid_state"
            )
        if b.status != "cancelling":
            b.cancel = True
            b.mark("cancelling")
        self.files.note("batches.cancel", 200, batch=b.id)
        return web.json_response(b.obj())

    # ---- admin -----------------------------------------------------------------

    async def admin_list(self, request: web.Request) -> web.Response:
        data = [
            {**b.obj(), "admin": {"ordinal": b.ordinal, "paused": b.paused,
                                  "expire_after": b.expire_after}}
            for b in reversed(self.batches.values())
        ]  # fmt: skip
        return web.json_response({"data": data, "operations": self.operations})

    async def admin_set(self, request: web.Request) -> web.Response:
        b = self._get(request)
        if isinstance(b, web.Response):
            return b
        try:
            changes = await request.json()
        except ValueError:
            changes = None
        if not isinstance(changes, dict) or set(changes) - {"expire", "complete", "pause"}:
            return api_error(400, "expected {expire, complete, pause}", None)
        b.expire_now = b.expire_now or bool(changes.get("expire"))
        b.rush = b.rush or bool(changes.get("complete"))
        if "pause" in changes:
            b.paused = bool(changes["pause"])
        return web.json_response(b.obj())

    # ---- a batch's run ---------------------------------------------------------

    def _must_stop(self, b: Batch) -> bool:
        return b.cancel or b.expire_now or time.monotonic() >= b.expires_mono

    async def _hold(self, b: Batch, seconds: float) -> None:
        """Sit in the current status for `seconds` (paused time not counted), unless
        the batch is cancelled or expires meanwhile."""
        left = seconds
        while not self._must_stop(b) and (left > 0 or b.paused) and not b.rush:
            await asyncio.sleep(TICK)
            if not b.paused:
                left -= TICK

    async def _run(self, b: Batch) -> None:
        try:
            await self._lifecycle(b)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the fake: visible in its output and the batch
            traceback.print_exc()
            b.errors = [{"code": "server_error", "line": None, "param": None,
                         "message": "the fake provider failed running this batch"}]  # fmt: skip
            b.mark("failed")

    async def _lifecycle(self, b: Batch) -> None:
        c = self.provider.config
        await self._hold(b, float(c.batch_validate_seconds))
        if self._must_stop(b):
            return await self._stop(b, [])
        requests, errors = read(
            b.input, endpoint=b.endpoint, max_requests=int(c.batch_max_requests)
        )
        if c.batch_fail_validation:
            errors = [{"code": str(c.batch_fail_validation), "line": None, "param": None,
                       "message": "the batch failed validation (batch_fail_validation)"}]  # fmt: skip
        if errors:
            b.errors = errors
            b.mark("failed")
            return
        b.model = str(requests[0].body["model"])
        b.total = len(requests)
        b.mark("in_progress")
        order = [requests[i] for i in processing_order(len(requests), random.Random(
            f"{c.seed}:{b.ordinal}"))]  # fmt: skip
        done = 0
        progress = 0.0
        last = time.monotonic()
        while done < len(order):
            if self._must_stop(b) or (b.expire_after is not None and done >= b.expire_after):
                return await self._stop(b, order[done:])
            now = time.monotonic()
            if not b.paused:
                progress += now - last
            last = now
            seconds = float(c.batch_seconds)
            n = len(order)
            due = n if b.rush or seconds <= 0 else min(n, int(n * progress / seconds))
            if b.paused:
                due = done
            if b.expire_after is not None:
                due = min(due, b.expire_after)
            while done < due and not b.cancel and not b.expire_now:
                await self._answer(b, order[done])
                done += 1
            if done < len(order):
                await asyncio.sleep(TICK)
        b.mark("finalizing")
        await self._hold(b, float(c.batch_finalize_seconds))
        self._write(b)
        b.mark("completed")

    async def _stop(self, b: Batch, unrun: list[Request]) -> None:
        """End a batch a cancel or its window stopped, with what it finished."""
        if b.cancel:
            b.failed += [failure_line(r.custom_id, "batch_cancelled", CANCELLED_MESSAGE)
                         for r in unrun]  # fmt: skip
            await self._hold_cancelling(b)
            self._write(b)
            b.mark("cancelled")
            return
        b.failed += [failure_line(r.custom_id, "batch_expired", EXPIRED_MESSAGE) for r in unrun]
        self._write(b)
        b.mark("expired")

    async def _hold_cancelling(self, b: Batch) -> None:
        left = float(self.provider.config.batch_cancel_seconds)
        while left > 0:
            await asyncio.sleep(TICK)
            left -= TICK

    def _write(self, b: Batch) -> None:
        if b.output:
            f = self.files.store(f"{b.id}_output.jsonl", "batch_output", jsonl(b.output))
            b.output_file_id = f.id
        if b.failed:
            f = self.files.store(f"{b.id}_error.jsonl", "batch_output", jsonl(b.failed))
            b.error_file_id = f.id

    async def _answer(self, b: Batch, r: Request) -> None:
        """One request of the batch, answered as /v1/chat/completions would answer it."""
        p, c = self.provider, self.provider.config
        messages = r.body.get("messages") or []
        tracks, repair = answers.tracks_of(messages)
        now = time.monotonic()
        entry: dict[str, Any] = {
            "t": round(now - p.t0, 6), "wall": time.time(), "batch": b.id,
            "custom_id": r.custom_id,
            "tracks": [str(t.get("id")) for t in tracks],
            "lyrics": [answers.lyrics_digest(str(t.get("lyrics") or "")) for t in tracks],
            "repair": repair,
            "body": {k: v for k, v in r.body.items() if k != "messages"},
            "switch": answers.soft_switch(messages),
        }  # fmt: skip
        p.log.append(entry)
        if self._fails(b, r, tracks):
            status = int(c.batch_fail_status)
            entry["status"] = status
            b.failed.append(response_line(r.custom_id, status, {"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "code": "server_error", "param": None}}))  # fmt: skip
            return
        if (invalid := p.invalid(r.body)) is not None:
            status, message, code = invalid
            entry["status"] = status
            b.failed.append(response_line(r.custom_id, status, {"error": {
                "message": message, "type": "invalid_request_error", "code": code,
                "param": None}}))  # fmt: skip
            return
        completion = await p.completion(r.body, tracks, repair, entry)
        entry["status"] = 200
        b.output.append(response_line(r.custom_id, 200, completion))
        usage = completion.get("usage") or {}
        b.usage["input"] += int(usage.get("prompt_tokens") or 0)
        b.usage["output"] += int(usage.get("completion_tokens") or 0)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        b.usage["cached"] += int(cached or 0)
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
        b.usage["reasoning"] += int(reasoning or 0)

    def _fails(self, b: Batch, r: Request, tracks: list[dict[str, Any]]) -> bool:
        c = self.provider.config
        lyrics = [str(t.get("lyrics") or "") for t in tracks]
        if any(FAIL_MARKER in text for text in lyrics):
            return True
        once = [answers.lyrics_digest(t) for t in lyrics if FAIL_ONCE_MARKER in t]
        if once and not set(once) <= self.failed_once:
            self.failed_once.update(once)
            return True
        rate = float(c.batch_fail_lines)
        return rate > 0 and random.Random(f"{c.seed}:{b.ordinal}:{r.custom_id}").random() < rate


def _metadata_problem(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        return "Invalid 'metadata': expected an object of string keys and string values."
    if len(metadata) > 16:
        return "Invalid 'metadata': at most 16 key-value pairs."
    if any(len(k) > 64 for k in metadata):
        return "Invalid 'metadata': keys are at most 64 characters."
    if any(len(v) > 512 for v in metadata.values()):
        return "Invalid 'metadata': values are at most 512 characters."
    return None
