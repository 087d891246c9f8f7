"""The cascade (issue 25) measured, not assumed: real Postgres, the fake provider through
the real openai SDK, answering with its KNOWN labelling function (`labels: features`:
sentiment from word lists, quality from the features plus noise).

The quality model is trained on the LLM's labels of tracks A; then, on a DIFFERENT set
B, a cascade run (spec.llm.cascade: quality, the default minConfidence) and an LLM-only
run. Acceptance: the LLM is asked about at most half of B (counted from the fake's
request log, by lyrics digest), and the cascade run's labels agree with the LLM-only
run's on at least 90% of B, sentiment and quality (within 1) each. The numbers are
printed. Also: kept tracks are stored as `quality` results with cascade_for (never as
llm results), status.cascade counts them, and a cascade run without a trained model is
refused at planning naming `rap-analyzer model train quality`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from rap_devtools.fake_llm import FakeLLM
from rap_devtools.fake_llm.answers import lyrics_digest
from rap_operator.kinds.analysisrun import ANALYSIS
from rap_operator.validation import MissingInput

from analyzer_runtime import worker
from analyzer_runtime.analyzers.llm.cascade import run_labels
from analyzer_runtime.contract import load_manifest
from analyzer_runtime.ledger import planner
from analyzer_runtime.ledger import shards as shard_ledger
from analyzer_runtime.quality import agreement, storage, training
from analyzer_runtime.seed import seed
from tests.integration.llm.support import API_KEY, manifest, status

TRAIN, HELD = 2000, 1000  # as bench.cascade_curve: tracks A (labels for training), B
CASCADE_VERSION = "custom:fake-qwen@p1/cascade"
LLM_ONLY_VERSION = "custom:fake-qwen@p1/llm-only"


@pytest.fixture(scope="module")
def labeller() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=API_KEY, labels="features", seed=7) as server:
        yield server


def _local(name: str, analyzer: str) -> Any:
    return load_manifest(
        {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
         "metadata": {"name": name},
         "spec": {"analyzer": analyzer, "batchSize": 200, "shards": 2}}
    )  # fmt: skip


async def _run(pool: asyncpg.Pool, m: Any, uid: str) -> shard_ledger.Run:
    async with pool.acquire() as conn:
        run = (await planner.plan_manifest(conn, m, uid)).run
    reports = await asyncio.gather(*(worker.run_shard(pool, uid, i) for i in range(run.shards)))
    assert all(r.finished for r in reports)
    return run


def _llm(url: str, name: str, lo: int, hi: int, version: str | None = None, **llm: Any) -> Any:
    spec: dict[str, Any] = {"analyzerVersion": version} if version else {}
    return manifest(
        name, url, llm={"tracksPerRequest": 10, **llm}, shards=2, batchSize=50,
        selection={"idRange": {"from": lo, "to": hi}}, **spec,
    )  # fmt: skip


async def test_cascade_asks_the_llm_for_at_most_half_and_agrees_with_it(
    pool: asyncpg.Pool, labeller: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_API_KEY", API_KEY)
    await seed(pool, TRAIN + HELD)
    async with pool.acquire() as conn:
        first = await conn.fetchval("SELECT min(id) FROM tracks")
        lyrics = {r["id"]: r["lyrics"] for r in await conn.fetch("SELECT id, lyrics FROM tracks")}
    a = (first, first + TRAIN - 1)
    b = (first + TRAIN, first + TRAIN + HELD - 1)
    cascade = {"cascade": {"analyzer": "quality"}}

    # Before any model: refused at planning, naming the command; nothing left planned.
    async with pool.acquire() as conn:
        with pytest.raises(storage.ModelNotFound, match="rap-analyzer model train quality"):
            await planner.plan_manifest(conn, _llm(labeller.url, "early", *b, **cascade), "u-0")
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE uid = 'u-0'") == 0
        # The operator keeps such a run Pending (InputMissing) with the same message.
        with pytest.raises(MissingInput, match="rap-analyzer model train quality"):
            await ANALYSIS.plan(conn, _llm(labeller.url, "early", *b, **cascade), "u-op", None)
        assert await conn.fetchval("SELECT count(*) FROM runs") == 0

    await _run(pool, _local("alg", "algorithmic"), "u-alg")
    await _run(pool, _local("emo", "emotion"), "u-emo")
    await _run(pool, _llm(labeller.url, "labels", *a), "u-labels")
    async with pool.acquire() as conn:
        model, metrics = await training.train(conn, "labels")
    assert model is not None and agreement.SENTIMENT in model.targets
    print("\n" + training.render_metrics(model, metrics))

    labeller.reset()
    run = await _run(
        pool, _llm(labeller.url, "cascade", *b, version=CASCADE_VERSION, **cascade), "u-cascade"
    )
    asked = {d for e in labeller.log() if e.get("status") == 200 for d in e["lyrics"]}
    await _run(pool, _llm(labeller.url, "llm-only", *b, version=LLM_ONLY_VERSION), "u-only")

    async with pool.acquire() as conn:
        got = await run_labels(conn, run)
        only = await shard_ledger.find_run(conn, "u-only")
        assert only is not None
        reference = await run_labels(conn, only)
        kept_rows = await conn.fetch(
            """SELECT track_id, analyzer_type, model_version, sentiment, confidence,
                      analysis_data->'cascade_for' AS why
                 FROM analysis_results WHERE analysis_data ? 'cascade_for'"""
        )
        llm_rows = await conn.fetchval(
            "SELECT count(*) FROM analysis_results WHERE model_version = $1", CASCADE_VERSION
        )
    b_digests = {lyrics_digest(lyrics[t]) for t in range(b[0], b[1] + 1)}
    asked_b = len(asked & b_digests)
    score = agreement.label_agreement(got, reference)
    threshold = run.spec["llm"]["cascade"]["minConfidence"]
    print(
        f"cascade over {HELD} held-out tracks at minConfidence {threshold}: LLM asked for"
        f" {asked_b} ({asked_b / HELD:.1%}), kept {len(kept_rows)}; agreement with the"
        f" LLM-only run: {json.dumps(score)}"
    )
    # The acceptance numbers, measured.
    assert len(reference) == HELD and len(got) == HELD
    assert asked_b <= HELD // 2
    assert score["sentiment"] >= 0.9 and score["quality"] >= 0.9, score
    # The LLM saw exactly the tracks the cascade did not keep.
    assert asked_b == HELD - len(kept_rows) == llm_rows
    # Kept: quality results with cascade_for, never llm results.
    for r in kept_rows:
        assert r["analyzer_type"] == "quality" and r["model_version"] == "1.0.0"
        why = json.loads(r["why"])
        assert why["analyzer"] == "llm" and why["model_version"] == CASCADE_VERSION
        assert why["threshold"] == threshold and r["confidence"] >= threshold
        assert b[0] <= r["track_id"] <= b[1]

    st = await status(pool, "u-cascade")
    assert st["cascade"]["analyzer"] == "quality"
    assert st["cascade"]["kept"] == len(kept_rows)
    assert st["cascade"]["sentToLLM"] == HELD - len(kept_rows)
    assert st["processed"] == HELD
    per_track = st["estimatedCost"] / (HELD - len(kept_rows))
    assert st["cascade"]["costSaved"] == pytest.approx(len(kept_rows) * per_track, rel=1e-3)
    est = st["estimate"]["cascade"]
    assert est["analyzer"] == "quality" and 0 < est["keptShare"] < 1
