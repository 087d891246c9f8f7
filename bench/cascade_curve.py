"""The cascade's curve (issue 25): minConfidence -> share of tracks sent to the LLM ->
agreement with an LLM-only run, for both first analyzers, measured on held-out tracks.

On a fresh embedded Postgres with the seeded corpus, against the fake provider
answering with its KNOWN labelling function (`labels: features`, answers.py):
1. `algorithmic` and `emotion` runs over all tracks (the quality model's features);
2. an llm run over the first --labelled tracks; `model train quality` from it;
3. over the next --held-out tracks (never seen by training): an LLM-only run (the
   reference), a `quality` run and the stored `algorithmic` results - each track's
   first-analyzer label and confidence;
4. per threshold, the cascade's split rule (cascade.keeps) on those results: a kept
   track has the first analyzer's labels, the others the LLM's (the fake answers a
   track the same in every run), and agreement.label_agreement against the reference;
5. one real cascade run (spec.llm.cascade quality at --check) over the held-out tracks,
   whose LLM request count and agreement must match the curve's point.

    python -m bench.cascade_curve [--tracks 3000] [--labelled 2000] [--check 0.7]
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

KEY = "bench-key"
THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def _manifest(name: str, analyzer: str, **spec: Any) -> Any:
    from analyzer_runtime.contract import load_manifest

    return load_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name},
         "spec": {"analyzer": analyzer, "shards": 2, "batchSize": 100, **spec}}
    )  # fmt: skip


async def _run(pool: Any, m: Any, uid: str) -> Any:
    from analyzer_runtime import worker
    from analyzer_runtime.ledger import planner

    async with pool.acquire() as conn:
        run = (await planner.plan_manifest(conn, m, uid)).run
    reports = await asyncio.gather(*(worker.run_shard(pool, uid, i) for i in range(run.shards)))
    assert all(r.finished for r in reports)
    return run


async def _first_labels(conn: Any, analyzer: str, ids: range) -> dict[int, Any]:
    """Each track's first-analyzer outcome as the split rule sees it."""
    from analyzer_runtime.analyzers.base import AnalysisResult, ItemOutcome

    rows = await conn.fetch(
        """SELECT track_id, sentiment, confidence, (analysis_data->>'quality')::float8 AS q
             FROM analysis_results WHERE analyzer_type = $1 AND track_id = ANY($2::int[])""",
        analyzer,
        list(ids),
    )
    return {
        r["track_id"]: ItemOutcome.done(
            AnalysisResult(
                r["track_id"],
                analyzer,
                "",
                sentiment=r["sentiment"],
                confidence=r["confidence"],
                analysis_data={"quality": r["q"]},
            )
        )
        for r in rows
    }


def _curve(first: dict[int, Any], reference: dict[int, Any]) -> list[dict[str, Any]]:
    from analyzer_runtime.analyzers.llm.cascade import keeps
    from analyzer_runtime.quality import agreement

    out = []
    for t in THRESHOLDS:
        labels = dict(reference)
        kept = 0
        for tid, o in first.items():
            if tid in reference and keeps(o, t):
                labels[tid] = (o.result.sentiment, o.result.analysis_data.get("quality"))
                kept += 1
        score = agreement.label_agreement(labels, reference)
        out.append({"minConfidence": t, "sent_to_llm": round(1 - kept / len(reference), 4),
                    **{k: score[k] for k in ("sentiment", "quality", "both")}})  # fmt: skip
    return out


async def _bench(url: str, tracks: int, labelled: int, check: float) -> dict[str, Any]:
    from analyzer_runtime.analyzers.llm.cascade import run_labels
    from analyzer_runtime.ledger import shards as shard_ledger
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.ledger.migrate import migrate
    from analyzer_runtime.quality import agreement, training
    from analyzer_runtime.seed import seed

    async with pool_for(url, max_size=8) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        await seed(pool, tracks)
        async with pool.acquire() as conn:
            first_id = await conn.fetchval("SELECT min(id) FROM tracks")
        a = {"from": first_id, "to": first_id + labelled - 1}
        b = {"from": first_id + labelled, "to": first_id + tracks - 1}
        held = range(b["from"], b["to"] + 1)
        await _run(pool, _manifest("alg", "algorithmic", batchSize=200), "alg")
        await _run(pool, _manifest("emo", "emotion", batchSize=200), "emo")
        with FakeLLM(api_key=KEY, labels="features", seed=7) as fake:
            llm = {"provider": "custom", "baseURL": fake.url, "model": "fake-qwen",
                   "tracksPerRequest": 10, "concurrency": 4}  # fmt: skip

            def llm_run(name: str, sel: dict[str, int], **extra: Any) -> Any:
                opts = {**llm, **extra.pop("llm", {})}
                return _manifest(name, "llm", llm=opts, batchSize=50,
                                 selection={"idRange": sel}, **extra)  # fmt: skip

            await _run(pool, llm_run("labels", a), "labels")
            async with pool.acquire() as conn:
                model, metrics = await training.train(conn, "labels")
            await _run(pool, llm_run("llm-only", b, analyzerVersion="custom:fake@only"), "only")
            await _run(pool, _manifest("score", "quality", selection={"idRange": b}), "score")
            fake.reset()
            t0 = time.perf_counter()
            cascade = await _run(
                pool,
                llm_run("cascade", b, analyzerVersion="custom:fake@cascade",
                        llm={"cascade": {"analyzer": "quality", "minConfidence": check}}),
                "cascade",
            )  # fmt: skip
            cascade_s = time.perf_counter() - t0
            asked = len({d for e in fake.log() if e.get("status") == 200 for d in e["lyrics"]})
        async with pool.acquire() as conn:
            only = await shard_ledger.find_run(conn, "only")
            reference = await run_labels(conn, only)
            real = agreement.label_agreement(await run_labels(conn, cascade), reference)
            curves = {
                name: _curve(await _first_labels(conn, name, held), reference)
                for name in ("quality", "algorithmic")
            }
    assert model is not None
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "tracks": {"labelled": labelled, "held_out": len(held)},
        "model": {"version": model.version, "sentiment": metrics.get("sentiment")},
        "curves": curves,
        "real_cascade_run": {
            "minConfidence": check,
            "llm_tracks_asked": asked,
            "sent_to_llm": round(asked / len(held), 4),
            "agreement": real,
            "wall_s": round(cascade_s, 1),
        },
    }


def main(tracks: int, labelled: int, check: float) -> dict[str, Any]:
    from analyzer_runtime.db import embedded

    os.environ["LLM_API_KEY"] = KEY
    with tempfile.TemporaryDirectory(prefix="rap-bench-cascade-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        try:
            return asyncio.run(_bench(server.get_uri(), tracks, labelled, check))
        finally:
            server.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tracks", type=int, default=3000)
    ap.add_argument("--labelled", type=int, default=2000)
    ap.add_argument("--check", type=float, default=0.7, help="minConfidence of the real run")
    a = ap.parse_args()
    print(json.dumps(main(a.tracks, a.labelled, a.check), indent=2))
