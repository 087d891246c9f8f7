"""The operator's probe endpoints, served by the process from its start, whether it
leads or follows (kopf's own liveness endpoint exists only while kopf runs, and a
follower never runs kopf).

- /healthz (liveness): the event loop answers and the election loop still attempts;
- /readyz (readiness): the process has settled its role (first election attempt
  made, or kopf started without election).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web


class Health:
    def __init__(self, live: Callable[[], bool], ready: Callable[[], bool]) -> None:
        self.live, self.ready = live, ready
        self._runner: web.AppRunner | None = None

    async def _probe(self, ok: bool) -> web.Response:
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "not yet\n")

    async def start(self, url: str) -> None:
        """Listen on the host and port of `url` (RAP_LIVENESS, e.g.
        http://0.0.0.0:8080/healthz); its path is the liveness path."""
        parts = urlsplit(url)
        app = web.Application()
        app.router.add_get(parts.path or "/healthz", lambda _: self._probe(self.live()))
        app.router.add_get("/readyz", lambda _: self._probe(self.ready()))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, parts.hostname or "0.0.0.0", parts.port or 8080).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
