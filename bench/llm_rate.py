"""Issue-5 benchmark: does a sharded llm run use its whole request budget, and never more?

    python -m bench.llm_rate [--budget 600] [--windows 3] [--shards 4] [--k 1 8]
                             [--provider-limit 300] [--fake '{"...": ...}']

For each k (tracksPerRequest): a fresh embedded Postgres with enough synthetic tracks
to keep the run busy for more than `windows` minutes, the fake OpenAI-compatible
provider in its own process (latency p50 0.6 s / p95 0.9 s; its own limit set to the
budget, so any excess would come back as 429), and `rap-analyzer run` with `shards`
shard processes and `rateLimit.requestsPerMinute = budget` over the REAL 60-s window.

Figures, from the provider's own log of request arrival times:
- achieved / budget: requests in the first `windows` full minutes after the first
  request, divided by windows x budget (goal >= 0.95); and the sustained rate, which
  leaves out the head start of the first window: windows x budget requests divided by
  the time from the first request to the first request after them;
- largest 60-s window over the whole run (goal <= budget), and 429s (expected 0);
- tracks per minute over those minutes, as a multiple of the original platform's
  2-5 tracks/min at its 45/min budget scaled to this budget (goal k=8: >= 10x).

With `--provider-limit L` below the budget (issue 11, the adaptive share): what the
provider accepted per minute after the first window, over L (goal >= 0.9), and the
share of requests it answered 429 (goal <= 2%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rap_devtools.fake_llm import FakeLLM

from bench.rates import WINDOW, request_rates

ORIGINAL_TRACKS_PER_MIN = (2.0, 5.0)  # measured on the original platform ...
ORIGINAL_BUDGET = 45  # ... at Novita's 45 requests/min


async def prepare_corpus(url: str, tracks: int) -> None:
    """A migrated database with `tracks` seeded tracks (also bench/token_estimate.py's)."""
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.ledger.migrate import migrate
    from analyzer_runtime.seed import seed

    async with pool_for(url, max_size=2) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        await seed(pool, tracks)


def _manifest(fake: FakeLLM, k: int, budget: int, shards: int, tracks: int) -> Any:
    from analyzer_runtime.contract import load_manifest

    return load_manifest(
        {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": f"bench-llm-k{k}"},
            "spec": {
                "analyzer": "llm",
                "shards": shards,
                "batchSize": 16 * k,
                "selection": {"limit": tracks},
                "rateLimit": {"requestsPerMinute": budget},
                "llm": {
                    "provider": "custom",
                    "baseURL": fake.url,
                    "model": "fake-qwen",
                    "tracksPerRequest": k,
                    "concurrency": 4,
                    "pricing": {"promptPerMillion": 0.03, "completionPerMillion": 0.03},
                },
            },
        }
    )


def run_one(
    k: int,
    budget: int,
    windows: int,
    shards: int,
    provider_limit: int | None = None,
    fake_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run; `provider_limit` below `budget` is a provider whose real limit is lower
    than ours (the adaptive share must find it), `fake_options` more fake behaviours."""
    from analyzer_runtime.db import embedded
    from analyzer_runtime.localrun import run_local

    # Enough work for the measured minutes plus one more, so the run never runs dry.
    tracks = min(budget, provider_limit or budget) * k * (windows + 1)
    with tempfile.TemporaryDirectory(prefix="rap-bench-llm-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        url = server.get_uri()
        asyncio.run(prepare_corpus(url, tracks))
        config = {"latency_p50": 0.6, "latency_p95": 0.9, "seed": k,
                  "rate_limit": provider_limit or budget, "rate_window": WINDOW,
                  **(fake_options or {})}  # fmt: skip
        os.environ["LLM_API_KEY"] = "bench-key"
        with FakeLLM(api_key="bench-key", **config) as fake:
            t0 = time.perf_counter()
            status = asyncio.run(
                run_local(_manifest(fake, k, budget, shards, tracks), url, progress=False)
            )
            wall = time.perf_counter() - t0
            log = fake.log()
        server.cleanup()
    first = min(e["t"] for e in log)
    measured = [e for e in log if e["t"] < first + windows * WINDOW]
    answered = [e for e in measured if e["status"] == 200]
    tracks_per_min = sum(len(e["tracks"]) for e in answered) / windows
    original = [r * budget / ORIGINAL_BUDGET for r in ORIGINAL_TRACKS_PER_MIN]
    adaptive: dict[str, Any] = {}
    if provider_limit:
        # After the first window (which finds the limit): what the provider accepted
        # per minute, over its limit, and the share of requests it refused.
        later = [e for e in log if first + WINDOW <= e["t"] < first + windows * WINDOW]
        ok = sum(e["status"] == 200 for e in later)
        adaptive = {
            "provider_limit_per_min": provider_limit,
            "accepted_over_provider_limit": round(ok / ((windows - 1) * provider_limit), 3),
            "share_429_after_first_window": round(
                sum(e["status"] == 429 for e in later) / max(1, len(later)), 4
            ),
            "share_429_whole_run": round(sum(e["status"] == 429 for e in log) / len(log), 4),
        }
    return {
        "k": k,
        "tracks": tracks,
        "phase": status["phase"],
        "processed": status["processed"],
        "failed": status["failed"],
        "wall_s": round(wall, 1),
        **request_rates(log, budget, windows),
        "tracks_per_min": round(tracks_per_min, 1),
        "original_scaled_tracks_per_min": [round(x, 1) for x in original],
        "x_original": [round(tracks_per_min / x, 1) for x in reversed(original)],
        "tokens": status.get("tokens"),
        "estimated_cost_usd": status.get("estimatedCost"),
        "estimate": status.get("estimate"),
        **adaptive,
    }


def main(
    budget: int = 600,
    windows: int = 3,
    shards: int = 4,
    ks: tuple[int, ...] = (1, 8),
    provider_limit: int | None = None,
    fake_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    results = [run_one(k, budget, windows, shards, provider_limit, fake_options) for k in ks]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "budget_per_min": budget,
        "windows": windows,
        "shards": shards,
        "latency": "p50 0.6 s / p95 0.9 s (log-normal)",
        "runs": results,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--budget", type=int, default=600)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 8])
    ap.add_argument(
        "--provider-limit", type=int, default=None,
        help="the fake provider's own limit per minute (default: the budget)",
    )  # fmt: skip
    ap.add_argument("--fake", type=json.loads, default=None, help="more fake options, as JSON")
    a = ap.parse_args()
    print(
        json.dumps(
            main(a.budget, a.windows, a.shards, tuple(a.k), a.provider_limit, a.fake), indent=2
        )
    )
