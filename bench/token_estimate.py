"""Issue-25 benchmark: how far the planning-time token estimate is from what a provider
bills, now that the fake provider counts with a real tokenizer.

    python -m bench.token_estimate [--tracks 1000] [--k 1 4 8] [--shards 2]

For each k (tracksPerRequest) and each caching rule, one embedded Postgres with
`--tracks` seeded tracks, the fake provider in its own process (no latency, no limit)
counting with its real BPE (cl100k_base over the ChatML template, fake_llm/tokens.py),
and two runs through `rap-analyzer run`'s local runner:

1. `dryRun: true` - plans and stops: its status carries the estimate (`--dry-run`'s);
2. the same spec for real, under another analyzerVersion: its status carries the
   tokens the provider billed (usage of every answer, summed by the ledger).

Rules: `openai` - the fake plays OpenAI's prompt caching (1,024+ tokens, 128-token
steps) and the run is the `openai` preset (gpt-4o-mini, list and cached prices) with
the base URL moved to the fake; `vllm` - the fake plays vLLM's prefix caching (16-token
blocks) and the run is the `vllm` preset priced like gpt-4o-mini with its cached price.

Figures per run: prompt / cached / completion / total tokens and cost, estimate vs
actual, and the estimate's error in % ((estimate - actual) / actual).
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

from bench.llm_rate import prepare_corpus

API_KEY = "bench-key"
RULES = {
    "openai": {"cache_min_tokens": 1024, "cache_step": 128},
    "vllm": {"cache_min_tokens": 16, "cache_step": 16},
}
# gpt-4o-mini's list and cached prices (presets.py), for the vllm arm too.
PRICES = {"promptPerMillion": 0.15, "completionPerMillion": 0.60, "cachedPromptPerMillion": 0.075}


def _manifest(rule: str, fake: FakeLLM, k: int, shards: int, dry: bool) -> Any:
    from analyzer_runtime.contract import load_manifest

    llm: dict[str, Any] = {"baseURL": fake.url, "tracksPerRequest": k, "concurrency": 4}
    if rule == "openai":
        llm |= {"provider": "openai", "model": "gpt-4o-mini"}
    else:
        llm |= {"provider": "vllm", "model": "fake-qwen", "pricing": PRICES}
    name = f"tokens-{rule}-k{k}-{'dry' if dry else 'run'}"
    return load_manifest(
        {
            "apiVersion": "rapanalyzer.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": name},
            "spec": {
                "analyzer": "llm",
                "analyzerVersion": f"bench-{name}",
                "shards": shards,
                "batchSize": 16 * k,
                "dryRun": dry,
                "llm": llm,
            },
        }
    )


def _error(estimate: float, actual: float) -> float | None:
    return round(100 * (estimate - actual) / actual, 1) if actual else None


def run_one(rule: str, k: int, tracks: int, shards: int) -> dict[str, Any]:
    from analyzer_runtime.db import embedded
    from analyzer_runtime.localrun import run_local

    with tempfile.TemporaryDirectory(prefix="rap-bench-tokens-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        url = server.get_uri()
        asyncio.run(prepare_corpus(url, tracks))
        os.environ["LLM_API_KEY"] = API_KEY
        with FakeLLM(api_key=API_KEY, seed=k, **RULES[rule]) as fake:
            dry = asyncio.run(
                run_local(_manifest(rule, fake, k, shards, True), url, progress=False)
            )
            assert not fake.log(), "a dry run sent requests"
            t0 = time.perf_counter()
            real = asyncio.run(
                run_local(_manifest(rule, fake, k, shards, False), url, progress=False)
            )
            wall = time.perf_counter() - t0
            log = fake.log()
        server.cleanup()
    est, got = dry["estimate"], real["tokens"]
    rows = {}
    for kind in ("prompt", "cached", "completion", "total"):
        e, a = int(est["tokens"].get(kind) or 0), int(got.get(kind) or 0)
        rows[kind] = {"estimate": e, "actual": a, "error_pct": _error(e, a)}
    cost_e, cost_a = est.get("cost") or 0.0, real.get("estimatedCost") or 0.0
    rows["cost_usd"] = {
        "estimate": round(cost_e, 6),
        "actual": round(cost_a, 6),
        "error_pct": _error(cost_e, cost_a),
    }
    return {
        "rule": rule,
        "k": k,
        "tracks": tracks,
        "phase": real["phase"],
        "processed": real["processed"],
        "requests": {"estimate": est["requests"], "actual": len(log)},
        "wall_s": round(wall, 1),
        **rows,
    }


def main(tracks: int, ks: tuple[int, ...], shards: int) -> dict[str, Any]:
    runs = [run_one(rule, k, tracks, shards) for rule in RULES for k in ks]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "tokenizer": "cl100k_base over the ChatML template (fake_llm/tokens.py)",
        "runs": runs,
    }


def table(result: dict[str, Any]) -> str:
    """The runs as a Markdown table (for bench/RESULTS.md)."""
    head = "| rule | k | requests est/act | prompt est / actual (err) | cached est / actual"
    head += " | completion est / actual (err) | total (err) | cost (err) |"
    lines = [head, "|" + "---|" * 8]
    for r in result["runs"]:

        def cell(kind: str, r: dict[str, Any] = r) -> str:
            c = r[kind]
            err = "n/a" if c["error_pct"] is None else f"{c['error_pct']:+.1f}%"
            return f"{c['estimate']:,} / {c['actual']:,} ({err})"

        lines.append(
            f"| {r['rule']} | {r['k']} | {r['requests']['estimate']:,} / "
            f"{r['requests']['actual']:,} | {cell('prompt')} | {r['cached']['estimate']:,} / "
            f"{r['cached']['actual']:,} | {cell('completion')} | {cell('total')} | "
            f"{cell('cost_usd')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tracks", type=int, default=1000)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--shards", type=int, default=2)
    a = ap.parse_args()
    out = main(a.tracks, tuple(a.k), a.shards)
    print(json.dumps(out, indent=2))
    print(table(out))
