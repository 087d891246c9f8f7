"""The artist filter's iterative plan (pgvector >= 0.8) at corpus scale.

    python -m bench.iterative_scan URL [N] [--json PATH]

URL: a maintenance database (`postgres`) on a server whose pgvector has iterative
index scans; the embedded server (pgvector 0.6) has none. A database is created there
and loaded as bench/search_bench.py loads its own (N seeded tracks, the cached head
vectors of the real model, the HNSW index), then over Q queries, for the largest and
a typical artist:

- the iterative query (search.ITERATIVE_SQL under search.index_settings("iterative"))
  at several ef_search values: recall@10 against the exact plan, p50/p95, and how
  often it came back short (then nearest() answers exactly);
- the exact and the over-fetch plans beside it, in the same session;
- which plan Postgres chose for the iterative query (EXPLAIN).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import numpy as np

from analyzer_runtime import search
from analyzer_runtime.corpus.synthetic import generate_tracks
from bench import search_bench

EF_VALUES = (40, 64, 100, 200, 400)


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": search.percentile(ms, 50), "p95_ms": search.percentile(ms, 95)}


async def _iterative(
    conn: asyncpg.Connection, vector: Any, model: str, artist: str, ef: int
) -> tuple[list[int], float]:
    t0 = time.perf_counter()
    async with conn.transaction():
        for name, value in search.index_settings("iterative", ef).items():
            await conn.execute(f"SET LOCAL {name} = {value}")
        rows = await conn.fetch(search.ITERATIVE_SQL, vector, model, artist, None, 10)
    return [r["id"] for r in rows], (time.perf_counter() - t0) * 1000


async def _measure(url: str, qvecs: np.ndarray) -> dict[str, Any]:
    from analyzer_runtime.embedding.model import MODEL_NAME
    from analyzer_runtime.ledger.connect import pool_for

    out: dict[str, Any] = {}
    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        pgvector = await search.read_pgvector(conn)
        out["pgvector"] = str(pgvector)
        if not pgvector.iterative_scan:
            raise SystemExit(f"pgvector {pgvector} has no iterative index scans (0.8+)")
        sizes = await conn.fetch(
            "SELECT artist, count(*) AS n FROM tracks GROUP BY artist ORDER BY n DESC"
        )
        for label, row in (("largest", sizes[0]), ("typical", sizes[len(sizes) // 2])):
            artist = row["artist"]
            entry: dict[str, Any] = {"artist": artist, "tracks": row["n"]}
            truths = []
            for plan in ("exact", "overfetch"):
                ms = []
                for v in qvecs:
                    t0 = time.perf_counter()
                    r = await search.nearest(
                        conn, v, MODEL_NAME, limit=10, artist=artist, plan=plan
                    )
                    ms.append((time.perf_counter() - t0) * 1000)
                    if plan == "exact":
                        truths.append([h.track_id for h in r.hits])
                entry[plan] = _stats(ms)
            for ef in EF_VALUES:
                ms, recalls, short = [], [], 0
                for v, truth in zip(qvecs, truths, strict=True):
                    got, took = await _iterative(conn, v, MODEL_NAME, artist, ef)
                    ms.append(took)
                    recalls.append(search.recall_at(10, got, truth))
                    short += len(got) < 10
                entry[f"iterative_ef_{ef}"] = {
                    "recall_at_10": float(np.mean(recalls)),
                    "short": short,
                    **_stats(ms),
                }
            async with conn.transaction():
                for name, value in search.index_settings(
                    "iterative", search.ITERATIVE_EF_SEARCH
                ).items():
                    await conn.execute(f"SET LOCAL {name} = {value}")
                plan_rows = await conn.fetch(
                    "EXPLAIN " + search.ITERATIVE_SQL, qvecs[0], MODEL_NAME, artist, None, 10
                )
            entry["iterative_plan_scans"] = [r[0].strip() for r in plan_rows if "Scan" in r[0]]
            out[f"artist_{label}"] = entry
    return out


async def _create(url: str) -> str:
    name = f"iterative_{int(time.time())}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def main(url: str, n: int, n_queries: int) -> dict[str, Any]:
    from analyzer_runtime.embedding.model import Embedder

    load_at_start = os.getloadavg()[0]
    embedder = Embedder.load()
    vectors, _ = search_bench.corpus_vectors(n, embedder)
    target = asyncio.run(_create(url))
    result: dict[str, Any] = {"n": n, "queries": n_queries}
    result["load"] = asyncio.run(search_bench._load(target, n, vectors))
    queries = [search_bench.head(t.lyrics) for t in generate_tracks(n_queries, start=n + 1000)]
    qvecs = embedder.embed(queries, batch_size=64)
    result.update(asyncio.run(_measure(target, qvecs)))
    result["load_average"] = {"start": load_at_start, "end": os.getloadavg()[0]}
    result["date"] = time.strftime("%Y-%m-%d")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="postgres://.../postgres on a server with pgvector >= 0.8")
    parser.add_argument("n", type=int, nargs="?", default=57718)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = json.dumps(main(args.url, args.n, args.queries), indent=2)
    print(figures)
    if args.json:
        args.json.write_text(figures + "\n")
