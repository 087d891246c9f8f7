"""The one interface every analyzer implements, and the typed outcomes it returns.

The runtime never looks inside an analyzer: it hands it a batch of tracks and
stores whatever outcomes come back, in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from analyzer_runtime.ledger.shards import BatchExtras

if TYPE_CHECKING:
    import asyncpg

    from analyzer_runtime.ledger.shards import Run

OutcomeStatus = Literal["done", "skipped", "failed"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a shard worker tells its analyzer before the first batch: analyzers that
    coordinate across shards (the llm analyzer's global rate limit) need the run."""

    pool: asyncpg.Pool
    run_id: int
    shard: int
    spec: dict[str, Any]
    # The version the run was planned with: every result of this analyzer is stored
    # under it.
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class TrackInput:
    id: int
    title: str
    artist: str
    lyrics: str | None


@dataclass(frozen=True, slots=True)
class EmbeddingVector:
    """A vector to store in `track_embeddings` with its result (the embedding analyzer):
    written by the same upsert, so in the batch's one transaction, exactly once."""

    model: str
    vector: Sequence[float]  # a numpy float32 row; pgvector's codec sends it as binary
    run_id: int | None = None


@dataclass(slots=True)
class AnalysisResult:
    """One row of `analysis_results` (keyed by track, analyzer_type, model_version);
    `embedding`, when set, is also stored in `track_embeddings`."""

    track_id: int
    analyzer_type: str
    model_version: str
    sentiment: str | None = None
    confidence: float | None = None
    themes: list[str] = field(default_factory=list)
    complexity_score: float | None = None
    analysis_data: dict[str, Any] = field(default_factory=dict)
    processing_time_ms: int = 0
    embedding: EmbeddingVector | None = None


@dataclass(slots=True)
class ItemOutcome:
    """What happened to one track: a result, a skip with its reason, or a failure."""

    track_id: int
    status: OutcomeStatus
    result: AnalysisResult | None = None
    reason: str | None = None

    @classmethod
    def done(cls, result: AnalysisResult) -> ItemOutcome:
        return cls(result.track_id, "done", result=result)

    @classmethod
    def skipped(cls, track_id: int, reason: str) -> ItemOutcome:
        return cls(track_id, "skipped", reason=reason)

    @classmethod
    def failed(cls, track_id: int, reason: str) -> ItemOutcome:
        return cls(track_id, "failed", reason=reason)


def split_empty_lyrics(tracks: Sequence[TrackInput]) -> tuple[list[ItemOutcome], list[TrackInput]]:
    """(skipped outcomes for tracks with empty lyrics, the tracks to analyze): the rule
    every analyzer applies, for analyzers that work on a whole batch at once."""
    skipped = [ItemOutcome.skipped(t.id, "empty lyrics") for t in tracks
               if t.lyrics is None or not t.lyrics.strip()]  # fmt: skip
    todo = [t for t in tracks if t.lyrics is not None and t.lyrics.strip()]
    return skipped, todo


class Analyzer(ABC):
    """Analyze a batch of tracks. `name` is the registry name used in specs;
    `analyzer_type` and `version` are what results are stored under."""

    name: str
    analyzer_type: str
    version: str
    # The versions this code implements (the newest last); None: any label names the
    # version (an LLM's version is its provider, model and prompt).
    versions: tuple[str, ...] | None = None

    @abstractmethod
    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]: ...

    async def attach(self, ctx: RunContext) -> None:
        """Called by the shard worker once before the first batch; a ValueError here
        is a configuration error (the shard exits with its message)."""
        self.use_version(ctx.model_version)

    def use_version(self, version: str | None) -> None:
        """Write results under `version` (the planned one); refused when this code
        does not implement it."""
        if version is None:
            return
        if self.versions is not None and version not in self.versions:
            raise ValueError(
                f"{self.name} implements version(s) {', '.join(self.versions)};"
                f" the run asks for {version!r}"
            )
        self.version = version

    def take_extras(self) -> BatchExtras:
        """Counters that are not item states (LLM tokens, fallback use) gathered since
        the last call; the worker commits them with the batch, in the same transaction."""
        return BatchExtras()

    async def estimate(self, conn: asyncpg.Connection, run: Run) -> dict[str, Any] | None:
        """A planning-time estimate for the run's status (`status.estimate`), or None."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models; most analyzers hold nothing."""


class LocalAnalyzer(Analyzer):
    """An analyzer whose work is pure CPU on one track at a time.

    Subclasses implement `analyze_one`; empty lyrics are skipped here once for all
    of them, and an exception on one track fails that track only.
    """

    def analyze_one(self, track: TrackInput) -> AnalysisResult | ItemOutcome:
        raise NotImplementedError

    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]:
        # In a thread, so that the lease heartbeat keeps running during a long batch.
        return await asyncio.to_thread(lambda: [self.analyze_sync(t) for t in tracks])

    def analyze_sync(self, track: TrackInput) -> ItemOutcome:
        if track.lyrics is None or not track.lyrics.strip():
            return ItemOutcome.skipped(track.id, "empty lyrics")
        start = time.perf_counter()
        try:
            out = self.analyze_one(track)
        except Exception as exc:  # one bad track must not stop the shard
            return ItemOutcome.failed(track.id, f"{type(exc).__name__}: {exc}"[:500])
        if isinstance(out, ItemOutcome):
            return out
        out.processing_time_ms = int((time.perf_counter() - start) * 1000)
        return ItemOutcome.done(out)
