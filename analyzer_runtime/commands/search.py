"""Semantic search (issue 13): `rap-analyzer search`, `similar` and `serve` (the HTTP API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from analyzer_runtime.commands.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    _fail,
    _with_db,
    out,
)
from analyzer_runtime.db.embedded import database_url
from analyzer_runtime.ledger.connect import InvalidDatabaseURL, pool_for

LimitOption = Annotated[int, typer.Option(min=1, max=100, help="how many tracks to show")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the results as JSON")]


def _search_command(go: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run a search against the database: SearchError is one line (exit 2 for bad
    input, 1 when there is nothing to search), the database errors as everywhere."""
    from analyzer_runtime import search

    async def with_pool(url: str) -> Any:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await go(conn)

    try:
        return _with_db(with_pool)
    except search.InvalidQuery as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except search.SearchError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None


def _print_hits(result: Any, heading: str, as_json: bool) -> None:
    import json

    from rich.table import Table

    if as_json:
        print(
            json.dumps(
                {"plan": result.plan, "results": [h.to_dict() for h in result.hits]}, indent=2
            )
        )
        return
    if not result.hits:
        out.print(f"{heading}: no tracks found", highlight=False)
        return
    table = Table(title=heading, title_justify="left")
    # Rank, id and distance never wrap and the first line is cut with an ellipsis, so
    # the table reads at 80 columns too (artist and title wrap instead).
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("artist", min_width=10)
    table.add_column("title", min_width=10)
    table.add_column("distance", justify="right", no_wrap=True)
    table.add_column("first line", max_width=24, no_wrap=True, overflow="ellipsis")
    for i, h in enumerate(result.hits, 1):
        table.add_row(str(i), str(h.track_id), h.artist, h.title, f"{h.distance:.4f}", h.first_line)
    out.print(table, highlight=False)


def _load_embedder() -> Any:
    from analyzer_runtime.embedding.model import Embedder, ModelNotFoundError

    try:
        return Embedder.load()
    except ModelNotFoundError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None


def search_cmd(
    query: Annotated[str, typer.Argument(help="words to search the lyrics for, by meaning")],
    artist: Annotated[
        str | None, typer.Option(help="only tracks of this artist (exact name)")
    ] = None,
    limit: LimitOption = 10,
    as_json: JsonOption = False,
) -> None:
    """Tracks whose lyrics are nearest in meaning to QUERY (needs an `embedding` run)."""
    from analyzer_runtime import search
    from analyzer_runtime.embedding.model import MODEL_NAME

    try:
        q = search.check_query(query)
    except search.InvalidQuery as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    embedder = _load_embedder()

    async def go(conn: Any) -> Any:
        # Before the model runs: no embeddings means nothing to compare with.
        if not await search.has_embeddings(conn, MODEL_NAME):
            raise search.NoEmbeddings(MODEL_NAME)
        vector = embedder.embed([q])[0]
        return await search.nearest(conn, vector, MODEL_NAME, limit=limit, artist=artist)

    result = _search_command(go)
    by = f" by {artist}" if artist else ""
    _print_hits(result, f"nearest to {q[:60]!r}{by}", as_json)


def similar_cmd(
    track_id: Annotated[int, typer.Argument(help="a track's id", min=1, max=2**31 - 1)],
    limit: LimitOption = 10,
    as_json: JsonOption = False,
) -> None:
    """Tracks nearest in meaning to track TRACK_ID (from its stored vector)."""
    from analyzer_runtime import search
    from analyzer_runtime.embedding.model import MODEL_NAME

    async def go(conn: Any) -> Any:
        return await search.similar(conn, track_id, MODEL_NAME, limit=limit)

    _print_hits(_search_command(go), f"nearest to track {track_id}", as_json)


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
) -> None:
    """The read-only HTTP search API (OpenAPI docs at /docs); needs the `search` extra.

    Configured by environment (README, "Search API"): RAP_SEARCH_TOKEN or
    RAP_SEARCH_TOKEN_FILE (a bearer token every route but /healthz and /readyz
    requires), RAP_SEARCH_METRICS_PORT (/metrics with /readyz and /healthz, on its own
    port and thread; unset: no /metrics),
    RAP_SEARCH_MAX_IN_FLIGHT, RAP_SEARCH_POOL_SIZE, RAP_SEARCH_ACQUIRE_TIMEOUT,
    RAP_SEARCH_STATEMENT_TIMEOUT, RAP_SEARCH_READY_TIMEOUT."""
    import os

    try:
        import uvicorn

        from analyzer_runtime.api.app import create_app
        from analyzer_runtime.api.settings import InvalidSettings, from_env
    except ImportError as exc:
        raise _fail(
            f"the API needs `pip install 'rap-analyzer[search]'` ({exc})", EXIT_INVALID
        ) from None
    try:
        settings = from_env(os.environ)
    except InvalidSettings as exc:
        raise _fail(str(exc), EXIT_INVALID) from None

    def go(url: str) -> None:
        if settings.metrics_port:
            from analyzer_runtime.api import management
            from analyzer_runtime.embedding.model import MODEL_NAME

            # /metrics, /readyz, /healthz on another port, on a thread of their own:
            # the public port never serves /metrics, and a probe or a scrape does not
            # wait behind the API's event loop.
            try:
                management.start(url, settings, MODEL_NAME, host)
            except management.ManagementServerFailed as exc:
                raise _fail(str(exc), EXIT_FAILED) from None
        out.print(
            f"search API on {host}:{port}: "
            + ("bearer token required" if settings.token else "NO authentication")
            + f", at most {settings.max_in_flight} requests in flight, "
            + (f"/metrics and /readyz on port {settings.metrics_port}" if settings.metrics_port else
               "no /metrics (RAP_SEARCH_METRICS_PORT unset)"),
            highlight=False,
        )  # fmt: skip
        uvicorn.run(create_app(url, settings=settings), host=host, port=port, log_level="info")

    try:
        with database_url() as url:
            go(url)
    except InvalidDatabaseURL as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
