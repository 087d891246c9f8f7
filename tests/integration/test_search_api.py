"""The read-only search API (issue 13) on a real Postgres with the real model:
`rap-analyzer serve` as a process on a free port, checked by hand and fuzzed by
schemathesis from its own OpenAPI; and create_app in-process over an empty database."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from analyzer_runtime.api.app import create_app
from analyzer_runtime.embedding.model import MODEL_NAME, Embedder
from analyzer_runtime.ledger.connect import create_pool
from analyzer_runtime.seed import seed
from tests.integration.clirun import cli_env, serving
from tests.integration.conftest import new_database

TRACKS = 60


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


@pytest.fixture(scope="module")
def api_db(pg_server: Any, embedder: Embedder) -> dict[str, Any]:
    """A database of TRACKS short tracks, all but the last embedded with the real model."""
    url = new_database(pg_server, "api_")

    async def build() -> dict[str, Any]:
        pool = await create_pool(url, max_size=2)
        try:
            await seed(pool, TRACKS)
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT id, artist, lyrics FROM tracks ORDER BY id")
                texts = [" ".join(r["lyrics"].split()[:20]) + f" {r['id']}" for r in rows]
                await conn.executemany(
                    "UPDATE tracks SET lyrics = $2 WHERE id = $1",
                    [(r["id"], t) for r, t in zip(rows, texts, strict=True)],
                )
                vectors = embedder.embed(texts)
                await conn.executemany(
                    "INSERT INTO track_embeddings (track_id, model, embedding) VALUES ($1, $2, $3)",
                    [(r["id"], MODEL_NAME, v) for r, v in zip(rows[:-1], vectors, strict=False)],
                )
        finally:
            await pool.close()
        return {
            "url": url,
            "ids": [r["id"] for r in rows],
            "artists": [r["artist"] for r in rows],
            "texts": texts,
        }

    return asyncio.run(build())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_url(api_db: dict[str, Any]) -> Iterator[str]:
    """`rap-analyzer serve` on a free port (no token), ready (its /readyz answers 200)."""
    port = _free_port()
    with serving(port, cli_env(api_db["url"])):
        yield f"http://127.0.0.1:{port}"


def test_search_tracks_and_similar(api_url: str, api_db: dict[str, Any]) -> None:
    ids, texts, artists = api_db["ids"], api_db["texts"], api_db["artists"]
    with httpx.Client(base_url=api_url, timeout=30) as http:
        health = http.get("/readyz")
        assert health.status_code == 200 and health.json() == {"status": "ok", "embeddings": True}
        assert http.get("/healthz").json() == {"status": "ok"}

        r = http.get("/search", params={"q": texts[7], "limit": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["results"]) == 5 and body["plan"] == "index"
        assert body["results"][0]["track_id"] == ids[7]
        assert body["results"][0]["distance"] < 1e-4

        # An artist filter: only that artist's tracks (few: the exact plan).
        r = http.get("/search", params={"q": "money", "artist": artists[3], "limit": 100})
        assert r.status_code == 200, r.text
        got = r.json()
        want = {i for i, a in zip(ids[:-1], artists[:-1], strict=True) if a == artists[3]}
        assert got["plan"] == "exact" and {h["track_id"] for h in got["results"]} == want
        assert http.get("/search", params={"q": "x", "artist": "Nobody"}).json()["results"] == []

        r = http.get(f"/tracks/{ids[7]}")
        assert r.status_code == 200 and r.json()["embedding_models"] == [MODEL_NAME]
        assert r.json()["first_line"] and r.json()["artist"] == artists[7]

        r = http.get(f"/tracks/{ids[7]}/similar", params={"limit": 100})
        assert r.status_code == 200, r.text
        similar = [h["track_id"] for h in r.json()["results"]]
        assert len(similar) == TRACKS - 2 and ids[7] not in similar  # itself, and the last

        for path, params, code, detail in [
            ("/tracks/99999", {}, 404, "no track with id 99999"),
            (f"/tracks/{ids[-1]}/similar", {}, 409, f"track {ids[-1]} has no embedding"),
            ("/tracks/99999/similar", {}, 404, "no track with id 99999"),
            ("/search", {"q": "   "}, 422, "the query is empty"),
        ]:
            r = http.get(path, params=params)
            assert r.status_code == code, (path, r.text)
            assert detail in r.text
        for path, params in [
            ("/search", {"q": ""}),
            ("/search", {"q": "x" * 1001}),
            ("/search", {"q": "x", "limit": 0}),
            ("/search", {"q": "x", "limit": 101}),
            ("/search", {}),
            ("/tracks/0", {}),
            ("/tracks/2147483648", {}),
            ("/tracks/abc", {}),
            (f"/tracks/{ids[0]}/similar", {"limit": 0}),
        ]:
            assert http.get(path, params=params).status_code == 422, (path, params)

        # /metrics has a port of its own (test_search_limits.py); not served here.
        assert http.get("/metrics").status_code == 404
        assert http.get("/docs").status_code == 200


async def test_no_embeddings_yet_is_503_naming_the_run_to_apply(
    db_url: str, embedder: Embedder
) -> None:
    pool = await create_pool(db_url, max_size=2)
    await seed(pool, 3)
    async with pool.acquire() as conn:
        track = await conn.fetchval("SELECT min(id) FROM tracks")
    await pool.close()
    app = create_app(db_url, embedder=embedder)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        health = await http.get("/readyz")
        assert health.status_code == 200 and health.json()["embeddings"] is False
        for path in ("/search?q=love", f"/tracks/{track}/similar"):
            r = await http.get(path)
            assert r.status_code == 503, r.text
            assert "examples/embedding-run.yaml" in r.json()["detail"]
        r = await http.get(f"/tracks/{track}")
        assert r.status_code == 200 and r.json()["embedding_models"] == []


# -- schemathesis: every operation of the app's own OpenAPI -------------------------


def test_fuzz_every_operation(api_url: str) -> None:
    """Every operation of the app's own OpenAPI, 40 generated requests each (the same
    ones every run): no 5xx, and status codes, content types and bodies as documented."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/search"),
        ("GET", "/tracks/{track_id}"),
        ("GET", "/tracks/{track_id}/similar"),
    }
    calls: dict[str, int] = {}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=40,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            calls[case.path] = calls.get(case.path, 0) + 1
            case.call_and_validate(timeout=30)

        check()
    # The parameterised operations really were fuzzed (hypothesis may stop early on
    # a small input space, never below a handful).
    assert all(calls[p] >= 20 for p in ("/search", "/tracks/{track_id}/similar")), calls


def test_the_fixture_vectors_are_unit_length(api_db: dict[str, Any], embedder: Embedder) -> None:
    # Guards the fixture itself: the search assertions above rely on real vectors.
    v = embedder.embed(api_db["texts"][:2])
    assert v.shape == (2, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
