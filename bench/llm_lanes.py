"""Issue-25 benchmark: what 1,000 tracks cost in each LLM lane, and how far each lane's
labels are from the synchronous LLM-only ones.

    python -m bench.llm_lanes [--tracks 1000] [--train 1500] [--k 8]
                              [--min-confidence 0.8] [--noise 0.0] [--arms sync batch ...]

One embedded Postgres, `--train + --tracks` seeded tracks, the fake provider in its own
process with its KNOWN labelling function (`labels: features`), its real tokenizer
(cl100k_base over the ChatML template) and OpenAI's prompt-caching rule; every run is
`rap-analyzer run`'s local runner (shard processes), priced as the `openai` preset's
gpt-4o-mini (list, cached and Batch API prices of presets.py) with only the base URL
moved to the fake:

1. algorithmic and emotion runs over all tracks (the quality model's features);
2. an LLM run over the first `--train` tracks (set A) and the quality model trained on
   its labels, sentiment head included (what `model train quality --from-run` does);
3. the arms, each over the other `--tracks` tracks (set B), under its own
   analyzerVersion so each labels all of B: `sync` (the reference), `batch`
   (`llm.mode: batch`, the fake's Batch API), `sync+cascade` and `batch+cascade`
   (`llm.cascade: {analyzer: quality, minConfidence}`).

Per arm: tracks done, the share the LLM was asked about (from the fake's log, by lyrics
digest), tokens (prompt, cached, completion), the run's cost from its status (its
lane's price: batch at the Batch API discount, cached tokens at the cached price), the
cost per 1,000 tracks, and agreement with the `sync` arm's labels (sentiment the same,
quality within 1: quality/agreement.label_agreement; a kept track counts by the label
the cascade stored).

The fake is deterministic unless `--noise` (its sentiment_noise: answers that vary like
a model sampled at temperature > 0), so the LLM-only arms agree with `sync` by
construction at --noise 0; the cascade arms' agreement is the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rap_devtools.fake_llm import FakeLLM

ARMS = ("sync", "batch", "sync+cascade", "batch+cascade")
API_KEY = "bench-key"
MODEL = "gpt-4o-mini"  # priced by presets.py (openai), served by the fake


def _manifest(
    name: str, url: str, lo: int, hi: int, *, k: int = 8, analyzer: str = "llm",
    version: str | None = None, **llm: Any,
) -> Any:  # fmt: skip
    from analyzer_runtime.contract import load_manifest

    spec: dict[str, Any] = {
        "analyzer": analyzer,
        "shards": 2,
        "batchSize": 10 * k if analyzer == "llm" else 200,
        "selection": {"idRange": {"from": lo, "to": hi}},
        "retry": {"initialBackoffSeconds": 0.05},
    }
    if analyzer == "llm":
        spec["llm"] = {"provider": "openai", "baseURL": url, "model": MODEL,
                       "tracksPerRequest": k, "concurrency": 4, **llm}  # fmt: skip
        spec["analyzerVersion"] = version
    return load_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name}, "spec": spec}
    )  # fmt: skip


def arm_options(arm: str, min_confidence: float) -> dict[str, Any]:
    """spec.llm of an arm (on top of the common ones)."""
    llm: dict[str, Any] = {}
    if arm.startswith("batch"):
        llm["mode"] = "batch"
        llm["batch"] = {"pollSeconds": 1}
    if arm.endswith("+cascade"):
        llm["cascade"] = {"analyzer": "quality", "minConfidence": min_confidence}
    return llm


async def _prepare(url: str, n: int) -> int:
    """Migrate, seed `n` tracks; the lowest track id."""
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.ledger.migrate import migrate
    from analyzer_runtime.seed import seed

    async with pool_for(url, max_size=2) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        await seed(pool, n)
        async with pool.acquire() as conn:
            return int(await conn.fetchval("SELECT min(id) FROM tracks"))


async def _train(url: str, run_name: str) -> str:
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.quality import training

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        model, metrics = await training.train(conn, run_name)
    return training.render_metrics(model, metrics)


async def _labels(url: str, name: str) -> tuple[dict[int, Any], dict[int, str]]:
    """(the run's labels: cascade.run_labels, lyrics digest per track of the run)."""
    from rap_devtools.fake_llm.answers import lyrics_digest

    from analyzer_runtime.analyzers.llm.cascade import run_labels
    from analyzer_runtime.ledger import shards as shard_ledger
    from analyzer_runtime.ledger.connect import pool_for

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        run = await shard_ledger.find_run_by_name(conn, name)
        assert run is not None
        labels = await run_labels(conn, run)
        rows = await conn.fetch(
            "SELECT t.id, t.lyrics FROM run_items i JOIN tracks t ON t.id = i.item_id"
            " WHERE i.run_id = $1",
            run.id,
        )
    return labels, {r["id"]: lyrics_digest(r["lyrics"] or "") for r in rows}


async def _label_quality(url: str, name: str) -> dict[str, Any]:
    """`report llm --run NAME --json`'s label_quality: the schema-valid rate and, for a
    cascade arm, the kept tracks' agreement with the LLM answers stored for them."""
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.reports import collect

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        report, _ = await collect.llm_report(conn, name)
    q: dict[str, Any] = report["label_quality"]
    return {"schema_validity": q["schema_validity"], "cascade": q["cascade"]}


def _note(text: str) -> None:
    print(f"[llm_lanes] {text}", file=sys.stderr, flush=True)


def _run(manifest: Any, url: str, name: str) -> tuple[dict[str, Any], float]:
    from rich.console import Console

    from analyzer_runtime.localrun import run_local

    t0 = time.perf_counter()
    # The runner's status text goes to stderr: stdout is the JSON.
    console = Console(file=sys.stderr)
    status = asyncio.run(run_local(manifest, url, uid=None, progress=False, console=console))
    wall = time.perf_counter() - t0
    _note(f"{name}: {status['phase']} in {wall:.1f} s")
    if status["phase"] != "Succeeded":
        raise RuntimeError(f"run {name}: {status['phase']}: {json.dumps(status)[:2000]}")
    return status, wall


def run_arm(
    arm: str, fake: FakeLLM, url: str, b: tuple[int, int], k: int, min_confidence: float
) -> dict[str, Any]:
    """One arm over set B: its status, what the LLM was asked, its labels."""
    fake.reset()
    name = "lanes-" + arm.replace("+", "-")
    m = _manifest(name, fake.url, *b, k=k, version=f"bench-lanes/{arm}",
                  **arm_options(arm, min_confidence))  # fmt: skip
    status, wall = _run(m, url, name)
    log = fake.log()
    labels, digests = asyncio.run(_labels(url, name))
    label_quality = asyncio.run(_label_quality(url, name))
    answered = [e for e in log if e.get("status") == 200]
    asked = {d for e in answered for d in e.get("lyrics", [])} & set(digests.values())
    tokens = status.get("tokens") or {}
    done = status["processed"]
    cost = status.get("estimatedCost")
    return {
        "arm": arm,
        "tracks": len(digests),
        "done": done,
        "failed": status["failed"],
        "llm_asked": len(asked),
        "llm_asked_share": round(len(asked) / len(digests), 4) if digests else None,
        "requests": len(answered),
        "batch_lines": sum("batch" in e for e in answered),
        "tokens": {k_: tokens.get(k_, 0) for k_ in ("prompt", "cached", "completion")},
        "cost_usd": cost,
        "cost_per_1000_tracks_usd": round(cost / done * 1000, 6) if cost and done else None,
        "cascade": status.get("cascade"),
        "report_llm": label_quality,
        "wall_s": round(wall, 1),
        "_labels": labels,
    }


def main(
    tracks: int = 1000,
    train: int = 1500,
    k: int = 8,
    min_confidence: float = 0.8,
    noise: float = 0.0,
    arms: tuple[str, ...] = ARMS,
) -> dict[str, Any]:
    from analyzer_runtime.contract.llm_presets import PRICES_PER_MILLION
    from analyzer_runtime.db import embedded
    from analyzer_runtime.quality.agreement import label_agreement

    if "sync" not in arms:
        arms = ("sync", *arms)  # the reference
    t_start = time.perf_counter()
    os.environ["LLM_API_KEY"] = API_KEY
    with tempfile.TemporaryDirectory(prefix="rap-bench-lanes-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        url = server.get_uri()
        try:
            first = asyncio.run(_prepare(url, train + tracks))
            a = (first, first + train - 1)
            b = (first + train, first + train + tracks - 1)
            for analyzer in ("algorithmic", "emotion"):
                _run(_manifest(f"lanes-{analyzer}", "", first, b[1], analyzer=analyzer),
                     url, analyzer)  # fmt: skip
            config = {"labels": "features", "seed": 7, "sentiment_noise": noise,
                      "batch_seconds": 0.5}  # fmt: skip
            with FakeLLM(api_key=API_KEY, **config) as fake:
                t0 = time.perf_counter()
                _run(_manifest("lanes-labels", fake.url, *a, k=k,
                               version="bench-lanes/labels"), url, "lanes-labels")  # fmt: skip
                t1 = time.perf_counter()
                trained = asyncio.run(_train(url, "lanes-labels"))
                _note(f"quality model trained in {time.perf_counter() - t1:.1f} s")
                prep_s = time.perf_counter() - t0
                results = [run_arm(arm, fake, url, b, k, min_confidence) for arm in arms]
        finally:
            server.cleanup()
    reference = results[0]["_labels"]
    for r in results:
        r["agreement_with_sync"] = label_agreement(r.pop("_labels"), reference)
    prices = PRICES_PER_MILLION[("openai", MODEL)]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "make bench-llm-lanes"
        + (f" N={tracks}" if tracks != 1000 else "")
        + (f" TRAIN={train}" if train != 1500 else ""),
        "tracks": tracks,
        "train_tracks": train,
        "tracks_per_request": k,
        "min_confidence": min_confidence,
        "sentiment_noise": noise,
        "pricing_per_million_usd": {
            "model": f"openai {MODEL}",
            "prompt": prices[0],
            "completion": prices[1],
            "cached_prompt": prices[2] if len(prices) > 2 else None,
            "batch": "50% of each",
        },
        "quality_model": trained.splitlines()[0] if trained else None,
        "prep_s": round(prep_s, 1),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "arms": results,
    }


def table(report: dict[str, Any]) -> str:
    """The RESULTS.md table of a report."""
    head = (
        "| lane | LLM asked | tokens prompt / cached / completion | cost | cost per 1,000"
        " tracks | vs sync: sentiment / quality ±1 / both |\n|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in report["arms"]:
        t, ag = r["tokens"], r["agreement_with_sync"]
        rows.append(
            f"| {r['arm']} | {r['llm_asked']} of {r['tracks']} ({r['llm_asked_share']:.0%}) |"
            f" {t['prompt']:,} / {t['cached']:,} / {t['completion']:,} |"
            f" ${r['cost_usd']:.4f} | **${r['cost_per_1000_tracks_usd']:.4f}** |"
            f" {ag['sentiment']:.3f} / {ag['quality']:.3f} / {ag['both']:.3f} |"
        )
    return head + "\n".join(rows) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tracks", type=int, default=1000, help="set B: the tracks every arm labels")
    ap.add_argument("--train", type=int, default=1500, help="set A: the quality model's labels")
    ap.add_argument("--k", type=int, default=8, help="tracksPerRequest")
    ap.add_argument("--min-confidence", type=float, default=0.8)
    ap.add_argument("--noise", type=float, default=0.0, help="the fake's sentiment_noise")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--table", action="store_true", help="also print the Markdown table")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args()
    out = main(a.tracks, a.train, a.k, a.min_confidence, a.noise, tuple(a.arms))
    print(json.dumps(out, indent=2))
    if a.json_out is not None:
        a.json_out.write_text(json.dumps(out, indent=2) + "\n")
    if a.table:
        print(table(out))
