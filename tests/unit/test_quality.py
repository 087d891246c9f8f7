"""Units of the distilled quality model (issue 15): the feature vector read from stored
results, the model bytes' checksum, the fake provider's known label function, the
training's cross-validation on a synthetic problem, and the spec's modelVersion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from rap_devtools.fake_llm import expected
from rap_devtools.fake_llm.answers import feature_labels

from analyzer_runtime.analyzers import registry
from analyzer_runtime.analyzers.algorithmic import features as alg_features
from analyzer_runtime.analyzers.emotion import emotion_features
from analyzer_runtime.contract import load_manifest
from analyzer_runtime.contract.types import NOT_A_FALLBACK, AnalyzerName
from analyzer_runtime.corpus.synthetic import generate_tracks
from analyzer_runtime.quality import features, storage, training


def test_base_vector_follows_the_feature_list_and_marks_absent_fields_nan() -> None:
    text = next(iter(generate_tracks(1))).lyrics
    a, e = alg_features(text), emotion_features(text)
    vec = features.base_vector(a, e)
    assert len(vec) == len(features.BASE_FEATURES) == len(set(features.BASE_FEATURES))
    named = dict(zip(features.BASE_FEATURES, vec, strict=True))
    assert named["alg.mattr"] == a["lexical"]["mattr"]
    assert named["alg.rhyme_density"] == a["rhyme"]["density"]
    assert named["emo.joy"] == e["scores"]["joy"]
    assert all(math.isfinite(v) for v in vec)
    partial = features.base_vector({"lexical": {"mattr": 0.7}}, {})
    assert partial[features.BASE_FEATURES.index("alg.mattr")] == 0.7
    assert math.isnan(partial[0])


def test_model_bytes_are_checked_before_loading() -> None:
    blob, digest = storage.dumps({"quality": [1, 2, 3]})
    with pytest.raises(storage.ModelCorrupt, match="train it again"):
        storage.loads(blob[:-1] + b"\x00", digest)
    # Not an estimator: refused after the (safe) load; tests/unit/test_quality_storage.py
    # has the round trip and the malicious payloads.
    with pytest.raises(storage.ModelCorrupt, match="HistGradientBoostingRegressor"):
        storage.loads(blob, digest)


def test_fake_feature_labels_are_the_documented_function_and_deterministic() -> None:
    text = next(iter(generate_tracks(3))).lyrics
    q, c = feature_labels(text, seed=1)
    assert (q, c) == feature_labels(text, seed=1)
    assert 1 <= q <= 10 and 0 <= c <= 1
    a, e = alg_features(text), emotion_features(text)

    def clamp(x: float) -> float:
        return min(1.0, max(0.0, x))

    s = (
        0.30 * clamp((a["lexical"]["mattr"] - 0.68) / 0.10)
        + 0.25 * clamp((0.30 - a["repetition"]["repeated_line_ratio"]) / 0.25)
        + 0.20 * clamp(a["syllables"]["multisyllabic_share"] / 0.05)
        + 0.15 * clamp(e["scores"]["joy"] / 0.08)
        + 0.10 * clamp((a["sentiment"]["compound"] + 0.2) / 0.4)
    )
    # The noise is N(0, 0.5) before rounding: 4 sigma plus the rounding.
    assert abs(q - (1 + 9 * s)) <= 2.5
    assert abs(c - clamp((a["complexity"] - 0.6) / 0.15)) <= 0.15
    track = {"id": 1, "artist": "x", "lyrics": text}
    assert expected(track, labels="features", seed=1)["quality"] == q
    assert expected(track)["quality"] == expected(track, labels="hash")["quality"]


@pytest.mark.slow  # trains and cross-validates the model
def test_cross_validation_ranks_a_learnable_target_over_the_constant() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, 3))
    y = np.clip(1 + 9 * (0.6 * x[:, 0] + 0.4 * (x[:, 1] > 0.5)) + rng.normal(0, 0.3, 200), 1, 10)
    got = training.cross_validate(x, y, 3, "quality")
    assert set(got) == {"gradient_boosting", "linear", "constant"}
    assert got["gradient_boosting"]["mae"] < 0.5 * got["constant"]["mae"]
    assert got["gradient_boosting"]["spearman"] > 0.8
    assert got["constant"]["spearman"] is None


def test_spec_model_version_only_for_quality() -> None:
    def doc(**spec: object) -> dict[str, object]:
        return {"apiVersion": "rapanalyzer.io/v1alpha1", "kind": "AnalysisRun",
                "metadata": {"name": "q"}, "spec": spec}  # fmt: skip

    m = load_manifest(doc(analyzer="quality", modelVersion=2))
    assert m.spec.model_version == 2
    assert load_manifest(doc(analyzer="quality")).spec.model_version is None
    with pytest.raises(ValidationError, match=r"only allowed when spec.analyzer is 'quality'"):
        load_manifest(doc(analyzer="algorithmic", modelVersion=1))
    with pytest.raises(ValidationError):
        load_manifest(doc(analyzer="quality", modelVersion=0))
    assert "quality" in registry.available()
    assert AnalyzerName.quality in NOT_A_FALLBACK
    assert registry.create("quality").version == "1.0.0"
