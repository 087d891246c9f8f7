"""Units of the cascade (issue 25): the split rule, the real algorithmic analyzer as a
first analyzer, the quality model's agreement calibration and its storage, the
agreement measure, status.cascade and the planning estimate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import REGISTRY

from analyzer_runtime.analyzers.algorithmic import AlgorithmicAnalyzer
from analyzer_runtime.analyzers.base import AnalysisResult, Analyzer, ItemOutcome, TrackInput
from analyzer_runtime.analyzers.llm import cascade
from analyzer_runtime.contract import llm_presets
from analyzer_runtime.contract.llm_models import CascadeOptions
from analyzer_runtime.contract.status import TokenPricing
from analyzer_runtime.corpus.synthetic import generate_tracks
from analyzer_runtime.ledger import llm_estimate, models
from analyzer_runtime.quality import agreement, storage
from tests.builders import shard, status

VERSION = "custom:fake@p1"


def _done(tid: int, sentiment: str | None, confidence: float | None) -> ItemOutcome:
    return ItemOutcome.done(
        AnalysisResult(tid, "quality", "1.0.0", sentiment=sentiment, confidence=confidence)
    )


def _track(tid: int, lyrics: str | None = "words") -> TrackInput:
    return TrackInput(tid, f"t{tid}", "a", lyrics)


def test_split_keeps_exactly_the_labelled_tracks_at_or_above_the_threshold() -> None:
    tracks = [_track(i) for i in range(1, 7)]
    outcomes = [
        _done(1, "positive", 0.9),
        _done(2, "negative", 0.8),  # exactly the threshold: kept
        _done(3, "mixed", 0.79),
        _done(4, None, 0.95),  # a quality model without the sentiment head
        ItemOutcome.failed(5, "no algorithmic result"),
        # 6: no outcome at all
    ]
    got = cascade.split_outcomes(tracks, outcomes, 0.8, VERSION)
    assert [o.track_id for o in got.kept] == [1, 2]
    assert [t.id for t in got.to_llm] == [3, 4, 5, 6]
    for o in got.kept:
        assert o.result is not None and o.result.analyzer_type == "quality"
        why = o.result.analysis_data["cascade_for"]
        assert why == {"analyzer": "llm", "model_version": VERSION,
                       "confidence": o.result.confidence, "threshold": 0.8}  # fmt: skip
    assert "cascade_for" not in (outcomes[2].result.analysis_data if outcomes[2].result else {})
    assert cascade.keeps(None, 0.0) is False


async def test_algorithmic_first_analyzer_keeps_its_confident_tracks_under_its_own_type() -> None:
    texts = [t.lyrics for t in generate_tracks(40)]
    tracks = [_track(i, text) for i, text in enumerate(texts, 1)] + [_track(99, "  ")]
    c = cascade.Cascade(CascadeOptions(analyzer="algorithmic", minConfidence=0.5), VERSION,
                        AlgorithmicAnalyzer())  # fmt: skip
    before = {r: _routed(r) for r in ("kept", "sent")}
    got = await c.split(tracks)
    own = {o.track_id: o for o in await AlgorithmicAnalyzer().analyze_batch(tracks[:-1])}
    # the algorithmic analyzer gives every track with lyrics a result
    expect_kept = [t.id for t in tracks[:-1] if (own[t.id].result.confidence or 0) >= 0.5]  # type: ignore[union-attr]
    assert 0 < len(expect_kept) < 40  # the threshold splits this corpus
    assert [o.track_id for o in got.kept] == expect_kept
    assert all(o.result and o.result.analyzer_type == "algorithmic" for o in got.kept)
    # Empty lyrics are the LLM lane's to skip; the rest go to the LLM in input order.
    assert [t.id for t in got.to_llm] == [t.id for t in tracks if t.id not in expect_kept]
    assert got.to_llm[-1].id == 99
    # rap_analyzer_llm_cascade_tracks_total counts where each track went.
    assert _routed("kept") - before["kept"] == len(got.kept)
    assert _routed("sent") - before["sent"] == len(got.to_llm)


def _routed(route: str) -> float:
    value = REGISTRY.get_sample_value(
        "rap_analyzer_llm_cascade_tracks_total", {"model": VERSION, "route": route}
    )
    assert value is not None  # the label pair exists (at 0) once a Cascade is made
    return value


class _Broken(Analyzer):
    name = analyzer_type = "broken"
    version = "0"

    async def analyze_batch(self, tracks: Sequence[TrackInput]) -> list[ItemOutcome]:
        raise RuntimeError("model file unreadable")


async def test_a_failing_first_analyzer_sends_the_whole_batch_to_the_llm() -> None:
    c = cascade.Cascade(CascadeOptions(analyzer="quality"), VERSION, _Broken())
    tracks = [_track(1), _track(2)]
    got = await c.split(tracks)
    assert got.kept == [] and got.to_llm == tracks


def test_cascade_of_spec_only_for_llm_runs_with_a_cascade() -> None:
    assert llm_presets.cascade_of_spec({"analyzer": "llm", "llm": {"cascade": {"analyzer": "quality"}}}) == "quality"  # fmt: skip
    assert llm_presets.cascade_of_spec({"analyzer": "llm", "llm": {}}) is None
    assert llm_presets.cascade_of_spec({"analyzer": "quality"}) is None


def test_calibration_maps_probabilities_to_observed_agreement() -> None:
    rng = np.random.default_rng(0)
    top = rng.uniform(0.3, 1.0, 5000)
    correct = rng.uniform(size=5000) < top**2  # over-confident: right top**2 of the time
    x, y = agreement.sentiment_table(top, correct)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0) and x.size <= agreement.MAX_POINTS
    cal = agreement.Calibration(x, y, np.full(10, 0.9))
    for p in (0.5, 0.8, 0.95):
        assert cal.p_sentiment(np.array([p]))[0] == pytest.approx(p**2, abs=0.06)
    # Outside the fitted range: clipped, never extrapolated past [0, 1].
    assert 0 <= cal.p_sentiment(np.array([0.0, 2.0])).min() <= 1


def test_quality_table_uses_the_overall_rate_for_thin_bins() -> None:
    pred = np.array([5.2] * 100 + [9.6] * 5)
    label = np.array([5.0] * 80 + [8.0] * 20 + [6.0] * 5)  # bin 5: 80% within 1
    rate = agreement.quality_table(pred, label)
    overall = 80 / 105
    assert rate[4] == pytest.approx(0.8) and rate[9] == pytest.approx(overall)
    assert rate[0] == pytest.approx(overall)
    cal = agreement.Calibration(np.array([0.0, 1.0]), np.array([0.0, 1.0]), rate)
    assert cal.p_quality(np.array([4.6, 12.0])).tolist() == [
        pytest.approx(0.8),
        pytest.approx(overall),
    ]


def test_a_model_with_the_sentiment_head_round_trips_and_a_foreign_head_is_refused() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4))
    y = np.where(x[:, 0] > 0, "positive", "negative")
    est = {
        "quality": HistGradientBoostingRegressor(max_iter=5).fit(x, x[:, 1]),
        agreement.SENTIMENT: HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        agreement.CALIBRATION: agreement.Calibration(
            np.array([0.2, 0.9]), np.array([0.3, 0.95]), np.full(10, 0.9)
        ).as_arrays(),
    }
    blob, digest = storage.dumps(est)
    loaded = storage.loads(blob, digest, list(est))
    np.testing.assert_array_equal(
        loaded[agreement.SENTIMENT].predict_proba(x), est[agreement.SENTIMENT].predict_proba(x)
    )
    bad = {**est, agreement.SENTIMENT: HistGradientBoostingRegressor(max_iter=5).fit(x, x[:, 0])}
    blob, digest = storage.dumps(bad)
    with pytest.raises(storage.ModelCorrupt):
        storage.loads(blob, digest, list(bad))
    odd = {**est, agreement.CALIBRATION: {"sentiment_x": np.zeros(3)}}
    blob, digest = storage.dumps(odd)
    with pytest.raises(storage.ModelCorrupt):
        storage.loads(blob, digest, list(odd))


def test_a_model_without_the_head_is_refused_for_the_cascade() -> None:
    model = storage.StoredModel("quality", 3, [], ["quality", "complexity"], {}, "labels", 100,
                                "0" * 64, None)  # fmt: skip
    with pytest.raises(storage.ModelUnusable, match="rap-analyzer model train quality"):
        models.require_head(model)
    models.require_head(
        storage.StoredModel(
            "quality", 4, [], ["quality", agreement.SENTIMENT], {}, "l", 100, "0" * 64, None
        )
    )


def test_label_agreement_counts_missing_labels_as_disagreement() -> None:
    reference = {1: ("positive", 7.0), 2: ("negative", 3.0), 3: ("mixed", 5.0), 4: ("neutral", 6.0)}
    got = {1: ("positive", 8.0), 2: ("negative", 4.5), 3: ("mixed", None)}  # 4 missing
    assert agreement.label_agreement(got, reference) == {
        "tracks": 4, "sentiment": 0.75, "quality": 0.25, "both": 0.25,
    }  # fmt: skip


def test_status_cascade_counts_and_cost_saved() -> None:
    shards = [
        shard(0, "done", done=95, failed=1, skipped=4, cascade_kept=60, fallback_used=5,
              tokens_prompt=30_000, tokens_completion=6_000),
        shard(1, "done", done=100, cascade_kept=40,
              tokens_prompt=50_000, tokens_completion=10_000),
    ]  # fmt: skip
    pricing = TokenPricing(0.5 / 1000, 1.5 / 1000)
    st = status(shards, pricing=pricing, cascade="quality")
    cost = pricing.cost(80_000, 16_000)
    answered = 195 - 100 - 5  # processed - kept - fallback
    assert st["cascade"] == {
        "analyzer": "quality", "kept": 100, "sentToLLM": 96,
        "costSaved": pytest.approx(100 * cost / answered, rel=1e-4),
    }  # fmt: skip
    # Nothing answered by the LLM yet (or no price): no figure rather than a guess.
    kept_all = [shard(0, "done", done=10, cascade_kept=10)]
    none = status(kept_all, pricing=pricing, cascade="algorithmic")
    assert none["cascade"] == {"analyzer": "algorithmic", "kept": 10, "sentToLLM": 0,
                               "costSaved": None}  # fmt: skip


def test_estimate_uses_the_models_out_of_fold_share() -> None:
    curve = [{"threshold": 0.6, "kept": 0.7}, {"threshold": 0.8, "kept": 0.5}]
    model = storage.StoredModel("quality", 1, [], ["quality", agreement.SENTIMENT],
                                {"sentiment": {"cascade_curve": curve}}, "l", 100, "0" * 64,
                                None)  # fmt: skip
    got = llm_estimate.cascade_estimate(
        CascadeOptions(analyzer="quality", minConfidence=0.7), model, 2.0
    )
    assert got == {"analyzer": "quality", "minConfidence": 0.7, "keptShare": 0.6, "cost": 0.8}
    alg = llm_estimate.cascade_estimate(CascadeOptions(analyzer="algorithmic"), None, 2.0)
    assert "keptShare" not in alg and "cost" not in alg


def test_the_cli_status_text_shows_the_cascade_and_its_estimate() -> None:
    from analyzer_runtime.contract.wording import render_status_text

    text = render_status_text(
        {
            "phase": "Succeeded",
            "cascade": {"analyzer": "quality", "kept": 554, "sentToLLM": 446, "costSaved": 0.125},
            "estimate": {
                "requests": 100, "tokens": {"total": 5000}, "duration": "1m", "cost": 0.5,
                "cascade": {"analyzer": "quality", "minConfidence": 0.8, "keptShare": 0.57,
                            "cost": 0.215},
            },
        }
    )  # fmt: skip
    assert "554 tracks kept by quality, 446 sent to the LLM, ~$0.1250 saved" in text
    assert "quality first at 0.8: ~57% of the tracks expected to stay" in text
    assert "~$0.2150 with it" in text
