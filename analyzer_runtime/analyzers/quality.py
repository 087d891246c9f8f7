"""The `quality` analyzer: the distilled model (analyzer_runtime.quality) scoring tracks.

It predicts what the llm analyzer would answer for `quality` (1-10) and `complexity`
(0-1) from the track's stored `algorithmic` and `emotion` results (and embedding, when
the model was trained with one) - no network, no lyrics parsing.

- Planning (`estimate`, called by the planner for every run): the model is resolved -
  spec.modelVersion, or the latest - and pinned for the run in `run_models`; a missing
  model refuses the run with a ValueError naming `rap-analyzer model train quality`
  (the run just planned is removed, so nothing is left pending). The operator refuses
  it before planning (kinds/analysisrun.py: Pending, Valid=False).
- Each shard process loads the pinned model once (`attach`) and predicts a whole batch
  in one call.
- Tracks with empty lyrics are skipped (as every analyzer does); tracks without the
  stored features FAIL with a message naming the AnalysisRun to apply first
  (`onlyMissing` runs then retry exactly them once the features exist).

Results: analyzer_type `quality`, model_version `1.0.0` (this code), one row per track;
`complexity_score` and analysis_data {"quality", "complexity", "model", "model_version"}
(the trained model's version). A model trained with the sentiment head (issue 25,
quality/agreement.py) also fills `sentiment` (the LLM's label it predicts),
`confidence` (the estimated chance the LLM agrees on every label it gives) and
analysis_data.agreement {sentiment, quality} (that chance per label); complexity is NULL when the model has no complexity
target (learned from an adopted analyzer's labels without complexity). Re-scoring with a newer model over tracks that have a
result is a run with `selection.onlyMissing: false` (the row is updated in place).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analyzer_runtime.analyzers.base import (
    AnalysisResult,
    Analyzer,
    ItemOutcome,
    RunContext,
    TrackInput,
    split_empty_lyrics,
)
from analyzer_runtime.contract.types import AnalyzerName, fixed_versions

if TYPE_CHECKING:
    import asyncpg

    from analyzer_runtime.ledger.shards import Run
    from analyzer_runtime.quality import agreement
    from analyzer_runtime.quality.storage import StoredModel


async def pinned_model(conn: asyncpg.Connection, run: Run) -> StoredModel:
    """The model the run was pinned to at planning (without loading it); pinned now,
    through the ledger, for a run planned before pins existed. ModelNotFound if none."""
    from analyzer_runtime.ledger import models

    return await models.pin(conn, run.id, run.spec.get("modelVersion"))


def _predict(model: StoredModel, x: Any) -> tuple[dict[str, Any], agreement.Prediction | None]:
    from analyzer_runtime.quality import training

    preds = training.predict(model, x)
    return preds, training.predict_agreement(model, x, preds["quality"])


class QualityAnalyzer(Analyzer):
    name = "quality"
    analyzer_type = "quality"
    versions = fixed_versions(AnalyzerName.quality)
    version = versions[-1]

    def __init__(self, model: StoredModel | None = None) -> None:
        self._model = model  # tests may hand in a loaded one
        self._pool: asyncpg.Pool | None = None
        self._with_embedding = False

    @property
    def model(self) -> StoredModel | None:
        return self._model

    async def attach(self, ctx: RunContext) -> None:
        await super().attach(ctx)
        self._pool = ctx.pool
        if self._model is None:
            from analyzer_runtime.ledger import shards as shard_ledger
            from analyzer_runtime.quality import storage

            async with ctx.pool.acquire() as conn:
                run = await conn.fetchrow("SELECT uid FROM runs WHERE id = $1", ctx.run_id)
                planned = await shard_ledger.find_run(conn, run["uid"])
                assert planned is not None
                ref = await pinned_model(conn, planned)
                self._model = await storage.find(conn, ref.name, ref.version, load=True)
        self._with_embedding = any(f.startswith("emb.") for f in self._model.features)

    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]:
        from analyzer_runtime.quality import features

        model = self._model
        if model is None or self._pool is None:
            raise RuntimeError("the quality analyzer was not attached to a run")
        outcomes, todo = split_empty_lyrics(tracks)
        if not todo:
            return outcomes
        start = time.perf_counter()
        async with self._pool.acquire() as conn:
            rows = await features.read_features(
                conn, [t.id for t in todo], with_embedding=self._with_embedding
            )
        for tid, what in rows.missing.items():
            first = what.split(" and ")[0]
            outcomes.append(
                ItemOutcome.failed(
                    tid,
                    f"no {what} result for this track: apply an `{first}` AnalysisRun"
                    " (selection.onlyMissing) first, then rerun this one",
                )
            )
        if not rows.ids:
            return outcomes
        # One predict per target for the batch, off the event loop.
        preds, head = await asyncio.to_thread(_predict, model, rows.matrix)
        per_track_ms = int((time.perf_counter() - start) * 1000 / len(todo))
        # A model learned from an adopted analyzer without complexity labels has only
        # the quality target (training.read_analyzer_labels): complexity is then NULL.
        cx = preds.get("complexity")
        for i, tid in enumerate(rows.ids):
            quality = round(float(preds["quality"][i]), 3)
            complexity = None if cx is None else round(float(cx[i]), 4)
            data: dict[str, Any] = {
                "quality": quality,
                "complexity": complexity,
                "model": model.name,
                "model_version": model.version,
                "trained_from": model.training_run,
            }
            sentiment = confidence = None
            if head is not None:  # a model with the sentiment head (issue 25)
                sentiment = str(head.sentiment[i])
                confidence = round(float(head.confidence[i]), 4)
                # The chance the LLM would agree, per label (agreement.py).
                data["agreement"] = {
                    "sentiment": round(float(head.p_sentiment[i]), 4),
                    "quality": round(float(head.p_quality[i]), 4),
                }
            outcomes.append(
                ItemOutcome.done(
                    AnalysisResult(
                        track_id=tid,
                        analyzer_type=self.analyzer_type,
                        model_version=self.version,
                        sentiment=sentiment,
                        confidence=confidence,
                        complexity_score=complexity,
                        analysis_data=data,
                        processing_time_ms=per_track_ms,
                    )
                )
            )
        return outcomes

    async def aclose(self) -> None:
        self._model = None
        self._pool = None
