"""The emotion analyzer on hand-computed fixtures and edge cases."""

from __future__ import annotations

import json

import pytest

from analyzer_runtime.analyzers.base import TrackInput
from analyzer_runtime.analyzers.emotion import EMOTIONS, EmotionAnalyzer, emotion_features, lexicon
from tests.fixtures.lyrics import GRAVE_COLD, GRIND_HOOK, SUNNY_CUP, Fixture

ANALYZER = EmotionAnalyzer()


def _track(lyrics: str | None) -> TrackInput:
    return TrackInput(id=3, title="t", artist="a", lyrics=lyrics)


def test_lexicon_is_the_shipped_nrc_file() -> None:
    lex = lexicon()
    assert len(lex) > 6000
    assert set(lex["abandoned"]) == {"anger", "fear", "negative", "sadness"}


@pytest.mark.parametrize("fixture", [SUNNY_CUP, GRAVE_COLD], ids=lambda f: f.name)
def test_fixtures_match_hand_computation(fixture: Fixture) -> None:
    exp = fixture.expected
    f = emotion_features(fixture.lyrics)
    assert f["word_count"] == exp["word_count"]
    assert f["hits"] == {a: exp["emotion_hits"][a] for a in f["hits"]}
    assert f["dominant"] == exp["dominant"]
    assert f["dominant_share"] == pytest.approx(exp["dominant_share"], abs=1e-4)
    assert f["confidence"] == pytest.approx(exp["emotion_confidence"], abs=1e-4)
    assert f["sentiment"] == exp["emotion_sentiment"]
    n = exp["word_count"]
    dominant_hits = exp["emotion_hits"][exp["dominant"]]
    assert f["scores"][exp["dominant"]] == pytest.approx(dominant_hits / n, abs=1e-4)


def test_sunny_cup_top_emotions_tie_order() -> None:
    assert emotion_features(SUNNY_CUP.lyrics)["top_emotions"] == SUNNY_CUP.expected["top_emotions"]


def test_tie_goes_to_earlier_name() -> None:
    f = emotion_features(GRIND_HOOK.lyrics)
    for affect, count in GRIND_HOOK.expected["emotion_hits"].items():
        assert f["hits"][affect] == count
    assert f["dominant"] == GRIND_HOOK.expected["dominant"]
    assert f["sentiment"] == GRIND_HOOK.expected["emotion_sentiment"]


async def test_result_shape() -> None:
    [out] = await ANALYZER.analyze_batch([_track(SUNNY_CUP.lyrics)])
    assert out.status == "done" and out.result is not None
    r = out.result
    assert (r.analyzer_type, r.model_version) == ("emotion", "1.0.0")
    assert r.sentiment == "positive"
    assert r.themes == ["joy", "trust", "anticipation"]
    assert r.confidence == pytest.approx(0.3269, abs=1e-4)
    json.dumps(r.analysis_data)


def test_plural_and_dropped_g_fall_back_to_lexicon_forms() -> None:
    lex = lexicon()
    # NRC has "fight", "enemy", "crying" but not "fights", "enemies", "cryin'"
    assert "fights" not in lex and "enemies" not in lex and "cryin'" not in lex
    f = emotion_features("fights enemies cryin'")
    assert f["lexicon_words"] == 3
    expected = [*lex["fight"], *lex["enemy"], *lex["crying"]]
    for affect in {*EMOTIONS, "positive", "negative"}:
        assert f["hits"][affect] == expected.count(affect)


@pytest.mark.parametrize("lyrics", ["", " \n "])
def test_empty_is_skipped(lyrics: str) -> None:
    assert ANALYZER.analyze_sync(_track(lyrics)).status == "skipped"


def test_one_word() -> None:
    out = ANALYZER.analyze_sync(_track("love"))
    assert out.result is not None
    f = out.result.analysis_data
    assert f["dominant"] == "joy"  # NRC: love -> joy, positive
    assert f["scores"]["joy"] == 1.0
    # share 1, coverage 1, but one word: length factor 1/20
    assert out.result.confidence == pytest.approx(0.05)


def test_no_lexicon_words_is_neutral_without_dominant() -> None:
    out = ANALYZER.analyze_sync(_track("Я иду домой 🔥\x00 [Chorus]\nzzz qqq"))
    assert out.status == "done" and out.result is not None
    f = out.result.analysis_data
    assert f["word_count"] == 5
    assert f["dominant"] is None and out.result.confidence == 0.0
    assert out.result.sentiment == "neutral"
    assert out.result.themes == []


def test_section_markers_are_not_words() -> None:
    # "chorus" is not an NRC word, but "[Anger]" as a marker must not count either
    f = emotion_features("[Anger]\n[Verse 1: Fear]\nsmile")
    assert f["word_count"] == 1
    assert f["hits"]["anger"] == 0 and f["hits"]["fear"] == 0


def test_one_megabyte() -> None:
    big = "I cry at the funeral but I smile\n" * 30_000
    f = emotion_features(big)
    assert f["word_count"] == 8 * 30_000
    assert f["hits"]["sadness"] == 2 * 30_000  # cry, funeral
    assert set(f["scores"]) == {*EMOTIONS, "positive", "negative"}
