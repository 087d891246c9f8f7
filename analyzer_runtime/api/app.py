"""`create_app(database)`: the read-only search API over HTTP.

    GET /search?q=&artist=&limit=    tracks nearest in meaning to q
    GET /tracks/{id}                 a track's metadata
    GET /tracks/{id}/similar?limit=  tracks nearest to a track's stored vector
    GET /healthz                     the process answers (liveness; no database)
    GET /readyz                      the database answers (readiness)
    GET /docs, /openapi.json         the OpenAPI description

/metrics is not served here: `rap-analyzer serve` serves it on its own port
(RAP_SEARCH_METRICS_PORT, api/management.py, with /readyz and /healthz again, on a
thread of its own), so the public port never exposes it.

One Embedder per process, loaded at startup (a query is embedded with the model the
corpus was embedded with), and one asyncpg pool with pgvector's codec. Bad input is a
422 (FastAPI's shape), an unknown track 404, a track without a vector 409, no
embeddings at all or no database 503: each with a `detail` a person can act on.

Under load (ApiSettings, analyzer_runtime/api/settings.py):
- a bearer token, when set, is required on every route but the two probes (401);
- at most max_in_flight requests are served at once, the next get 429 at once;
- a query is embedded (in one thread, batched with the queries of concurrent
  requests: api/batching.py) before a connection is taken, a connection is
  waited for at most acquire_timeout (then 503), and every statement runs in a
  read-only transaction with SET LOCAL statement_timeout (then 503): SET LOCAL, not
  a startup parameter, so it works through PgBouncer in transaction mode too;
- /readyz has its own one-connection pool and is exempt from the limit, so query
  load never fails readiness; only a database that does not answer does.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analyzer_runtime import search
from analyzer_runtime.api.batching import EmbedBatcher
from analyzer_runtime.api.settings import ApiSettings
from analyzer_runtime.ledger.connect import create_pool, is_connection_error

PoolFactory = Callable[[], Awaitable[asyncpg.Pool]]

# Module level: prometheus_client registers a metric name once per process, and tests
# build several apps.
REQUESTS = Counter(
    "rap_search_requests_total", "Search API requests by route and status", ["route", "status"]
)
LATENCY = Histogram(
    "rap_search_request_seconds",
    "Search API latency by route (query embedding included)",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
REJECTED = Counter(
    "rap_search_rejected_total",
    "Search API requests refused: unauthorized (401), busy (429: max in flight),"
    " pool_timeout (503: no database connection in time), statement_timeout (503)",
    ["reason"],
)
REJECT_REASONS = ("unauthorized", "busy", "pool_timeout", "statement_timeout")
for _reason in REJECT_REASONS:  # every series exists from the start: rate() has data
    REJECTED.labels(_reason)
IN_FLIGHT = Gauge("rap_search_in_flight", "Search API requests being served (probes not counted)")

# The probes: no token (the kubelet has none), no limit (load must not fail them).
PROBES = frozenset({"/healthz", "/readyz"})
RETRY_AFTER = "1"


class Hit(BaseModel):
    track_id: int
    artist: str
    title: str
    distance: float
    first_line: str


class SearchResponse(BaseModel):
    # How the database answered: index, exact, overfetch or overfetch+exact.
    plan: str
    results: list[Hit]


class Track(BaseModel):
    id: int
    title: str
    artist: str
    album: str | None
    release_date: str | None
    word_count: int | None
    genre: str | None
    url: str | None
    first_line: str
    embedding_models: list[str]


class Problem(BaseModel):
    detail: str


class Alive(BaseModel):
    status: str


class Health(BaseModel):
    status: str
    embeddings: bool


class Unavailable(Exception):
    """A 503 with Retry-After: the database is busy, slow or unreachable right now."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class Measure:
    """rap_search_requests_total and rap_search_request_seconds by route template.
    Plain ASGI: Starlette's BaseHTTPMiddleware costs a task and two streams per
    request on the event loop, which under load is what the probes wait behind."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless a response starts: an exception ServerErrorMiddleware answers

        async def recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recorded)
        finally:
            # The router put the matched route in the (shared) scope.
            name = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(name, str(status)).inc()
            LATENCY.labels(name).observe(time.perf_counter() - start)


class Gate:
    """ASGI middleware in front of every route but the probes: the bearer token
    (constant-time compare), then at most `max_in_flight` requests at once. A request
    over the limit is answered 429 at once, never queued: a queue would only turn
    overload into timeouts. One event loop, so a plain counter is race-free."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.token = settings.token.encode() if settings.token else None
        self.limit = settings.max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            given = bearer_token(scope.get("headers") or [])
            if given is None or not hmac.compare_digest(given, self.token):
                REJECTED.labels("unauthorized").inc()
                challenge = 'Bearer realm="rap-analyzer search"'
                if given is not None:
                    challenge += ', error="invalid_token"'
                detail = "a valid `Authorization: Bearer <token>` header is required"
                await JSONResponse(
                    {"detail": detail}, status_code=401, headers={"WWW-Authenticate": challenge}
                )(scope, receive, send)
                return
        if self.in_flight >= self.limit:
            REJECTED.labels("busy").inc()
            detail = f"busy: {self.limit} requests are being served; retry shortly"
            await JSONResponse(
                {"detail": detail}, status_code=429, headers={"Retry-After": RETRY_AFTER}
            )(scope, receive, send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


TrackId = Annotated[int, Path(ge=1, le=search.INT32_MAX, description="a track's id")]
Limit = Annotated[int, Query(ge=1, le=search.MAX_LIMIT, description="how many tracks")]


def create_app(
    database: str | PoolFactory,
    *,
    embedder: Any | None = None,
    model: str | None = None,
    settings: ApiSettings | None = None,
) -> FastAPI:
    """The API over the database at `database` (a URL, or a coroutine function making
    a pool: called twice, for the queries' pool and /readyz's). `embedder` (an
    analyzer_runtime.embedding.model.Embedder) is loaded at startup when not given;
    `model` names the vectors searched (default MODEL_NAME); `settings` the token
    and limits (default: no token, ApiSettings' limits)."""
    limits = settings or ApiSettings()
    statement_ms = max(1, round(limits.statement_timeout * 1000))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from analyzer_runtime.embedding.model import MODEL_NAME, Embedder

        app.state.model = model or MODEL_NAME
        # Loaded once, off the event loop; a missing model fails the startup loudly.
        app.state.embedder = embedder or await asyncio.to_thread(Embedder.load)
        app.state.batcher = EmbedBatcher(app.state.embedder.embed)
        # The server's pgvector decides how an artist filter is answered (search.py);
        # read on the first search, once for the pool.
        app.state.pgvector = search.PgvectorOnce()
        if isinstance(database, str):
            app.state.pool = await create_pool(database, min_size=1, max_size=limits.pool_size)
            # Its own connection: /readyz never waits behind the queries. Opened on
            # the first /readyz (the chart probes the management port's instead).
            app.state.ready_pool = await create_pool(database, min_size=0, max_size=1)
        else:
            app.state.pool = await database()
            app.state.ready_pool = await database()
        try:
            yield
        finally:
            app.state.batcher.close()
            await app.state.pool.close()
            await app.state.ready_pool.close()

    app = FastAPI(
        title="rap-analyzer search",
        version="1.0.0",
        description="Read-only semantic search over the lyrics corpus (all-MiniLM-L6-v2).",
        lifespan=lifespan,
    )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        REJECTED.labels(exc.reason).inc()
        return JSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER}
        )

    @app.exception_handler(search.SearchError)
    async def search_error(request: Request, exc: search.SearchError) -> JSONResponse:
        code = 503
        if isinstance(exc, search.InvalidQuery):
            # FastAPI's own 422 shape (what the OpenAPI documents for every operation).
            detail = [{"loc": ["query"], "msg": str(exc), "type": "value_error"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if isinstance(exc, search.UnknownTrack):
            code = 404
        elif isinstance(exc, search.TrackNotEmbedded):
            code = 409
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_connection_error(exc):
            return JSONResponse({"detail": "the database is unavailable"}, status_code=503)
        raise exc

    @asynccontextmanager
    async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the queries' pool, waited for at most acquire_timeout, in a
        read-only transaction whose statements stop after statement_timeout."""
        pool: asyncpg.Pool = request.app.state.pool
        try:
            conn = await pool.acquire(timeout=limits.acquire_timeout)
        except TimeoutError:
            raise Unavailable(
                f"busy: no database connection free within {limits.acquire_timeout:g} s"
                f" ({limits.pool_size} in use); retry shortly",
                "pool_timeout",
            ) from None
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {statement_ms}")
                yield conn
        except asyncpg.QueryCanceledError:
            raise Unavailable(
                f"the query ran longer than {limits.statement_timeout:g} s and was cancelled",
                "statement_timeout",
            ) from None
        finally:
            await pool.release(conn)

    @app.get("/healthz", response_model=Alive)
    async def healthz() -> Alive:
        """Alive: the process serves requests (no database asked)."""
        return Alive(status="ok")

    @app.get("/readyz", response_model=Health, responses=_errors(503))
    async def readyz(request: Request) -> Health | JSONResponse:
        """Ready when the database answers (over a connection of its own, so query
        load cannot delay it); `embeddings` says whether search has data."""
        code, body = await check_ready(
            request.app.state.ready_pool, request.app.state.model, limits.ready_timeout
        )
        if code != 200:
            return JSONResponse(body, status_code=code)
        return Health(**body)

    @app.get("/search", response_model=SearchResponse, responses=_errors(401, 429, 503))
    async def search_route(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY_CHARS)],
        artist: Annotated[
            str | None, Query(min_length=1, max_length=500, description="exact artist name")
        ] = None,
        limit: Limit = 10,
    ) -> SearchResponse:
        """Tracks whose lyrics are nearest in meaning to `q`, optionally of one artist."""
        text = search.check_query(q)
        if artist is not None and "\x00" in artist:
            raise search.InvalidQuery("the artist contains a NUL character")
        model = request.app.state.model
        # Embedded off the event loop, batched with concurrent requests' queries
        # (api/batching.py), and before a connection is taken: none is held idle
        # while the model runs. With no embeddings at all, nearest() says so.
        vector = await request.app.state.batcher.embed(text)
        async with connection(request) as conn:
            pgvector = await request.app.state.pgvector.of(conn)
            result = await search.nearest(
                conn, vector, model, limit=limit, artist=artist, pgvector=pgvector
            )
        return _response(result)

    @app.get("/tracks/{track_id}", response_model=Track, responses=_errors(401, 404, 429, 503))
    async def track(request: Request, track_id: TrackId) -> Track:
        """A track's metadata, its first lyric line and the models that embedded it."""
        async with connection(request) as conn:
            return Track(**await search.track_info(conn, track_id))

    @app.get(
        "/tracks/{track_id}/similar",
        response_model=SearchResponse,
        responses=_errors(401, 404, 409, 429, 503),
    )
    async def similar(request: Request, track_id: TrackId, limit: Limit = 10) -> SearchResponse:
        """Tracks nearest to this track's stored vector (the track itself left out)."""
        async with connection(request) as conn:
            result = await search.similar(conn, track_id, request.app.state.model, limit=limit)
        return _response(result)

    app.add_middleware(Measure)
    # Outermost (added last): a refused request costs no routing or measuring.
    app.add_middleware(Gate, settings=limits)
    return app


async def check_ready(pool: asyncpg.Pool, model: str, within: float) -> tuple[int, dict[str, Any]]:
    """(status, body) of a readiness check over `pool`: 200 with whether `model` has
    embeddings, or 503 when the database does not answer within `within` s."""
    try:
        async with asyncio.timeout(within), pool.acquire() as conn:
            has = await search.has_embeddings(conn, model)
    except TimeoutError:
        return 503, {"detail": f"the database did not answer within {within:g} s"}
    except Exception as exc:
        if not is_connection_error(exc):
            raise
        return 503, {"detail": "the database is unavailable"}
    return 200, {"status": "ok", "embeddings": has}


def _response(result: search.SearchResult) -> SearchResponse:
    return SearchResponse(plan=result.plan, results=[Hit(**h.to_dict()) for h in result.hits])
