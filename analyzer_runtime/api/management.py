"""The management port (RAP_SEARCH_METRICS_PORT): GET /metrics, /readyz and /healthz,
served by a uvicorn server of their own on a thread (and event loop) of their own.

Why a thread: under load the API's event loop has a backlog of connections to accept
and requests to parse, and a probe on that loop waits behind all of it
(bench/search_load.py, 200 clients on 2 shared cores: /readyz p95 4 s, a few probes
past the kubelet's 5 s). Here a probe waits for nothing but the GIL. The chart's
readiness probe asks this port's /readyz (its own one-connection pool); liveness
stays on the API's port, whose /healthz only answers while its event loop does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from analyzer_runtime.api.app import check_ready
from analyzer_runtime.api.settings import ApiSettings
from analyzer_runtime.ledger.connect import create_pool


def create_management_app(database: str, settings: ApiSettings, model: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await create_pool(database, min_size=1, max_size=1)
        try:
            yield
        finally:
            await app.state.pool.close()

    async def readyz(request: Request) -> JSONResponse:
        code, body = await check_ready(request.app.state.pool, model, settings.ready_timeout)
        return JSONResponse(body, status_code=code)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/readyz", readyz),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )


class ManagementServerFailed(RuntimeError):
    """The management server did not start (its port taken, the database down)."""


def start(database: str, settings: ApiSettings, model: str, host: str) -> threading.Thread:
    """Serve the management app on settings.metrics_port in a daemon thread; return
    once it listens, or raise ManagementServerFailed."""
    import uvicorn

    config = uvicorn.Config(
        create_management_app(database, settings, model),
        host=host, port=settings.metrics_port, log_level="warning", access_log=False,
        lifespan="on",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="management", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ManagementServerFailed(
                f"the management server (/metrics, /readyz) did not start on"
                f" {host}:{settings.metrics_port}; see the log above"
            )
        time.sleep(0.05)
    return thread
