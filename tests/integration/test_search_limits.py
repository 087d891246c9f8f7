"""The search API under load and without credentials (issue 23), on a real Postgres.

`rap-analyzer serve` as a process (real HTTP): the bearer token, /metrics only on
its own port, and saturation: requests held in flight by a table lock (a condition,
not a sleep) make the next one a 429 while /readyz stays 200. create_app in-process:
the pool's acquire timeout and the statement timeout, each a clean 503.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from rap_devtools.waiting import wait_for_async

from analyzer_runtime.api.app import create_app
from analyzer_runtime.api.settings import ApiSettings
from analyzer_runtime.embedding.model import Embedder
from tests.integration.clirun import ROOT, cli_env, serving
from tests.integration.test_search_api import _free_port, api_db, embedder  # noqa: F401

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def tracks_locked(url: str) -> AsyncIterator[asyncpg.Connection]:
    """`tracks` locked ACCESS EXCLUSIVE until the block ends: every query reading it
    waits (holding its connection) until then, or until its statement_timeout."""
    conn = await asyncpg.connect(url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE tracks IN ACCESS EXCLUSIVE MODE")
    try:
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


async def lock_waiters(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


@pytest.fixture(scope="module")
def server(api_db: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """`rap-analyzer serve` with a token, 2 requests in flight at most, /metrics on a
    port of its own; its output in a file (a pipe nobody reads would fill up)."""
    port, metrics = _free_port(), _free_port()
    env = cli_env(
        api_db["url"],
        RAP_SEARCH_TOKEN=TOKEN,
        RAP_SEARCH_MAX_IN_FLIGHT="2",
        RAP_SEARCH_POOL_SIZE="2",
        RAP_SEARCH_STATEMENT_TIMEOUT="120",
        RAP_SEARCH_METRICS_PORT=str(metrics),
    )
    with serving(port, env) as output:
        yield {"base": f"http://127.0.0.1:{port}", "metrics": f"http://127.0.0.1:{metrics}",
               "output": output}  # fmt: skip


def test_the_token_is_required_except_on_the_probes(server: dict[str, Any]) -> None:
    with httpx.Client(base_url=server["base"], timeout=30) as http:
        for path in ("/search?q=love", "/tracks/1", "/tracks/1/similar", "/docs",
                     "/openapi.json"):  # fmt: skip
            r = http.get(path)
            assert r.status_code == 401, (path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer ")
            r = http.get(path, headers={"Authorization": "Bearer wrong"})
            assert (
                r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
            ), path
            assert TOKEN not in r.text
        for wrong in (f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", "Bearer"):
            assert http.get("/tracks/1", headers={"Authorization": wrong}).status_code == 401
        r = http.get("/search", params={"q": "love", "limit": 3}, headers=AUTH)
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert http.get("/openapi.json", headers=AUTH).status_code == 200
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ok", "embeddings": True}
    # The token is never printed (the startup line says only that one is required).
    assert "bearer token required" in server["output"]() and TOKEN not in server["output"]()


def test_metrics_only_on_the_metrics_port(server: dict[str, Any]) -> None:
    assert httpx.get(f"{server['base']}/metrics", headers=AUTH).status_code == 404
    httpx.get(f"{server['base']}/tracks/1")  # a 401, counted
    text = httpx.get(f"{server['metrics']}/metrics").text
    assert 'rap_search_requests_total{route="/search",status="200"}' in text
    unauthorized = [
        line for line in text.splitlines()
        if line.startswith('rap_search_rejected_total{reason="unauthorized"}')
    ]  # fmt: skip
    assert unauthorized and float(unauthorized[0].split()[-1]) >= 1


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_saturation_is_a_429_while_readyz_stays_200(
    server: dict[str, Any],
    api_db: dict[str, Any],  # noqa: F811
) -> None:
    base, track = server["base"], api_db["ids"][0]
    async with (
        httpx.AsyncClient(base_url=base, timeout=180, headers=AUTH) as http,
        httpx.AsyncClient(timeout=30) as scrape,
    ):

        async def in_flight() -> float | None:
            text = (await scrape.get(f"{server['metrics']}/metrics")).text
            return _gauge(text, "rap_search_in_flight")

        async with tracks_locked(api_db["url"]):
            # Two requests that cannot finish while the lock is held: the limit.
            held = [asyncio.create_task(http.get(f"/tracks/{track}")) for _ in range(2)]
            await wait_for_async(
                lambda: _equals(in_flight, 2), within=30, interval=0.05, what="2 requests in flight"
            )
            # Real concurrent requests beyond the limit: each an immediate 429.
            over = await asyncio.gather(*(http.get("/search", params={"q": "x"})
                                          for _ in range(20)))  # fmt: skip
            assert {r.status_code for r in over} == {429}, [r.text for r in over]
            assert all(r.headers["retry-after"] == "1" for r in over)
            # The probes are not counted against the limit and do not wait behind it,
            # on the API's port and on the management port (the chart's readiness).
            for _ in range(5):
                r = await http.get("/readyz")
                assert r.status_code == 200, r.text
                assert (await http.get("/healthz")).status_code == 200
                r = await scrape.get(f"{server['metrics']}/readyz")
                assert r.json() == {"status": "ok", "embeddings": True}
                assert (await scrape.get(f"{server['metrics']}/healthz")).status_code == 200
            assert not any(t.done() for t in held)
        done = await asyncio.gather(*held)
        assert [r.status_code for r in done] == [200, 200]

        # Afterwards, 60 real concurrent searches against a limit of 2, polling
        # /readyz meanwhile: every answer a 200 or a 429, readiness never failing.
        ready: list[int] = []
        stop = asyncio.Event()

        async def poll_ready() -> None:
            while not stop.is_set():
                ready.append((await http.get("/readyz")).status_code)

        poller = asyncio.create_task(poll_ready())
        burst = await asyncio.gather(
            *(http.get("/search", params={"q": f"money {i}"}) for i in range(60))
        )
        stop.set()
        await poller
        codes = [r.status_code for r in burst]
        assert set(codes) <= {200, 429} and 200 in codes, codes
        assert ready and set(ready) == {200}, ready
        text = (await scrape.get(f"{server['metrics']}/metrics")).text
        busy = [ln for ln in text.splitlines()
                if ln.startswith('rap_search_rejected_total{reason="busy"}')]  # fmt: skip
        assert busy and float(busy[0].split()[-1]) >= 20


async def _equals(get: Callable[[], Awaitable[float | None]], want: float) -> bool:
    return await get() == want


# -- in-process: the pool's acquire timeout and the statement timeout -----------------


@asynccontextmanager
async def app_client(url: str, embedder: Embedder, **limits: Any) -> AsyncIterator[Any]:  # noqa: F811
    app = create_app(url, embedder=embedder, settings=ApiSettings(**limits))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_no_free_connection_is_a_503_with_retry_after(
    api_db: dict[str, Any],  # noqa: F811
    embedder: Embedder,  # noqa: F811
) -> None:
    url, track = api_db["url"], api_db["ids"][0]
    limits = {"pool_size": 1, "acquire_timeout": 0.3, "statement_timeout": 120}
    async with app_client(url, embedder, **limits) as http:
        async with tracks_locked(url) as locker:
            # The one connection, held by a request waiting on the lock.
            held = asyncio.create_task(http.get(f"/tracks/{track}"))
            await wait_for_async(
                lambda: _waiting(locker, 1),
                within=30,
                interval=0.05,
                what="the first request waiting on the lock",
            )
            r = await http.get(f"/tracks/{track}")
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
            assert "no database connection free within 0.3 s" in r.json()["detail"]
            # Readiness has its own connection: not delayed by the one the query holds.
            assert (await http.get("/readyz")).status_code == 200
            assert not held.done()
        assert (await held).status_code == 200


async def _waiting(conn: asyncpg.Connection, n: int) -> bool:
    return await lock_waiters(conn) >= n


async def test_a_statement_over_the_timeout_is_a_clean_503(
    api_db: dict[str, Any],  # noqa: F811
    embedder: Embedder,  # noqa: F811
) -> None:
    url, track = api_db["url"], api_db["ids"][0]
    async with app_client(url, embedder, statement_timeout=0.2) as http:
        async with tracks_locked(url):
            # Waits on the lock until statement_timeout cancels it (the lock outlives it).
            r = await http.get(f"/tracks/{track}")
            r2 = await http.get("/search", params={"q": "money"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json() == {"detail": "the query ran longer than 0.2 s and was cancelled"}
        assert r2.status_code == 503 and "was cancelled" in r2.json()["detail"]
        # The connection went back to the pool usable: the next request is answered.
        r = await http.get(f"/tracks/{track}")
        assert r.status_code == 200 and r.json()["id"] == track


def test_settings_from_the_cli_refuse_an_empty_token(api_db: dict[str, Any]) -> None:  # noqa: F811
    env = cli_env(api_db["url"], RAP_SEARCH_TOKEN="  ")
    done = subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", "serve", "--port", str(_free_port())],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "set but empty" in done.stdout + done.stderr


async def test_readyz_is_a_503_when_the_database_does_not_answer_in_time(
    api_db: dict[str, Any],  # noqa: F811
    embedder: Embedder,  # noqa: F811
) -> None:
    url = api_db["url"]
    async with app_client(url, embedder, ready_timeout=0.3) as http:
        conn = await asyncpg.connect(url)
        try:
            # The readiness query reads track_embeddings: it waits on this lock.
            async with conn.transaction():
                await conn.execute("LOCK TABLE track_embeddings IN ACCESS EXCLUSIVE MODE")
                r = await http.get("/readyz")
                assert r.status_code == 503, r.text
                assert r.json() == {"detail": "the database did not answer within 0.3 s"}
                assert (await http.get("/healthz")).status_code == 200  # alive all the same
        finally:
            await conn.close()
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["embeddings"] is True
