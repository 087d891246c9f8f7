"""Issue-6 benchmark: does a sharded ScrapeJob use its Genius request budget, and never more?

    python -m bench.scrape_rate [--budget 300] [--windows 3] [--shards 4]

A fresh embedded Postgres, the fake Genius in its own process (latency: API calls
0.1 s, song pages 0.15 s; its own limit set to the budget, so any excess would come
back as 429), a ScrapeJob planned over enough artists to keep the shards busy for
more than `windows` minutes, and `shards` shard processes (`python -m
analyzer_runtime scrape`, exactly what the Job pods run) with
`rateLimit.genius.requestsPerMinute = budget` over the REAL 60-s window.

Figures, from the server's own log of request arrival times (same definitions as
bench/llm_rate.py):
- achieved / budget: requests in the first `windows` full minutes after the first
  request, divided by windows x budget (goal >= 0.9); and the sustained rate without
  the head start of the first window: windows x budget requests divided by the time
  from the first request to the first request after them;
- largest 60-s window over the whole run (goal <= budget), and 429s (expected 0);
- tracks per minute (new tracks committed) over the measured minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rap_devtools.fake_genius import FakeGeniusServer

from bench.rates import WINDOW, request_rates

TOKEN = "bench-token"
MAX_SONGS = 30
REQUESTS_PER_SONG = 2.1  # details + page, plus the search and listing pages per artist


async def _plan(
    url: str, fake: FakeGeniusServer, names: list[str], budget: int, shards: int
) -> str:
    from analyzer_runtime.contract import load_scrape_manifest
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.ledger.migrate import migrate
    from analyzer_runtime.ledger.scrape_planning import plan_scrape

    m = load_scrape_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "ScrapeJob",
         "metadata": {"name": "bench-scrape", "namespace": "bench"},
         "spec": {"artists": names, "maxSongsPerArtist": MAX_SONGS, "shards": shards,
                  "concurrency": 4, "batchSize": 20,
                  "genius": {"tokenSecretRef": {"name": "g", "key": "t"},
                             "apiBaseURL": fake.genius_api},
                  "rateLimit": {"genius": {"requestsPerMinute": budget}}}}
    )  # fmt: skip
    uid = str(uuid.uuid4())
    async with pool_for(url, max_size=2) as pool, pool.acquire() as conn:
        await migrate(conn)
        await plan_scrape(conn, m, uid, names)
    return uid


async def _new_tracks_at(url: str, run_uid: str, until: float) -> tuple[int, int]:
    """(tracks the run inserted with recorded_at before `until` (epoch), all of them)."""
    from analyzer_runtime.ledger.connect import pool_for

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE extract(epoch FROM s.recorded_at) < $2) AS early,
                      count(*) AS total
                 FROM scrape_songs s JOIN runs r ON r.id = s.run_id
                WHERE r.uid = $1 AND s.outcome = 'inserted'""",
            run_uid,
            until,
        )
    return int(row["early"]), int(row["total"])


def run(budget: int, windows: int, shards: int) -> dict[str, Any]:
    from analyzer_runtime.db import embedded

    with tempfile.TemporaryDirectory(prefix="rap-bench-scrape-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        url = server.get_uri()
        config = {"genius_token": TOKEN, "api_latency": 0.1, "page_latency": 0.15,
                  "rate_limit": budget, "rate_window": WINDOW}  # fmt: skip
        with FakeGeniusServer(**config) as fake:
            # Enough songs for the measured minutes plus one more: the run never runs dry.
            target = budget * (windows + 1) / REQUESTS_PER_SONG
            names: list[str] = []
            for a in fake.catalog.artists:
                names.append(a.name)
                if fake.catalog.expected(names, MAX_SONGS)["songs_found"] >= target:
                    break
            uid = asyncio.run(_plan(url, fake, names, budget, shards))
            env = {**os.environ, "DATABASE_URL": url, "GENIUS_ACCESS_TOKEN": TOKEN,
                   "METRICS_PORT": "0"}  # fmt: skip
            t0 = time.perf_counter()
            logs = [(Path(tmp) / f"shard-{i}.log").open("w") for i in range(shards)]
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "analyzer_runtime",
                        "scrape",
                        "--run-id",
                        uid,
                        "--shard",
                        str(i),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=logs[i],  # a file: a pipe nobody reads could fill and block
                )
                for i in range(shards)
            ]
            codes = [p.wait() for p in procs]
            for f in logs:
                f.close()
            wall = time.perf_counter() - t0
            log = fake.log()
            errors = [
                Path(f.name).read_text()[-500:] for f, c in zip(logs, codes, strict=True) if c
            ]
        first = min(e["t"] for e in log)
        early, total = asyncio.run(_new_tracks_at(url, uid, first + windows * WINDOW))
        server.cleanup()
    return {
        "artists": len(names),
        "max_songs_per_artist": MAX_SONGS,
        "exit_codes": codes,
        "errors": errors,
        "wall_s": round(wall, 1),
        **request_rates(log, budget, windows),
        "new_tracks": total,
        "tracks_per_min": round(early / windows, 1),
    }


def main(budget: int = 300, windows: int = 3, shards: int = 4) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "budget_per_min": budget,
        "windows": windows,
        "shards": shards,
        "latency": "API 0.1 s, song pages 0.15 s",
        "run": run(budget, windows, shards),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--shards", type=int, default=4)
    a = ap.parse_args()
    print(json.dumps(main(a.budget, a.windows, a.shards), indent=2))
