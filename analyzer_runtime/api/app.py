"""`create_app(database)`: the read-only search API over HTTP.

    GET /search?q=&artist=&limit=    tracks nearest in meaning to q
    GET /tracks/{id}                 a track's metadata
    GET /tracks/{id}/similar?limit=  tracks nearest to a track's stored vector
    GET /healthz                     the database answers (readiness)
    GET /metrics                     Prometheus metrics
    GET /docs, /openapi.json         the OpenAPI description

One Embedder per process, loaded at startup (a query is embedded with the model the
corpus was embedded with), and one asyncpg pool with pgvector's codec. Bad input is a
422 (FastAPI's shape), an unknown track 404, a track without a vector 409, no
embeddings at all or no database 503: each with a `detail` a person can act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from pydantic import BaseModel

from analyzer_runtime import search
from analyzer_runtime.db.connect import create_pool, is_connection_error

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


class Health(BaseModel):
    status: str
    embeddings: bool


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem} for code in codes}


TrackId = Annotated[int, Path(ge=1, le=search.INT32_MAX, description="a track's id")]
Limit = Annotated[int, Query(ge=1, le=search.MAX_LIMIT, description="how many tracks")]


def create_app(
    database: str | PoolFactory,
    *,
    embedder: Any | None = None,
    model: str | None = None,
) -> FastAPI:
    """The API over the database at `database` (a URL, or a coroutine function making
    the pool). `embedder` (an analyzer_runtime.embedding.model.Embedder) is loaded at
    startup when not given; `model` names the vectors searched (default MODEL_NAME)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from analyzer_runtime.embedding.model import MODEL_NAME, Embedder

        app.state.model = model or MODEL_NAME
        # Loaded once, off the event loop; a missing model fails the startup loudly.
        app.state.embedder = embedder or await asyncio.to_thread(Embedder.load)
        if isinstance(database, str):
            app.state.pool = await create_pool(database, min_size=1, max_size=4)
        else:
            app.state.pool = await database()
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(
        title="rap-analyzer search",
        version="1.0.0",
        description="Read-only semantic search over the lyrics corpus (all-MiniLM-L6-v2).",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        REQUESTS.labels(name, str(response.status_code)).inc()
        LATENCY.labels(name).observe(time.perf_counter() - start)
        return response

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

    def pool(request: Request) -> asyncpg.Pool:
        return request.app.state.pool  # type: ignore[no-any-return]

    @app.get("/healthz", response_model=Health, responses=_errors(503))
    async def healthz(request: Request) -> Health:
        """Ready when the database answers; `embeddings` says whether search has data."""
        async with pool(request).acquire() as conn:
            has = await search.has_embeddings(conn, request.app.state.model)
        return Health(status="ok", embeddings=has)

    @app.get("/search", response_model=SearchResponse, responses=_errors(503))
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
        async with pool(request).acquire() as conn:
            if not await search.has_embeddings(conn, model):
                raise search.NoEmbeddings(model)
            # A few ms of CPU: in a thread, so other requests keep being served.
            vector = (await asyncio.to_thread(request.app.state.embedder.embed, [text]))[0]
            result = await search.nearest(conn, vector, model, limit=limit, artist=artist)
        return _response(result)

    @app.get("/tracks/{track_id}", response_model=Track, responses=_errors(404, 503))
    async def track(request: Request, track_id: TrackId) -> Track:
        """A track's metadata, its first lyric line and the models that embedded it."""
        async with pool(request).acquire() as conn:
            return Track(**await search.track_info(conn, track_id))

    @app.get(
        "/tracks/{track_id}/similar",
        response_model=SearchResponse,
        responses=_errors(404, 409, 503),
    )
    async def similar(request: Request, track_id: TrackId, limit: Limit = 10) -> SearchResponse:
        """Tracks nearest to this track's stored vector (the track itself left out)."""
        async with pool(request).acquire() as conn:
            result = await search.similar(conn, track_id, request.app.state.model, limit=limit)
        return _response(result)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text exposition."""
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def _response(result: search.SearchResult) -> SearchResponse:
    return SearchResponse(plan=result.plan, results=[Hit(**h.to_dict()) for h in result.hits])
