"""What distilling the LLM buys and costs (issue 15): tracks/min of the `quality`
analyzer vs the `llm` analyzer at the Novita budget, and the distilled model's MAE vs
the LLM's labels on held-out tracks.

On a fresh embedded Postgres with N synthetic tracks:
1. `algorithmic` and `emotion` runs over all N (the features; timed too, since a
   corpus needs them before `quality` can score it);
2. an `llm` run over the first L tracks (the labels) and a second one over the next H
   (held out: never seen by training), both against the fake provider answering with
   `labels: features` (a known function of the features plus noise, see
   rap_devtools/fake_llm/answers.py) with no latency - the LLM's RATE is not measured
   here but taken from the budget (bench/RESULTS.md, "LLM analyzer (issue 5)": the
   limiter achieves 0.99-1.0 of requestsPerMinute);
3. `rap-analyzer model train quality --from-run labels` (k-fold metrics on L; its
   printed table is in the result as `train_output`);
4. a `quality` run over all N tracks with `rap-analyzer run` machinery (shards as local
   processes, the real shard protocol): its wall time gives tracks/min;
5. MAE and Spearman of the stored predictions vs the held-out run's labels, next to
   the constant baseline (the training labels' mean).

    python -m bench.quality_bench [--tracks 5000] [--labelled 2000] [--held-out 1000]
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

import numpy as np
from rap_devtools.fake_llm import FakeLLM

NOVITA_RPM = 30  # the `novita` preset's default budget (its first tier)
KEY = "bench-key"


def _manifest(name: str, analyzer: str, **spec: Any) -> Any:
    from analyzer_runtime.contract import load_manifest

    return load_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name}, "spec": {"analyzer": analyzer, **spec}}
    )  # fmt: skip


async def _prepare(url: str, n: int) -> None:
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.ledger.migrate import migrate
    from analyzer_runtime.seed import seed

    async with pool_for(url, max_size=2) as pool:
        async with pool.acquire() as conn:
            await migrate(conn)
        await seed(pool, n)


def _run(url: str, m: Any) -> tuple[float, dict[str, Any]]:
    from rich.console import Console

    from analyzer_runtime.localrun import run_local

    t0 = time.perf_counter()
    st = asyncio.run(run_local(m, url, progress=False, console=Console(stderr=True)))
    return time.perf_counter() - t0, st


def _train(url: str) -> tuple[str, Any]:
    """`rap-analyzer model train` as a user runs it: its printed table, and the model."""
    import subprocess
    import sys

    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.quality import MODEL_NAME, storage

    got = subprocess.run(
        [sys.executable, "-m", "analyzer_runtime", "model", "train", "quality",
         "--from-run", "labels"],
        env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, check=True,
    )  # fmt: skip

    async def read() -> Any:
        async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
            return await storage.find(conn, MODEL_NAME)

    return got.stdout, asyncio.run(read())


async def _held_out(url: str) -> dict[str, Any]:
    from analyzer_runtime.ledger.connect import pool_for
    from analyzer_runtime.quality.training import spearman

    async with pool_for(url, max_size=1) as pool, pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT (l.analysis_data->>'quality')::float8 AS lq, l.complexity_score::float8 AS lc,
                      (q.analysis_data->>'quality')::float8 AS pq, q.complexity_score::float8 AS pc
                 FROM runs r JOIN run_items i ON i.run_id = r.id AND i.state = 'done'
                 JOIN analysis_results l ON l.track_id = i.item_id AND l.analyzer_type = 'llm'
                 JOIN analysis_results q ON q.track_id = i.item_id
                                        AND q.analyzer_type = 'quality'
                WHERE r.name = 'held-out'"""
        )
        train_mean = await conn.fetchrow(
            """SELECT avg((l.analysis_data->>'quality')::float8) AS q,
                      avg(l.complexity_score::float8) AS c
                 FROM runs r JOIN run_items i ON i.run_id = r.id AND i.state = 'done'
                 JOIN analysis_results l ON l.track_id = i.item_id AND l.analyzer_type = 'llm'
                WHERE r.name = 'labels'"""
        )
    out: dict[str, Any] = {"tracks": len(rows)}
    for target, lab, pred, mean in (("quality", "lq", "pq", "q"), ("complexity", "lc", "pc", "c")):
        y = np.asarray([r[lab] for r in rows])
        p = np.asarray([r[pred] for r in rows])
        out[target] = {
            "model_mae": round(float(np.mean(np.abs(p - y))), 4),
            "constant_mae": round(float(np.mean(np.abs(train_mean[mean] - y))), 4),
            "model_spearman": spearman(p, y),
        }
    return out


def main(tracks: int, labelled: int, held_out: int, shards: int) -> dict[str, Any]:
    from analyzer_runtime.db import embedded

    os.environ["LLM_API_KEY"] = KEY
    with tempfile.TemporaryDirectory(prefix="rap-bench-quality-") as tmp:
        server = embedded.start(Path(tmp) / "pgdata")
        url = server.get_uri()
        try:
            asyncio.run(_prepare(url, tracks))
            common = {"shards": shards, "parallelism": shards, "batchSize": 200}
            t_alg, _ = _run(url, _manifest("alg", "algorithmic", **common))
            t_emo, _ = _run(url, _manifest("emo", "emotion", **common))
            with FakeLLM(api_key=KEY, labels="features", seed=1) as fake:
                llm = {"provider": "custom", "baseURL": fake.url, "model": "fake-qwen",
                       "tracksPerRequest": 10, "concurrency": 4}  # fmt: skip
                for name, lo, hi in (("labels", 1, labelled),
                                     ("held-out", labelled + 1, labelled + held_out)):  # fmt: skip
                    _, st = _run(url, _manifest(
                        name, "llm", llm=llm, shards=2, batchSize=50,
                        selection={"idRange": {"from": lo, "to": hi}}))  # fmt: skip
                    assert st["phase"] == "Succeeded", st
            t0 = time.perf_counter()
            table, model = _train(url)
            t_train = time.perf_counter() - t0
            t_q, st = _run(url, _manifest("score", "quality", **common))
            assert st["phase"] == "Succeeded" and st["processed"] == tracks, st
            held = asyncio.run(_held_out(url))
        finally:
            server.cleanup()
    per_min = lambda t: round(tracks / t * 60)  # noqa: E731
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "tracks": tracks,
        "shards": shards,
        "quality_tracks_per_min": per_min(t_q),
        "quality_wall_s": round(t_q, 1),
        "algorithmic_tracks_per_min": per_min(t_alg),
        "emotion_tracks_per_min": per_min(t_emo),
        "features_plus_quality_tracks_per_min": round(tracks / (t_alg + t_emo + t_q) * 60),
        "llm_tracks_per_min_at_novita": {"k=1": NOVITA_RPM, "k=8": NOVITA_RPM * 8},
        "train_s": round(t_train, 1),
        "model_version": model.version,
        "cv": model.metrics,
        "train_output": table,
        "held_out": held,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tracks", type=int, default=5000)
    ap.add_argument("--labelled", type=int, default=2000)
    ap.add_argument("--held-out", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=2)
    a = ap.parse_args()
    print(json.dumps(main(a.tracks, a.labelled, a.held_out, a.shards), indent=2))
