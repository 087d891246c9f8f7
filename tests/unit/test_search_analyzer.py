"""The `embedding` analyzer's batching and outcomes (issue 13), with the real model.

What goes to the database is tested in tests/integration/test_embedding_run.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from analyzer_runtime.analyzers import registry
from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.embedding import EmbeddingAnalyzer
from analyzer_runtime.contract import ANALYZER_VERSIONS, AnalyzerName
from analyzer_runtime.embedding.model import DIM, MODEL_NAME, Embedder


@pytest.fixture(scope="module")
def model() -> Embedder:
    return Embedder.load()


class Counting:
    """The real model, counting its calls (one per batch is the point)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.embed(texts, batch_size=batch_size)

    def token_ids(self, texts: Sequence[str]) -> Any:
        return self.inner.token_ids(texts)


def test_registered_with_its_version() -> None:
    a = registry.create("embedding")
    assert isinstance(a, EmbeddingAnalyzer)
    assert (a.name, a.analyzer_type, a.version) == ("embedding", "embedding", "1.0.0")
    assert ANALYZER_VERSIONS[AnalyzerName.embedding] == ("1.0.0",)


async def test_one_model_call_per_batch_and_empty_lyrics_skipped(model: Embedder) -> None:
    counting = Counting(model)
    # Counting wraps the Embedder with the same embed() (not a subclass)
    analyzer = EmbeddingAnalyzer(embedder=counting)  # type: ignore[arg-type]
    long = " ".join(["money on my mind and the city lights"] * 80)  # > 1 window
    tracks = [
        TrackInput(1, "a", "x", "counting money in the rain"),
        TrackInput(2, "b", "x", "   "),
        TrackInput(3, "c", "x", None),
        TrackInput(4, "d", "x", long),
    ]
    outcomes = await analyzer.analyze_batch(tracks)
    assert counting.calls == [2]
    by_id = {o.track_id: o for o in outcomes}
    assert sorted(by_id) == [1, 2, 3, 4]
    assert by_id[2].status == by_id[3].status == "skipped"
    assert by_id[2].reason == "empty lyrics"
    for tid, windows in ((1, 1), (4, 3)):
        o = by_id[tid]
        assert o.status == "done" and o.result is not None
        assert o.result.analysis_data == {"model": MODEL_NAME, "windows": windows, "dim": DIM}
        emb = o.result.embedding
        assert emb is not None and emb.model == MODEL_NAME
        vec = np.asarray(emb.vector)
        assert vec.shape == (DIM,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    # The batch's vector equals the model's own for the same text: no mix-up of rows.
    alone = model.embed(["counting money in the rain"])[0]
    # track 1 has lyrics, so its result holds an embedding
    assert float(np.dot(np.asarray(by_id[1].result.embedding.vector), alone)) > 0.9999  # type: ignore[union-attr]


async def test_a_batch_of_only_empty_lyrics_never_calls_the_model(model: Embedder) -> None:
    counting = Counting(model)
    # Counting wraps the Embedder with the same embed() (not a subclass)
    analyzer = EmbeddingAnalyzer(embedder=counting)  # type: ignore[arg-type]
    outcomes = await analyzer.analyze_batch([TrackInput(1, "a", "x", "")])
    assert [o.status for o in outcomes] == ["skipped"] and counting.calls == []


def test_embedding_is_no_fallback() -> None:
    from analyzer_runtime.contract.types import FallbackAnalyzerName

    assert "embedding" not in {f.value for f in FallbackAnalyzerName}
    assert "algorithmic" in {f.value for f in FallbackAnalyzerName}
