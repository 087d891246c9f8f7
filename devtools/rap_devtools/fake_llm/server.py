"""A fake OpenAI-compatible provider: real HTTP, real protocol, scripted behaviour.

    POST /v1/chat/completions   answers from answers.py (deterministic per track)
    GET  /v1/models             the configured model
    GET  /admin/config          the current FakeConfig as JSON
    POST /admin/config          merge a JSON object into it (e.g. {"down": true})
    GET  /admin/log             every chat request: receipt time, status, track ids
    POST /admin/reset           clear the log and the rate-limit window

Behaviours (FakeConfig): a latency distribution (log-normal from p50 and p95), a
sliding-window request limit answered with 429 + Retry-After / retry-after-ms,
bursts of 500/503 (`fail_next`), a provider that is down, slow answers, an API key
it insists on, and refusal of JSON-schema response formats.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from rap_devtools.fake_llm import answers
from rap_devtools.fake_server import AdminApi, Settings

CHARS_PER_TOKEN = 4


@dataclass
class FakeConfig(Settings):
    model: str = "fake-qwen"
    api_key: str | None = None  # when set, requests must carry `Authorization: Bearer <key>`
    latency_p50: float = 0.0  # seconds; 0 = answer at once
    latency_p95: float = 0.0
    seed: int = 0
    rate_limit: int | None = None  # accepted requests per rate_window (sliding)
    rate_window: float = 60.0
    fail_next: int = 0  # the next N requests fail with fail_status (a burst)
    fail_status: int = 503
    down: bool = False  # every request fails with fail_status
    slow_seconds: float = 0.0  # extra delay for tracks marked @@SLOW@@
    reject_json_schema: bool = False  # 400 on response_format json_schema


class FakeProvider(AdminApi):
    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.rng = random.Random(self.config.seed)
        self.t0 = time.monotonic()
        self.accepted: deque[float] = deque()
        self.log: list[dict[str, Any]] = []

    # ---- behaviour -------------------------------------------------------------

    def latency(self) -> float:
        c = self.config
        if c.latency_p50 <= 0:
            return 0.0
        p95 = max(c.latency_p95, c.latency_p50)
        sigma = math.log(p95 / c.latency_p50) / 1.6449  # z of the 95th percentile
        return c.latency_p50 * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def _rate_limited(self, now: float) -> float | None:
        """Seconds until the window has room, or None if this request may go."""
        c = self.config
        if not c.rate_limit:
            return None
        while self.accepted and self.accepted[0] <= now - c.rate_window:
            self.accepted.popleft()
        if len(self.accepted) < c.rate_limit:
            self.accepted.append(now)
            return None
        return self.accepted[0] + c.rate_window - now

    # ---- HTTP ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        self.add_admin_routes(app.router)
        return app

    def _authorized(self, request: web.Request) -> bool:
        key = self.config.api_key
        return not key or request.headers.get("Authorization") == f"Bearer {key}"

    async def models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "invalid API key", "invalid_api_key")
        return web.json_response(
            {"object": "list", "data": [{"id": self.config.model, "object": "model",
                                         "created": 0, "owned_by": "rap-devtools"}]}
        )  # fmt: skip

    async def chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        entry: dict[str, Any] = {"t": round(now - self.t0, 6), "wall": time.time()}
        self.log.append(entry)
        try:
            body = await request.json()
        except ValueError:
            entry["status"] = 400
            return _error(400, "the body is not JSON", "invalid_request_error")
        tracks, repair = answers.tracks_of(body.get("messages") or [])
        entry.update(tracks=[str(t.get("id")) for t in tracks], repair=repair)
        status, response = await self._chat(request, body, tracks, repair, now, entry)
        entry["status"] = status
        return response

    async def _chat(
        self,
        request: web.Request,
        body: dict[str, Any],
        tracks: list[dict[str, Any]],
        repair: bool,
        now: float,
        entry: dict[str, Any],
    ) -> tuple[int, web.StreamResponse]:
        c = self.config
        if not self._authorized(request):
            return 401, _error(401, "Incorrect API key provided.", "invalid_api_key")
        if c.down or c.fail_next > 0:
            c.fail_next = max(0, c.fail_next - 1)
            return c.fail_status, _error(
                c.fail_status, "the fake provider is failing", "server_error"
            )
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema" and c.reject_json_schema:
            return 400, _error(
                400, "response_format json_schema is not supported", "invalid_request_error"
            )
        wait = self._rate_limited(now)
        if wait is not None:
            headers = {"retry-after": str(max(1, math.ceil(wait))),
                       "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}  # fmt: skip
            return 429, _error(
                429, "Rate limit reached for requests", "rate_limit_exceeded", headers
            )
        delay = self.latency()
        if any("@@SLOW@@" in str(t.get("lyrics") or "") for t in tracks):
            delay += c.slow_seconds
        if delay:
            await asyncio.sleep(delay)
        content, refusal, finish = answers.answer(tracks, repair=repair)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages") or [])
        p, k = (
            math.ceil(prompt_chars / CHARS_PER_TOKEN),
            math.ceil(len(content or "") / CHARS_PER_TOKEN),
        )
        entry["usage"] = {"prompt": p, "completion": k}
        return 200, web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or c.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": p, "completion_tokens": k, "total_tokens": p + k},
            }
        )

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
        except ValueError as exc:
            return _error(400, str(exc), "invalid_request_error")
        if "seed" in await request.json():
            self.rng = random.Random(self.config.seed)
        return web.json_response(asdict(self.config))

    async def reset(self, request: web.Request) -> web.Response:
        self.log.clear()
        self.accepted.clear()
        return web.json_response({"ok": True})


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    kind = (
        "requests" if status == 429 else "invalid_request_error" if status < 500 else "server_error"
    )
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code, "param": None}},
        status=status,
        headers=headers,
    )
