"""Writes to `analysis_results`: one row per (track, analyzer_type, model_version),
and the vectors some results carry to `track_embeddings`: one per (track, model)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from analyzer_runtime.analyzers.base import AnalysisResult


def _clamp01(v: float | None) -> float | None:
    return None if v is None else min(1.0, max(0.0, round(float(v), 4)))


async def upsert_results(conn: asyncpg.Connection, results: Sequence[AnalysisResult]) -> None:
    """Insert or replace results in one statement; re-running an analyzer never adds rows.

    Called by the worker inside the batch's transaction (ledger.shards.commit_batch), so the
    vectors written here land exactly when the items move: never for a lost lease."""
    if not results:
        return
    await upsert_embeddings(conn, results)
    await conn.execute(
        """INSERT INTO analysis_results (track_id, analyzer_type, model_version, sentiment,
                                         confidence, themes, complexity_score, analysis_data,
                                         processing_time_ms)
           SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                                $6::jsonb[], $7::numeric[], $8::jsonb[], $9::int[])
           ON CONFLICT (track_id, analyzer_type, model_version) DO UPDATE
              SET sentiment = EXCLUDED.sentiment, confidence = EXCLUDED.confidence,
                  themes = EXCLUDED.themes, complexity_score = EXCLUDED.complexity_score,
                  analysis_data = EXCLUDED.analysis_data,
                  processing_time_ms = EXCLUDED.processing_time_ms, created_at = now()""",
        [r.track_id for r in results],
        [r.analyzer_type for r in results],
        [r.model_version for r in results],
        [r.sentiment for r in results],
        [_clamp01(r.confidence) for r in results],
        [json.dumps(r.themes) for r in results],
        [_clamp01(r.complexity_score) for r in results],
        [json.dumps(r.analysis_data, default=str) for r in results],
        [r.processing_time_ms for r in results],
    )


async def upsert_embeddings(conn: asyncpg.Connection, results: Sequence[AnalysisResult]) -> None:
    """Insert or replace the vectors of the results that carry one.

    One row per (track, model): a re-run of the same model overwrites its vector. The
    vectors go through pgvector's binary codec (registered on every pool connection,
    db.connect), never as formatted text."""
    rows = [
        (r.track_id, r.embedding.model, r.embedding.vector, r.embedding.run_id)
        for r in results
        if r.embedding is not None
    ]
    if not rows:
        return
    await conn.executemany(
        """INSERT INTO track_embeddings (track_id, model, embedding, run_id)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (track_id, model) DO UPDATE
              SET embedding = EXCLUDED.embedding, run_id = EXCLUDED.run_id, created_at = now()""",
        rows,
    )
